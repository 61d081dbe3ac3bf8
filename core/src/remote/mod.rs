//! Beyond one machine: a host that listens for remote workers.
//!
//! Remote workers are started by someone else (Kubernetes, systemd, Nomad) and
//! dial in ([`crate::transport::dial`]): over TCP with mutual TLS (a client
//! certificate signed by the listener's CA is required), optionally with a join
//! token as well; plain TCP only on a loopback address and only with a token.
//! On the same port a worker may also speak WebSocket (`wss://`, or `ws://`
//! where plain TCP is allowed): the first bytes after TLS tell which.
//! Each joins under a name; `remote:NAME` is then a target like a file: a pool
//! of it (`pm.pool("remote:api", ..)`) has the workers that joined under `api`
//! as members, `pm.attach("remote:api")` takes one. The host never starts or
//! restarts a remote worker: a member whose connection closes fails its calls
//! in flight at once (`ProcessCrashed`, disconnected) and its place is taken by
//! the next worker that joins.
//!
//! Before a connection has joined it is bounded like every listener's
//! (`transport::PREAUTH_*`): [`PREAUTH_TIMEOUT`] for the TLS handshake and again
//! for the registration, small messages, and at most [`MAX_PREAUTH_CONNECTIONS`]
//! handshakes at once. Every refusal is logged (stderr) and emitted as a
//! `refused` event with its reason.

use std::cell::Cell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};
use crate::host::joins::JoinRules;
use crate::host::{ProcessHandle, ProcessManager, SpawnOptions, Target};
use crate::host::registry::Registry;
use crate::transport::dial::Stream;
use crate::transport::tls::{self, TlsFiles};
use crate::transport::ws;
use crate::transport::{MAX_PREAUTH_CONNECTIONS, PREAUTH_TIMEOUT};

/// The longest join token.
pub const MAX_TOKEN_BYTES: usize = 256;

/// How a host listens for remote workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// `ip:port` (port 0: any free port; [`ProcessManager::listen`] returns the bound address).
    pub address: String,
    /// Mutual TLS; required unless `address` is loopback and a `token` is set.
    pub tls: Option<TlsFiles>,
    /// A join token every worker must present (on top of its certificate).
    pub token: Option<String>,
    /// An HTTP gateway to serve as well (see [`crate::gateway`]): over TLS with `tls`'s cert and key.
    pub gateway: Option<crate::gateway::GatewayOptions>,
}

impl ListenOptions {
    /// The address to bind, after the rules: TLS, or else loopback and a token.
    pub fn check(&self) -> Result<SocketAddr> {
        let addr = crate::transport::listen_address(&self.address, "listen.address", "0.0.0.0:7400")?;
        if let Some(token) = &self.token {
            crate::transport::check_token(token, "listen.token", MAX_TOKEN_BYTES)?;
        }
        if self.tls.is_none() {
            if !addr.ip().is_loopback() {
                return Err(Error::Config(format!(
                    "listen.address {addr}: without tls a host listens only on loopback (give tls: {{cert, key, ca}} to listen on {})",
                    addr.ip()
                )));
            }
            if self.token.is_none() {
                return Err(Error::Config("listen: without tls a token is required (any local process could join otherwise)".into()));
            }
        }
        if let Some(gateway) = &self.gateway {
            gateway.check(self.tls.is_some())?;
        }
        Ok(addr)
    }
}

impl ProcessManager {
    /// Listens for remote workers; returns the address it is bound to.
    pub async fn listen(&self, options: ListenOptions) -> Result<SocketAddr> {
        let addr = options.check()?;
        let tls = options.tls.as_ref().map(tls::server_config).transpose()?;
        // Bound before the worker listener starts: a gateway that cannot listen fails `listen` whole.
        let gateway = options.gateway.as_ref().map(|g| crate::gateway::bind(g, options.tls.as_ref())).transpose()?;
        let token = options.token.clone();
        let bound = self.exec(move |engine| async move {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
            let bound = listener.local_addr().map_err(|e| Error::io("listener address".to_string(), e))?;
            let registry = Rc::downgrade(&engine.registry);
            let owner = Rc::downgrade(&engine);
            let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
            let handshaking = Rc::new(Cell::new(0usize));
            tokio::task::spawn_local(async move {
                let mut pause = std::time::Duration::from_millis(10);
                loop {
                    let (stream, peer) = match listener.accept().await {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(target: "titan_pm", "the remote listener on {bound} could not accept ({e}); retrying");
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(std::time::Duration::from_secs(1));
                            continue;
                        }
                    };
                    pause = std::time::Duration::from_millis(10);
                    let Some(registry) = registry.upgrade() else { break };
                    if !matches!(owner.upgrade(), Some(e) if !e.is_closed()) {
                        break; // shut down: the listener closes
                    }
                    let _ = stream.set_nodelay(true);
                    let rules = Rc::new(JoinRules { token: token.clone(), peer: peer.to_string() });
                    let Some(acceptor) = acceptor.clone() else {
                        accept_frames_or_ws(&registry, stream, rules);
                        continue;
                    };
                    if handshaking.get() >= MAX_PREAUTH_CONNECTIONS {
                        registry.refused(&rules.peer, &format!("more than {MAX_PREAUTH_CONNECTIONS} TLS handshakes in progress"));
                        continue; // dropped: closed
                    }
                    handshaking.set(handshaking.get() + 1);
                    let handshaking = handshaking.clone();
                    tokio::task::spawn_local(async move {
                        let done = tokio::time::timeout(PREAUTH_TIMEOUT, acceptor.accept(stream)).await;
                        handshaking.set(handshaking.get() - 1);
                        match done {
                            Ok(Ok(tls)) => accept_frames_or_ws(&registry, tls, rules),
                            Ok(Err(e)) => registry.refused(&rules.peer, &format!("TLS handshake failed: {e}")),
                            Err(_) => registry.refused(&rules.peer, &format!("no TLS handshake within {PREAUTH_TIMEOUT:?}")),
                        }
                    });
                }
            });
            tracing::info!(target: "titan_pm", "listening for remote workers on {bound}{}", if acceptor_kind(&options) { " (mutual TLS)" } else { " (loopback, token)" });
            Ok(bound)
        })
        .await?;
        if let Some(gateway) = gateway {
            gateway.serve(self.clone()).await?;
        }
        Ok(bound)
    }

    /// One remote worker that joined (or joins within the spawn timeout) under
    /// `name` (`remote:NAME` or `NAME`), as a process. When it disconnects, the
    /// process waits for the next worker of that name (it is not restarted by the host).
    pub async fn attach(&self, name: &str, options: SpawnOptions) -> Result<ProcessHandle> {
        let target = remote_target(name)?;
        let name = name.to_string();
        let id = self
            .exec_with(true, move |engine| async move {
                let limit = engine.config.spawn_timeout;
                // The wait (on the engine) ends with the limit: no process is left behind.
                tokio::time::timeout(limit, engine.spawn(target, options))
                    .await
                    .map_err(|_| Error::spawn(&name, format!("no remote worker joined as {name} within {} ms", limit.as_millis())))?
            })
            .await?;
        Ok(self.handle(id))
    }
}

/// One port, two framings: after TLS (if any), a connection that starts with
/// `GET ` is upgraded to a WebSocket (`wss://` / `ws://` workers), any other
/// carries Cap'n Proto frames directly; both within the registration's time
/// and size bounds.
fn accept_frames_or_ws<S>(registry: &Registry, stream: S, rules: Rc<JoinRules>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    registry.accept_upgrading(
        |limit| async move {
            let (http, stream) = ws::sniff(stream).await?;
            let stream: Pin<Box<dyn Stream>> = if http { Box::pin(ws::accept(stream, limit, None).await?) } else { Box::pin(stream) };
            Ok(stream)
        },
        true,
        Some(rules),
    );
}

fn acceptor_kind(options: &ListenOptions) -> bool {
    options.tls.is_some()
}

/// `remote:NAME` for `NAME` or `remote:NAME`, with the name checked.
pub fn remote_target(name: &str) -> Result<Target> {
    let bare = name.strip_prefix("remote:").unwrap_or(name);
    let rules = JoinRules { token: None, peer: String::new() };
    let name = rules.check(&format!("join:{bare}:")).map_err(Error::Config)?;
    Ok(Target::Path(format!("remote:{name}")))
}
