//! Pools: calls spread over workers, state per worker, scaling with calls in
//! flight, metrics, events, drain and destroy.

use std::time::Duration;

use futures::future::join_all;
use titan_pm::pool::{PoolEvent, PoolOptions, PoolSize, Strategy};
use titan_pm::{Error, ManagerConfig, ProcessManager};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn sized(n: usize, strategy: Strategy) -> PoolOptions {
    PoolOptions { size: PoolSize::Fixed(n), strategy, ..PoolOptions::default() }
}

#[tokio::test]
async fn a_pool_of_three_answers_concurrent_calls() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, sized(3, Strategy::default())).await.unwrap();
    let calls = [(1, 2), (3, 4), (5, 6), (7, 8)].map(|args| {
        let pool = pool.clone();
        async move { pool.call::<i64>("add", args).await.unwrap() }
    });
    assert_eq!(join_all(calls).await, [3, 7, 11, 15]);
    assert_eq!(pool.size().await.unwrap(), 3);
    assert_eq!(pm.list_processes().await.len(), 3, "pool members are listed processes");
    pm.shutdown().await;
}

#[tokio::test]
async fn round_robin_keeps_state_per_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, sized(2, Strategy::RoundRobin)).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(pool.call::<i64>("increment", ()).await.unwrap());
    }
    assert_eq!(seen, [1, 1, 2, 2]);
    pm.shutdown().await;
}

#[tokio::test]
async fn scale_up_and_down_while_calls_are_in_flight() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, PoolOptions { concurrency: 4, ..sized(2, Strategy::default()) }).await.unwrap();
    let mut events = pool.events();
    pool.scale(4).await.unwrap();
    assert_eq!(pool.size().await.unwrap(), 4);
    assert_eq!(pm.list_processes().await.len(), 4);

    let in_flight: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call::<u64>("slow", (300,)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    pool.scale(2).await.unwrap();
    assert_eq!(pool.size().await.unwrap(), 2);
    for call in in_flight {
        assert_eq!(call.await.unwrap().unwrap(), 300, "removed workers finish their calls first");
    }
    assert_eq!(pm.list_processes().await.len(), 2);
    assert_eq!(pool.call::<i64>("add", (1, 1)).await.unwrap(), 2);

    let scaled: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, PoolEvent::Scaled { .. }))
        .collect();
    assert_eq!(scaled, [PoolEvent::Scaled { from: 2, to: 4 }, PoolEvent::Scaled { from: 4, to: 2 }]);
    assert!(matches!(pool.scale(0).await, Err(Error::Config(_))));
    pm.shutdown().await;
}

#[tokio::test]
async fn metrics_report_the_pool_and_each_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, sized(2, Strategy::RoundRobin)).await.unwrap();
    for i in 0..10 {
        pool.call::<i64>("add", (i, i)).await.unwrap();
    }
    let _ = pool.call::<()>("raise", ("x",)).await;
    let m = pool.metrics().await.unwrap();
    assert_eq!((m.size, m.busy, m.idle, m.queue_length), (2, 0, 2, 0));
    assert_eq!((m.requests, m.errors), (11, 1));
    assert!((m.error_rate - 1.0 / 11.0).abs() < 1e-9);
    assert!(m.latency.p50 > 0.0);
    assert_eq!(m.workers.iter().map(|w| w.requests).sum::<u64>(), 11);
    assert!(m.workers.iter().all(|w| w.requests >= 5 && w.pid > 0));
    assert_eq!(m.state, "running");
    pm.shutdown().await;
}

#[tokio::test]
async fn drain_finishes_queued_calls_and_destroy_stops_the_workers() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, sized(1, Strategy::default())).await.unwrap();
    let mut events = pool.events();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call::<u64>("slow", (100,)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    pool.drain().await.unwrap();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), 100, "queued calls finish during drain");
    }
    assert!(matches!(pool.call::<i64>("add", (1, 1)).await, Err(Error::ProcessFailed { .. })), "a drained pool refuses calls");
    let pids: Vec<u32> = pm.list_processes().await.iter().map(|p| p.pid).collect();
    pool.destroy().await.unwrap();
    assert!(pm.list_processes().await.is_empty());
    assert!(titan_pm_tests::eventually(Duration::from_secs(3), || pids.iter().all(|p| !titan_pm_tests::alive(*p))).await);
    let names: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).map(|e| e.name()).collect();
    assert_eq!(names, ["pool:drained", "pool:destroyed"]);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_pool_that_cannot_start_is_a_spawn_error() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let err = pm.pool("/nonexistent/worker", sized(2, Strategy::default())).await.err().unwrap();
    assert!(matches!(err, Error::Spawn { .. }), "{err}");
    assert!(pm.list_processes().await.is_empty());
}

#[tokio::test]
async fn pipelined_calls_wait_in_the_worker_and_concurrency_still_bounds_running_calls() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, PoolOptions { concurrency: 2, max_queue_size: 1000, ..sized(1, Strategy::default()) }).await.unwrap();
    assert!(PoolOptions::default().pipeline > 0, "pools pipeline by default");
    // Short calls: the member's latency is known and low, so calls are sent ahead to it.
    for _ in 0..5 {
        pool.call::<u32>("overlap", (2,)).await.unwrap();
    }
    let calls = (0..200).map(|_| {
        let pool = pool.clone();
        async move { pool.call::<u32>("overlap", (20,)).await.unwrap() }
    });
    let sampler = async {
        let mut most = 0;
        for _ in 0..200 {
            most = most.max(pool.metrics().await.unwrap().workers[0].in_flight);
            tokio::task::yield_now().await;
        }
        most
    };
    let (most_running, most_sent) = futures::join!(async { join_all(calls).await.into_iter().max().unwrap() }, sampler);
    assert_eq!(most_running, 2, "the worker runs at most `concurrency` calls at once");
    assert!(most_sent <= 2 + PoolOptions::default().pipeline, "at most concurrency + pipeline calls sent to a member: {most_sent}");
    pm.shutdown().await;
}
