//! The seed's configuration as users write it, read once by core's option
//! schema: the whole block accepted in both dialects, unknown keys refused with
//! their path, and what each section does (linear backoff, resources.timeout,
//! maxMemory, periodic health, targetMemory as a percent, spawn version).

use std::time::Duration;

use titan_pm::options::{self, Dialect};
use titan_pm::pool::PoolOptions;
use titan_pm::value::to_value;
use titan_pm::{Error, EventKind, HealthStatus, ManagerConfig, ProcessManager, SpawnOptions};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn manager(json: serde_json::Value, dialect: Dialect) -> titan_pm::Result<ManagerConfig> {
    options::manager(&to_value(&json).unwrap(), dialect, &|_| None)
}

#[test]
fn the_seed_configuration_block_is_accepted_in_both_dialects() {
    let js = manager(
        serde_json::json!({
            "isolation": "worker", "transport": "ipc",
            "restartPolicy": { "enabled": true, "maxRestarts": 3, "window": 60000,
                               "backoff": { "type": "exponential", "initial": 100, "max": 30000 } },
            "resources": { "maxMemory": "512MB", "maxCpu": 50, "timeout": 30000 },
            "monitoring": { "healthCheck": { "interval": 5000, "timeout": 2000 }, "metrics": true, "tracing": true },
        }),
        Dialect::Js,
    )
    .unwrap();
    let py = manager(
        serde_json::json!({
            "resources": { "timeout": 30.0, "max_memory": "512MB", "max_cpu": 50 },
            "restart_policy": { "max_restarts": 3, "window": 60.0, "backoff": { "type": "linear", "initial": 0.1, "max": 30.0 } },
            "monitoring": { "health_check": { "interval": 5.0, "timeout": 2.0 } },
        }),
        Dialect::Python,
    )
    .unwrap();
    for c in [&js, &py] {
        assert_eq!(c.resources.max_memory, Some(512 << 20));
        assert_eq!(c.resources.max_cpu, Some(50.0));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.health_timeout, Duration::from_secs(2));
        assert_eq!(c.monitoring.health_check.as_ref().unwrap().interval, Duration::from_secs(5));
        assert_eq!(c.restart.window, Duration::from_secs(60));
    }
    assert_eq!(py.restart.backoff.delay(3), Duration::from_millis(300));
    assert_eq!(js.restart.backoff.delay(3), Duration::from_millis(400));
}

#[test]
fn unknown_keys_are_refused_with_their_full_path_in_each_dialect() {
    let cases = [
        (serde_json::json!({ "resources": { "maxMem": 1 } }), Dialect::Js, "resources.maxMem"),
        (serde_json::json!({ "monitorng": {} }), Dialect::Js, "monitorng"),
        (serde_json::json!({ "restartPolicy": { "backoff": { "kind": "linear" } } }), Dialect::Js, "restartPolicy.backoff.kind"),
        (serde_json::json!({ "restart_policy": { "maxRestarts": 1 } }), Dialect::Python, "restart_policy.maxRestarts"),
        (serde_json::json!({ "monitoring": { "health_check": { "intervall": 1 } } }), Dialect::Python, "monitoring.health_check.intervall"),
    ];
    for (json, dialect, path) in cases {
        let e = manager(json, dialect).err().expect("refused").to_string();
        assert!(e.contains(&format!("{path}: unknown option")), "{e}");
    }
    let pool = options::pool(&to_value(&serde_json::json!({ "autoScale": { "targetCPUs": 1 } })).unwrap(), Dialect::Js, &|_| None);
    assert!(pool.err().unwrap().to_string().contains("autoScale.targetCPUs: unknown option"));
    let spawn = options::spawn(&to_value(&serde_json::json!({ "versoin": "1" })).unwrap(), Dialect::Js, &|_| None);
    assert!(spawn.err().unwrap().to_string().contains("versoin: unknown option"));
    let bad_type = manager(serde_json::json!({ "resources": { "timeout": "soon" } }), Dialect::Js);
    assert!(bad_type.err().unwrap().to_string().contains("resources.timeout:"));
}

#[tokio::test]
async fn a_linear_backoff_waits_longer_by_the_same_step_each_restart() {
    let config = manager(
        serde_json::json!({ "restartPolicy": { "maxRestarts": 3, "backoff": { "type": "linear", "initial": 30, "max": 1000 } } }),
        Dialect::Js,
    )
    .unwrap();
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let mut events = pm.events();
    let mut delays = Vec::new();
    for _ in 0..3 {
        let _ = h.call::<()>("crash", ()).await;
        let delay = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(e) = events.recv().await {
                    if let EventKind::Restarting { delay, .. } = e.kind {
                        return delay;
                    }
                }
            }
        })
        .await
        .expect("a restart event");
        delays.push(delay.as_millis());
        assert!(titan_pm_tests::eventually(Duration::from_secs(5), || true).await);
        h.call::<i64>("add", (1, 1)).await.unwrap(); // waits for the new instance
    }
    assert_eq!(delays, [30, 60, 90]);
    pm.shutdown().await;
}

#[tokio::test]
async fn resources_timeout_is_every_calls_deadline() {
    let pm = ProcessManager::new(manager(serde_json::json!({ "resources": { "timeout": 200 } }), Dialect::Js).unwrap());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let started = std::time::Instant::now();
    let err = h.call::<()>("slow", (5_000u64,)).await.unwrap_err();
    assert!(matches!(err, Error::CallTimeout { timeout_ms: 200, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    pm.shutdown().await;
}

#[tokio::test]
async fn a_worker_above_max_memory_is_restarted_with_a_memory_event() {
    let config = manager(serde_json::json!({ "resources": { "maxMemory": "64MB" }, "restartPolicy": { "backoff": 10 } }), Dialect::Js).unwrap();
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let first_pid = h.call::<u32>("pid", ()).await.unwrap();
    let mut events = pm.events();
    // The watcher may restart the worker before this call returns: either outcome is fine.
    let _ = h.call::<usize>("allocate", (128usize,)).await;
    let limit = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(e) = events.recv().await {
                if let EventKind::MemoryExceeded { rss, limit } = e.kind {
                    assert!(rss > limit);
                    return limit;
                }
            }
        }
    })
    .await
    .expect("a memory event");
    assert_eq!(limit, 64 << 20);
    ready(&mut events).await;
    let new_pid = h.call::<u32>("pid", ()).await.unwrap();
    assert_ne!(new_pid, first_pid, "the worker was replaced");
    assert_eq!(h.info().await.unwrap().restarts, 1);
    pm.shutdown().await;
}

#[tokio::test]
async fn periodic_health_probes_restart_a_worker_that_turns_unhealthy() {
    let config = manager(serde_json::json!({ "monitoring": { "healthCheck": { "interval": 50 } }, "restartPolicy": { "backoff": 10 } }), Dialect::Js).unwrap();
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let first_pid = h.call::<u32>("pid", ()).await.unwrap();
    // The test worker reports `degraded` (a `warn` check): not a reason to restart.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.call::<u32>("pid", ()).await.unwrap(), first_pid);
    let mut events = pm.events();
    h.call::<()>("set_unhealthy", ()).await.unwrap();
    let probes = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(e) = events.recv().await {
                if let EventKind::Unhealthy { probes } = e.kind {
                    return probes;
                }
            }
        }
    })
    .await
    .expect("an unhealthy event");
    assert_eq!(probes, 3);
    ready(&mut events).await;
    assert_ne!(h.call::<u32>("pid", ()).await.unwrap(), first_pid);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_warn_check_makes_the_report_degraded_and_keeps_the_checks_status() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let report = pm.get_health(h.id()).await.unwrap();
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.checks[0].status.as_str(), "warn");
    // The one parser of a worker's answer: status derived from the checks, timestamp kept.
    let answer = to_value(&serde_json::json!({ "checks": [{ "name": "db", "status": "warn" }, { "name": "q", "status": "pass" }], "timestamp": 1234 })).unwrap();
    let r = titan_pm::HealthReport::from_value(&answer);
    assert_eq!((r.status, r.timestamp_ms, r.checks[0].status.as_str()), (HealthStatus::Degraded, 1234, "warn"));
    let failing = to_value(&serde_json::json!({ "checks": [{ "name": "db", "status": "fail" }] })).unwrap();
    assert_eq!(titan_pm::HealthReport::from_value(&failing).status, HealthStatus::Unhealthy);
    pm.shutdown().await;
}

#[tokio::test]
async fn target_memory_is_a_percent_so_an_idle_pool_stays_at_min() {
    let options = options::pool(
        &to_value(&serde_json::json!({ "size": 1, "autoScale": { "min": 1, "max": 3, "targetMemory": 80, "interval": 20, "cooldown": 20 } })).unwrap(),
        Dialect::Js,
        &|_| None,
    )
    .unwrap();
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, PoolOptions { ..options }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pool.size().await.unwrap(), 1);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_version_mismatch_is_a_spawn_error() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let wanted = SpawnOptions { version: Some("9.9.9".into()), ..Default::default() };
    let err = pm.spawn(WORKER, wanted).await.err().expect("refused");
    assert!(matches!(&err, Error::Spawn { reason, .. } if reason.contains("version mismatch") && reason.contains("9.9.9")), "{err}");
    assert!(pm.list_processes().await.is_empty());
    let ok = SpawnOptions { version: Some(titan_pm_tests::TEST_WORKER_VERSION.into()), ..Default::default() };
    pm.spawn(WORKER, ok).await.unwrap();
    pm.shutdown().await;
}

#[tokio::test]
async fn spawn_and_kill_cycles_keep_the_list_short_and_memory_flat() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = || SpawnOptions { isolation: Some(titan_pm::Isolation::None), ..Default::default() };
    let rss = || titan_pm_tests::rss_bytes();
    for _ in 0..200 {
        let h = pm.spawn(titan_pm_tests::test_worker_target(), options()).await.unwrap();
        pm.kill(h.id()).await.unwrap();
    }
    let before = rss();
    for _ in 0..2000 {
        let h = pm.spawn(titan_pm_tests::test_worker_target(), options()).await.unwrap();
        pm.kill(h.id()).await.unwrap();
    }
    let grown = rss().saturating_sub(before);
    assert!(pm.list_processes().await.is_empty());
    // 186 KB a cycle leaked before: 2000 cycles would be ~370 MB.
    assert!(grown < 32 << 20, "RSS grew by {} KB over 2000 cycles", grown >> 10);
    pm.shutdown().await;
}

/// Waits for the next `ready` event (a new instance serving).
async fn ready(events: &mut tokio::sync::broadcast::Receiver<titan_pm::Event>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(events.recv().await.map(|e| e.kind), Ok(EventKind::Ready { .. })) {}
    })
    .await
    .expect("a ready event");
}

#[tokio::test]
async fn max_cpu_puts_a_child_worker_under_a_cpu_quota_where_the_os_allows() {
    let config = manager(serde_json::json!({ "resources": { "maxCpu": 20 } }), Dialect::Js).unwrap();
    let pm = ProcessManager::new(config);
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.call::<u32>("pid", ()).await.unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let Some(line) = cgroups.lines().find(|l| l.contains("titan-pm-")) else {
        let writable = std::fs::metadata("/sys/fs/cgroup/cpu").map(|m| !m.permissions().readonly()).unwrap_or(false);
        assert!(!(writable && unsafe { libc::geteuid() } == 0), "root with a writable cpu cgroup, yet no quota: {cgroups}");
        eprintln!("skipped: this machine does not let the host create cgroups (maxCpu is documented as not enforced here)");
        pm.shutdown().await;
        return;
    };
    let (controllers, path) = line.split_once(':').map(|(_, rest)| rest.split_once(':').unwrap()).unwrap();
    let dir = if controllers.is_empty() { format!("/sys/fs/cgroup{path}") } else { format!("/sys/fs/cgroup/cpu{path}") };
    let quota = std::fs::read_to_string(format!("{dir}/cpu.cfs_quota_us")).or_else(|_| std::fs::read_to_string(format!("{dir}/cpu.max"))).unwrap();
    assert!(quota.trim().starts_with("20000"), "quota {quota:?} in {dir}");
    pm.shutdown().await;
    assert!(titan_pm_tests::eventually(Duration::from_secs(5), || !std::path::Path::new(&dir).exists()).await, "{dir} left behind");
}
