//! The `unix` transport: the host listens on a socket in a private runtime
//! directory; a worker connects to its path (`TITAN_CONNECT=unix:PATH`).

use std::path::{Path, PathBuf};

/// A listener in a fresh private directory; the directory lives as long as the `TempDir`.
///
/// The directory is made 0700 and the socket 0600 explicitly (chmod is not
/// subject to the umask), so no other user can reach the socket whatever the
/// host's umask.
pub(crate) fn bind_private() -> std::io::Result<(tempfile::TempDir, PathBuf, tokio::net::UnixListener)> {
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("titan-pm-").permissions(Permissions::from_mode(0o700)).tempdir()?;
    std::fs::set_permissions(dir.path(), Permissions::from_mode(0o700))?;
    let path = dir.path().join("host.sock");
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, Permissions::from_mode(0o600))?;
    Ok((dir, path, listener))
}

pub(crate) async fn connect(path: &Path) -> std::io::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(path).await
}
