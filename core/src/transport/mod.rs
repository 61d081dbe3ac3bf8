//! How a worker reaches its host: the transport names, the environment a worker
//! is started with, and the Cap'n Proto two-party network over any byte stream.
//!
//! A worker learns where to connect from its environment, never its command line:
//! `TITAN_IPC_FD` (an inherited socket), or `TITAN_CONNECT` (`unix:/path`,
//! `tcp:127.0.0.1:port` or `ws://127.0.0.1:port/path`), and proves who it is with `TITAN_SECRET`.
//!
//! One file per transport: [`ipc`] (an inherited socketpair), [`unix`] and
//! [`tcp`] (a listener on the host, a connect on the worker), [`ws`] (the
//! `http` transport: tcp plus a WebSocket upgrade); `network` runs
//! Cap'n Proto's two-party protocol over any of their byte streams, and
//! [`coalesce`] batches what one engine pass writes into one write.
//!
//! ```
//! use titan_pm::Transport;
//! assert_eq!("unix".parse::<Transport>().unwrap(), Transport::Unix);
//! assert!("carrier-pigeon".parse::<Transport>().is_err());
//! ```

use std::str::FromStr;

use crate::error::{Error, Result};

pub(crate) mod coalesce;
pub mod dial;
pub(crate) mod ipc;
pub(crate) mod network;
pub(crate) mod tcp;
pub mod tls;
pub(crate) mod unix;
pub mod ws;

pub use coalesce::{DRAIN_AFTER_CLOSE, WRITE_BUFFER_BYTES};
pub use network::{
    reader_options, vat_network, vat_network_limited, FrameLimit, PREAUTH_MAX_MESSAGE_BYTES, PREAUTH_MAX_SEGMENTS,
};

/// How long a connection may take to register before it is closed.
pub const PREAUTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The most unauthenticated connections a host's listeners hold; past it the oldest is closed.
pub const MAX_PREAUTH_CONNECTIONS: usize = 64;

pub const ENV_IPC_FD: &str = "TITAN_IPC_FD";
pub const ENV_CONNECT: &str = "TITAN_CONNECT";
pub const ENV_SECRET: &str = "TITAN_SECRET";

/// How host and worker bytes travel. `Ipc` is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// An inherited socketpair: no path, no port.
    #[default]
    Ipc,
    /// A Unix socket in a private 0700 directory.
    Unix,
    /// TCP on loopback (by default); every connection presents the per-spawn secret.
    Tcp,
    /// A WebSocket (`ws://`) on loopback carrying the same frames as tcp, with the same secret rule.
    Http,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ipc => "ipc",
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            Transport::Http => "http",
        }
    }
}

impl FromStr for Transport {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ipc" => Ok(Transport::Ipc),
            "unix" => Ok(Transport::Unix),
            "tcp" => Ok(Transport::Tcp),
            "http" => Ok(Transport::Http),
            _ => Err(Error::Config(format!("unknown transport {s:?} (expected ipc, unix, tcp or http)"))),
        }
    }
}

/// A fresh random secret for one spawn, as hex; an error if the OS has no randomness to give.
pub fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Config(format!("the OS random source failed: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Constant-time comparison, so a wrong secret's timing says nothing.
pub fn secrets_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where a worker started by a titan-pm host should connect, read from its environment.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Fd(i32),
    Unix(std::path::PathBuf),
    Tcp(String),
    /// A WebSocket URL (`ws://127.0.0.1:PORT/PATH`, the `http` transport).
    Ws(String),
    /// A remote worker dialling a listening host (`--connect`, see [`dial`]).
    Remote(Box<dial::DialOptions>),
}

impl Endpoint {
    /// Reads (and removes) the worker's environment: endpoint and secret.
    pub fn from_env() -> Result<(Endpoint, String)> {
        let secret = std::env::var(ENV_SECRET).unwrap_or_default();
        // SAFETY: called at worker start-up before other threads read the environment.
        unsafe { std::env::remove_var(ENV_SECRET) };
        if let Ok(fd) = std::env::var(ENV_IPC_FD) {
            let fd = fd.parse().map_err(|_| Error::Config(format!("{ENV_IPC_FD}={fd:?} is not a descriptor")))?;
            return Ok((Endpoint::Fd(fd), secret));
        }
        match std::env::var(ENV_CONNECT) {
            Ok(addr) => Ok((Endpoint::parse(&addr)?, secret)),
            Err(_) => match dial::DialOptions::from_env()? {
                Some(remote) => {
                    let secret = remote.join_secret();
                    Ok((Endpoint::Remote(Box::new(remote)), secret))
                }
                None => Err(Error::Config(format!(
                    "this is a titan-pm worker: start it from a titan-pm host (no {ENV_IPC_FD} or {ENV_CONNECT} set), \
                     or dial a listening host with --connect HOST:PORT (or wss://HOST:PORT) --name NAME (or {})",
                    dial::ENV_REMOTE_CONNECT
                ))),
            },
        }
    }

    pub fn parse(addr: &str) -> Result<Endpoint> {
        if let Some(path) = addr.strip_prefix("unix:") {
            Ok(Endpoint::Unix(path.into()))
        } else if let Some(a) = addr.strip_prefix("tcp:") {
            Ok(Endpoint::Tcp(a.to_string()))
        } else if let Some((false, _)) = ws::split_url(addr) {
            Ok(Endpoint::Ws(addr.to_string()))
        } else {
            Err(Error::Config(format!("{ENV_CONNECT}={addr:?} is not unix:PATH, tcp:HOST:PORT or ws://HOST:PORT/PATH")))
        }
    }

    pub fn to_env_value(&self) -> String {
        match self {
            Endpoint::Fd(fd) => fd.to_string(),
            Endpoint::Unix(p) => format!("unix:{}", p.display()),
            Endpoint::Tcp(a) => format!("tcp:{a}"),
            Endpoint::Ws(url) => url.clone(),
            Endpoint::Remote(d) => d.connect.clone(),
        }
    }
}

/// A listening address from options (`ip:port`, `localhost:port` meaning 127.0.0.1), or a
/// `ConfigError` naming the option `field` and showing `example`.
pub(crate) fn listen_address(address: &str, field: &str, example: &str) -> Result<std::net::SocketAddr> {
    let resolved = match address.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => address.to_string(),
    };
    resolved.parse().map_err(|_| Error::Config(format!("{field} {address:?} is not ip:port (e.g. {example})")))
}

/// A bearer or join token from options: 1 to `max` printable bytes without spaces, or a
/// `ConfigError` naming the option `field`.
pub(crate) fn check_token(token: &str, field: &str, max: usize) -> Result<()> {
    if token.is_empty() || token.len() > max || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::Config(format!("{field} must be 1-{max} printable characters without spaces")));
    }
    Ok(())
}
