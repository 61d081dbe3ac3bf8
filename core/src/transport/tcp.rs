//! The `tcp` transport: the host listens on `tcp_host` (loopback by default) on
//! a free port; every connection must present its spawn's secret.

use std::net::SocketAddr;

pub(crate) async fn bind(host: &str) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind((host, 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

pub(crate) async fn connect(addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}
