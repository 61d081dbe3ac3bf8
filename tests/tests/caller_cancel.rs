//! A caller that stops waiting (drops its call future) cancels the call in the
//! worker, as a deadline does; the worker keeps serving.

use std::time::Duration;

use titan_pm::{ManagerConfig, ProcessManager, SpawnOptions};
use titan_pm_tests::eventually;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn dropping_a_call_cancels_it_in_the_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let dropped = tokio::time::timeout(Duration::from_millis(200), h.call::<u64>("slow", (10_000,))).await;
    assert!(dropped.is_err(), "the slow call should still be running when dropped");

    let mut cancelled = 0;
    let seen = eventually(Duration::from_secs(5), || {
        cancelled = futures::executor::block_on(h.call::<u64>("cancelled", ())).unwrap();
        cancelled == 1
    })
    .await;
    assert!(seen, "the worker counted {cancelled} cancelled calls");
    assert_eq!(h.call::<i64>("add", (2, 3)).await.unwrap(), 5);
    pm.shutdown().await;
}
