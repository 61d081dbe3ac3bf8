//! WebSocket framing (tokio-tungstenite) under the Cap'n Proto two-party
//! network: the `http` transport of child workers (`TITAN_CONNECT=ws://...`)
//! and remote workers dialling `ws://` / `wss://`.
//!
//! The WebSocket carries the same byte stream as tcp: [`WsBytes`] turns binary
//! messages into an `AsyncRead + AsyncWrite`, so the frame limits of
//! `network` apply unchanged on top. Each flush of the writer (capnp flushes
//! after every message) sends one binary message of at most [`CHUNK_BYTES`];
//! an incoming message may be as large as the trusted frame limit
//! ([`max_message_bytes`]) and no larger.
//!
//! Before its worker has registered, a connection accepted by the host may
//! read at most [`PREAUTH_MAX_WS_BYTES`] in all (upgrade request and
//! registration): WebSocket messages are assembled in memory before the frame
//! limit sees them, so the raw stream itself is bounded ([`Budget`]). The
//! upgrade must be a plain `GET` on the listener's path without an `Origin`
//! header (a browser page sends one; a worker never does).
//!
//! [`sniff`] tells an HTTP upgrade (`GET `) from Cap'n Proto frames on one
//! port: the first four bytes of a capnp stream are a segment count, and
//! `GET ` would claim over 500 million segments, far past any limit.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::network::FrameLimit;

/// The path a host's `http` transport listener serves the upgrade on.
pub const CHILD_PATH: &str = "/titan-pm/v1";
/// The most a connection may read before its worker registers (upgrade request included).
pub const PREAUTH_MAX_WS_BYTES: u64 = 2 * super::PREAUTH_MAX_MESSAGE_BYTES;
/// The largest binary message this side sends.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The largest incoming WebSocket message (and frame): the trusted frame limit.
pub fn max_message_bytes() -> usize {
    super::network::trusted_max_bytes() as usize
}

fn config() -> WebSocketConfig {
    let write_buffer = 128 * 1024;
    WebSocketConfig::default()
        .read_buffer_size(64 * 1024)
        .write_buffer_size(write_buffer)
        .max_write_buffer_size(write_buffer + 4 * CHUNK_BYTES)
        .max_message_size(Some(max_message_bytes()))
        .max_frame_size(Some(max_message_bytes()))
}

fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        e => io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {e}")),
    }
}

/// A WebSocket as a byte stream: binary messages in, binary messages out.
pub struct WsBytes<S> {
    ws: WebSocketStream<S>,
    /// What is left of the last message read.
    inbound: Bytes,
    /// What was written and not yet sent.
    outbound: Vec<u8>,
}

impl<S> WsBytes<S> {
    fn new(ws: WebSocketStream<S>) -> Self {
        WsBytes { ws, inbound: Bytes::new(), outbound: Vec::new() }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    /// Sends what was written as one binary message.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.outbound.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_error)?;
        let message = Message::Binary(Bytes::from(std::mem::take(&mut self.outbound)));
        Pin::new(&mut self.ws).start_send(message).map_err(ws_error)?;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.inbound.is_empty() {
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.inbound = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "websocket: a text message (only binary messages carry frames)")))
                }
                // Pings are answered by tungstenite itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
        let n = this.inbound.len().min(buf.remaining());
        buf.put_slice(&this.inbound.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.outbound.len() >= CHUNK_BYTES {
            ready!(self.poll_send(cx))?;
        }
        let n = data.len().min(CHUNK_BYTES - self.outbound.len());
        self.outbound.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.ws).poll_close(cx).map_err(ws_error)
    }
}

/// A raw stream that, until `limit` is trusted, reads at most [`PREAUTH_MAX_WS_BYTES`].
pub struct Budget<S> {
    inner: S,
    limit: Rc<FrameLimit>,
    read: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Budget<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.limit.is_trusted() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let left = PREAUTH_MAX_WS_BYTES.saturating_sub(this.read);
        if left == 0 {
            return Poll::Ready(Err(this.limit.refuse(format!("{PREAUTH_MAX_WS_BYTES} bytes over a websocket without registering"))));
        }
        let mut limited = buf.take(left as usize);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        // SAFETY: `n` bytes were just written to the unfilled part of `buf` through `limited`.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        this.read += n as u64;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budget<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The host's side of an upgrade: a `GET` on `path` (any path for `None`),
/// without an `Origin`; the raw stream bounded by [`Budget`] until `limit` is trusted.
// The refusal's type (`ErrorResponse`, large) is tungstenite's callback signature.
#[allow(clippy::result_large_err)]
pub async fn accept<S>(stream: S, limit: Rc<FrameLimit>, path: Option<&'static str>) -> io::Result<WsBytes<Budget<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stream = Budget { inner: stream, limit, read: 0 };
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let refuse = |status: u16, why: &str| {
            let mut r = ErrorResponse::new(Some(why.to_string()));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
            Err(r)
        };
        if let Some(path) = path {
            if request.uri().path() != path {
                return refuse(404, "not a titan-pm endpoint");
            }
        }
        if request.headers().contains_key(http::header::ORIGIN) {
            return refuse(403, "a browser origin may not connect");
        }
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config())).await.map_err(|e| match e {
        tungstenite::Error::Io(e) => e,
        e => io::Error::new(io::ErrorKind::InvalidData, format!("websocket upgrade refused: {e}")),
    })?;
    Ok(WsBytes::new(ws))
}

/// A worker's side: the upgrade to `url` (`ws://` or `wss://`, TLS already done on `stream`).
pub async fn connect<S>(stream: S, url: &str) -> io::Result<WsBytes<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config())).await.map_err(|e| match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::Http(r) => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("websocket upgrade refused: {} {}", r.status(), r.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default()),
        ),
        e => io::Error::new(io::ErrorKind::InvalidData, format!("websocket upgrade: {e}")),
    })?;
    Ok(WsBytes::new(ws))
}

/// `ws://HOST:PORT/PATH` or `wss://...` split: (tls, `HOST:PORT`); `None` if not a ws URL.
pub fn split_url(url: &str) -> Option<(bool, &str)> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
        (true, rest)
    } else {
        (false, url.strip_prefix("ws://")?)
    };
    let authority = rest.split_once('/').map(|(a, _)| a).unwrap_or(rest);
    Some((tls, authority))
}

/// A stream whose first bytes were read to tell what it carries, then given back.
pub struct Sniffed<S> {
    head: [u8; 4],
    at: usize,
    len: usize,
    inner: S,
}

/// Reads up to four bytes: `true` if they are `GET ` (an HTTP upgrade follows).
pub async fn sniff<S: AsyncRead + Unpin>(mut stream: S) -> io::Result<(bool, Sniffed<S>)> {
    let mut head = [0u8; 4];
    let mut len = 0;
    while len < head.len() {
        let n = stream.read(&mut head[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    Ok((&head[..len] == b"GET ", Sniffed { head, at: 0, len, inner: stream }))
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniffed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.len {
            let n = (this.len - this.at).min(buf.remaining());
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniffed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    #[test]
    fn bytes_cross_both_ways_in_chunks() {
        run(async {
            let (a, b) = tokio::io::duplex(1 << 16);
            let server = tokio::task::spawn_local(async move {
                let mut s = accept(b, FrameLimit::trusted(), Some(CHILD_PATH)).await.unwrap();
                let mut got = vec![0u8; 3 * CHUNK_BYTES + 5];
                s.read_exact(&mut got).await.unwrap();
                s.write_all(&got).await.unwrap();
                s.flush().await.unwrap();
            });
            let mut c = connect(a, &format!("ws://127.0.0.1:1{CHILD_PATH}")).await.unwrap();
            let data: Vec<u8> = (0..3 * CHUNK_BYTES + 5).map(|i| i as u8).collect();
            c.write_all(&data).await.unwrap();
            c.flush().await.unwrap();
            let mut back = vec![0u8; data.len()];
            c.read_exact(&mut back).await.unwrap();
            assert_eq!(back, data);
            server.await.unwrap();
        });
    }

    #[test]
    fn a_wrong_path_or_a_browser_origin_is_refused() {
        run(async {
            let (a, b) = tokio::io::duplex(1 << 16);
            tokio::task::spawn_local(async move { accept(b, FrameLimit::unauthenticated(), Some(CHILD_PATH)).await.map(|_| ()) });
            let err = connect(a, "ws://127.0.0.1:1/elsewhere").await.err().unwrap();
            assert!(err.to_string().contains("404"), "{err}");

            let (a, b) = tokio::io::duplex(1 << 16);
            tokio::task::spawn_local(async move { accept(b, FrameLimit::unauthenticated(), None).await.map(|_| ()) });
            let mut request = tungstenite::client::IntoClientRequest::into_client_request("ws://127.0.0.1:1/").unwrap();
            request.headers_mut().insert("origin", "http://evil.example".parse().unwrap());
            let err = tokio_tungstenite::client_async(request, a).await.err().unwrap();
            assert!(err.to_string().contains("403"), "{err}");
        });
    }

    #[test]
    fn an_unregistered_peer_may_not_read_past_the_budget() {
        run(async {
            let (a, b) = tokio::io::duplex(1 << 16);
            let server = tokio::task::spawn_local(async move {
                let mut s = accept(b, FrameLimit::unauthenticated(), None).await.unwrap();
                let mut sink = vec![0u8; 1 << 16];
                loop {
                    match s.read(&mut sink).await {
                        Ok(0) => return None,
                        Ok(_) => {}
                        Err(e) => return Some(e),
                    }
                }
            });
            let mut c = connect(a, "ws://127.0.0.1:1/").await.unwrap();
            // One message larger than the budget: refused before it is assembled.
            let _ = c.write_all(&vec![7u8; PREAUTH_MAX_WS_BYTES as usize + 1]).await;
            let _ = c.flush().await;
            let err = server.await.unwrap().expect("an error, not the end of the stream");
            assert!(err.to_string().contains("without registering"), "{err}");
        });
    }

    #[test]
    fn sniffing_gives_the_bytes_back() {
        run(async {
            let (mut a, b) = tokio::io::duplex(64);
            a.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            let (http, mut s) = sniff(b).await.unwrap();
            assert!(http);
            let mut line = [0u8; 16];
            s.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"GET / HTTP/1.1\r\n");
            let (mut a, b) = tokio::io::duplex(64);
            a.write_all(&[0, 0, 0, 0, 1, 0]).await.unwrap();
            drop(a);
            let (http, mut s) = sniff(b).await.unwrap();
            assert!(!http);
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, [0, 0, 0, 0, 1, 0]);
        });
    }
}
