//! The testing module on real workers: the seed's three example tests, crashes
//! through the real restart policy on every isolation, injected failures, the
//! strict cleanup, and a clock the test moves (restart backoff, breaker, cache TTL)
//! without sleeping.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use titan_pm::agent::{WorkerDef, WorkerError};
use titan_pm::policy::method::{Cache, CircuitBreaker};
use titan_pm::policy::{Backoff, BreakerOptions};
use titan_pm::protocol::{HealthCheck, HealthStatus};
use titan_pm::testing::{Failure, Operation, TestOptions, TestProcessManager};
use titan_pm::workflow::{WorkflowEvent, WorkflowEventKind};
use titan_pm::{Error, HealthReport, Isolation, ManagerConfig, ProcessState, RestartPolicy, SpawnOptions, Target};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const WAIT: Duration = Duration::from_secs(10);

fn calculator() -> Target {
    Target::handler("calculator", || {
        Ok(Rc::new(
            WorkerDef::new("calculator", "1.0.0")
                .method("add", |(a, b): (i64, i64)| async move { Ok(a + b) })
                .method("block", |(ms,): (u64,)| async move {
                    // Blocks its thread: shutdown cannot stop it before it returns.
                    std::thread::sleep(Duration::from_millis(ms));
                    Ok(ms)
                }),
        ))
    })
}

fn manager() -> TestProcessManager {
    TestProcessManager::new(TestProcessManager::config(), TestOptions::default())
}

// ---- the seed's example tests ----

#[tokio::test]
async fn seed_should_restart_after_crash() {
    let pm = manager();
    let calc = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    pm.simulate_crash(calc.id()).await.unwrap();
    assert!(pm.wait_for_recovery(calc.id(), WAIT).await);
    assert!(pm.verify_operation("restart", |op| op.process_id() == calc.id()));
    assert!(pm.verify_operation("crash", |op| matches!(op, Operation::Crash { signal: Some(9), .. })));
    assert_eq!(calc.call::<i64>("add", (2, 3)).await.unwrap(), 5);
    pm.cleanup().await.unwrap();
}

#[tokio::test]
async fn seed_should_report_health_overrides() {
    let pm = manager();
    let calc = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    assert_eq!(pm.get_health(calc.id()).await.unwrap().status, HealthStatus::Healthy);
    let check = HealthCheck { name: "db".into(), status: titan_pm::protocol::CheckStatus::Fail, message: "down".into() };
    pm.set_health(calc.id(), HealthReport::new(HealthStatus::Unhealthy, vec![check]));
    let h = pm.get_health(calc.id()).await.unwrap();
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert_eq!(h.checks[0].name, "db");
    let mut m = pm.get_metrics(calc.id()).await.unwrap();
    m.cpu = 95.0;
    m.memory = 1 << 30;
    pm.set_metrics(calc.id(), m);
    let got = pm.get_metrics(calc.id()).await.unwrap();
    assert_eq!((got.cpu, got.memory), (95.0, 1 << 30));
    pm.clear_health(calc.id());
    pm.clear_metrics(calc.id());
    assert_eq!(pm.get_health(calc.id()).await.unwrap().status, HealthStatus::Healthy);
    assert_ne!(pm.get_metrics(calc.id()).await.unwrap().memory, 1 << 30);
    pm.cleanup().await.unwrap();
}

#[tokio::test]
async fn seed_should_track_operations() {
    let pm = manager();
    let a = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    let b = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    let spawns: Vec<_> = pm.operations().into_iter().filter(|r| r.operation.kind() == "spawn").collect();
    assert_eq!(spawns.len(), 2);
    assert_eq!(spawns[0].operation, Operation::Spawn { process_class: "calculator".into(), process_id: a.id() });
    assert_eq!(spawns[1].operation, Operation::Spawn { process_class: "calculator".into(), process_id: b.id() });
    a.call::<i64>("add", (1, 1)).await.unwrap();
    pm.kill(b.id()).await.unwrap();
    assert!(pm.verify_operation("call", |op| matches!(op, Operation::Call { method, outcome: titan_pm::testing::CallOutcome::Ok, .. } if method == "add")));
    assert!(pm.verify_operation("kill", |op| op.process_id() == b.id()));
    pm.cleanup().await.unwrap();
}

// ---- crashes through the real restart policy ----

async fn crash_until_failed(isolation: Isolation) {
    let fast = RestartPolicy { backoff: Backoff { initial: Duration::from_millis(10), ..Default::default() }, ..RestartPolicy::default() };
    let config = ManagerConfig { isolation, restart: fast, ..TestProcessManager::config() };
    let pm = TestProcessManager::new(config, TestOptions::default());
    let target = if isolation == Isolation::Child { Target::from(WORKER) } else { calculator() };
    let p = pm.spawn(target, SpawnOptions::default()).await.unwrap();
    let first_pid = p.info().await.unwrap().pid;
    for n in 1..=3 {
        pm.simulate_crash(p.id()).await.unwrap();
        assert!(pm.wait_for_recovery(p.id(), WAIT).await, "{isolation:?}: crash {n} did not recover");
        assert_eq!(p.call::<i64>("add", (n, 1)).await.unwrap(), n + 1);
        assert_eq!(p.info().await.unwrap().restarts, n as u32);
    }
    if isolation == Isolation::Child {
        assert_ne!(p.info().await.unwrap().pid, first_pid);
    }
    // The 4th crash within the window spends the budget (3 in 60 s).
    pm.simulate_crash(p.id()).await.unwrap();
    assert!(!pm.wait_for_recovery(p.id(), Duration::from_secs(1)).await);
    assert_eq!(p.info().await.unwrap().state, ProcessState::Failed);
    assert!(matches!(p.call::<i64>("add", (1, 1)).await, Err(Error::ProcessFailed { .. })));
    assert!(pm.verify_operation("failed", |op| op.process_id() == p.id()));
    let restarts = pm.operations().iter().filter(|r| r.operation.kind() == "restart").count();
    assert_eq!(restarts, 3);
    pm.cleanup().await.unwrap();
}

#[tokio::test]
async fn simulate_crash_recovers_and_the_fourth_spends_the_budget_isolation_none() {
    crash_until_failed(Isolation::None).await;
}

#[tokio::test]
async fn simulate_crash_recovers_and_the_fourth_spends_the_budget_isolation_worker() {
    crash_until_failed(Isolation::Worker).await;
}

#[tokio::test]
async fn simulate_crash_recovers_and_the_fourth_spends_the_budget_isolation_child() {
    crash_until_failed(Isolation::Child).await;
}

// ---- injected failures ----

#[tokio::test]
async fn simulate_failure_spawn_fails_exactly_the_next_spawn() {
    let pm = manager();
    pm.simulate_failure("spawn:calculator", Failure::new("no capacity")).unwrap();
    match pm.spawn(calculator(), SpawnOptions::default()).await {
        Err(Error::Spawn { reason, .. }) => assert_eq!(reason, "no capacity"),
        other => panic!("expected SpawnError, got {:?}", other.map(|h| h.id())),
    }
    let calc = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    assert_eq!(calc.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert_eq!(pm.list_processes().await.len(), 1);
    // A failure for another name waits for that name; clear_failures drops it.
    pm.simulate_failure("spawn:other", Failure::new("x")).unwrap();
    pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    pm.clear_failures();
    pm.spawn(calculator(), SpawnOptions { name: Some("other".into()), ..Default::default() }).await.unwrap();
    // A spawn name given in the options is what `spawn:Name` matches.
    pm.simulate_failure("spawn:other", Failure::new("y")).unwrap();
    assert!(pm.spawn(calculator(), SpawnOptions { name: Some("other".into()), ..Default::default() }).await.is_err());
    assert!(!pm.verify_operation("spawn", |op| matches!(op, Operation::Spawn { process_class, .. } if process_class == "nobody")));
    assert!(pm.simulate_failure("explode:x", Failure::new("x")).unwrap_err().to_string().contains("unknown operation"));
    pm.cleanup().await.unwrap();
}

#[tokio::test]
async fn simulate_failure_call_fails_the_next_matching_call_only() {
    let pm = manager();
    let calc = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    pm.simulate_failure("call:calculator.add", Failure::new("injected").of_type("ValueError")).unwrap();
    match calc.call::<i64>("add", (1, 2)).await {
        Err(Error::Remote { remote_type, message, .. }) => assert_eq!((remote_type.as_str(), message.as_str()), ("ValueError", "injected")),
        other => panic!("expected RemoteError, got {other:?}"),
    }
    assert_eq!(calc.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert!(pm.verify_operation("call", |op| matches!(op, Operation::Call { outcome: titan_pm::testing::CallOutcome::Error { class, .. }, .. } if class == "RemoteError")));
    pm.cleanup().await.unwrap();
}

// ---- cleanup is strict ----

#[tokio::test]
async fn cleanup_reports_a_worker_that_outlived_the_shutdown() {
    let config = ManagerConfig { isolation: Isolation::Worker, shutdown_timeout: Duration::from_millis(300), ..TestProcessManager::config() };
    let pm = TestProcessManager::new(config, TestOptions::default());
    let stuck = pm.spawn(calculator(), SpawnOptions { name: Some("stuck".into()), ..Default::default() }).await.unwrap();
    let call = tokio::spawn({
        let stuck = stuck.clone();
        async move { stuck.call::<u64>("block", (3000,)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = pm.cleanup().await.unwrap_err().to_string();
    assert!(err.contains("stuck") && err.contains("worker thread"), "{err}");
    let _ = call.await;
}

// ---- the clock ----

fn timed() -> TestProcessManager {
    let slow = RestartPolicy { backoff: Backoff { initial: Duration::from_secs(10), ..Default::default() }, ..RestartPolicy::default() };
    let config = ManagerConfig { restart: slow, ..TestProcessManager::config() };
    TestProcessManager::new(config, TestOptions { control_time: true, ..Default::default() })
}

#[tokio::test]
async fn advance_time_drives_a_restart_backoff_without_sleeping() {
    let started = Instant::now();
    let pm = timed();
    let calc = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    let t0 = pm.current_time();
    pm.simulate_crash(calc.id()).await.unwrap();
    // The 10 s backoff does not pass on its own.
    assert!(!pm.wait_for_recovery(calc.id(), Duration::from_millis(200)).await);
    assert_eq!(calc.info().await.unwrap().state, ProcessState::Restarting);
    pm.advance_time(Duration::from_secs(9)).await.unwrap();
    assert_eq!(calc.info().await.unwrap().state, ProcessState::Restarting);
    pm.advance_time(Duration::from_secs(1)).await.unwrap();
    assert!(pm.wait_for_recovery(calc.id(), WAIT).await);
    assert_eq!(pm.current_time() - t0, 10_000);
    assert!(pm.verify_operation("restart", |op| matches!(op, Operation::Restart { delay_ms: 10_000, .. })));
    pm.cleanup().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn advance_time_moves_a_breaker_from_open_to_half_open_and_a_cache_past_its_ttl() {
    let started = Instant::now();
    let pm = timed();
    let failing = Arc::new(AtomicBool::new(true));
    let counter = Arc::new(AtomicI64::new(0));
    let target = Target::handler("flaky", {
        let (failing, counter) = (failing.clone(), counter.clone());
        move || {
            let (failing, counter) = (failing.clone(), counter.clone());
            Ok(Rc::new(
                WorkerDef::new("flaky", "1.0.0")
                    .method("get", move |(): ()| {
                        let failing = failing.load(Ordering::SeqCst);
                        async move { if failing { Err(WorkerError::new("IOError", "down")) } else { Ok(1) } }
                    })
                    .method("count", move |(): ()| {
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        async move { Ok(n) }
                    })
                    .circuit_breaker("get", CircuitBreaker {
                        options: BreakerOptions { threshold: 2, timeout: Duration::from_secs(60), half_open_requests: 1 },
                        fallback: None,
                    })
                    .cache("count", Cache { ttl: Duration::from_secs(3600), key: None, has_condition: false }),
            ))
        }
    });
    let p = pm.spawn(target, SpawnOptions::default()).await.unwrap();
    for _ in 0..2 {
        assert!(matches!(p.call::<i64>("get", ()).await, Err(Error::Remote { .. })));
    }
    assert!(matches!(p.call::<i64>("get", ()).await, Err(Error::CircuitOpen)), "the breaker should be open");
    failing.store(false, Ordering::SeqCst);
    pm.advance_time(Duration::from_secs(59)).await.unwrap();
    assert!(matches!(p.call::<i64>("get", ()).await, Err(Error::CircuitOpen)), "open until its 60 s timeout");
    pm.advance_time(Duration::from_secs(1)).await.unwrap();
    // Half-open: the trial call goes through, succeeds and closes the breaker.
    assert_eq!(p.call::<i64>("get", ()).await.unwrap(), 1);
    assert_eq!(p.call::<i64>("get", ()).await.unwrap(), 1);

    assert_eq!(p.call::<i64>("count", ()).await.unwrap(), 1);
    pm.advance_time(Duration::from_secs(3599)).await.unwrap();
    assert_eq!(p.call::<i64>("count", ()).await.unwrap(), 1, "cached within the ttl");
    pm.advance_time(Duration::from_secs(1)).await.unwrap();
    assert_eq!(p.call::<i64>("count", ()).await.unwrap(), 2, "expired after the ttl");
    pm.cleanup().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn time_is_real_unless_controlled_and_reset_time_returns_to_it() {
    let pm = manager();
    assert!(pm.advance_time(Duration::from_secs(1)).await.unwrap_err().to_string().contains("not controlled"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(pm.current_time().abs_diff(now) < 1000);
    pm.cleanup().await.unwrap();

    let pm = timed();
    pm.advance_time(Duration::from_secs(3600)).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(pm.current_time() >= now + 3_599_000);
    pm.reset_time();
    assert!(pm.current_time().abs_diff(now) < 1000);
    pm.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_health_override_drives_health_based_restarts_on_the_moved_clock() {
    let started = Instant::now();
    let monitoring = titan_pm::host::Monitoring {
        health_check: Some(titan_pm::host::HealthProbe { interval: Duration::from_secs(5) }),
        ..Default::default()
    };
    let config = ManagerConfig { monitoring, ..TestProcessManager::config() };
    let pm = TestProcessManager::new(config, TestOptions { control_time: true, ..Default::default() });
    let calc = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
    pm.set_health(calc.id(), HealthReport::unhealthy("db", "down"));
    // Two unhealthy probes (at 5 s and 10 s) are not enough; the third (15 s) restarts it.
    pm.advance_time(Duration::from_secs(10)).await.unwrap();
    assert!(!pm.verify_operation("recycle", |_| true));
    pm.advance_time(Duration::from_secs(5)).await.unwrap();
    let unhealthy = |op: &Operation| matches!(op, Operation::Recycle { reason, .. } if reason == "unhealthy");
    assert!(pm.verify_operation("recycle", unhealthy), "{:?}", pm.operations());
    pm.clear_health(calc.id());
    // The restart backoff (100 ms) is on the moved clock too.
    let mut recovered = false;
    for _ in 0..50 {
        pm.advance_time(Duration::from_millis(100)).await.unwrap();
        if pm.wait_for_recovery(calc.id(), Duration::from_millis(20)).await {
            recovered = true;
            break;
        }
    }
    assert!(recovered);
    assert_eq!(calc.info().await.unwrap().restarts, 1);
    pm.cleanup().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

/// A figure, not a check: per-call time of a plain manager (no interceptor: the seam is
/// one `Option` check) and of a test manager recording every call, isolation `none`.
/// `cargo test -p titan-pm-tests --test testing_utilities -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn seam_cost_figures() {
    async fn per_call(pm: &titan_pm::ProcessManager) -> Duration {
        let calc = pm.spawn(calculator(), SpawnOptions::default()).await.unwrap();
        for _ in 0..2000 {
            calc.call::<i64>("add", (1, 2)).await.unwrap();
        }
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..5000 {
                calc.call::<i64>("add", (1, 2)).await.unwrap();
            }
            best = best.min(t.elapsed() / 5000);
        }
        best
    }
    let plain = titan_pm::ProcessManager::new(TestProcessManager::config());
    let p = per_call(&plain).await;
    plain.shutdown().await;
    let tpm = TestProcessManager::new(TestProcessManager::config(), TestOptions { record_operations: false, ..Default::default() });
    let t = per_call(&tpm).await;
    tpm.cleanup().await.unwrap();
    let rec = TestProcessManager::new(TestProcessManager::config(), TestOptions::default());
    let r = per_call(&rec).await;
    rec.cleanup().await.unwrap();
    println!("per call, isolation none: plain manager {p:?}; test manager (hooks, no record) {t:?}; test manager recording {r:?}");
}

#[tokio::test]
async fn advance_time_drives_a_workflow_stage_retry_backoff() {
    use titan_pm::workflow::WorkflowOptions;
    let started = Instant::now();
    let pm = TestProcessManager::new(TestProcessManager::config(), TestOptions { control_time: true, ..Default::default() });
    let attempts: Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let a = attempts.clone();
    let options = WorkflowOptions {
        backoff: Backoff::exponential(Duration::from_secs(60), Duration::from_secs(600)),
        jitter: 0.0,
        ..Default::default()
    };
    let target = titan_pm_tests::workflows::target("Flaky", move || titan_pm_tests::workflows::flaky_workflow(2, 3, a.clone()));
    let wf = pm.workflow(target, options).await.unwrap();
    let t0 = pm.current_time();
    let run = wf.run(titan_pm::Value::Null, Some("f1"));
    tokio::pin!(run);
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                assert!(started.elapsed() < Duration::from_secs(10), "the retries did not follow the moved clock");
                pm.advance_time(Duration::from_secs(30)).await.unwrap();
            }
        }
    };
    result.unwrap();
    assert_eq!(attempts.lock().unwrap().len(), 3);
    // Backoff 60 s then 120 s on the manager's clock.
    assert!(pm.current_time() - t0 >= 180_000);
    // The run as workflow:* records, the retries with their delays on the moved clock.
    let kinds: Vec<&'static str> = pm.operations().iter().map(|r| r.operation.kind()).filter(|k| k.starts_with("workflow:")).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "workflow:stage:started").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "workflow:stage:failed").count(), 2, "{kinds:?}");
    assert_eq!((kinds.first(), kinds.last()), (Some(&"workflow:started"), Some(&"workflow:completed")), "{kinds:?}");
    let retries: Vec<Operation> = pm.operations().into_iter().map(|r| r.operation).filter(|o| o.kind() == "workflow:stage:retrying").collect();
    assert!(matches!(&retries[..], [
        Operation::Workflow { event: WorkflowEvent { kind: WorkflowEventKind::StageRetrying { attempt: 2, delay: d1, .. }, .. }, .. },
        Operation::Workflow { event: WorkflowEvent { kind: WorkflowEventKind::StageRetrying { attempt: 3, delay: d2, .. }, .. }, .. },
    ] if *d1 == Duration::from_secs(60) && *d2 == Duration::from_secs(120)), "{retries:?}");
    let stamps: Vec<u64> = pm.operations().iter().filter(|r| r.operation.kind() == "workflow:stage:started").map(|r| r.timestamp_ms).collect();
    assert!(stamps[1] - stamps[0] >= 60_000 && stamps[2] - stamps[1] >= 120_000, "{stamps:?}");
    assert!(pm.verify_operation("workflow:completed", |op| op.process_id() == wf.process().unwrap().id()));
    pm.cleanup().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_simulated_crash_under_a_supervisor_is_recorded_as_supervisor_operations() {
    use titan_pm::{SupervisionStrategy, SupervisorSpec};
    let pm = manager();
    let spec = SupervisorSpec::new(SupervisionStrategy::OneForOne)
        .name("app")
        .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_millis(100)))
        .child("calc", calculator(), titan_pm::ChildSpec::default());
    let sup = pm.supervisor(spec).await.unwrap();
    let calc = sup.child("calc").await.unwrap();
    assert!(pm.verify_operation("supervisor:child:started", |op| op.process_id() == calc.id()));
    pm.simulate_crash(calc.id()).await.unwrap();
    assert!(pm.wait_for_recovery(calc.id(), WAIT).await);
    assert!(pm.verify_operation("supervisor:child:exited", |op| op.process_id() == calc.id()));
    assert!(pm.verify_operation("supervisor:child:restarted", |op| op.process_id() == calc.id()));
    let report = pm.operations_report(titan_pm::options::Dialect::Python);
    let restarted = match &report {
        titan_pm::Value::List(ops) => ops.iter().find(|o| o.get("type") == Some(&titan_pm::Value::Text("supervisor:child:restarted".into()))).cloned(),
        _ => None,
    }
    .expect("a supervisor:child:restarted record");
    assert_eq!(restarted.get("name"), Some(&titan_pm::Value::Text("calc".into())));
    assert!(restarted.get("supervisor_id").is_some() && restarted.get("process_id").is_some());
    pm.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_failed_workflow_run_is_recorded_with_its_compensations() {
    use titan_pm::workflow::WorkflowOptions;
    let pm = manager();
    let log: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let l = log.clone();
    let wf = pm
        .workflow(titan_pm_tests::workflows::target("OrderSaga", move || titan_pm_tests::workflows::order_saga(l.clone())), WorkflowOptions::default())
        .await
        .unwrap();
    let input = titan_pm::value::to_value(&serde_json::json!({ "id": 42 })).unwrap();
    assert!(wf.run(input, Some("order-42")).await.is_err());
    let compensated: Vec<String> = pm
        .operations()
        .into_iter()
        .filter_map(|r| match r.operation {
            Operation::Workflow { event: WorkflowEvent { kind: WorkflowEventKind::CompensationCompleted { stage, error: None, .. }, .. }, .. } => Some(stage),
            _ => None,
        })
        .collect();
    assert_eq!(compensated, ["charge-payment", "reserve-inventory", "create-order"]);
    assert!(pm.verify_operation("workflow:compensation:started", |_| true));
    assert!(pm.verify_operation("workflow:failed", |op| matches!(op,
        Operation::Workflow { event: WorkflowEvent { run_id, kind: WorkflowEventKind::Failed { stage, .. }, .. }, .. } if run_id == "order-42" && stage == "charge-payment")));
    assert!(!pm.verify_operation("workflow:completed", |_| true));
    // As front ends see it: the event's fields beside the type.
    let report = pm.operations_report(titan_pm::options::Dialect::Js);
    let failed = match &report {
        titan_pm::Value::List(ops) => ops.iter().find(|o| o.get("type") == Some(&titan_pm::Value::Text("workflow:failed".into()))).cloned(),
        _ => None,
    }
    .expect("a workflow:failed record");
    assert_eq!(failed.get("runId"), Some(&titan_pm::Value::Text("order-42".into())));
    assert_eq!(failed.get("stage"), Some(&titan_pm::Value::Text("charge-payment".into())));
    assert_eq!(failed.get("workflow"), Some(&titan_pm::Value::Text("OrderSaga".into())));
    pm.cleanup().await.unwrap();
}
