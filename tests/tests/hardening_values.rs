//! Values the wire cannot carry: a result or an argument over the message
//! limit (and over capnp's own 2^29-byte limit), a value nested too deep. Each
//! is a `SerializationError` on the side that tried to send it, naming where;
//! the worker keeps serving and the host keeps working.

use std::time::Duration;

use titan_pm::value::{MAX_DEPTH, MAX_MESSAGE_BYTES};
use titan_pm::{CallOptions, Error, Isolation, ManagerConfig, ProcessManager, SpawnOptions, Value};
use titan_pm_tests::{nested_json, test_worker_target};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn nested(depth: usize) -> Value {
    titan_pm::value::to_value(&nested_json(depth)).unwrap()
}

fn serialization(err: Error) -> (String, String) {
    match err {
        Error::Serialization { path, message } => (path, message),
        other => panic!("expected a SerializationError, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_result_fails_the_call_not_the_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    // Over the message limit, and over capnp's own 2^29-byte text limit (which used to panic the worker).
    for n in [MAX_MESSAGE_BYTES + 1, 1 << 29] {
        let err = h.call::<String>("big_text", (n,)).await.unwrap_err();
        let (path, message) = serialization(err);
        assert_eq!(path, "result");
        assert!(message.contains("over the limit of 64.0 MiB per message"), "{message}");
    }
    // Same worker, still serving, no restart spent.
    assert_eq!(h.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    let info = h.info().await.unwrap();
    assert_eq!((info.pid, info.restarts), (pid, 0));
    // Just under the limit still travels.
    let n = MAX_MESSAGE_BYTES - (1 << 20);
    assert_eq!(h.call::<String>("big_text", (n,)).await.unwrap().len(), n);
    pm.shutdown().await;
}

#[tokio::test]
async fn an_oversized_argument_is_refused_before_it_is_sent() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    for n in [MAX_MESSAGE_BYTES, 1 << 29, (1 << 29) + 8] {
        let err = h.call_value("echo", vec![Value::Data(vec![0; n].into())]).await.unwrap_err();
        let (path, message) = serialization(err);
        assert_eq!(path, "args");
        assert!(message.contains("over the limit of 64.0 MiB per message"), "{message}");
    }
    // Many arguments that only together exceed the limit.
    let parts = vec![Value::Text("y".repeat(MAX_MESSAGE_BYTES / 4)); 5];
    assert_eq!(serialization(h.call_value("echo", parts).await.unwrap_err()).0, "args");
    // A method name the wire cannot carry.
    let err = h.call_value(&"m".repeat(1 << 20), vec![]).await.unwrap_err();
    assert_eq!(serialization(err).0, "method");
    // The engine is fine and so is the worker.
    assert_eq!(h.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    assert_eq!(h.info().await.unwrap().restarts, 0);
    pm.shutdown().await;
}

#[tokio::test]
async fn nesting_is_limited_to_max_depth_in_every_isolation() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let workers = [
        pm.spawn(WORKER, SpawnOptions::default()).await.unwrap(),
        pm.spawn(test_worker_target(), SpawnOptions { isolation: Some(Isolation::Worker), ..Default::default() })
            .await
            .unwrap(),
        pm.spawn(test_worker_target(), SpawnOptions { isolation: Some(Isolation::None), ..Default::default() })
            .await
            .unwrap(),
    ];
    for h in &workers {
        let h = h.with_options(CallOptions { timeout: Some(Duration::from_secs(10)), ..Default::default() });
        // Exactly the limit travels both ways.
        let ok = nested(MAX_DEPTH);
        assert_eq!(h.call_value("echo", vec![ok.clone()]).await.unwrap(), ok);
        assert_eq!(h.call_value("deep", vec![Value::Int(MAX_DEPTH as i64)]).await.unwrap(), ok);
        // One more is refused by the sender, naming the path.
        let err = h.call_value("echo", vec![nested(MAX_DEPTH + 1)]).await.unwrap_err();
        let (path, message) = serialization(err);
        assert_eq!(path, format!("args[0]{}", "[0]".repeat(MAX_DEPTH + 1)));
        assert_eq!(message, format!("nested deeper than {MAX_DEPTH} levels"));
        let err = h.call_value("deep", vec![Value::Int(MAX_DEPTH as i64 + 1)]).await.unwrap_err();
        let (path, _) = serialization(err);
        assert_eq!(path, format!("result{}", "[0]".repeat(MAX_DEPTH + 1)));
        // Much deeper (it used to crash the reader or the stack) is the same error.
        let err = h.call_value("deep", vec![Value::Int(1000)]).await.unwrap_err();
        assert!(serialization(err).1.contains("nested deeper"));
        assert_eq!(h.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    }
    // Dependencies too.
    let options = SpawnOptions {
        dependencies: Value::Map(vec![("d".into(), nested(MAX_DEPTH + 1))]),
        ..Default::default()
    };
    let (path, _) = serialization(pm.spawn(WORKER, options).await.err().unwrap());
    assert!(path.starts_with(r#"dependencies["d"][0]"#), "{path}");
    pm.shutdown().await;
}
