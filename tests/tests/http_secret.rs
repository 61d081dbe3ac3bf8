//! The `http` transport keeps tcp's secret rule: a WebSocket connection that
//! does not present the spawn's secret is refused and logged; an upgrade on
//! another path, or from a browser origin, is refused before any frame; an
//! unregistered peer that sends too much, or nothing, is closed.

use std::time::Duration;

use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::RpcSystem;
use titan_pm::titan_capnp::{registry, worker};
use titan_pm::transport::ws;
use titan_pm::{EventKind, ManagerConfig, ProcessManager, SpawnOptions, Transport};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

struct NotAWorker;
impl worker::Server for NotAWorker {}

async fn dial(url: &str) -> std::io::Result<ws::WsBytes<tokio::net::TcpStream>> {
    let (_, authority) = ws::split_url(url).unwrap();
    let tcp = tokio::net::TcpStream::connect(authority).await?;
    ws::connect(tcp, url).await
}

async fn register_with(url: &str, secret: &str) -> Result<(), capnp::Error> {
    let stream = dial(url).await.unwrap();
    let mut rpc = RpcSystem::new(Box::new(titan_pm::transport::vat_network(stream, Side::Client)), None);
    let registry: registry::Client = rpc.bootstrap(Side::Server);
    tokio::task::spawn_local(rpc);
    let mut req = registry.register_request();
    req.get().set_secret(secret);
    req.get().set_worker(capnp_rpc::new_client(NotAWorker));
    req.send().promise.await.map(|_| ())
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_refused() {
    let config = ManagerConfig { transport: Transport::Http, ..ManagerConfig::default() };
    let pm = ProcessManager::new(config);
    // A real worker over the http transport registers with its secret.
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    assert_eq!(h.call::<i64>("add", (5, 3)).await.unwrap(), 8);
    assert_eq!(h.info().await.unwrap().transport, Transport::Http);

    let url = pm.http_url().await.unwrap();
    assert!(url.starts_with("ws://127.0.0.1:") && url.ends_with(ws::CHILD_PATH), "{url}");
    let mut events = pm.events();
    let local = tokio::task::LocalSet::new();
    for secret in ["0123456789abcdef0123456789abcdef", ""] {
        let err = tokio::time::timeout(Duration::from_secs(20), local.run_until(register_with(&url, secret))).await.unwrap().unwrap_err();
        assert!(err.to_string().contains("secret refused"), "{err}");
        assert_eq!(events.recv().await.unwrap().kind, EventKind::ConnectionRefused);
    }
    // Another path: no upgrade.
    let wrong = url.replace(ws::CHILD_PATH, "/elsewhere");
    let err = dial(&wrong).await.err().expect("refused");
    assert!(err.to_string().contains("404"), "{err}");
    // The real worker is unaffected.
    assert_eq!(h.call::<i64>("add", (1, 1)).await.unwrap(), 2);
    pm.shutdown().await;
}

#[tokio::test]
async fn an_unregistered_peer_is_bounded_in_size_and_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pm = ProcessManager::new(ManagerConfig { transport: Transport::Http, ..ManagerConfig::default() });
    let url = pm.http_url().await.unwrap();
    // Too much before registering: the host closes the connection.
    let mut big = dial(&url).await.unwrap();
    let started = std::time::Instant::now();
    let _ = big.write_all(&vec![0u8; 1 << 20]).await;
    let _ = big.flush().await;
    // (Cap'n Proto may say why in an abort message before it hangs up.)
    let mut said = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), big.read_to_end(&mut said)).await.expect("closed, not hanging");
    assert!(said.len() < 4096, "{read:?}");
    let said = String::from_utf8_lossy(&said);
    assert!(said.contains("without registering"), "{said:?}");
    assert!(started.elapsed() < titan_pm::transport::PREAUTH_TIMEOUT, "closed for its size, not its time");
    // Nothing at all: closed after the pre-auth timeout.
    let mut buf = [0u8; 64];
    let mut idle = dial(&url).await.unwrap();
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut buf)).await.expect("closed, not hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= titan_pm::transport::PREAUTH_TIMEOUT - Duration::from_millis(500));
    pm.shutdown().await;
}
