//! The `http` transport keeps tcp's secret rule: a WebSocket connection that
//! does not present the spawn's secret is refused and logged; an upgrade on
//! another path, from a browser origin, or malformed, is refused before any
//! frame; an unregistered peer that sends too much, or nothing, is closed. Each
//! refusal is a `refused` event (`ConnectionRefused`).

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

/// The next event, which must come within a generous bound.
async fn refused(events: &mut tokio::sync::broadcast::Receiver<titan_pm::Event>) -> EventKind {
    tokio::time::timeout(Duration::from_secs(20), events.recv()).await.expect("an event, not a hang").unwrap().kind
}

/// Writes `request` on a fresh connection to `authority`; what came back until it was closed.
async fn raw(authority: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // (A reset after the answer is a close too: the read's own outcome does not matter.)
    let _ = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut out)).await.expect("closed, not hanging");
    String::from_utf8_lossy(&out).to_string()
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
    assert_eq!(refused(&mut events).await, EventKind::ConnectionRefused, "a wrong path");
    // A browser's origin: 403.
    let (_, authority) = ws::split_url(&url).unwrap();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13";
    let said = raw(authority, &format!("GET {} HTTP/1.1\r\nHost: x\r\n{upgrade}\r\nOrigin: http://evil.example\r\n\r\n", ws::CHILD_PATH)).await;
    assert!(said.starts_with("HTTP/1.1 403"), "{said}");
    assert_eq!(refused(&mut events).await, EventKind::ConnectionRefused, "a browser origin");
    // A malformed upgrade (no Upgrade headers).
    raw(authority, &format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", ws::CHILD_PATH)).await;
    assert_eq!(refused(&mut events).await, EventKind::ConnectionRefused, "a malformed upgrade");
    // The real worker is unaffected.
    assert_eq!(h.call::<i64>("add", (1, 1)).await.unwrap(), 2);
    pm.shutdown().await;
}

#[tokio::test]
async fn an_unregistered_peer_is_bounded_in_size_and_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pm = ProcessManager::new(ManagerConfig { transport: Transport::Http, ..ManagerConfig::default() });
    let url = pm.http_url().await.unwrap();
    let mut events = pm.events();
    // Too much before registering: the host closes the connection, and says so.
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
    assert_eq!(refused(&mut events).await, EventKind::ConnectionRefused, "too many bytes before registering");
    // Nothing at all: closed after the pre-auth timeout.
    let mut buf = [0u8; 64];
    let mut idle = dial(&url).await.unwrap();
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut buf)).await.expect("closed, not hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= titan_pm::transport::PREAUTH_TIMEOUT - Duration::from_millis(500));
    pm.shutdown().await;
}

/// A remote listener (`listen`) takes WebSocket upgrades on its one port too: a refused
/// upgrade there is a `refused` event with the peer and the reason, as a refused join is.
#[tokio::test]
async fn a_refused_upgrade_on_a_remote_listener_is_a_refused_event() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = titan_pm::ListenOptions { address: "127.0.0.1:0".into(), tls: None, token: Some("join".into()), gateway: None };
    let addr = pm.listen(options).await.unwrap().to_string();
    let mut events = pm.events();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13";
    let said = raw(&addr, &format!("GET / HTTP/1.1\r\nHost: x\r\n{upgrade}\r\nOrigin: http://evil.example\r\n\r\n")).await;
    assert!(said.starts_with("HTTP/1.1 403"), "{said}");
    match refused(&mut events).await {
        EventKind::Refused { reason } => assert!(reason.starts_with("127.0.0.1:") && reason.contains("403"), "{reason}"),
        other => panic!("{other:?}"),
    }
    pm.shutdown().await;
}
