//! Strategy behaviour through real pools: a slow worker gets fewer calls under
//! least-response-time, ties split evenly under least-connections, keys stay on
//! their worker under consistent-hash and move little when the pool grows.
//! (Every strategy's algorithm is also unit-tested in core/src/pool/strategy.rs.)

use std::collections::HashMap;

use futures::future::join_all;
use titan_pm::pool::{PoolOptions, PoolSize, Strategy};
use titan_pm::{CallOptions, ManagerConfig, ProcessManager};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn sized(n: usize, strategy: Strategy) -> PoolOptions {
    PoolOptions { size: PoolSize::Fixed(n), strategy, ..PoolOptions::default() }
}

fn tally(pids: Vec<u32>) -> HashMap<u32, usize> {
    let mut t = HashMap::new();
    for p in pids {
        *t.entry(p).or_default() += 1;
    }
    t
}

#[tokio::test]
async fn least_response_time_sends_fewer_calls_to_a_slow_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, sized(2, "least-response-time".parse().unwrap())).await.unwrap();
    let members = pool.metrics().await.unwrap().workers;
    let slow = members[0].pid;
    pm.handle(members[0].process_id).call::<u32>("set_delay", (20,)).await.unwrap();
    let mut pids = Vec::new();
    for _ in 0..10 {
        // Four callers at a time on two workers of concurrency 1: both stay busy.
        let round = (0..4).map(|_| {
            let pool = pool.clone();
            async move { pool.call::<u32>("work", ()).await.unwrap() }
        });
        pids.extend(join_all(round).await);
    }
    let t = tally(pids);
    let (slow_calls, fast_calls) = (t[&slow], t.iter().filter(|(p, _)| **p != slow).map(|(_, n)| n).sum::<usize>());
    assert!(slow_calls * 2 < fast_calls, "slow worker got {slow_calls}, fast {fast_calls}");
    pm.shutdown().await;
}

#[tokio::test]
async fn least_connections_splits_ties_evenly() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, sized(3, Strategy::LeastConnections)).await.unwrap();
    let mut pids = Vec::new();
    for _ in 0..30 {
        pids.push(pool.call::<u32>("work", ()).await.unwrap());
    }
    let t = tally(pids);
    assert_eq!(t.len(), 3);
    assert!(t.values().all(|&n| n == 10), "{t:?}");
    pm.shutdown().await;
}

#[tokio::test]
async fn consistent_hash_keeps_keys_and_moves_few_when_growing() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, sized(3, Strategy::ConsistentHash)).await.unwrap();
    let keys: Vec<String> = (0..120).map(|i| format!("user-{i}")).collect();
    let owners = |keys: Vec<String>| {
        let pool = pool.clone();
        async move {
            let mut pids = Vec::new();
            for key in keys {
                let view = pool.with_options(CallOptions { key: Some(key), ..Default::default() });
                pids.push(view.call::<u32>("work", ()).await.unwrap());
            }
            pids
        }
    };
    let first = owners(keys.clone()).await;
    let again = owners(keys.clone()).await;
    assert_eq!(first, again, "a key stays on its worker");
    assert_eq!(tally(first.clone()).len(), 3, "keys spread over all workers");

    pool.scale(4).await.unwrap();
    let after = owners(keys.clone()).await;
    let moved = first.iter().zip(&after).filter(|(a, b)| a != b).count();
    // Ideal is 1/4 of 120 = 30; allow for a small sample.
    assert!(moved <= 45, "{moved} of 120 keys moved");
    assert!(moved > 0, "the new worker took some keys");
    pm.shutdown().await;
}

#[tokio::test]
async fn an_unknown_strategy_name_is_an_error() {
    let err = "fastest".parse::<Strategy>().unwrap_err();
    assert!(err.to_string().contains("unknown pool strategy"), "{err}");
}
