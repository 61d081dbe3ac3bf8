//! Stage retries with exponential backoff and jitter, and per-attempt
//! timeouts that cancel the attempt in the worker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use titan_pm::policy::Backoff;
use titan_pm::workflow::{failure_kind, WorkflowOptions};
use titan_pm::{Error, Isolation, ManagerConfig, ProcessManager, SpawnOptions};
use titan_pm_tests::workflows;

const WORKFLOW_WORKER: &str = env!("CARGO_BIN_EXE_test-workflow-worker");

#[tokio::test]
async fn a_stage_failing_twice_succeeds_on_its_third_attempt_after_backoff() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let attempts: Arc<Mutex<Vec<Instant>>> = Default::default();
    let a = attempts.clone();
    let options = WorkflowOptions {
        spawn: SpawnOptions { isolation: Some(Isolation::None), ..Default::default() },
        backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)),
        jitter: 0.5,
        ..Default::default()
    };
    let wf = pm.workflow(workflows::target("Flaky", move || workflows::flaky_workflow(2, 3, a.clone())), options).await.unwrap();
    let mut events = wf.events();
    let result: Json = titan_pm::value::from_value(wf.run(titan_pm::Value::Null, Some("f1")).await.unwrap()).unwrap();
    assert_eq!(result["flaky"]["attempt"], 3);
    assert_eq!(result["flaky"]["key"], "f1/flaky", "the idempotency key is runId/stage");
    let at = attempts.lock().unwrap().clone();
    assert_eq!(at.len(), 3);
    // Backoff 100 ms then 200 ms, each drawn from [half, full].
    assert!(at[1] - at[0] >= Duration::from_millis(50), "{:?}", at[1] - at[0]);
    assert!(at[2] - at[1] >= Duration::from_millis(100), "{:?}", at[2] - at[1]);
    let mut retrying = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let titan_pm::workflow::WorkflowEventKind::StageRetrying { attempt, delay, .. } = ev.kind {
            retrying.push((attempt, delay));
        }
    }
    assert_eq!(retrying.len(), 2);
    assert_eq!(retrying[0].0, 2);
    assert!(retrying[0].1 >= Duration::from_millis(50) && retrying[0].1 <= Duration::from_millis(100), "{retrying:?}");
    assert!(retrying[1].1 >= Duration::from_millis(100) && retrying[1].1 <= Duration::from_millis(200), "{retrying:?}");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_stage_exceeding_its_timeout_on_every_attempt_fails_with_kind_timeout_and_is_cancelled_in_the_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = WorkflowOptions {
        spawn: SpawnOptions { env: vec![("TEST_WORKFLOW".into(), "slow".into())], ..Default::default() },
        backoff: Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)),
        ..Default::default()
    };
    let wf = pm.workflow(WORKFLOW_WORKER, options).await.unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), wf.run(titan_pm::Value::Null, None)).await.unwrap().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout did not stop the attempts");
    let Error::Workflow { stage, cause, .. } = &err else { panic!("{err}") };
    assert_eq!(stage, "slow");
    assert_eq!(failure_kind(cause), "timeout");
    assert!(matches!(**cause, Error::CallTimeout { timeout_ms: 100, .. }), "{cause}");
    // Both attempts (retries: 1) were dropped in the child worker.
    let worker = wf.process().unwrap().clone();
    let cancelled = titan_pm_tests::eventually(Duration::from_secs(5), || {
        futures::executor::block_on(worker.call::<u64>("cancelled", ())).unwrap_or(0) == 2
    })
    .await;
    assert!(cancelled, "the worker did not see both attempts cancelled");
    pm.shutdown().await;
}
