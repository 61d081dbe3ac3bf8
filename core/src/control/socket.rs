//! The control socket: created in a directory of mode 0700 (made if missing),
//! the socket itself chmod-ed to 0600 right after `bind` whatever the umask, a
//! stale socket file (nobody answering) replaced, a live one refused. Each
//! accepted peer's uid is read with `SO_PEERCRED`; another user's connection
//! is closed at once. At most [`MAX_CONNECTIONS`] clients at a time.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Clients served at once; more wait in the kernel's backlog until one leaves.
pub const MAX_CONNECTIONS: usize = 64;

/// Binds `path` with the permissions above.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    let fail = |what: &str, e: std::io::Error| Error::Config(format!("control socket {}: {what}: {e}", path.display()));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create its directory", e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| fail("cannot chmod its directory", e))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::Config(format!("a manager already serves {}", path.display())));
        }
        std::fs::remove_file(path).map_err(|e| fail("cannot remove the stale socket", e))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| fail("cannot bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| fail("cannot chmod", e))?;
    listener.set_nonblocking(true).map_err(|e| fail("cannot set non-blocking", e))?;
    Ok(listener)
}

/// Whether the peer runs as this process's effective user.
pub fn same_user(stream: &tokio::net::UnixStream) -> bool {
    let me = unsafe { libc::geteuid() };
    stream.peer_cred().is_ok_and(|c| c.uid() == me)
}
