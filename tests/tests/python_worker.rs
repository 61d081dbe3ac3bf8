//! A Rust host drives a Python worker (`python/tests/workers/calculator.py`):
//! calls, errors, health, dependencies and a crash, across the language line.
//!
//! Needs an interpreter that can import titan_pm, named by `TITAN_TEST_PYTHON`;
//! `scripts/test-python.sh` sets it up and runs these with `--ignored` (a plain
//! `cargo test` lists them as ignored).

use std::time::Duration;

use titan_pm::{Error, HealthStatus, ManagerConfig, ProcessManager, RestartPolicy, SpawnOptions, Value};

fn worker() -> String {
    format!("{}/../python/tests/workers/calculator.py", env!("CARGO_MANIFEST_DIR"))
}

fn manager() -> ProcessManager {
    let python = std::env::var("TITAN_TEST_PYTHON")
        .expect("set TITAN_TEST_PYTHON to a python that can import titan_pm (scripts/test-python.sh does)");
    ProcessManager::new(ManagerConfig {
        python,
        restart: RestartPolicy { backoff: titan_pm::policy::Backoff { initial: Duration::from_millis(20), ..Default::default() }, ..RestartPolicy::default() },
        ..ManagerConfig::default()
    })
}

#[tokio::test]
#[ignore = "needs TITAN_TEST_PYTHON; run by scripts/test-python.sh"]
async fn a_rust_host_calls_a_python_worker() {
    let pm = manager();
    let deps = Value::Map(vec![("config".into(), Value::Map(vec![("level".into(), Value::Int(3))]))]);
    let calc = pm.spawn(worker(), SpawnOptions { dependencies: deps, ..Default::default() }).await.unwrap();
    assert_eq!(calc.call::<i64>("add", (5, 3)).await.unwrap(), 8);
    assert_eq!(calc.call::<i64>("multiply", (4, 5)).await.unwrap(), 20);
    assert_eq!(calc.call::<Vec<String>>("process_data", (vec!["hello", "world"],)).await.unwrap(), ["HELLO", "WORLD"]);
    assert_eq!(calc.call::<i64>("fibonacci", (10,)).await.unwrap(), 55);
    assert_eq!(calc.call::<i64>("increment", ()).await.unwrap(), 1);
    assert_eq!(calc.call::<i64>("increment", ()).await.unwrap(), 2);
    assert_eq!(calc.call::<serde_json::Value>("get_config", ()).await.unwrap(), serde_json::json!({"level": 3}));

    let info = calc.info().await.unwrap();
    assert_eq!(info.name, "calculator");
    let health = pm.get_health(calc.id()).await.unwrap();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert_eq!(health.checks[0].name, "disk");
    pm.shutdown().await;
}

#[tokio::test]
#[ignore = "needs TITAN_TEST_PYTHON; run by scripts/test-python.sh"]
async fn python_errors_arrive_as_core_errors() {
    let pm = manager();
    let calc = pm.spawn(worker(), SpawnOptions::default()).await.unwrap();
    match calc.call::<()>("fail", ("KeyError", "missing")).await.unwrap_err() {
        Error::Remote { remote_type, message, remote_traceback, .. } => {
            assert_eq!(remote_type, "KeyError");
            assert!(message.contains("missing"), "{message}");
            assert!(remote_traceback.contains("Traceback"), "{remote_traceback}");
        }
        other => panic!("expected a remote error, got {other}"),
    }
    match calc.call::<()>("nope", ()).await.unwrap_err() {
        Error::MethodNotFound { available, .. } => assert!(available.contains(&"add".to_string())),
        other => panic!("expected MethodNotFound, got {other}"),
    }
    match calc.call::<()>("bad_return", ()).await.unwrap_err() {
        Error::Serialization { path, .. } => assert_eq!(path, r#"result["ok"][2]"#),
        other => panic!("expected a serialization error, got {other}"),
    }
    // The method's own deadline (@public(timeout=0.3)) applies when the call sets none.
    match calc.call::<f64>("bounded", (30,)).await.unwrap_err() {
        Error::CallTimeout { timeout_ms, .. } => assert_eq!(timeout_ms, 300),
        other => panic!("expected a timeout, got {other}"),
    }
    // A crash mid-call, then the restarted worker answers.
    let err = calc.call::<()>("exit", (7,)).await.unwrap_err();
    assert!(matches!(err, Error::ProcessCrashed { exit_code: Some(7), .. }), "{err}");
    assert_eq!(calc.call::<i64>("add", (1, 1)).await.unwrap(), 2);
    pm.shutdown().await;
}

#[tokio::test]
#[ignore = "needs TITAN_TEST_PYTHON; run by scripts/test-python.sh"]
async fn a_bad_python_target_is_a_spawn_error_with_the_reason() {
    let pm = manager();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.py");
    std::fs::write(&file, "class Helper:\n    pass\n").unwrap();
    match pm.spawn(file.as_path(), SpawnOptions::default()).await.map(|_| ()).unwrap_err() {
        Error::Spawn { stderr_tail, .. } => {
            assert!(stderr_tail.contains("no @process class in plain.py (found: Helper)"), "{stderr_tail}")
        }
        other => panic!("expected a spawn error, got {other}"),
    }
    pm.shutdown().await;
}

#[tokio::test]
#[ignore = "needs TITAN_TEST_PYTHON; run by scripts/test-python.sh"]
async fn a_python_worker_method_reads_the_trace_context_the_host_started() {
    use titan_pm::policy::trace::{self, TraceContext};
    let pm = manager();
    let file = format!("{}/../python/tests/workers/worker_side_policies.py", env!("CARGO_MANIFEST_DIR"));
    let h = pm.spawn(file, SpawnOptions::default()).await.unwrap();
    let root = TraceContext::child_of(None);
    // Five sync calls (the call thread, then inline once proven fast) and an async one.
    for method in ["trace", "trace", "trace", "trace", "trace", "trace_async"] {
        let t: serde_json::Value = trace::scope(root.clone(), h.call(method, ())).await.unwrap();
        assert_eq!(t["trace_id"], root.trace_id.as_str(), "{method}: {t}");
        assert_eq!(t["parent_span_id"], root.span_id.as_str(), "{method}: {t}");
        assert_eq!(t["span_id"].as_str().unwrap().len(), 16, "{t}");
    }
    pm.shutdown().await;
}
