//! The `retries` call option of a single process (and of a pool call): a call
//! whose worker crashed waits for the restart and is sent again, at most
//! `retries` times and within its first deadline; a worker's own error, a
//! timeout and a `failed` process are not retried. The worker counts its calls
//! in a file, so the count outlives the crashes.

use std::path::Path;
use std::time::{Duration, Instant};

use titan_pm::policy::Backoff;
use titan_pm::pool::{PoolOptions, PoolSize};
use titan_pm::{CallOptions, Error, ManagerConfig, Output, ProcessManager, ProcessState, RestartPolicy, SpawnOptions};
use titan_pm_tests::runs_in;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
/// Any single call here must end well within this; a hang fails the test.
const LIMIT: Duration = Duration::from_secs(20);

fn config(max_restarts: u32, backoff: Duration) -> ManagerConfig {
    ManagerConfig {
        restart: RestartPolicy { max_restarts, backoff: Backoff { initial: backoff, ..Default::default() }, ..RestartPolicy::default() },
        output: Output::Ignore,
        ..ManagerConfig::default()
    }
}

fn retries(n: u32, timeout: Duration) -> CallOptions {
    CallOptions { retries: Some(n), timeout: Some(timeout), ..Default::default() }
}

fn path_of(dir: &tempfile::TempDir) -> String {
    dir.path().join("calls").to_string_lossy().into_owned()
}

#[tokio::test]
async fn a_crashed_call_is_sent_again_after_the_restart() {
    let pm = ProcessManager::new(config(3, Duration::from_millis(20)));
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    let dir = tempfile::tempdir().unwrap();
    let calls = path_of(&dir);
    let r = tokio::time::timeout(LIMIT, h.with_options(retries(1, Duration::from_secs(10))).call::<usize>("crash_first", (&calls, 1))).await;
    assert_eq!(r.expect("the call hung").unwrap(), 2, "the second run (after the restart) answers");
    assert_eq!(runs_in(Path::new(&calls)), 2);
    let info = h.info().await.unwrap();
    assert_eq!((info.restarts, info.state), (1, ProcessState::Running));
    assert_ne!(info.pid, pid);
    pm.shutdown().await;
}

#[tokio::test]
async fn without_retries_a_crash_fails_the_call() {
    let pm = ProcessManager::new(config(3, Duration::from_millis(20)));
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calls = path_of(&dir);
    // The default (no option), and retries 0 said out loud.
    let err = tokio::time::timeout(LIMIT, h.call::<usize>("crash_first", (&calls, 1))).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ProcessCrashed { .. }), "{err}");
    assert_eq!(runs_in(Path::new(&calls)), 1);
    let err = tokio::time::timeout(LIMIT, h.with_options(retries(0, Duration::from_secs(10))).call::<usize>("crash_first", (&calls, 2)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::ProcessCrashed { .. }), "{err}");
    assert_eq!(runs_in(Path::new(&calls)), 2, "sent once");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_workers_own_error_is_not_retried() {
    let pm = ProcessManager::new(config(3, Duration::from_millis(20)));
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calls = path_of(&dir);
    let err = tokio::time::timeout(LIMIT, h.with_options(retries(3, Duration::from_secs(10))).call::<()>("raise_counted", (&calls,)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(&err, Error::Remote { remote_type, .. } if remote_type == "ValueError"), "{err}");
    assert_eq!(runs_in(Path::new(&calls)), 1, "run once");
    assert_eq!(h.info().await.unwrap().restarts, 0);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_timeout_is_not_retried() {
    let pm = ProcessManager::new(config(3, Duration::from_millis(20)));
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(LIMIT, h.with_options(retries(3, Duration::from_millis(300))).call::<u64>("slow", (10_000,)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::CallTimeout { timeout_ms: 300, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(h.info().await.unwrap().restarts, 0);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_wait_for_the_restart_past_the_deadline_is_a_call_timeout() {
    // The restart waits 5 s; the call's deadline is 500 ms: it is never extended.
    let pm = ProcessManager::new(config(3, Duration::from_secs(5)));
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calls = path_of(&dir);
    let started = Instant::now();
    let err = tokio::time::timeout(LIMIT, h.with_options(retries(5, Duration::from_millis(500))).call::<usize>("crash_first", (&calls, 1)))
        .await
        .unwrap()
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::CallTimeout { timeout_ms: 500, .. }), "{err}");
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(runs_in(Path::new(&calls)), 1);
    pm.shutdown().await;
}

#[tokio::test]
async fn retries_of_a_crash_loop_stop_at_the_deadline() {
    // A worker that crashes on every call, restarted quickly and without a budget limit in
    // reach: retries (1000) go on until the deadline (1 s), then the call fails.
    let pm = ProcessManager::new(config(10_000, Duration::from_millis(10)));
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calls = path_of(&dir);
    let started = Instant::now();
    let err = tokio::time::timeout(LIMIT, h.with_options(retries(1000, Duration::from_secs(1))).call::<usize>("crash_first", (&calls, 1_000_000)))
        .await
        .unwrap()
        .unwrap_err();
    let took = started.elapsed();
    // CallTimeout, unless the last crash landed at the very deadline (then that crash).
    assert!(matches!(err, Error::CallTimeout { timeout_ms: 1000, .. } | Error::ProcessCrashed { .. }), "{err}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "took {took:?}");
    let runs = runs_in(Path::new(&calls));
    assert!(runs >= 2 && runs < 1000, "{runs} runs: retried, and stopped by the deadline");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_process_that_ends_failed_fails_the_retried_call_at_once() {
    // One restart allowed: the first crash restarts, the retry crashes again, the
    // process is `failed`, and the call fails fast (not at its 30 s deadline).
    let pm = ProcessManager::new(config(1, Duration::from_millis(20)));
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calls = path_of(&dir);
    let started = Instant::now();
    let err = tokio::time::timeout(LIMIT, h.with_options(retries(5, Duration::from_secs(30))).call::<usize>("crash_first", (&calls, 100)))
        .await
        .expect("the call waited for its deadline")
        .unwrap_err();
    assert!(matches!(err, Error::ProcessFailed { state: ProcessState::Failed, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(runs_in(Path::new(&calls)), 2, "the first run and one retry");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_pool_calls_retries_option_overrides_the_pools() {
    let pm = ProcessManager::new(config(3, Duration::from_millis(20)));
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(2), ..PoolOptions::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calls = path_of(&dir);
    // The pool's own retries are 0: the crash fails the call.
    let err = tokio::time::timeout(LIMIT, pool.call::<usize>("crash_first", (&calls, 1))).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ProcessCrashed { .. }), "{err}");
    // This call's retries: the crash is sent again, to another member.
    let view = pool.with_options(CallOptions { retries: Some(1), ..Default::default() });
    let r = tokio::time::timeout(LIMIT, view.call::<usize>("crash_first", (&calls, 2))).await.unwrap();
    assert_eq!(r.unwrap(), 3);
    pm.shutdown().await;
}
