//! Health comes from the worker's own check, out of band; metrics are measured
//! at the host (latency histogram, counts) and read from /proc (cpu, memory).

use std::time::Duration;

use titan_pm::{HealthStatus, ManagerConfig, ProcessManager, SpawnOptions};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn health_is_answered_while_calls_are_busy() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let busy: Vec<_> = (0..8)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.call::<u64>("slow", (1_000,)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let report = pm.get_health(h.id()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500), "health waited behind calls");
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.checks[0].name, "self");
    assert!(report.timestamp_ms > 1_700_000_000_000);
    for b in busy {
        b.await.unwrap().unwrap();
    }
    pm.shutdown().await;
}

#[tokio::test]
async fn a_killed_process_has_no_health_but_its_final_state() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    pm.kill(h.id()).await.unwrap();
    let err = pm.get_health(h.id()).await.unwrap_err();
    assert!(matches!(err, titan_pm::Error::ProcessFailed { state: titan_pm::ProcessState::Stopped, .. }), "{err}");
    pm.shutdown().await;
}

#[tokio::test]
async fn metrics_count_calls_and_measure_latency() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    for i in 0..20 {
        h.call::<i64>("add", (i, 1)).await.unwrap();
    }
    h.call::<u64>("slow", (50,)).await.unwrap();
    let _ = h.call::<()>("raise", ("x",)).await;
    let m = pm.get_metrics(h.id()).await.unwrap();
    assert_eq!(m.requests, 22);
    assert_eq!(m.errors, 1);
    assert!(m.memory > 100_000, "rss {}", m.memory);
    assert!(m.cpu >= 0.0);
    assert!(m.latency.p50 > 0.0 && m.latency.p50 < 50.0, "{:?}", m.latency);
    assert!(m.latency.p99 >= 50.0, "the 50 ms call is the slowest: {:?}", m.latency);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_does_not_answer_in_time_is_unhealthy() {
    let config = ManagerConfig {
        health_timeout: Duration::from_millis(200),
        shutdown_timeout: Duration::from_millis(200),
        timeout: Duration::from_millis(100),
        cancel_grace: Duration::from_secs(30),
        ..ManagerConfig::default()
    };
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    // `hang` blocks the worker's only thread, so nothing can answer.
    let _ = h.call::<()>("hang", ()).await;
    let report = pm.get_health(h.id()).await.unwrap();
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert!(report.checks[0].message.contains("no answer within 200 ms"), "{:?}", report.checks);
    pm.shutdown().await;
}
