//! The host's end of every worker connection: the `Registry` bootstrap
//! capability, the spawns waiting for their worker to register (by secret), and
//! the manager's Unix and TCP listeners.
//!
//! A connection is only useful after `register` with the secret of a pending
//! spawn; any other secret is refused, logged, and the connection closed.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Duration;

use capnp::capability::Rc as CapRc;
use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::RpcSystem;
use futures::future::AbortHandle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, oneshot};

use super::{Event, EventKind};
use crate::error::{Error, Result};
use crate::titan_capnp::{registry, worker};
use crate::transport::{secrets_match, vat_network, Endpoint};

/// A worker that registered: its capability, pid and a way to close its connection.
pub(crate) struct Registered {
    pub worker: worker::Client,
    pub pid: u32,
    pub connection: Connection,
}

/// One worker connection; `close` ends it.
#[derive(Clone)]
pub(crate) struct Connection {
    abort: AbortHandle,
    /// Resolves when the connection has ended.
    pub closed: futures::future::Shared<oneshot::Receiver<()>>,
}

impl Connection {
    pub(crate) fn close(&self) {
        self.abort.abort();
    }

    /// A connection without a socket (an agent on the engine's own thread): it ends when closed.
    pub(crate) fn local() -> Connection {
        use futures::FutureExt;
        let (abort, registration) = AbortHandle::new_pair();
        let (closed_tx, closed_rx) = oneshot::channel();
        tokio::task::spawn_local(async move {
            let _ = futures::future::Abortable::new(futures::future::pending::<()>(), registration).await;
            let _ = closed_tx.send(());
        });
        Connection { abort, closed: closed_rx.shared() }
    }
}

/// A connection that has not registered by then is closed.
const UNCLAIMED_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Registry {
    pending: RefCell<HashMap<String, oneshot::Sender<Registered>>>,
    unix: OnceCell<(tempfile::TempDir, PathBuf)>,
    tcp: OnceCell<SocketAddr>,
    tcp_host: String,
    events: broadcast::Sender<Event>,
    me: Weak<Registry>,
}

impl Registry {
    pub(crate) fn new(tcp_host: String, events: broadcast::Sender<Event>) -> Rc<Self> {
        Rc::new_cyclic(|me| Registry {
            pending: RefCell::default(),
            unix: OnceCell::new(),
            tcp: OnceCell::new(),
            tcp_host,
            events,
            me: me.clone(),
        })
    }

    /// Waits for the worker holding `secret`.
    pub(crate) fn expect(&self, secret: &str) -> oneshot::Receiver<Registered> {
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(secret.to_string(), tx);
        rx
    }

    pub(crate) fn forget(&self, secret: &str) {
        self.pending.borrow_mut().remove(secret);
    }

    /// Serves the registry on one connection, on the current `LocalSet`.
    pub(crate) fn accept<S: AsyncRead + AsyncWrite + 'static>(&self, stream: S) -> Connection {
        use futures::FutureExt;
        let (abort, registration) = AbortHandle::new_pair();
        let (closed_tx, closed_rx) = oneshot::channel();
        let conn = Connection { abort, closed: closed_rx.shared() };
        let registered = Rc::new(Cell::new(false));
        let server = RegistryServer { registry: self.me.clone(), conn: conn.clone(), registered: registered.clone() };
        let client: registry::Client = capnp_rpc::new_client(server);
        let rpc = RpcSystem::new(Box::new(vat_network(stream, Side::Server)), Some(client.client));
        tokio::task::spawn_local(async move {
            let _ = futures::future::Abortable::new(rpc, registration).await;
            let _ = closed_tx.send(());
        });
        let abort = conn.abort.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(UNCLAIMED_TIMEOUT).await;
            if !registered.get() {
                abort.abort();
            }
        });
        conn
    }

    /// Where a worker should connect for `transport` unix or tcp (starting the listener once).
    pub(crate) async fn endpoint(&self, unix: bool) -> Result<Endpoint> {
        if unix {
            Ok(Endpoint::Unix(self.unix_path()?))
        } else {
            Ok(Endpoint::Tcp(self.tcp_address().await?.to_string()))
        }
    }

    fn unix_path(&self) -> Result<PathBuf> {
        if let Some((_, path)) = self.unix.get() {
            return Ok(path.clone());
        }
        // tempfile creates the directory with mode 0700.
        let dir = tempfile::Builder::new().prefix("titan-pm-").tempdir().map_err(|e| io("runtime directory", e))?;
        let path = dir.path().join("host.sock");
        let listener = tokio::net::UnixListener::bind(&path).map_err(|e| io("unix socket", e))?;
        let me = self.me.clone();
        tokio::task::spawn_local(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Some(registry) = me.upgrade() else { break };
                registry.accept(stream);
            }
        });
        let _ = self.unix.set((dir, path.clone()));
        Ok(path)
    }

    pub(crate) async fn tcp_address(&self) -> Result<SocketAddr> {
        if let Some(addr) = self.tcp.get() {
            return Ok(*addr);
        }
        let listener =
            tokio::net::TcpListener::bind((self.tcp_host.as_str(), 0)).await.map_err(|e| io("tcp listener", e))?;
        let addr = listener.local_addr().map_err(|e| io("tcp listener", e))?;
        let me = self.me.clone();
        tokio::task::spawn_local(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Some(registry) = me.upgrade() else { break };
                let _ = stream.set_nodelay(true);
                registry.accept(stream);
            }
        });
        let _ = self.tcp.set(addr);
        Ok(addr)
    }

    pub(crate) fn register(&self, secret: &str, registered: Registered) -> std::result::Result<(), Registered> {
        let key = self.pending.borrow().keys().find(|k| secrets_match(k, secret)).cloned();
        match key.and_then(|k| self.pending.borrow_mut().remove(&k)) {
            Some(waiter) => waiter.send(registered),
            None => Err(registered),
        }
    }
}

struct RegistryServer {
    registry: Weak<Registry>,
    conn: Connection,
    registered: Rc<Cell<bool>>,
}

impl registry::Server for RegistryServer {
    async fn register(self: CapRc<Self>, params: registry::RegisterParams, _: registry::RegisterResults) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let secret = p.get_secret()?.to_str()?.to_string();
        let worker: worker::Client = p.get_worker()?;
        let Some(registry) = self.registry.upgrade() else {
            return Err(capnp::Error::disconnected("the host is shutting down".into()));
        };
        let registered = Registered { worker, pid: p.get_pid(), connection: self.conn.clone() };
        if registry.register(&secret, registered).is_ok() {
            self.registered.set(true);
            return Ok(());
        }
        tracing::warn!(target: "titan_pm", "refused a worker connection: wrong or missing secret");
        let _ = registry.events.send(Event { process_id: 0, kind: EventKind::ConnectionRefused });
        let conn = self.conn.clone();
        tokio::task::spawn_local(async move {
            // Let the refusal reach the peer, then hang up.
            tokio::time::sleep(Duration::from_millis(50)).await;
            conn.close();
        });
        Err(capnp::Error::failed("secret refused".into()))
    }
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::io(format!("cannot open the {what}"), e)
}
