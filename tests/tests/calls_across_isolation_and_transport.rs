//! add(5, 3) == 8 over every isolation and transport, plus remote errors,
//! unknown methods and state kept between calls.

use std::time::Duration;

use titan_pm::{Error, Isolation, ManagerConfig, ProcessManager, SpawnOptions, Target, Transport};
use titan_pm_tests::test_worker_target;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn options(isolation: Isolation, transport: Transport) -> SpawnOptions {
    SpawnOptions { isolation: Some(isolation), transport: Some(transport), ..Default::default() }
}

async fn add_over(isolation: Isolation, transport: Transport) {
    let pm = ProcessManager::new(ManagerConfig::default());
    let target: Target = match isolation {
        Isolation::Child => WORKER.into(),
        _ => test_worker_target(),
    };
    let h = pm.spawn(target, options(isolation, transport)).await.unwrap_or_else(|e| panic!("{isolation:?}/{transport:?}: {e}"));
    assert_eq!(h.call::<i64>("add", (5, 3)).await.unwrap(), 8, "{isolation:?}/{transport:?}");
    let info = h.info().await.unwrap();
    assert_eq!(info.isolation, isolation);
    assert_eq!(info.transport, transport);
    assert_eq!(info.name, "test-worker");
    if isolation == Isolation::Child {
        assert_ne!(info.pid, std::process::id(), "a child has its own pid");
    } else {
        assert_eq!(info.pid, std::process::id(), "a thread worker reports the host's pid");
    }
    pm.shutdown().await;
}

#[tokio::test]
async fn child_over_ipc() {
    add_over(Isolation::Child, Transport::Ipc).await;
}

#[tokio::test]
async fn child_over_unix() {
    add_over(Isolation::Child, Transport::Unix).await;
}

#[tokio::test]
async fn child_over_tcp() {
    add_over(Isolation::Child, Transport::Tcp).await;
}

#[tokio::test]
async fn child_over_http() {
    add_over(Isolation::Child, Transport::Http).await;
}

#[tokio::test]
async fn thread_over_ipc() {
    add_over(Isolation::Worker, Transport::Ipc).await;
}

#[tokio::test]
async fn thread_over_unix() {
    add_over(Isolation::Worker, Transport::Unix).await;
}

#[tokio::test]
async fn thread_over_tcp() {
    add_over(Isolation::Worker, Transport::Tcp).await;
}

#[tokio::test]
async fn thread_over_http() {
    add_over(Isolation::Worker, Transport::Http).await;
}

#[tokio::test]
async fn in_engine_over_ipc() {
    add_over(Isolation::None, Transport::Ipc).await;
}

#[tokio::test]
async fn local_engine_on_the_callers_thread() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let pm = ProcessManager::new_local(ManagerConfig::default());
            let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
            assert_eq!(h.call::<i64>("add", (5, 3)).await.unwrap(), 8);
            pm.shutdown().await;
        })
        .await;
}

#[tokio::test]
async fn state_is_kept_between_calls_and_errors_are_data() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    assert_eq!(h.call::<i64>("increment", ()).await.unwrap(), 1);
    assert_eq!(h.call::<i64>("increment", ()).await.unwrap(), 2);

    match h.call::<()>("raise", ("bad input",)).await.unwrap_err() {
        Error::Remote { remote_type, message, .. } => {
            assert_eq!(remote_type, "ValueError");
            assert_eq!(message, "bad input");
        }
        other => panic!("expected RemoteError, got {other}"),
    }
    match h.call::<()>("nope", ()).await.unwrap_err() {
        Error::MethodNotFound { method, available } => {
            assert_eq!(method, "nope");
            assert!(available.contains(&"add".to_string()), "{available:?}");
        }
        other => panic!("expected MethodNotFoundError, got {other}"),
    }
    // Bad arguments are the method's error; the worker keeps serving.
    let err = h.call::<i64>("add", ("five", 3)).await.unwrap_err();
    assert!(matches!(err, Error::Remote { ref remote_type, .. } if remote_type == "TypeError"), "{err}");
    assert_eq!(h.call::<i64>("increment", ()).await.unwrap(), 3);
    pm.shutdown().await;
}

#[tokio::test]
async fn dependencies_reach_init() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let deps = titan_pm::value::to_value(&serde_json::json!({"config": {"precision": 2}})).unwrap();
    let h = pm.spawn(WORKER, SpawnOptions { dependencies: deps, ..Default::default() }).await.unwrap();
    let got: serde_json::Value = h.call("dependencies", ()).await.unwrap();
    assert_eq!(got, serde_json::json!({"config": {"precision": 2}}));
    pm.shutdown().await;
}

#[tokio::test]
async fn many_calls_in_flight_at_once() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let calls = (0..64).map(|i| {
        let h = h.clone();
        async move { h.call::<i64>("add", (i, i)).await }
    });
    let results = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(calls)).await.unwrap();
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), 2 * i as i64);
    }
    pm.shutdown().await;
}
