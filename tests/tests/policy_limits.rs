//! Method policies that refuse or redirect calls on the host: rate limits
//! (per process, per key, shared by a pool), JSON Schema validation, and the
//! method circuit breaker with its fallback. Real child workers (the test worker).

use std::time::Duration;

use futures::future::join_all;
use titan_pm::pool::{PoolOptions, PoolSize};
use titan_pm::{Error, ManagerConfig, ProcessManager, SpawnOptions};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn split(results: Vec<titan_pm::Result<titan_pm::Value>>) -> (usize, Vec<u64>) {
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let waits = results
        .iter()
        .filter_map(|r| match r {
            Err(Error::RateLimit { retry_after_ms }) => Some(*retry_after_ms),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => None,
        })
        .collect();
    (ok, waits)
}

#[tokio::test]
async fn twenty_five_calls_at_rps_10_burst_10_admit_ten_and_refuse_the_rest_with_a_wait() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let results = join_all((0..25).map(|_| h.call_value("limited", vec![]))).await;
    let (ok, waits) = split(results);
    // 10 at once; an 11th only if the burst took more than a token's 100 ms (a slow machine).
    assert!((10..=11).contains(&ok), "{ok} admitted");
    assert_eq!(ok + waits.len(), 25);
    assert!(waits.iter().all(|w| (1..=1000).contains(w)), "plausible retry_after: {waits:?}");
    let runs: u64 = h.call("runs", ()).await.unwrap();
    assert_eq!(runs as usize, ok, "refused calls never reached the worker");
    let e = h.call_value("limited", vec![]).await.unwrap_err();
    assert_eq!(e.class_name(), "RateLimitError");
    // After the wait, calls are admitted again.
    tokio::time::sleep(Duration::from_millis(250)).await;
    h.call_value("limited", vec![]).await.unwrap();
    pm.shutdown().await;
}

#[tokio::test]
async fn each_key_has_its_own_limit() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let calls = ["a", "b"].iter().flat_map(|k| (0..5).map(move |_| k)).map(|k| h.call_value("limited_by_key", vec![titan_pm::Value::Text(k.to_string())]));
    let results = join_all(calls).await;
    let (a, b) = results.split_at(5);
    assert_eq!(a.iter().filter(|r| r.is_ok()).count(), 3, "burst 3 for key a");
    assert_eq!(b.iter().filter(|r| r.is_ok()).count(), 3, "key b is not limited by key a");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_pool_of_three_shares_one_limit() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(3), ..PoolOptions::default() }).await.unwrap();
    let results = join_all((0..25).map(|_| pool.call_value("limited", vec![]))).await;
    let (ok, waits) = split(results);
    assert!((10..=11).contains(&ok), "{ok} admitted by a pool of 3 (not 30)");
    assert!(!waits.is_empty());
    pm.shutdown().await;
}

#[tokio::test]
async fn invalid_arguments_fail_validation_with_each_path_and_the_method_does_not_run() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let good = serde_json::json!({ "email": "a@b.c", "age": 3 });
    h.call::<u64>("validated", (good,)).await.unwrap();
    let bad = serde_json::json!({ "email": "nope", "age": -1 });
    let e = h.call::<u64>("validated", (bad,)).await.unwrap_err();
    assert_eq!(e.class_name(), "ValidationError");
    let Error::Validation { failures } = &e else { panic!("{e}") };
    let paths: Vec<&str> = failures.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"/email") && paths.contains(&"/age"), "{failures:?}");
    assert!(e.to_string().contains("/age"), "{e}");
    let missing = h.call::<u64>("validated", (serde_json::json!({}),)).await.unwrap_err();
    assert!(matches!(&missing, Error::Validation { failures } if failures.iter().any(|(_, m)| m.contains("email"))), "{missing}");
    assert_eq!(h.call::<u64>("runs", ()).await.unwrap(), 1, "only the valid call ran");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_method_breaker_opens_calls_the_fallback_half_opens_and_closes() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    for _ in 0..3 {
        let e = h.call::<String>("guarded", (true,)).await.unwrap_err();
        assert!(matches!(e, Error::Remote { .. }), "{e}");
    }
    // Open: the fallback answers and the method does not run.
    assert_eq!(h.call::<String>("guarded", (false,)).await.unwrap(), "fallback");
    assert_eq!(h.call::<u64>("runs", ()).await.unwrap(), 3);
    // After the timeout one trial call goes through; it succeeds and closes the breaker.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.call::<String>("guarded", (false,)).await.unwrap(), "guarded");
    assert_eq!(h.call::<String>("guarded", (false,)).await.unwrap(), "guarded");
    assert_eq!(h.call::<u64>("runs", ()).await.unwrap(), 5);
    pm.shutdown().await;
}
