//! A worker that misbehaves as a process: it forks a grandchild, it is stopped
//! (SIGSTOP) at shutdown, it closes its connection but stays alive. No process
//! outlives its worker, `shutdown_timeout` bounds the whole shutdown, and a
//! worker without a connection gets no more calls.

use std::time::{Duration, Instant};

use titan_pm::{Error, ManagerConfig, PoolOptions, PoolSize, ProcessManager, SpawnOptions};
use titan_pm_tests::{alive, eventually};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn a_grandchild_ends_with_its_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    // Killed.
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let grandchild: u32 = h.call("spawn_grandchild", ()).await.unwrap();
    assert!(alive(grandchild));
    pm.kill(h.id()).await.unwrap();
    assert!(eventually(Duration::from_secs(3), || !alive(grandchild)).await, "the grandchild outlived kill");
    // Crashed (and restarted).
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let grandchild: u32 = h.call("spawn_grandchild", ()).await.unwrap();
    assert!(h.call::<()>("crash", ()).await.is_err());
    assert!(eventually(Duration::from_secs(3), || !alive(grandchild)).await, "the grandchild outlived a crash");
    // Shut down.
    let grandchild: u32 = h.call("spawn_grandchild", ()).await.unwrap();
    pm.shutdown().await;
    assert!(eventually(Duration::from_secs(3), || !alive(grandchild)).await, "the grandchild outlived shutdown");
}

#[tokio::test]
async fn shutdown_timeout_bounds_the_whole_shutdown() {
    let limit = Duration::from_millis(1500);
    let pm = ProcessManager::new(ManagerConfig { shutdown_timeout: limit, ..ManagerConfig::default() });
    let stopped = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let busy = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(2), ..Default::default() }).await.unwrap();
    let pid = stopped.info().await.unwrap().pid;
    // A stopped worker answers nothing and ignores SIGTERM; a busy one has a call that outlasts the limit.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let long_call = tokio::spawn({
        let busy = busy.clone();
        async move { busy.call::<u64>("slow", (60_000,)).await }
    });
    let pool_call = tokio::spawn({
        let pool = pool.clone();
        async move { pool.call::<u64>("slow", (60_000,)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    pm.shutdown().await;
    let took = started.elapsed();
    eprintln!("shutdown with a stopped worker, a busy one and a busy pool, shutdown_timeout {limit:?}: {took:?}");
    assert!(took < limit + Duration::from_millis(300), "shutdown took {took:?}");
    assert!(eventually(Duration::from_secs(2), || !alive(pid)).await);
    assert!(long_call.await.unwrap().is_err());
    assert!(pool_call.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_closes_its_connection_gets_no_more_calls() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    let started = Instant::now();
    // It closes its connection and then blocks, alive.
    let disconnect = tokio::spawn({
        let h = h.clone();
        async move { h.call::<()>("disconnect", ()).await }
    });
    // Calls made after the connection closed (while the process still lingers) are not
    // routed to it: they wait for, and get, the restarted instance.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let mut later = Vec::new();
    for _ in 0..5 {
        let h = h.clone();
        later.push(tokio::spawn(async move { h.call::<u32>("pid", ()).await }));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let err = disconnect.await.unwrap().unwrap_err();
    let failed_after = started.elapsed();
    assert!(matches!(err, Error::ProcessCrashed { .. }), "{err:?}");
    for call in later {
        let answered = call.await.unwrap().unwrap();
        assert_ne!(answered, pid);
    }
    let answered_after = started.elapsed();
    eprintln!("closed connection: the call failed after {failed_after:?}, later calls answered by {answered_after:?}");
    assert!(failed_after < Duration::from_secs(1), "{failed_after:?}");
    assert!(!alive(pid), "the disconnected worker {pid} is still alive");
    assert_eq!(h.info().await.unwrap().restarts, 1);
    pm.shutdown().await;
}
