//! The pool's queue is bounded and FIFO: a full queue refuses at once, a queued
//! call goes to the first worker that frees up, and a queued call whose
//! deadline passes fails without ever starting.

use std::time::Duration;

use titan_pm::pool::{PoolOptions, PoolSize, Strategy};
use titan_pm::{CallOptions, Error, ManagerConfig, ProcessManager};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn a_full_queue_refuses_at_once_and_nothing_hangs() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = PoolOptions { size: PoolSize::Fixed(2), max_queue_size: 2, ..PoolOptions::default() };
    let pool = pm.pool(WORKER, options).await.unwrap();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call::<u64>("slow", (200,)).await })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for c in calls {
        match tokio::time::timeout(Duration::from_secs(10), c).await.expect("a call hung").unwrap() {
            Ok(200) => ok += 1,
            Err(Error::PoolBackpressure { queue_size: 2 }) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, refused), (4, 6), "2 running + 2 queued succeed, the rest are refused");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_queued_call_goes_to_the_first_worker_that_frees_up() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = PoolOptions { size: PoolSize::Fixed(2), strategy: Strategy::RoundRobin, ..PoolOptions::default() };
    let pool = pm.pool(WORKER, options).await.unwrap();
    let long = tokio::spawn({
        let pool = pool.clone();
        async move { pool.call::<u64>("slow", (1_500,)).await }
    });
    let short = tokio::spawn({
        let pool = pool.clone();
        async move { pool.call::<u64>("slow", (100,)).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Both workers are busy; this call waits, then takes the worker the short call frees.
    let queued = pool.call::<u64>("slow", (10,)).await.unwrap();
    assert_eq!(queued, 10);
    assert!(!long.is_finished(), "the queued call did not wait for the long one");
    assert_eq!(short.await.unwrap().unwrap(), 100);
    assert_eq!(long.await.unwrap().unwrap(), 1_500);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_queued_call_past_its_deadline_never_starts() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = PoolOptions { size: PoolSize::Fixed(1), ..PoolOptions::default() };
    let pool = pm.pool(WORKER, options).await.unwrap();
    let busy = tokio::spawn({
        let pool = pool.clone();
        async move { pool.call::<u64>("slow", (400,)).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let quick = pool.with_options(CallOptions { timeout: Some(Duration::from_millis(100)), ..Default::default() });
    let err = quick.call::<i64>("increment", ()).await.unwrap_err();
    assert!(matches!(err, Error::CallTimeout { timeout_ms: 100, .. }), "{err}");
    busy.await.unwrap().unwrap();
    assert_eq!(pool.call::<i64>("increment", ()).await.unwrap(), 1, "the timed-out call never ran");
    assert_eq!(pool.metrics().await.unwrap().queue_length, 0);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_dropped_pool_call_is_cancelled_and_frees_its_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = PoolOptions { size: PoolSize::Fixed(1), ..PoolOptions::default() };
    let pool = pm.pool(WORKER, options).await.unwrap();
    // One call running, one queued; the caller gives up on both.
    let running = tokio::spawn({
        let pool = pool.clone();
        async move { pool.call::<u64>("slow", (5_000,)).await }
    });
    let queued = tokio::spawn({
        let pool = pool.clone();
        async move { pool.call::<i64>("increment", ()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    queued.abort();
    let _ = queued.await;
    running.abort();
    let _ = running.await;
    // The worker is free at once, the queued call never ran, and the running one was cancelled in the worker.
    let next = tokio::time::timeout(Duration::from_secs(2), pool.call::<i64>("increment", ())).await;
    assert_eq!(next.expect("the worker was not freed").unwrap(), 1);
    let member = pool.metrics().await.unwrap().workers[0].process_id;
    assert_eq!(pm.handle(member).call::<u64>("cancelled", ()).await.unwrap(), 1);
    let m = pool.metrics().await.unwrap();
    assert_eq!((m.busy, m.queue_length), (0, 0));
    pm.shutdown().await;
}
