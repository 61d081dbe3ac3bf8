//! Auto-scaling grows a pool under a burst and shrinks it when idle; the
//! circuit breaker goes closed -> open -> half-open -> closed, and open again.

use std::time::Duration;

use futures::future::join_all;
use titan_pm::pool::{AutoScale, BreakerOptions, BreakerState, PoolEvent, PoolOptions, PoolSize};
use titan_pm::{Error, ManagerConfig, ProcessManager};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn grows_under_a_burst_and_shrinks_when_idle() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = PoolOptions {
        size: PoolSize::Fixed(1),
        auto_scale: Some(AutoScale {
            min: 1,
            max: 3,
            cooldown: Duration::from_millis(200),
            interval: Duration::from_millis(50),
            target_cpu: 1000.0, // scale on saturation only
            ..AutoScale::default()
        }),
        ..PoolOptions::default()
    };
    let pool = pm.pool(WORKER, options).await.unwrap();
    let mut events = pool.events();
    let burst = (0..40).map(|_| {
        let pool = pool.clone();
        async move { pool.call::<u64>("slow", (100,)).await.unwrap() }
    });
    join_all(burst).await;
    let mut peak = 1;
    let mut shrunk = false;
    let watch = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(e) = events.recv().await {
            if let PoolEvent::Scaled { from, to } = e {
                assert!((1..=3).contains(&to), "scaled outside min..max: {to}");
                assert_eq!(from.abs_diff(to), 1, "one step at a time");
                peak = peak.max(to);
                if to == 1 && peak > 1 {
                    shrunk = true;
                    return;
                }
            }
        }
    });
    let _ = watch.await;
    assert!(peak > 1, "the pool never grew");
    assert!(shrunk, "the pool never shrank back");
    pm.shutdown().await;
}

#[tokio::test]
async fn the_breaker_opens_half_opens_closes_and_opens_again() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = PoolOptions {
        size: PoolSize::Fixed(1),
        circuit_breaker: Some(BreakerOptions { threshold: 3, timeout: Duration::from_millis(300), half_open_requests: 1 }),
        ..PoolOptions::default()
    };
    let pool = pm.pool(WORKER, options).await.unwrap();
    let mut events = pool.events();
    for _ in 0..3 {
        assert!(matches!(pool.call::<()>("raise", ("boom",)).await, Err(Error::Remote { .. })));
    }
    assert!(matches!(pool.call::<i64>("add", (1, 1)).await, Err(Error::CircuitOpen)), "open refuses at once");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(pool.call::<i64>("add", (1, 1)).await.unwrap(), 2, "the trial call goes through");
    assert_eq!(pool.metrics().await.unwrap().breaker, Some(BreakerState::Closed));
    for _ in 0..3 {
        let _ = pool.call::<()>("raise", ("boom",)).await;
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(pool.call::<()>("raise", ("boom",)).await, Err(Error::Remote { .. })), "a failing trial");
    assert!(matches!(pool.call::<i64>("add", (1, 1)).await, Err(Error::CircuitOpen)), "open again");
    let names: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).map(|e| e.name()).collect();
    assert_eq!(
        names,
        [
            "circuitbreaker:open",
            "circuitbreaker:halfopen",
            "circuitbreaker:close",
            "circuitbreaker:open",
            "circuitbreaker:halfopen",
            "circuitbreaker:open"
        ]
    );
    pm.shutdown().await;
}
