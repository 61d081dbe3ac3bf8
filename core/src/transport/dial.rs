//! How a remote worker reaches a listening host it was not started by: the
//! `--connect host:port --tls-cert --tls-key --tls-ca --token --name` flags (or
//! the `TITAN_PM_CONNECT`, `TITAN_PM_TLS_CERT`, `TITAN_PM_TLS_KEY`,
//! `TITAN_PM_TLS_CA`, `TITAN_PM_TOKEN`, `TITAN_PM_NAME` variables; a flag wins),
//! and the connection itself: TCP, then mutual TLS unless the worker dials a
//! loopback host without TLS files (which only a host with a token accepts).
//!
//! `--connect` is `host:port` (Cap'n Proto frames straight on the stream), or
//! `wss://host:port[/path]` (the same, then a WebSocket upgrade, for networks
//! that pass only HTTP; the host's listener takes both on one port), or
//! `ws://host:port[/path]` where plain TCP is allowed (loopback, with a token).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::tls::{self, TlsFiles};
use crate::error::{Error, Result};

pub const ENV_REMOTE_CONNECT: &str = "TITAN_PM_CONNECT";

/// Flag, variable, field.
const FLAGS: &[(&str, &str)] = &[
    ("--connect", "TITAN_PM_CONNECT"),
    ("--tls-cert", "TITAN_PM_TLS_CERT"),
    ("--tls-key", "TITAN_PM_TLS_KEY"),
    ("--tls-ca", "TITAN_PM_TLS_CA"),
    ("--token", "TITAN_PM_TOKEN"),
    ("--name", "TITAN_PM_NAME"),
    ("--server-name", "TITAN_PM_SERVER_NAME"),
];

/// Where and as whom a remote worker dials in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOptions {
    /// `host:port`, `wss://host:port[/path]` or `ws://host:port[/path]` of the listening host.
    pub connect: String,
    pub tls: Option<TlsFiles>,
    pub token: Option<String>,
    /// The name it joins under (`remote:NAME` on the host).
    pub name: String,
    /// The name the host's certificate must carry (default: the host part of `connect`).
    pub server_name: Option<String>,
}

impl DialOptions {
    /// Takes the dial flags out of `args` (the rest is returned, in order) and
    /// sets the matching variables, so that [`DialOptions::from_env`] (read by
    /// the worker's agent) sees them. Other arguments are the worker's own (the
    /// caller decides what it accepts).
    pub fn take_args(args: &[String]) -> Result<Vec<String>> {
        let mut rest = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            if let Some((_, var)) = FLAGS.iter().find(|(f, _)| *f == flag) {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i).cloned().ok_or_else(|| Error::Config(format!("{flag} needs a value")))?
                    }
                };
                // SAFETY: called at worker start-up, before the worker starts threads of its own.
                unsafe { std::env::set_var(var, value) };
            } else {
                rest.push(a.clone());
            }
            i += 1;
        }
        Ok(rest)
    }

    /// The dial options from the environment (and removes the token from it);
    /// `None` when `TITAN_PM_CONNECT` is not set.
    pub fn from_env() -> Result<Option<DialOptions>> {
        let get = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
        let Some(connect) = get(ENV_REMOTE_CONNECT) else { return Ok(None) };
        let token = get("TITAN_PM_TOKEN");
        // SAFETY: as above, at start-up.
        unsafe { std::env::remove_var("TITAN_PM_TOKEN") };
        let files = [get("TITAN_PM_TLS_CERT"), get("TITAN_PM_TLS_KEY"), get("TITAN_PM_TLS_CA")];
        let tls = match files {
            [Some(cert), Some(key), Some(ca)] => Some(TlsFiles { cert: PathBuf::from(cert), key: PathBuf::from(key), ca: PathBuf::from(ca) }),
            [None, None, None] => None,
            _ => return Err(Error::Config("--tls-cert, --tls-key and --tls-ca go together: give all three or none".into())),
        };
        let name = get("TITAN_PM_NAME").ok_or_else(|| Error::Config("a remote worker needs --name (the name it joins under)".into()))?;
        let options = DialOptions { connect, tls, token, name, server_name: get("TITAN_PM_SERVER_NAME") };
        options.check()?;
        Ok(Some(options))
    }

    fn check(&self) -> Result<()> {
        let host = self.host();
        if host.is_empty() || self.authority().rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            return Err(Error::Config(format!("--connect {:?} is not host:port, wss://host:port or ws://host:port", self.connect)));
        }
        match (super::ws::split_url(&self.connect), &self.tls) {
            (Some((true, _)), None) => {
                return Err(Error::Config(format!("--connect {}: wss:// needs --tls-cert, --tls-key and --tls-ca", self.connect)))
            }
            (Some((false, _)), Some(_)) => {
                return Err(Error::Config(format!("--connect {}: ws:// is plain: with TLS files dial wss://", self.connect)))
            }
            _ => {}
        }
        if self.tls.is_none() {
            let loopback = host == "localhost" || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(Error::Config(format!(
                    "--connect {}: without TLS a worker only dials a loopback host (give --tls-cert, --tls-key and --tls-ca)",
                    self.connect
                )));
            }
            if self.token.is_none() {
                return Err(Error::Config("without TLS a worker needs --token".into()));
            }
        }
        if self.name.contains(':') {
            return Err(Error::Config(format!("--name {:?} may not contain ':'", self.name)));
        }
        Ok(())
    }

    /// `host:port`, without a ws scheme or path.
    fn authority(&self) -> &str {
        super::ws::split_url(&self.connect).map(|(_, a)| a).unwrap_or(&self.connect)
    }

    fn host(&self) -> &str {
        self.authority().rsplit_once(':').map(|(h, _)| h).unwrap_or("")
    }

    /// What the worker registers with: `join:NAME:TOKEN`.
    pub fn join_secret(&self) -> String {
        format!("join:{}:{}", self.name, self.token.as_deref().unwrap_or(""))
    }

    /// The TLS client configuration (read once; `None` without TLS).
    pub fn client_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>> {
        self.tls.as_ref().map(tls::client_config).transpose()
    }

    /// One connection to the host: TCP, then the TLS handshake if configured,
    /// then the WebSocket upgrade for a `ws://` or `wss://` address.
    pub async fn connect(&self, config: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Pin<Box<dyn Stream>>> {
        let stream = self.connect_stream(config).await?;
        if super::ws::split_url(&self.connect).is_none() {
            return Ok(stream);
        }
        Ok(Box::pin(super::ws::connect(stream, &self.connect).await?))
    }

    async fn connect_stream(&self, config: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Pin<Box<dyn Stream>>> {
        let tcp = super::tcp::connect(self.authority()).await?;
        let Some(config) = config else { return Ok(Box::pin(tcp)) };
        let name = self.server_name.clone().unwrap_or_else(|| self.host().trim_matches(['[', ']']).to_string());
        let server_name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("server name {name:?}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(server_name, tcp).await?;
        Ok(Box::pin(tls))
    }
}

/// A byte stream a worker talks to its host over.
pub trait Stream: AsyncRead + AsyncWrite {}
impl<T: AsyncRead + AsyncWrite> Stream for T {}
