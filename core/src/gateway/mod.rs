//! The HTTP gateway: an opt-in listener of a listening host (`listen({.., gateway:
//! {address, token}})`) through which any HTTP client (`curl`, a language without
//! Cap'n Proto) calls workers with JSON. This module owns its options and their
//! rules, its listener, its bounds and its thread; [`routes`] owns what each
//! request means (auth, routes, status codes, the JSON shapes).
//!
//! - TLS with the listen options' `cert` and `key` (server auth only: the bearer
//!   token authenticates the client), or plain HTTP on a loopback address only.
//! - hyper 1 (HTTP/1.1, keep-alive) on a thread of its own with a current-thread
//!   tokio runtime, like the control server: host calls go through the `Send`
//!   [`ProcessManager`] handle to the engine's `LocalSet` (capnp-rpc is `!Send`).
//! - Bounds: [`MAX_CONNECTIONS`] connections at once (more are closed at once),
//!   [`HEADER_TIMEOUT`] to send a request's head (slow-loris) and
//!   [`MAX_HEADER_BYTES`] for it, [`BODY_TIMEOUT`] and [`MAX_BODY_BYTES`] for its
//!   body, [`IDLE_TIMEOUT`] for a kept-alive connection between requests, the TLS
//!   handshake within `transport::PREAUTH_TIMEOUT`; a call's deadline is at most the
//!   manager's default.
//!
//! ```
//! use titan_pm::gateway::GatewayOptions;
//! let g = GatewayOptions { address: "0.0.0.0:8080".into(), token: "t0ken".into() };
//! assert!(g.check(false).unwrap_err().to_string().contains("loopback"));
//! assert!(g.check(true).is_ok());
//! ```

pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};

use crate::error::{Error, Result};
use crate::host::ProcessManager;
use crate::transport::tls::{self, TlsFiles};
use crate::transport::PREAUTH_TIMEOUT;

/// The most connections the gateway holds at once (TLS handshakes included); more are closed.
pub const MAX_CONNECTIONS: usize = 256;
/// The largest request body (the JSON arguments): 413 past it.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The largest request head (request line and headers): 431 past it.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long a client has to send a request's head once it has started it: a slow-loris client is cut off.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to send a request's body: 408 past it.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may sit without a request (before its first or between two) before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest bearer token.
pub const MAX_TOKEN_BYTES: usize = 256;

/// `listen`'s `gateway` option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayOptions {
    /// `ip:port` (port 0: any free port; [`ProcessManager::gateway_address`] tells which).
    pub address: String,
    /// The bearer token every request must carry (`Authorization: Bearer TOKEN`).
    pub token: String,
}

impl GatewayOptions {
    /// The address to bind, after the rules: with `tls` anywhere, without it only on loopback.
    pub fn check(&self, tls: bool) -> Result<SocketAddr> {
        let addr = crate::transport::listen_address(&self.address, "listen.gateway.address", "127.0.0.1:8080")?;
        crate::transport::check_token(&self.token, "listen.gateway.token", MAX_TOKEN_BYTES)?;
        if !tls && !addr.ip().is_loopback() {
            return Err(Error::Config(format!(
                "listen.gateway.address {addr}: without tls the gateway listens only on loopback (give listen a tls: {{cert, key, ca}} to serve HTTPS on {})",
                addr.ip()
            )));
        }
        Ok(addr)
    }
}

/// A gateway whose socket is bound (so `listen` fails before anything runs) and not yet serving.
pub struct Bound {
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    token: String,
}

/// Checks the options, loads the TLS files and binds the socket.
pub fn bind(options: &GatewayOptions, tls: Option<&TlsFiles>) -> Result<Bound> {
    let addr = options.check(tls.is_some())?;
    let tls = tls.map(tls::server_auth_config).transpose()?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| Error::io(format!("cannot listen on {addr} (gateway)"), e))?;
    listener.set_nonblocking(true).map_err(|e| Error::io("gateway listener", e))?;
    Ok(Bound { listener, tls, token: options.token.clone() })
}

impl Bound {
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| Error::io("gateway listener address", e))
    }

    /// Serves on a thread of its own until the manager shuts down; returns the bound address.
    pub async fn serve(self, pm: ProcessManager) -> Result<SocketAddr> {
        let addr = self.local_addr()?;
        let default_timeout = pm.exec(|engine| async move { Ok(engine.config.timeout) }).await?;
        let state = Arc::new(routes::Gateway { pm: pm.clone(), token: self.token.clone(), default_timeout });
        let Bound { listener, tls, .. } = self;
        let kind = if tls.is_some() { "HTTPS" } else { "plain HTTP, loopback" };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::io("gateway runtime", e))?;
        std::thread::Builder::new()
            .name("titan-pm-gateway".into())
            .spawn(move || rt.block_on(run(listener, tls, state)))
            .map_err(|e| Error::io("cannot start the gateway thread", e))?;
        *pm.shared.gateway.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
        tracing::info!(target: "titan_pm", "HTTP gateway on {addr} ({kind})");
        Ok(addr)
    }
}

async fn run(listener: std::net::TcpListener, tls: Option<Arc<rustls::ServerConfig>>, state: Arc<routes::Gateway>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    let acceptor = tls.map(|mut c| {
        let mut config = (*c).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        c = Arc::new(config);
        tokio_rustls::TlsAcceptor::from(c)
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut pause = Duration::from_millis(10);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(target: "titan_pm", "the gateway could not accept ({e}); retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = check.tick() => {
                let closed = state.pm.exec(|engine| async move { Ok(engine.is_closed()) }).await;
                if !matches!(closed, Ok(false)) {
                    return; // the runtime drops with the thread: open connections close
                }
                continue;
            }
        };
        pause = Duration::from_millis(10);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(target: "titan_pm", "gateway: refused {peer}: {MAX_CONNECTIONS} connections open");
            continue; // dropped: closed
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(stream, state).await,
                Some(a) => match tokio::time::timeout(PREAUTH_TIMEOUT, a.accept(stream)).await {
                    Ok(Ok(tls)) => serve_connection(tls, state).await,
                    Ok(Err(e)) => tracing::debug!(target: "titan_pm", "gateway: TLS handshake with {peer} failed: {e}"),
                    Err(_) => tracing::debug!(target: "titan_pm", "gateway: no TLS handshake from {peer} within {PREAUTH_TIMEOUT:?}"),
                },
            }
        });
    }
}

/// One connection: HTTP/1.1 with keep-alive, its head, body and idle time bounded.
async fn serve_connection<S>(stream: S, state: Arc<routes::Gateway>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let idle = Arc::new(routes::Idle::new(IDLE_TIMEOUT));
    let service = {
        let idle = idle.clone();
        hyper::service::service_fn(move |req| {
            let (state, idle) = (state.clone(), idle.clone());
            async move {
                let _busy = idle.busy();
                Ok::<_, std::convert::Infallible>(routes::handle(&state, req).await)
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = idle.expired() => {
            // Idle past the bound: finish nothing in flight (there is none) and close.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

impl ProcessManager {
    /// The address the HTTP gateway is bound to (the last one started by `listen`), if any.
    pub fn gateway_address(&self) -> Option<SocketAddr> {
        *self.shared.gateway.lock().unwrap_or_else(|e| e.into_inner())
    }
}
