//! Every call has a deadline; on expiry the worker is told to cancel the call,
//! and a worker that cannot stop is recycled.

use std::time::{Duration, Instant};

use titan_pm::{CallOptions, Error, ManagerConfig, ProcessManager, ProcessState, RestartPolicy, SpawnOptions};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn a_deadline_cancels_the_worker_side_call() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let quick = h.with_options(CallOptions { timeout: Some(Duration::from_millis(200)), ..Default::default() });
    let started = Instant::now();
    let err = quick.call::<u64>("slow", (5_000,)).await.unwrap_err();
    assert!(matches!(err, Error::CallTimeout { timeout_ms: 200, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The worker dropped the call (its guard counted it) and keeps serving.
    let cancelled = titan_pm_tests::eventually(Duration::from_secs(3), || {
        futures::executor::block_on(h.call::<u64>("cancelled", ())).unwrap_or(0) == 1
    })
    .await;
    assert!(cancelled, "the worker never saw the cancel");
    assert_eq!(h.call::<i64>("add", (2, 2)).await.unwrap(), 4);
    pm.shutdown().await;
}

#[tokio::test]
async fn the_manager_default_deadline_applies() {
    let config = ManagerConfig { timeout: Duration::from_millis(150), ..ManagerConfig::default() };
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let err = h.call::<u64>("slow", (5_000,)).await.unwrap_err();
    assert!(matches!(err, Error::CallTimeout { timeout_ms: 150, .. }), "{err}");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_cannot_stop_is_recycled() {
    let config = ManagerConfig {
        cancel_grace: Duration::from_millis(200),
        restart: RestartPolicy { backoff: titan_pm::policy::Backoff { initial: Duration::from_millis(10), ..Default::default() }, ..RestartPolicy::default() },
        ..ManagerConfig::default()
    };
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    let quick = h.with_options(CallOptions { timeout: Some(Duration::from_millis(100)), ..Default::default() });
    assert!(matches!(quick.call::<()>("hang", ()).await.unwrap_err(), Error::CallTimeout { .. }));
    // Not left running the stale job: the blocked process is replaced.
    assert!(titan_pm_tests::eventually(Duration::from_secs(5), || !titan_pm_tests::alive(pid)).await);
    assert_eq!(h.call::<i64>("add", (1, 1)).await.unwrap(), 2);
    assert_ne!(h.info().await.unwrap().pid, pid);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_call_during_a_restart_waits_for_the_new_instance() {
    let config = ManagerConfig {
        restart: RestartPolicy { backoff: titan_pm::policy::Backoff { initial: Duration::from_millis(300), ..Default::default() }, ..RestartPolicy::default() },
        ..ManagerConfig::default()
    };
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let _ = h.call::<()>("crash", ()).await;
    assert_eq!(h.info().await.unwrap().state, ProcessState::Restarting);
    assert_eq!(h.call::<i64>("add", (20, 22)).await.unwrap(), 42);
    pm.shutdown().await;
}
