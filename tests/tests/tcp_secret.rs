//! A TCP connection that does not present the spawn's secret is refused and logged.

use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::RpcSystem;
use titan_pm::titan_capnp::{registry, worker};
use titan_pm::{EventKind, ManagerConfig, ProcessManager, SpawnOptions, Transport};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

struct NotAWorker;
impl worker::Server for NotAWorker {}

async fn register_with(addr: std::net::SocketAddr, secret: &str) -> Result<(), capnp::Error> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
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
    let config = ManagerConfig { transport: Transport::Tcp, ..ManagerConfig::default() };
    let pm = ProcessManager::new(config);
    // A real worker over TCP registers with its secret.
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    assert_eq!(h.call::<i64>("add", (5, 3)).await.unwrap(), 8);

    let addr = pm.tcp_address().await.unwrap();
    assert!(addr.ip().is_loopback());
    let mut events = pm.events();
    let local = tokio::task::LocalSet::new();
    for secret in ["0123456789abcdef0123456789abcdef", ""] {
        let err = local.run_until(register_with(addr, secret)).await.unwrap_err();
        assert!(err.to_string().contains("secret refused"), "{err}");
        assert_eq!(events.recv().await.unwrap().kind, EventKind::ConnectionRefused);
    }
    // The real worker is unaffected.
    assert_eq!(h.call::<i64>("add", (1, 1)).await.unwrap(), 2);
    pm.shutdown().await;
}
