//! A supervised pool being restarted (here by a one-for-all restart) keeps its
//! pool id, and calls that reach it meanwhile wait for the new pool within their
//! deadline instead of failing; a deadline that passes first is a CallTimeout.

use std::time::Duration;

use titan_pm::pool::{PoolEvent, PoolOptions};
use titan_pm::supervise::SupervisorEvent;
use titan_pm::{CallOptions, ChildSpec, ManagerConfig, PoolSize, ProcessManager, SupervisionStrategy, SupervisorSpec};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn calls_to_a_pool_child_being_restarted_wait_within_their_deadline() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = ChildSpec { pool: Some(PoolOptions { size: PoolSize::Fixed(2), ..PoolOptions::default() }), ..ChildSpec::default() };
    let spec = SupervisorSpec::new(SupervisionStrategy::OneForAll)
        .name("app")
        .backoff(titan_pm::policy::Backoff::exponential(Duration::from_millis(200), Duration::from_millis(400)))
        .child("db", WORKER, ChildSpec::default())
        .child("workers", WORKER, pool);
    let sup = pm.supervisor(spec).await.unwrap();
    let workers = sup.pool("workers").await.unwrap();
    assert_eq!(workers.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    let mut pool_events = workers.events();
    let mut sup_events = sup.events();

    // Killing db restarts both children (one-for-all): the pool is destroyed, then started again after the backoff.
    let db_pid: u32 = sup.child("db").await.unwrap().call("pid", ()).await.unwrap();
    unsafe { libc::kill(db_pid as i32, libc::SIGKILL) };
    let destroyed = async { while !matches!(pool_events.recv().await.unwrap(), PoolEvent::Destroyed) {} };
    tokio::time::timeout(Duration::from_secs(20), destroyed).await.expect("the pool was not restarted");

    // Within the restart: one call with a deadline shorter than the backoff times out, one with room waits and succeeds.
    let short = workers.with_options(CallOptions { timeout: Some(Duration::from_millis(50)), ..CallOptions::default() });
    let e = short.call::<i64>("add", (1, 1)).await.err().expect("the short call cannot have been served");
    assert!(matches!(e, titan_pm::Error::CallTimeout { .. }), "{e:?}");
    let long = workers.with_options(CallOptions { timeout: Some(Duration::from_secs(20)), ..CallOptions::default() });
    assert_eq!(long.call::<i64>("add", (20, 22)).await.unwrap(), 42, "a call during the restart waits for the new pool");

    let restarted = async {
        while !matches!(sup_events.recv().await.unwrap(), SupervisorEvent::ChildRestarted { ref name, .. } if name == "workers") {}
    };
    tokio::time::timeout(Duration::from_secs(20), restarted).await.unwrap();
    assert_eq!(workers.call::<i64>("add", (2, 2)).await.unwrap(), 4);

    // A pool stopped for good does not make calls wait.
    sup.stop().await.unwrap();
    let e = long.call::<i64>("add", (1, 1)).await.err().unwrap();
    assert!(!matches!(e, titan_pm::Error::CallTimeout { .. }), "{e:?}");
    pm.shutdown().await;
}
