//! The CLI against a running manager (this test is the host): `ls --json`
//! lists the right processes and states, `logs` gives the worker's last lines
//! with the `[name:pid]` prefix, `restart` keeps the id and changes the pid
//! (with calls going on: none fails), `scale` resizes a pool, `metrics
//! --prometheus` parses, unknown targets are clear errors.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use titan_pm::pool::{PoolOptions, PoolSize};
use titan_pm::{ManagerConfig, ProcessManager, SpawnOptions};

fn named(name: &str) -> SpawnOptions {
    SpawnOptions { name: Some(name.into()), ..SpawnOptions::default() }
}

fn rows(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v.as_array().cloned().unwrap_or_default()
}

#[test]
fn cli_lists_logs_restarts_scales_and_measures() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl").join("control.sock");
    let pm = ProcessManager::new(ManagerConfig::default());
    let _control = pm.serve_control(&socket).expect("serve control");
    let worker = test_worker();
    let solo = rt.block_on(pm.spawn(worker.as_path(), named("solo"))).expect("spawn");
    let pool = rt
        .block_on(pm.pool(worker.as_path(), PoolOptions { size: PoolSize::Fixed(2), spawn: named("workers"), ..PoolOptions::default() }))
        .expect("pool");

    // ls --json: the right processes and states.
    let ls = json(&socket, &["ls"]);
    let list = rows(&ls);
    assert_eq!(list.len(), 3, "{ls}");
    assert_eq!(list.iter().filter(|r| r["name"] == "solo").count(), 1);
    assert_eq!(list.iter().filter(|r| r["name"] == "workers" && r["pool"] == pool.id()).count(), 2);
    assert!(list.iter().all(|r| r["state"] == "running" && r["isolation"] == "child"), "{ls}");
    let solo_row = list.iter().find(|r| r["name"] == "solo").unwrap().clone();
    assert_eq!(solo_row["processId"], solo.id());
    let table = ok(&socket, &["ls"]);
    for col in ["id", "name", "pid", "state", "restarts", "cpu", "memory", "uptime", "isolation"] {
        assert!(table.lines().next().unwrap().contains(col), "{table}");
    }

    // logs: the last lines, with the prefix.
    for i in 1..=3 {
        rt.block_on(solo.call::<()>("print", (format!("line-{i}"),))).unwrap();
    }
    let pid = solo_row["pid"].as_u64().unwrap();
    let wanted = [format!("[solo:{pid}] line-3"), format!("[solo:{pid}] err: line-3")];
    let mut text = String::new();
    eventually(Duration::from_secs(10), "logs show the last lines", || {
        let out = cli(&socket, &["logs", "solo", "--lines", "4"]);
        text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        wanted.iter().all(|w| text.contains(w.as_str()))
    });
    assert!(text.contains(&format!("[solo:{pid}] line-2")) && !text.contains("line-1"), "{text}");
    let as_json = ok(&socket, &["logs", "solo", "-n", "1", "--json"]);
    let last: serde_json::Value = serde_json::from_str(as_json.trim()).expect("one JSON line");
    assert_eq!(last["processId"], solo.id());

    // restart under calls: same id, new pid, no failed call.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (solo, stop, done, failed) = (solo.clone(), stop.clone(), done.clone(), failed.clone());
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match solo.call::<u64>("slow", (5u64,)).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("call failed during restart: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    eventually(Duration::from_secs(10), "calls flow", || done.load(Ordering::Relaxed) > 20);
    ok(&socket, &["restart", "solo"]);
    let before = done.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "calls flow after the restart", || done.load(Ordering::Relaxed) > before + 20);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(load).unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "a call failed because of the restart");
    let info = rows(&json(&socket, &["info", "solo"]));
    assert_eq!(info.len(), 1);
    assert_eq!(info[0]["processId"], solo.id());
    assert_ne!(info[0]["pid"].as_u64().unwrap(), pid, "the pid changed");
    assert_eq!(info[0]["restarts"], 1);
    assert!(!alive(pid as i32) || { std::thread::sleep(Duration::from_secs(2)); !alive(pid as i32) }, "the old instance stopped");

    // events: a stream, until interrupted; process and pool events as JSON lines.
    let events_out = dir.path().join("events.jsonl");
    let mut events = std::process::Command::new(titan_pm())
        .arg("--socket")
        .arg(&socket)
        .arg("events")
        .stdout(std::fs::File::create(&events_out).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // subscribed

    // scale: the pool's size changes.
    ok(&socket, &["scale", "workers", "3"]);
    assert_eq!(rt.block_on(pool.size()).unwrap(), 3);
    let list = rows(&json(&socket, &["ls"]));
    assert_eq!(list.iter().filter(|r| r["name"] == "workers").count(), 3);
    let pools = rows(&json(&socket, &["pools"]));
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0]["size"], 3);
    eventually(Duration::from_secs(10), "the events stream shows the scale", || {
        let text = std::fs::read_to_string(&events_out).unwrap_or_default();
        text.contains("\"pool:scaled\"") && text.contains("\"spawn\"")
    });
    unsafe { libc::kill(events.id() as i32, libc::SIGINT) };
    eventually(Duration::from_secs(10), "events stops on Ctrl-C", || events.try_wait().unwrap().is_some());
    let scaled = std::fs::read_to_string(&events_out).unwrap();
    let line = scaled.lines().find(|l| l.contains("pool:scaled")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!((v["from"].as_u64(), v["to"].as_u64(), v["poolId"].as_u64()), (Some(2), Some(3), Some(pool.id())));

    // metrics --prometheus parses, and counts solo's calls.
    let text = ok(&socket, &["metrics", "--prometheus"]);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("prometheus text parses");
    let requests = scrape
        .samples
        .iter()
        .find(|s| s.metric == "titan_process_requests_total" && s.labels.get("name") == Some("solo"))
        .expect("solo's request counter");
    match requests.value {
        prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Untyped(n) | prometheus_parse::Value::Gauge(n) => assert!(n >= 3.0, "{n}"),
        ref other => panic!("unexpected sample {other:?}"),
    }
    assert!(scrape.samples.iter().any(|s| s.metric == "titan_pool_size" && s.labels.get("name") == Some("workers")));
    let health = rows(&json(&socket, &["health"]));
    assert_eq!(health.len(), 4);
    assert!(health.iter().all(|h| h["health"]["status"] == "degraded"), "the test worker answers degraded");

    // call through the control interface, by pool name.
    assert_eq!(ok(&socket, &["call", "workers", "add", "2", "3"]).trim(), "5");

    // Unknown targets: a clear error, exit code 1.
    let out = cli(&socket, &["info", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no process or pool named \"nosuch\""), "{err}");

    // A pool member is not killed alone: the error says what to do.
    let member = rows(&json(&socket, &["pools"]))[0]["members"][0].as_u64().unwrap().to_string();
    let out = cli(&socket, &["kill", &member]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a member of pool \"workers\"") && err.contains("titan-pm scale workers N"), "{err}");

    // stop: graceful, the process leaves the list; kill a pool: it is destroyed.
    ok(&socket, &["stop", "solo"]);
    ok(&socket, &["kill", "workers"]);
    assert!(rows(&json(&socket, &["ls"])).is_empty());
    rt.block_on(pm.shutdown());
}

#[test]
fn no_manager_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&dir.path().join("none.sock"), &["ls"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no manager is serving") && err.contains("none.sock"), "{err}");
}
