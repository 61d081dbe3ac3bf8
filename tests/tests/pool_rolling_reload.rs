//! A pool of 3 under continuous load is reloaded to a new version of its
//! worker file (`pool.reload()`): no call fails, every member is replaced,
//! and the new version answers afterwards. Also `restart(id)` and `stop(id)`
//! of a single process under load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use titan_pm::pool::{PoolOptions, PoolSize};
use titan_pm::{ManagerConfig, ProcessManager, SpawnOptions};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Writes the worker file: a script that runs the test worker as `version`.
fn write_version(path: &std::path::Path, version: u32) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("#!/bin/sh\nTITAN_TEST_VERSION={version} exec {WORKER}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap(); // atomic: a start never reads half a file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_reload_under_load_fails_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worker.sh");
    write_version(&file, 1);
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm
        .pool(file.as_path(), PoolOptions { size: PoolSize::Fixed(3), max_queue_size: 1000, ..PoolOptions::default() })
        .await
        .expect("pool");
    let before: Vec<u64> = pool.metrics().await.unwrap().workers.iter().map(|w| w.process_id).collect();
    assert_eq!(before.len(), 3);

    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let callers: Vec<_> = (0..6)
        .map(|_| {
            let (pool, stop, done, failed) = (pool.clone(), stop.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match pool.call::<u64>("slow", (2u64,)).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("call failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    let wait_for = |n: u64, done: Arc<AtomicU64>| async move {
        let started = Instant::now();
        while done.load(Ordering::Relaxed) < n {
            assert!(started.elapsed() < Duration::from_secs(60), "only {} calls in 60 s", done.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    wait_for(300, done.clone()).await;
    write_version(&file, 2);
    let reload_started = done.load(Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(60), pool.reload()).await.expect("reload within 60 s").expect("reload");
    let during = done.load(Ordering::Relaxed) - reload_started;
    wait_for(done.load(Ordering::Relaxed).max(2000), done.clone()).await;
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }
    let total = done.load(Ordering::Relaxed);
    eprintln!("{total} calls, {during} of them during the reload");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "calls failed during the reload");
    assert!(total >= 2000);
    assert!(during > 0, "calls kept flowing during the reload");

    let after: Vec<u64> = pool.metrics().await.unwrap().workers.iter().map(|w| w.process_id).collect();
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|id| !before.contains(id)), "every member replaced: {before:?} -> {after:?}");
    for _ in 0..9 {
        let v: Option<String> = pool.call("env", ("TITAN_TEST_VERSION",)).await.unwrap();
        assert_eq!(v.as_deref(), Some("2"), "the new version answers");
    }
    // The old members are gone from the manager's list.
    let listed: Vec<u64> = pm.list_processes().await.iter().map(|p| p.process_id).collect();
    assert!(before.iter().all(|id| !listed.contains(id)), "{listed:?}");
    pm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_stop_of_one_process_are_graceful() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    // A call in flight when the restart starts finishes on the old instance.
    let slow = tokio::spawn({
        let h = h.clone();
        async move { h.call::<u64>("slow", (300u64,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    pm.restart(h.id()).await.expect("restart");
    assert_eq!(slow.await.unwrap().expect("the in-flight call finished"), 300);
    let info = h.info().await.unwrap();
    assert_ne!(info.pid, pid);
    assert_eq!(info.restarts, 1);
    assert_eq!(h.call::<u32>("pid", ()).await.unwrap(), info.pid);

    // stop: the in-flight call finishes, then the process leaves the list.
    let slow = tokio::spawn({
        let h = h.clone();
        async move { h.call::<u64>("slow", (300u64,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    pm.stop(h.id()).await.expect("stop");
    assert_eq!(slow.await.unwrap().expect("drained before stopping"), 300);
    assert!(pm.list_processes().await.is_empty());
    assert!(h.call::<i64>("add", (1, 2)).await.is_err());
    pm.shutdown().await;
}
