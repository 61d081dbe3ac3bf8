//! A worker that dies mid-call fails the call at once, restarts under the same
//! id, and the restart budget ends in `failed` with calls failing fast.

use std::time::{Duration, Instant};

use titan_pm::{Error, EventKind, ManagerConfig, ProcessManager, ProcessState, RestartPolicy, SpawnOptions};
use titan_pm_tests::alive;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn fast_restarts() -> ManagerConfig {
    ManagerConfig {
        restart: RestartPolicy { backoff: titan_pm::policy::Backoff { initial: Duration::from_millis(20), ..Default::default() }, ..RestartPolicy::default() },
        ..ManagerConfig::default()
    }
}

#[tokio::test]
async fn sigkill_mid_call_fails_the_call_at_once_and_the_process_restarts() {
    let pm = ProcessManager::new(fast_restarts());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    let mut events = pm.events();

    let slow = tokio::spawn({
        let h = h.clone();
        async move {
            let r = h.call::<u64>("slow", (10_000,)).await;
            (r, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed_at = Instant::now();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (result, failed_at) = tokio::time::timeout(Duration::from_secs(5), slow).await.unwrap().unwrap();
    match result.unwrap_err() {
        Error::ProcessCrashed { process_id, signal, .. } => {
            assert_eq!(process_id, h.id());
            assert_eq!(signal, Some(libc::SIGKILL));
        }
        other => panic!("expected ProcessCrashedError, got {other}"),
    }
    let took = failed_at - killed_at;
    assert!(took < Duration::from_secs(1), "the call failed {took:?} after the kill");

    // The next call waits for the restart and succeeds, with the same id and a new pid.
    assert_eq!(h.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    let info = h.info().await.unwrap();
    assert_eq!(info.process_id, h.id());
    assert_eq!(info.state, ProcessState::Running);
    assert_eq!(info.restarts, 1);
    assert_ne!(info.pid, pid);
    assert!(!alive(pid));

    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e.kind.name());
    }
    assert_eq!(seen, ["crash", "restart", "spawn", "ready"]);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_exits_with_status_zero_mid_call_is_a_crash() {
    let pm = ProcessManager::new(fast_restarts());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), h.call::<()>("exit", (0,))).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ProcessCrashed { exit_code: Some(0), .. }), "{err}");
    pm.shutdown().await;
}

#[tokio::test]
async fn an_abort_reports_the_signal() {
    let pm = ProcessManager::new(fast_restarts());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), h.call::<()>("crash", ())).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ProcessCrashed { signal: Some(libc::SIGABRT), .. }), "{err}");
    pm.shutdown().await;
}

#[tokio::test]
async fn the_restart_budget_ends_in_failed_and_calls_fail_fast() {
    let config = ManagerConfig {
        restart: RestartPolicy {
            max_restarts: 2,
            backoff: titan_pm::policy::Backoff { initial: Duration::from_millis(10), ..Default::default() },
            ..RestartPolicy::default()
        },
        ..ManagerConfig::default()
    };
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    for _ in 0..3 {
        let err = tokio::time::timeout(Duration::from_secs(5), h.call::<()>("crash", ())).await.unwrap().unwrap_err();
        assert!(matches!(err, Error::ProcessCrashed { .. }), "{err}");
    }
    let failed = titan_pm_tests::eventually(Duration::from_secs(5), || {
        futures::executor::block_on(h.info()).map(|i| i.state == ProcessState::Failed).unwrap_or(false)
    })
    .await;
    assert!(failed, "state is {:?}", h.info().await.unwrap().state);
    let started = Instant::now();
    let err = h.call::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::ProcessFailed { state: ProcessState::Failed, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(h.info().await.unwrap().restarts, 2);
    pm.shutdown().await;
}

#[tokio::test]
async fn kill_is_not_a_crash_and_later_calls_fail_fast() {
    let pm = ProcessManager::new(fast_restarts());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    let mut events = pm.events();
    pm.kill(h.id()).await.unwrap();
    assert!(titan_pm_tests::eventually(Duration::from_secs(2), || !alive(pid)).await);
    let err = h.call::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::ProcessFailed { state: ProcessState::Stopped, .. }), "{err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A killed process leaves the list; its id still answers with its final state.
    assert!(matches!(h.info().await.unwrap_err(), Error::ProcessFailed { state: ProcessState::Stopped, .. }));
    assert!(pm.list_processes().await.is_empty());
    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Exited]);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_killed_thread_worker_fails_later_calls_fast() {
    let pm = ProcessManager::new(fast_restarts());
    let options = SpawnOptions { isolation: Some(titan_pm::Isolation::Worker), ..Default::default() };
    let h = pm.spawn(titan_pm_tests::test_worker_target(), options).await.unwrap();
    assert_eq!(h.call::<i64>("increment", ()).await.unwrap(), 1);
    pm.kill(h.id()).await.unwrap();
    assert!(matches!(h.call::<i64>("increment", ()).await.unwrap_err(), Error::ProcessFailed { .. }));
    pm.shutdown().await;
}
