//! The `unix` transport: the host listens on a socket in a private runtime
//! directory; a worker connects to its path (`TITAN_CONNECT=unix:PATH`).

use std::path::{Path, PathBuf};

/// A listener in a fresh private directory; the directory lives as long as the `TempDir`.
pub(crate) fn bind_private() -> std::io::Result<(tempfile::TempDir, PathBuf, tokio::net::UnixListener)> {
    // tempfile creates the directory with mode 0700.
    let dir = tempfile::Builder::new().prefix("titan-pm-").tempdir()?;
    let path = dir.path().join("host.sock");
    let listener = tokio::net::UnixListener::bind(&path)?;
    Ok((dir, path, listener))
}

pub(crate) async fn connect(path: &Path) -> std::io::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(path).await
}
