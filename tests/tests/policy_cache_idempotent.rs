//! Caches and idempotency keys on the host: a hit does not run the method,
//! entries expire, errors are not kept, and a pool's members share them.

use std::time::Duration;

use futures::future::join_all;
use titan_pm::pool::{PoolOptions, PoolSize};
use titan_pm::{ManagerConfig, ProcessManager, SpawnOptions};
use titan_pm_tests::runs_in;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn a_second_call_within_ttl_is_a_hit_and_runs_again_after_it() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let first: i64 = h.call("cached", (7,)).await.unwrap();
    assert_eq!(first, 7001);
    assert_eq!(h.call::<i64>("cached", (7,)).await.unwrap(), 7001, "a hit");
    assert_eq!(h.call::<u64>("runs", ()).await.unwrap(), 1, "the hit did not run the method");
    assert_eq!(h.call::<i64>("cached", (8,)).await.unwrap(), 8002, "other arguments: another key");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.call::<i64>("cached", (7,)).await.unwrap(), 7003, "expired after ttl: it ran");
    pm.shutdown().await;
}

#[tokio::test]
async fn errors_are_not_cached() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    for _ in 0..3 {
        assert!(h.call::<i64>("cached_fails", (1,)).await.is_err());
    }
    assert_eq!(h.call::<u64>("runs", ()).await.unwrap(), 3);
    pm.shutdown().await;
}

fn pool_options(runs: &std::path::Path) -> PoolOptions {
    let mut o = PoolOptions { size: PoolSize::Fixed(3), ..PoolOptions::default() };
    o.spawn.env = vec![("TEST_RUNS_FILE".into(), runs.display().to_string())];
    o
}

#[tokio::test]
async fn a_pool_shares_cache_hits() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, pool_options(&runs)).await.unwrap();
    let first: i64 = pool.call("cached", (5,)).await.unwrap();
    for _ in 0..5 {
        assert_eq!(pool.call::<i64>("cached", (5,)).await.unwrap(), first);
    }
    assert_eq!(runs_in(&runs), 1, "one run in the whole pool");
    pm.shutdown().await;
}

#[tokio::test]
async fn the_same_transaction_twice_on_a_pool_of_three_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, pool_options(&runs)).await.unwrap();
    let req = serde_json::json!({ "transactionId": "tx-1", "amount": 42 });
    // Concurrently: the duplicates wait for the first.
    let results: Vec<serde_json::Value> =
        join_all((0..3).map(|_| pool.call::<serde_json::Value>("pay", (req.clone(),)))).await.into_iter().map(Result::unwrap).collect();
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    // Sequentially, within ttl: the first result, even if routed to another member.
    for _ in 0..3 {
        assert_eq!(pool.call::<serde_json::Value>("pay", (req.clone(),)).await.unwrap(), results[0]);
    }
    assert_eq!(runs_in(&runs), 1, "one execution for six calls");
    // Another key runs; after ttl the same key runs again.
    let other = serde_json::json!({ "transactionId": "tx-2", "amount": 1 });
    pool.call::<serde_json::Value>("pay", (other,)).await.unwrap();
    assert_eq!(runs_in(&runs), 2);
    tokio::time::sleep(Duration::from_millis(700)).await;
    pool.call::<serde_json::Value>("pay", (req,)).await.unwrap();
    assert_eq!(runs_in(&runs), 3, "after ttl it runs again");
    pm.shutdown().await;
}
