//! The host's end of every worker connection: the `Registry` bootstrap
//! capability, the spawns waiting for their worker to register (by secret), and
//! the manager's Unix, TCP and WebSocket (`http` transport) listeners.
//!
//! A connection is only useful after `register` with the secret of a pending
//! spawn; any other secret is refused, logged, and the connection closed.
//! Before that it is held to small messages, a short time and a capped count
//! (see `transport`'s `PREAUTH_*` limits), so an unauthenticated peer cannot
//! make the host allocate, wait or hold descriptors beyond those bounds.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
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
use crate::transport::network::Throttle;
use crate::transport::{
    secrets_match, tcp, unix, vat_network_limited, ws, Endpoint, FrameLimit, MAX_PREAUTH_CONNECTIONS, PREAUTH_TIMEOUT,
};

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

pub(crate) struct Registry {
    pending: RefCell<HashMap<String, oneshot::Sender<Registered>>>,
    /// Connections from a listener that have not registered yet, oldest first.
    unauthenticated: RefCell<BTreeMap<u64, AbortHandle>>,
    next_connection: Cell<u64>,
    unix: OnceCell<(tempfile::TempDir, PathBuf)>,
    tcp: OnceCell<SocketAddr>,
    ws: OnceCell<SocketAddr>,
    tcp_host: String,
    events: broadcast::Sender<Event>,
    me: Weak<Registry>,
    /// Remote workers that joined a listening host, by name (`joins.rs`).
    pub(crate) joins: super::joins::JoinHub,
}

impl Registry {
    pub(crate) fn new(tcp_host: String, events: broadcast::Sender<Event>) -> Rc<Self> {
        Rc::new_cyclic(|me| Registry {
            pending: RefCell::default(),
            unauthenticated: RefCell::default(),
            next_connection: Cell::new(0),
            unix: OnceCell::new(),
            tcp: OnceCell::new(),
            ws: OnceCell::new(),
            tcp_host,
            events,
            me: me.clone(),
            joins: Default::default(),
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
    ///
    /// Until it registers, the peer may send only small messages. A connection
    /// from a listener (`listened`) also has [`PREAUTH_TIMEOUT`] to register
    /// and counts toward [`MAX_PREAUTH_CONNECTIONS`]: past it, the oldest
    /// unauthenticated one is closed. (An ipc socket is neither timed nor
    /// counted: only the child the host started holds its other end, and the
    /// spawn timeout bounds how long it may take.)
    pub(crate) fn accept<S: AsyncRead + AsyncWrite + 'static>(&self, stream: S, listened: bool) -> Connection {
        self.accept_with(stream, listened, None)
    }

    /// [`accept`](Self::accept) for a remote listener's connection: it may only
    /// join (under `join`'s rules), never claim a spawn's secret.
    pub(crate) fn accept_with<S: AsyncRead + AsyncWrite + 'static>(
        &self,
        stream: S,
        listened: bool,
        join: Option<Rc<super::joins::JoinRules>>,
    ) -> Connection {
        self.accept_upgrading(|_| async move { Ok(stream) }, listened, join)
    }

    /// [`accept_with`](Self::accept_with) for a connection that must first be
    /// upgraded (a WebSocket handshake, a sniff of its first bytes): `upgrade`
    /// gets the connection's frame limit and runs within the same
    /// [`PREAUTH_TIMEOUT`] and count as the registration.
    pub(crate) fn accept_upgrading<S, F, U>(&self, upgrade: U, listened: bool, join: Option<Rc<super::joins::JoinRules>>) -> Connection
    where
        S: AsyncRead + AsyncWrite + 'static,
        F: std::future::Future<Output = std::io::Result<S>> + 'static,
        U: FnOnce(Rc<FrameLimit>) -> F,
    {
        use futures::FutureExt;
        let (abort, registration) = AbortHandle::new_pair();
        let (closed_tx, closed_rx) = oneshot::channel();
        let conn = Connection { abort, closed: closed_rx.shared() };
        let id = self.next_connection.get() + 1;
        self.next_connection.set(id);
        let limit = FrameLimit::unauthenticated();
        let registered = Rc::new(Cell::new(false));
        let server = RegistryServer {
            registry: self.me.clone(),
            conn: conn.clone(),
            registered: registered.clone(),
            limit: limit.clone(),
            id,
            join: join.clone(),
        };
        let client: registry::Client = capnp_rpc::new_client(server);
        let upgrade = upgrade(limit.clone());
        let (me, proved) = (self.me.clone(), registered.clone());
        let rpc = async move {
            let refusal = match upgrade.await {
                Ok(stream) => {
                    let ended = RpcSystem::new(Box::new(vat_network_limited(stream, Side::Server, limit)), Some(client.client)).await;
                    // Closed before registering for what it sent (too much, a bad frame), not for hanging up.
                    let hung_up = |e: &capnp::Error| matches!(e.kind, capnp::ErrorKind::Disconnected | capnp::ErrorKind::PrematureEndOfFile);
                    ended.err().filter(|e| !proved.get() && !hung_up(e)).map(|e| e.extra)
                }
                // A refused, malformed or oversized upgrade (a peer that hung up is no refusal).
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Some(e.to_string()),
                Err(e) => {
                    static UPGRADE: Throttle = Throttle::new();
                    if let Some(more) = UPGRADE.allow() {
                        tracing::warn!(target: "titan_pm", "closed a connection before registration: {e}{more}");
                    }
                    None
                }
            };
            if let (Some(reason), Some(registry)) = (refusal, me.upgrade()) {
                registry.refused_before_registration(join.as_deref(), &reason);
            }
        };
        let me = self.me.clone();
        let unclaimed = async move {
            tokio::time::sleep(PREAUTH_TIMEOUT).await;
            if registered.get() {
                futures::future::pending::<()>().await;
            }
        };
        tokio::task::spawn_local(async move {
            tokio::select! {
                _ = futures::future::Abortable::new(rpc, registration) => {}
                _ = unclaimed, if listened => {
                    static UNCLAIMED: Throttle = Throttle::new();
                    if let Some(more) = UNCLAIMED.allow() {
                        tracing::warn!(target: "titan_pm", "closed a connection that did not register within {PREAUTH_TIMEOUT:?}{more}");
                    }
                }
            }
            if let Some(registry) = me.upgrade() {
                registry.unauthenticated.borrow_mut().remove(&id);
            }
            let _ = closed_tx.send(());
        });
        if listened {
            let mut waiting = self.unauthenticated.borrow_mut();
            if waiting.len() >= MAX_PREAUTH_CONNECTIONS {
                if let Some((_, oldest)) = waiting.pop_first() {
                    static EVICTED: Throttle = Throttle::new();
                    if let Some(more) = EVICTED.allow() {
                        tracing::warn!(target: "titan_pm", "more than {MAX_PREAUTH_CONNECTIONS} unauthenticated connections: closed the oldest{more}");
                    }
                    oldest.abort();
                }
            }
            waiting.insert(id, conn.abort.clone());
        }
        conn
    }

    /// A connection has proved who it is.
    fn authenticated(&self, id: u64) {
        self.unauthenticated.borrow_mut().remove(&id);
    }

    /// Where a worker should connect for `transport` unix, tcp or http (starting the listener once).
    pub(crate) async fn endpoint(&self, transport: crate::transport::Transport) -> Result<Endpoint> {
        use crate::transport::Transport;
        match transport {
            Transport::Unix => Ok(Endpoint::Unix(self.unix_path()?)),
            Transport::Http => Ok(Endpoint::Ws(format!("ws://{}{}", self.ws_address().await?, ws::CHILD_PATH))),
            _ => Ok(Endpoint::Tcp(self.tcp_address().await?.to_string())),
        }
    }

    /// The `http` transport's listener: tcp on `tcp_host`, a WebSocket upgrade on [`ws::CHILD_PATH`].
    async fn ws_address(&self) -> Result<SocketAddr> {
        if let Some(addr) = self.ws.get() {
            return Ok(*addr);
        }
        let (listener, addr) = tcp::bind(&self.tcp_host).await.map_err(|e| io("http listener", e))?;
        self.serve("http", listener, |registry, stream| {
            registry.accept_upgrading(|limit| ws::accept(stream, limit, Some(ws::CHILD_PATH)), true, None);
        });
        let _ = self.ws.set(addr);
        Ok(addr)
    }

    fn unix_path(&self) -> Result<PathBuf> {
        if let Some((_, path)) = self.unix.get() {
            return Ok(path.clone());
        }
        let (dir, path, listener) = unix::bind_private().map_err(|e| io("unix socket", e))?;
        self.serve("unix", listener, |registry, stream| {
            registry.accept(stream, true);
        });
        let _ = self.unix.set((dir, path.clone()));
        Ok(path)
    }

    pub(crate) async fn tcp_address(&self) -> Result<SocketAddr> {
        if let Some(addr) = self.tcp.get() {
            return Ok(*addr);
        }
        let (listener, addr) = tcp::bind(&self.tcp_host).await.map_err(|e| io("tcp listener", e))?;
        self.serve("tcp", listener, |registry, stream| {
            registry.accept(stream, true);
        });
        let _ = self.tcp.set(addr);
        Ok(addr)
    }

    /// Accepts `listener`'s connections until the registry is gone, handing each to `take`;
    /// an accept error pauses the loop ([`Backoff`]) instead of ending it.
    fn serve<L: Listener>(&self, name: &'static str, listener: L, take: impl Fn(&Registry, L::Stream) + 'static) {
        let me = self.me.clone();
        tokio::task::spawn_local(async move {
            let mut backoff = Backoff::default();
            loop {
                match listener.next().await {
                    Ok(stream) => {
                        backoff.reset();
                        let Some(registry) = me.upgrade() else { break };
                        take(&registry, stream);
                    }
                    Err(e) => backoff.failed(name, e).await,
                }
            }
        });
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
    limit: Rc<FrameLimit>,
    id: u64,
    join: Option<Rc<super::joins::JoinRules>>,
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
        if let Some(rules) = &self.join {
            return self.join(&registry, rules, &secret, registered);
        }
        if registry.register(&secret, registered).is_ok() {
            self.registered.set(true);
            self.limit.trust();
            registry.authenticated(self.id);
            return Ok(());
        }
        static REFUSED: Throttle = Throttle::new();
        if let Some(more) = REFUSED.allow() {
            tracing::warn!(target: "titan_pm", "refused a worker connection: wrong or missing secret{more}");
        }
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

impl RegistryServer {
    /// A remote worker asks to join: checked against the listener's rules, then
    /// handed to the join hub; a refusal is logged and emitted (`refused`) with its reason.
    fn join(&self, registry: &Registry, rules: &super::joins::JoinRules, secret: &str, worker: Registered) -> Result<(), capnp::Error> {
        let refused = match rules.check(secret) {
            Ok(name) => match registry.joins.joined(&name, worker) {
                Ok(()) => {
                    self.registered.set(true);
                    self.limit.trust();
                    registry.authenticated(self.id);
                    tracing::info!(target: "titan_pm", "remote worker {name} joined from {}", rules.peer);
                    return Ok(());
                }
                Err(_) => format!("{} workers named {name} already stand by", super::joins::MAX_STANDBY),
            },
            Err(reason) => reason,
        };
        registry.refused(&rules.peer, &refused);
        let conn = self.conn.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            conn.close();
        });
        Err(capnp::Error::failed(format!("join refused: {refused}")))
    }
}

impl Registry {
    /// A connection closed before it registered for what it sent (an upgrade refused,
    /// malformed or too large; too many bytes): logged and emitted as `refused`, as a
    /// wrong secret (a child listener's) or a refused join (a remote listener's, with `join`'s peer) is.
    fn refused_before_registration(&self, join: Option<&super::joins::JoinRules>, reason: &str) {
        if let Some(rules) = join {
            return self.refused(&rules.peer, reason);
        }
        static REFUSED: Throttle = Throttle::new();
        if let Some(more) = REFUSED.allow() {
            tracing::warn!(target: "titan_pm", "refused a worker connection before registration: {reason}{more}");
        }
        let _ = self.events.send(Event { process_id: 0, kind: EventKind::ConnectionRefused });
    }

    /// Logs (to stderr, throttled) and emits (`refused`, with the reason) a refused remote connection.
    pub(crate) fn refused(&self, peer: &str, reason: &str) {
        static REFUSED: Throttle = Throttle::new();
        if let Some(more) = REFUSED.allow() {
            tracing::warn!(target: "titan_pm", "refused a remote worker from {peer}: {reason}{more}");
        }
        let _ = self.events.send(Event { process_id: 0, kind: EventKind::Refused { reason: format!("{peer}: {reason}") } });
    }
}

/// What the accept loop needs of a listener: the next connection's stream.
trait Listener: 'static {
    type Stream;
    async fn next(&self) -> std::io::Result<Self::Stream>;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn next(&self) -> std::io::Result<Self::Stream> {
        let (stream, _) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn next(&self) -> std::io::Result<Self::Stream> {
        Ok(self.accept().await?.0)
    }
}

/// An accept loop's pause after an error (EMFILE under a connection flood, say):
/// from 10 ms, doubling to 1 s; the listener keeps serving afterwards.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(10))
    }
}

impl Backoff {
    fn reset(&mut self) {
        *self = Backoff::default();
    }

    async fn failed(&mut self, listener: &str, e: std::io::Error) {
        static FAILED: Throttle = Throttle::new();
        if let Some(more) = FAILED.allow() {
            let pause = self.0;
            tracing::warn!(target: "titan_pm", "the {listener} listener could not accept a connection ({e}); retrying in {pause:?}{more}");
        }
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
    }
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::io(format!("cannot open the {what}"), e)
}
