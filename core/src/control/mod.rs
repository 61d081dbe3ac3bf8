//! The control interface: a manager that opts in serves `Manager` (see
//! `schema/titan.capnp`) on a Unix socket, which the `titan-pm` CLI (and any
//! Cap'n Proto client) uses to list, inspect, restart, scale, stop and watch
//! its workers, read their logs and apply a process file.
//!
//! - [`socket`]: the socket itself: its directory 0700, the socket 0600 set
//!   explicitly whatever the umask, peers of another uid refused (`SO_PEERCRED`),
//!   a bounded number of connections.
//! - [`server`]: the `Manager` capability, one per connection, on the control thread.
//! - [`targets`]: how a target text (`7`, `api`, `pool:3`) names processes and pools
//!   (it lives in `pool`, so the HTTP gateway, below `control`, resolves names the same way).
//! - [`file`]: the process file (`titan.toml` as a `Value`) and applying it (rolling).
//! - [`prometheus`]: the metrics report as Prometheus text.
//!
//! ```no_run
//! # async fn demo() -> titan_pm::Result<()> {
//! use titan_pm::{ProcessManager, ManagerConfig, SpawnOptions};
//! let pm = ProcessManager::new(ManagerConfig::default());
//! let control = pm.serve_control("/run/user/1000/titan-pm/control.sock")?;
//! pm.spawn("target/debug/rust-calculator", SpawnOptions::default()).await?;
//! control.shutdown_requested().await; // `titan-pm stop` was run: everything is stopped
//! # Ok(()) }
//! ```

pub mod file;
pub mod prometheus;
mod server;
pub mod socket;
pub use crate::pool::targets;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::Result;
use crate::host::ProcessManager;

/// A running control server. Dropping it does not stop it; [`ControlServer::close`] does.
pub struct ControlServer {
    path: PathBuf,
    shutdown: watch::Receiver<bool>,
    stop: Arc<tokio::sync::Notify>,
}

impl ControlServer {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolves once a client has asked the manager to shut down (`titan-pm stop`)
    /// and the shutdown has finished: the owner should exit.
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Whether a client has asked the manager to shut down and the shutdown has finished
    /// (what [`ControlServer::shutdown_requested`] waits for), without waiting.
    pub fn is_shutdown_requested(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Stops accepting connections and removes the socket file.
    pub fn close(&self) {
        self.stop.notify_one();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ProcessManager {
    /// Serves the control interface on a Unix socket at `path` (see [`socket`] for
    /// its permissions), on a thread of its own. Fails at once if the path cannot be
    /// bound or a manager already serves there.
    pub fn serve_control(&self, path: impl AsRef<Path>) -> Result<ControlServer> {
        let path = path.as_ref().to_path_buf();
        let listener = socket::bind(&path)?;
        let (done_tx, done_rx) = watch::channel(false);
        let stop = Arc::new(tokio::sync::Notify::new());
        let pm = self.clone();
        let stop2 = stop.clone();
        std::thread::Builder::new()
            .name("titan-pm-control".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, server::run(pm, listener, done_tx, stop2));
            })
            .map_err(|e| crate::Error::Config(format!("cannot start the control thread: {e}")))?;
        Ok(ControlServer { path, shutdown: done_rx, stop })
    }
}

/// The socket a user's manager serves by default: `$TITAN_PM_SOCKET` when set, else
/// `$XDG_RUNTIME_DIR/titan-pm/control.sock`, else `/tmp/titan-pm-$UID/control.sock`.
/// The one rule the CLI and every front end's `serve_control()` follow.
pub fn default_socket() -> PathBuf {
    if let Some(path) = std::env::var_os("TITAN_PM_SOCKET").filter(|s| !s.is_empty()) {
        return PathBuf::from(path);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("titan-pm").join("control.sock"),
        None => PathBuf::from(format!("/tmp/titan-pm-{}", unsafe { libc::geteuid() })).join("control.sock"),
    }
}
