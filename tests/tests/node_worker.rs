//! A Rust host drives a Node worker in a child process (the compiled test
//! fixture `node/test/build/standard/calculator.js`): calls, a remote error,
//! dependencies, health, and a crash with a restart.
//!
//! Needs the Node package built and its fixtures compiled, named by
//! `TITAN_TEST_NODE_WORKER`; `scripts/test-node.sh` does both and runs these
//! with `--ignored` (a plain `cargo test` lists them as ignored).

use std::time::Duration;

use titan_pm::policy::Backoff;
use titan_pm::{Error, ManagerConfig, ProcessManager, RestartPolicy, SpawnOptions, Value};

fn worker() -> String {
    std::env::var("TITAN_TEST_NODE_WORKER").expect("set TITAN_TEST_NODE_WORKER to the compiled calculator.js (scripts/test-node.sh does)")
}

#[tokio::test]
#[ignore = "needs TITAN_TEST_NODE_WORKER; run by scripts/test-node.sh"]
async fn a_rust_host_calls_a_node_child_worker() {
    let pm = ProcessManager::new(ManagerConfig {
        restart: RestartPolicy { backoff: Backoff { initial: Duration::from_millis(20), ..Default::default() }, ..RestartPolicy::default() },
        ..ManagerConfig::default()
    });
    let deps = Value::Map(vec![("config".into(), Value::Map(vec![("unit".into(), Value::Text("m".into()))])), ("label".into(), Value::Text("rs".into()))]);
    let calc = pm.spawn(worker(), SpawnOptions { dependencies: deps, ..Default::default() }).await.unwrap();
    let info = calc.info().await.unwrap();
    assert_eq!((info.name.as_str(), info.isolation.as_str()), ("calculator", "child"));
    assert_ne!(info.pid, std::process::id());
    assert_eq!(calc.call::<i64>("add", (5, 3)).await.unwrap(), 8);
    assert_eq!(calc.call::<i64>("addAsync", (2, 2)).await.unwrap(), 4);
    assert_eq!(calc.call::<i64>("increment", ()).await.unwrap(), 1);
    assert_eq!(calc.call::<serde_json::Value>("dependencies", ()).await.unwrap(), serde_json::json!([{"unit": "m"}, "rs"]));
    match calc.call::<()>("fail", ("too far",)).await.unwrap_err() {
        Error::Remote { remote_type, message, .. } => assert_eq!((remote_type.as_str(), message.as_str()), ("RangeError", "too far")),
        other => panic!("expected a remote RangeError, got {other}"),
    }
    match calc.call::<()>("nope", ()).await.unwrap_err() {
        Error::MethodNotFound { available, .. } => assert!(available.contains(&"add".to_string())),
        other => panic!("expected MethodNotFound, got {other}"),
    }
    pm.get_health(calc.id()).await.unwrap();
    let err = calc.call::<()>("crash", (3,)).await.unwrap_err();
    assert!(matches!(err, Error::ProcessCrashed { exit_code: Some(3), .. }), "{err}");
    assert_eq!(calc.call::<i64>("add", (1, 1)).await.unwrap(), 2); // the restarted instance
    assert_eq!(calc.info().await.unwrap().restarts, 1);
    pm.shutdown().await;
}

#[tokio::test]
#[ignore = "needs TITAN_TEST_NODE_WORKER; run by scripts/test-node.sh"]
async fn a_node_worker_method_reads_the_trace_context_the_host_started() {
    use titan_pm::policy::trace::{self, TraceContext};
    // The policies fixture sits next to the calculator.
    let file = std::path::Path::new(&worker()).with_file_name("policies.js");
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(file.to_str().unwrap(), SpawnOptions::default()).await.unwrap();
    let root = TraceContext::child_of(None);
    for method in ["traced", "traceAsync"] {
        let t: serde_json::Value = trace::scope(root.clone(), h.call(method, ())).await.unwrap();
        assert_eq!(t["traceId"], root.trace_id.as_str(), "{method}: {t}");
        assert_eq!(t["parentSpanId"], root.span_id.as_str(), "{method}: {t}");
        assert_eq!(t["traceparent"], format!("00-{}-{}-01", root.trace_id, t["spanId"].as_str().unwrap()));
        if method == "traced" {
            // @Trace: the host's span for the call is the span the worker ran in.
            let span = trace::spans().into_iter().rev().find(|s| s.name == "policies.traced").expect("a span");
            assert_eq!(span.context.span_id, t["spanId"].as_str().unwrap());
        }
    }
    let t: serde_json::Value = h.call("traced", ()).await.unwrap();
    assert_eq!(t["traceId"].as_str().unwrap().len(), 32, "outside a span the host starts a trace: {t}");
    assert_eq!(t["parentSpanId"], "");
    pm.shutdown().await;
}
