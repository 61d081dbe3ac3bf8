//! Saga compensation: the failed stage's own compensation first (null result,
//! the error), then the completed stages' in reverse order with their results;
//! `WorkflowError` names the stage, the cause and each compensation's outcome.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value as Json};
use titan_pm::agent::{WorkerDef, WorkerError};
use titan_pm::workflow::{failure_kind, StageOptions, WorkflowOptions};
use titan_pm::{Error, Isolation, ManagerConfig, ProcessManager, SpawnOptions};
use titan_pm_tests::workflows;

fn in_process() -> WorkflowOptions {
    WorkflowOptions { spawn: SpawnOptions { isolation: Some(Isolation::None), ..Default::default() }, ..Default::default() }
}

#[tokio::test]
async fn order_saga_compensates_in_reverse_order() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let log: Arc<Mutex<Vec<Json>>> = Default::default();
    let l = log.clone();
    let wf = pm.workflow(workflows::target("OrderSaga", move || workflows::order_saga(l.clone())), in_process()).await.unwrap();
    let mut events = wf.events();
    let input = titan_pm::value::to_value(&json!({ "id": 42 })).unwrap();
    let err = wf.run(input, Some("order-42")).await.unwrap_err();
    let Error::Workflow { stage, cause, compensations, .. } = &err else { panic!("not a WorkflowError: {err}") };
    assert_eq!(err.class_name(), "WorkflowError");
    assert_eq!(stage, "charge-payment");
    assert_eq!(failure_kind(cause), "remote");
    assert!(cause.to_string().contains("PaymentDeclined: card declined"), "{cause}");
    let order: Vec<&str> = compensations.iter().map(|c| c.stage.as_str()).collect();
    assert_eq!(order, ["charge-payment", "reserve-inventory", "create-order"]);
    assert!(compensations.iter().all(|c| c.error.is_none()));
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            json!(["refundPayment", null, "PaymentDeclined"]),
            json!(["releaseInventory", { "reservation": "r-1" }, null]),
            json!(["cancelOrder", { "orderId": 42 }, null]),
        ]
    );
    let mut names = Vec::new();
    while let Ok(ev) = events.try_recv() {
        names.push(ev.name());
    }
    for n in ["stage:failed", "stage:retrying", "compensation:started", "compensation:completed", "workflow:failed"] {
        assert!(names.contains(&n), "no {n} event in {names:?}");
    }
    // The run is finished: the same id gives the same error, and nothing runs again.
    let again = wf.run(titan_pm::Value::Null, Some("order-42")).await.unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    assert_eq!(log.len(), 3);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_failing_compensation_is_retried_then_recorded_and_the_next_one_runs() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let calls: Arc<Mutex<Vec<String>>> = Default::default();
    let c = calls.clone();
    let make = move || {
        let (c1, c2) = (c.clone(), c.clone());
        WorkerDef::new("Undo", "1")
            .stage("first", &[], StageOptions::default(), |_: Json, _| async move { Ok(1) })
            .stage("second", &["first"], StageOptions::default(), |_: Json, _| async move { Ok(2) })
            .stage("third", &["second"], StageOptions::default(), |_: Json, _| async move { Err::<(), _>(WorkerError::new("Boom", "no")) })
            .compensate("second", move |_, _, ctx| {
                c1.lock().unwrap().push(format!("second attempt {}", ctx.attempt));
                async move { Err(WorkerError::new("UndoError", "cannot undo")) }
            })
            .compensate("first", move |result, _, _| {
                c2.lock().unwrap().push(format!("first {result}"));
                async move { Ok(()) }
            })
    };
    let mut options = in_process();
    options.compensation_retries = 2;
    options.backoff.initial = std::time::Duration::from_millis(10);
    let wf = pm.workflow(workflows::target("Undo", make), options).await.unwrap();
    let err = wf.run(titan_pm::Value::Null, None).await.unwrap_err();
    let Error::Workflow { compensations, .. } = &err else { panic!("{err}") };
    assert_eq!(compensations.len(), 2);
    assert_eq!((compensations[0].stage.as_str(), compensations[0].attempts), ("second", 3));
    assert_eq!(compensations[0].error.as_deref(), Some("UndoError: cannot undo"));
    assert_eq!(compensations[1].error, None);
    assert_eq!(*calls.lock().unwrap(), ["second attempt 1", "second attempt 2", "second attempt 3", "first 1"]);
    pm.shutdown().await;
}
