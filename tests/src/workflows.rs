//! Workflow classes for the workflow tests, built with the Rust builder: served
//! in-process (isolation `none`) by the tests and as the `test-workflow-worker`
//! executable (`TEST_WORKFLOW=complex|saga|slow|pool`).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use titan_pm::agent::{Handler, WorkerDef, WorkerError};
use titan_pm::workflow::StageOptions;

/// What a stage saw: name, start, end, its input.
pub type Spans = Arc<Mutex<Vec<(String, Instant, Instant, Json)>>>;

async fn step(spans: Spans, name: &str, ms: u64, input: Json) -> Result<Json, WorkerError> {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    spans.lock().unwrap().push((name.to_string(), start, Instant::now(), input.clone()));
    Ok(json!({ "stage": name, "saw": input }))
}

/// The seed's ComplexWorkflow: A, B -> C, D -> E. C and D take 300 ms each.
pub fn complex_workflow(spans: Spans) -> WorkerDef {
    let mut def = WorkerDef::new("ComplexWorkflow", "1.0.0");
    for (name, deps, ms) in [("A", &[][..], 50), ("B", &[][..], 50), ("C", &["A", "B"][..], 300), ("D", &["A", "B"][..], 300), ("E", &["C", "D"][..], 10)] {
        let spans = spans.clone();
        def = def.stage(name, deps, StageOptions::default(), move |input: Json, _ctx| step(spans.clone(), name, ms, input));
    }
    def
}

/// The seed's OrderSaga: create-order -> reserve-inventory -> charge-payment (fails);
/// compensations cancelOrder, releaseInventory, refundPayment append to `log`.
pub fn order_saga(log: Arc<Mutex<Vec<Json>>>) -> WorkerDef {
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    WorkerDef::new("OrderSaga", "1.0.0")
        .stage("create-order", &[], StageOptions::default(), |order: Json, _ctx| async move { Ok(json!({ "orderId": order["id"] })) })
        .stage("reserve-inventory", &["create-order"], StageOptions::default(), |_done: Json, _ctx| async move {
            Ok(json!({ "reservation": "r-1" }))
        })
        .stage("charge-payment", &["reserve-inventory"], StageOptions { retries: 1, ..Default::default() }, |_done: Json, _ctx| async move {
            Err::<Json, _>(WorkerError::new("PaymentDeclined", "card declined"))
        })
        .compensate("charge-payment", move |result, error, _ctx| {
            l1.lock().unwrap().push(json!(["refundPayment", result, error.map(|e| e["remoteType"].clone())]));
            async move { Ok(()) }
        })
        .compensate("reserve-inventory", move |result, error, _ctx| {
            l2.lock().unwrap().push(json!(["releaseInventory", result, error]));
            async move { Ok(()) }
        })
        .compensate("create-order", move |result, error, _ctx| {
            l3.lock().unwrap().push(json!(["cancelOrder", result, error]));
            async move { Ok(()) }
        })
}

/// One stage that fails its first `failures` attempts, recording when each attempt started.
pub fn flaky_workflow(failures: u32, retries: u32, attempts: Arc<Mutex<Vec<Instant>>>) -> WorkerDef {
    WorkerDef::new("Flaky", "1.0.0").stage("flaky", &[], StageOptions { retries, ..Default::default() }, move |_: Json, ctx| {
        let attempts = attempts.clone();
        async move {
            let n = {
                let mut a = attempts.lock().unwrap();
                a.push(Instant::now());
                a.len() as u32
            };
            if n <= failures {
                return Err(WorkerError::new("TransientError", format!("attempt {n} fails")));
            }
            Ok(json!({ "attempt": ctx.attempt, "key": ctx.idempotency_key }))
        }
    })
}

/// Counts a call as cancelled if it is dropped before it finishes.
struct Guard(Rc<Cell<u64>>, bool);
impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.set(self.0.get() + 1);
        }
    }
}

/// A stage slower than its timeout (100 ms, 1 retry); `cancelled` says how many attempts were dropped.
pub fn slow_workflow() -> WorkerDef {
    let cancelled = Rc::new(Cell::new(0u64));
    let c = cancelled.clone();
    WorkerDef::new("Slow", "1.0.0")
        .stage("slow", &[], StageOptions { timeout: Some(Duration::from_millis(100)), retries: 1, ..Default::default() }, move |_: Json, _ctx| {
            let guard = Guard(c.clone(), false);
            async move {
                let mut guard = guard;
                tokio::time::sleep(Duration::from_secs(5)).await;
                guard.1 = true;
                Ok(json!("finished"))
            }
        })
        .method("cancelled", move |()| {
            let n = cancelled.get();
            async move { Ok(n) }
        })
}

/// Stages that call a pool of `test-worker`s (`TEST_WORKER_BIN`) from inside the workflow's worker.
pub fn pool_workflow() -> WorkerDef {
    WorkerDef::new("PoolCaller", "1.0.0")
        .stage("sum", &[], StageOptions::default(), |pair: (i64, i64), _ctx| async move {
            let worker = std::env::var("TEST_WORKER_BIN").map_err(|_| WorkerError::from("TEST_WORKER_BIN is not set"))?;
            let pm = titan_pm::ProcessManager::new(titan_pm::ManagerConfig::default());
            let opts = titan_pm::PoolOptions { size: titan_pm::PoolSize::Fixed(2), ..Default::default() };
            let pool = pm.pool(worker.as_str(), opts).await.map_err(|e| WorkerError::from(e.to_string()))?;
            let sum: i64 = pool.call("add", pair).await.map_err(|e| WorkerError::from(e.to_string()))?;
            let pids: std::collections::BTreeSet<u32> = futures::future::join_all((0..4).map(|_| pool.call::<u32>("pid", ())))
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .map_err(|e| WorkerError::from(e.to_string()))?;
            pm.shutdown().await;
            Ok(json!({ "sum": sum, "poolPids": pids.len(), "workflowPid": std::process::id() }))
        })
        .stage("double", &["sum"], StageOptions::default(), |done: Json, _ctx| async move {
            Ok(json!(done["sum"]["sum"].as_i64().unwrap_or(0) * 2))
        })
}

/// `def` as an in-process handler target.
pub fn target(name: &str, make: impl Fn() -> WorkerDef + Send + Sync + 'static) -> titan_pm::Target {
    titan_pm::Target::handler(name, move || Ok(Rc::new(make()) as Rc<dyn Handler>))
}
