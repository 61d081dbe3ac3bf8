//! A pool survives its workers: crashed ones are replaced, calls fail with
//! ProcessCrashed or are retried, none hang; unhealthy and worn-out workers are
//! replaced after draining; a pool whose replacements keep failing becomes failed.

use std::time::Duration;

use futures::future::join_all;
use titan_pm::pool::{PoolEvent, PoolHealth, PoolOptions, PoolSize, Recycle};
use titan_pm::{Error, ManagerConfig, Output, ProcessManager, SpawnOptions};
use titan_pm_tests::eventually;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn quiet() -> ManagerConfig {
    ManagerConfig { output: Output::Ignore, ..ManagerConfig::default() }
}

async fn size_becomes(pool: &titan_pm::PoolHandle, n: usize) -> bool {
    for _ in 0..500 {
        if pool.size().await.unwrap() == n && pool.metrics().await.unwrap().workers.len() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn five_hundred_calls_with_two_percent_crashes() {
    let pm = ProcessManager::new(quiet());
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(3), max_queue_size: 1000, ..PoolOptions::default() }).await.unwrap();
    let calls = (0..500).map(|_| {
        let pool = pool.clone();
        async move { tokio::time::timeout(Duration::from_secs(30), pool.call::<u32>("flaky", (2,))).await }
    });
    let results = join_all(calls).await;
    let mut crashed = 0;
    for r in results {
        match r.expect("a call hung") {
            Ok(_) => {}
            Err(Error::ProcessCrashed { .. }) => crashed += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(crashed < 500);
    assert!(size_becomes(&pool, 3).await, "the pool is back to 3");
    assert_eq!(pool.call::<i64>("add", (2, 3)).await.unwrap(), 5);
    pm.shutdown().await;
}

#[tokio::test]
async fn retries_move_a_crashed_call_to_another_worker() {
    let pm = ProcessManager::new(quiet());
    let options = PoolOptions { size: PoolSize::Fixed(2), retries: 3, max_queue_size: 1000, ..PoolOptions::default() };
    let pool = pm.pool(WORKER, options).await.unwrap();
    let mut events = pool.events();
    let calls = (0..200).map(|_| {
        let pool = pool.clone();
        async move { tokio::time::timeout(Duration::from_secs(30), pool.call::<u32>("flaky", (5,))).await }
    });
    for r in join_all(calls).await {
        r.expect("a call hung").expect("retried calls succeed");
    }
    let names: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).map(|e| e.name()).collect();
    assert!(names.contains(&"worker:crashed") && names.contains(&"worker:replaced"), "{names:?}");
    pm.shutdown().await;
}

#[tokio::test]
async fn an_unhealthy_worker_is_replaced() {
    let pm = ProcessManager::new(quiet());
    let options = PoolOptions {
        size: PoolSize::Fixed(2),
        health: Some(PoolHealth { interval: Duration::from_millis(100), unhealthy_threshold: 2 }),
        ..PoolOptions::default()
    };
    let pool = pm.pool(WORKER, options).await.unwrap();
    let mut events = pool.events();
    let sick = pool.metrics().await.unwrap().workers[0].process_id;
    pm.handle(sick).call::<()>("set_unhealthy", ()).await.unwrap();
    let replaced = eventually(Duration::from_secs(10), || {
        let ids: Vec<u64> = futures::executor::block_on(pool.metrics()).unwrap().workers.iter().map(|w| w.process_id).collect();
        ids.len() == 2 && !ids.contains(&sick)
    })
    .await;
    assert!(replaced);
    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(seen.contains(&PoolEvent::WorkerUnhealthy { process_id: sick }), "{seen:?}");
    assert!(seen.iter().any(|e| matches!(e, PoolEvent::WorkerReplaced { old, .. } if *old == sick)), "{seen:?}");
    pm.shutdown().await;
}

#[tokio::test]
async fn workers_are_recycled_after_max_requests_without_failing_calls() {
    let pm = ProcessManager::new(quiet());
    let options = PoolOptions {
        size: PoolSize::Fixed(2),
        recycle: Recycle { max_requests: Some(5), ..Recycle::default() },
        ..PoolOptions::default()
    };
    let pool = pm.pool(WORKER, options).await.unwrap();
    let mut pids = std::collections::HashSet::new();
    for _ in 0..30 {
        pids.insert(pool.call::<u32>("work", ()).await.expect("no call fails during recycling"));
    }
    assert!(pids.len() >= 4, "workers were replaced: {} distinct pids", pids.len());
    assert!(size_becomes(&pool, 2).await);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_pool_whose_replacements_keep_failing_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("refuse");
    let pm = ProcessManager::new(quiet());
    let spawn = SpawnOptions { env: vec![("TEST_DIE_IF_EXISTS".into(), flag.display().to_string())], ..Default::default() };
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(1), spawn, ..PoolOptions::default() }).await.unwrap();
    let mut events = pool.events();
    std::fs::write(&flag, "").unwrap();
    assert!(matches!(pool.call::<()>("crash", ()).await, Err(Error::ProcessCrashed { .. })));
    let failed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let PoolEvent::Failed { reason } = events.recv().await.unwrap() {
                return reason;
            }
        }
    })
    .await
    .expect("the pool never failed");
    assert!(failed.contains("5 replacement workers in a row failed to start"), "{failed}");
    let started = std::time::Instant::now();
    let err = pool.call::<i64>("add", (1, 1)).await.unwrap_err();
    assert!(matches!(err, Error::ProcessFailed { state: titan_pm::ProcessState::Failed, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(pool.metrics().await.unwrap().state, "failed");
    pm.shutdown().await;
}
