//! The `ipc` transport: a socketpair made by the host, one end inherited by the
//! child as a descriptor (`TITAN_IPC_FD`); no path, no port.

use std::os::unix::net::UnixStream;

/// A connected pair of sockets: (host end, worker end).
pub(crate) fn pair() -> std::io::Result<(UnixStream, UnixStream)> {
    UnixStream::pair()
}

/// A std socket as a tokio one (on the current runtime).
pub(crate) fn to_tokio(s: UnixStream) -> std::io::Result<tokio::net::UnixStream> {
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

/// The worker's end, from the descriptor its host passed.
pub(crate) fn from_fd(fd: i32) -> std::io::Result<tokio::net::UnixStream> {
    // SAFETY: the host passed this descriptor to us for exactly this purpose.
    let s = unsafe { <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    to_tokio(s)
}
