//! @SharedState: one host-held value per (class, property) shared by every
//! instance under the manager; `add` is one atomic step, so increments from
//! pool members running in parallel are never lost.

use std::collections::BTreeSet;

use titan_pm::pool::PoolOptions;
use titan_pm::{ManagerConfig, PoolSize, ProcessManager};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn four_pool_members_incrementing_250_times_each_in_parallel_end_at_1000() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(4), ..PoolOptions::default() }).await.unwrap();
    let members: Vec<_> = pool.metrics().await.unwrap().workers.iter().map(|w| pm.handle(w.process_id)).collect();
    assert_eq!(members.len(), 4);
    let calls = members.iter().flat_map(|m| (0..250).map(move |_| m.call::<i64>("shared_add", ("count", 1))));
    let results: Vec<i64> = futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap()).collect();
    let distinct: BTreeSet<i64> = results.iter().copied().collect();
    assert_eq!(distinct, (1..=1000).collect::<BTreeSet<_>>(), "every increment saw a value of its own: none lost");
    for m in &members {
        assert_eq!(m.call::<i64>("shared_get", ("count",)).await.unwrap(), 1000);
    }
    // Held by the host: a member started later (a replacement) reads it too.
    let pid = members[0].info().await.unwrap().pid;
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let fresh = pm.spawn(WORKER, Default::default()).await.unwrap();
    assert_eq!(fresh.call::<i64>("shared_get", ("count",)).await.unwrap(), 1000);
    assert_eq!(fresh.call::<serde_json::Value>("shared_get", ("never-set",)).await.unwrap(), serde_json::Value::Null);
    pm.shutdown().await;
}

#[tokio::test]
async fn init_seeds_a_never_set_value_once_and_add_counts_from_it() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let a = pm.spawn(WORKER, Default::default()).await.unwrap();
    let b = pm.spawn(WORKER, Default::default()).await.unwrap();
    assert_eq!(a.call::<i64>("shared_init", ("hits", 100)).await.unwrap(), 100, "the first seeds it");
    assert_eq!(b.call::<i64>("shared_init", ("hits", 7)).await.unwrap(), 100, "a later init keeps the host's value");
    assert_eq!(b.call::<i64>("shared_add", ("hits", 1)).await.unwrap(), 101);
    assert_eq!(a.call::<i64>("shared_init", ("hits", 0)).await.unwrap(), 101);
    pm.shutdown().await;
}
