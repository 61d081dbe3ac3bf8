//! The Cap'n Proto two-party network over any byte stream a transport gives,
//! with a bound on every incoming message.
//!
//! Every message read is checked against a [`FrameLimit`] *before* Cap'n Proto
//! sees its segment table (and allocates what the table claims): a message
//! larger than the limit, or with more segments, ends the connection with an
//! error. An unauthenticated connection starts with [`FrameLimit::unauthenticated`]
//! (a registration is a few hundred bytes); the registry raises it to
//! [`FrameLimit::trusted`] once the spawn's secret is accepted.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::twoparty::VatNetwork;
use futures::io::BufReader;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use super::coalesce::Coalescing;
use crate::value::{MAX_DEPTH, MAX_MESSAGE_BYTES};

/// The largest message an unauthenticated peer may send (its registration).
pub const PREAUTH_MAX_MESSAGE_BYTES: u64 = 64 * 1024;
/// The most segments a message of an unauthenticated peer may have.
pub const PREAUTH_MAX_SEGMENTS: u32 = 16;
/// What a message may carry besides its values (method name, ids, envelope).
const ENVELOPE_BYTES: u64 = 1 << 20;
/// The largest message a trusted peer may send.
pub(crate) const fn trusted_max_bytes() -> u64 {
    MAX_MESSAGE_BYTES as u64 + ENVELOPE_BYTES
}
/// Cap'n Proto's own bound on segments per message.
const MAX_SEGMENTS: u32 = 511;

/// How large a message, and how many segments, the peer may send; shared with
/// the reader so it can be raised after authentication.
#[derive(Debug)]
pub struct FrameLimit {
    max_bytes: Cell<u64>,
    max_segments: Cell<u32>,
    trusted: Cell<bool>,
}

impl FrameLimit {
    /// For a peer that has not proved who it is.
    pub fn unauthenticated() -> Rc<Self> {
        Rc::new(FrameLimit {
            max_bytes: Cell::new(PREAUTH_MAX_MESSAGE_BYTES),
            max_segments: Cell::new(PREAUTH_MAX_SEGMENTS),
            trusted: Cell::new(false),
        })
    }

    /// For a peer that has proved who it is: any message the value limits allow.
    pub fn trusted() -> Rc<Self> {
        let limit = Self::unauthenticated();
        limit.trust();
        limit
    }

    /// Raises the limits to the trusted ones.
    pub fn trust(&self) {
        self.max_bytes.set(trusted_max_bytes());
        self.max_segments.set(MAX_SEGMENTS);
        self.trusted.set(true);
    }

    /// Whether the peer has proved who it is.
    pub(crate) fn is_trusted(&self) -> bool {
        self.trusted.get()
    }

    /// Logs (throttled) and returns the error that closes a connection whose peer sent `what`.
    pub(crate) fn refuse(&self, what: String) -> io::Error {
        static REFUSED: Throttle = Throttle::new();
        let who = if self.trusted.get() { "peer" } else { "unauthenticated peer" };
        if let Some(more) = REFUSED.allow() {
            tracing::warn!(target: "titan_pm", "closing a connection: the {who} sent {what}{more}");
        }
        io::Error::new(io::ErrorKind::InvalidData, format!("{who} sent {what}"))
    }
}

/// At most one warning per kind every 10 s, so that a flood of bad peers does
/// not become a flood of log lines; the next one says how many were left out.
pub(crate) struct Throttle {
    last_ms: std::sync::atomic::AtomicU64,
    skipped: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub(crate) const fn new() -> Self {
        Throttle { last_ms: std::sync::atomic::AtomicU64::new(0), skipped: std::sync::atomic::AtomicU64::new(0) }
    }

    /// `Some(suffix)` when a warning may be logged now (the suffix counts those left out).
    pub(crate) fn allow(&self) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = crate::protocol::now_ms().max(1);
        let last = self.last_ms.load(Relaxed);
        if last != 0 && now.saturating_sub(last) < 10_000 {
            self.skipped.fetch_add(1, Relaxed);
            return None;
        }
        self.last_ms.store(now, Relaxed);
        let skipped = self.skipped.swap(0, Relaxed);
        Some(if skipped > 0 { format!(" (and {skipped} more like it in the last 10 s)") } else { String::new() })
    }
}

/// Where the reader is in the stream of messages.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// Reading the segment count (4 bytes, little-endian, minus one).
    Count { got: usize, bytes: [u8; 4] },
    /// Reading segment sizes (in words).
    Sizes { segments: u32, index: u32, got: usize, bytes: [u8; 4], words: u64 },
    /// Skipping the table's padding to a word boundary.
    Pad { left: usize, words: u64 },
    /// Passing the segments through.
    Body { left: u64 },
}

/// A reader that follows the Cap'n Proto stream framing and fails a read that
/// would hand the decoder a segment table over the limit.
pub struct Limited<R> {
    inner: R,
    limit: Rc<FrameLimit>,
    frame: Frame,
}

impl<R> Limited<R> {
    fn new(inner: R, limit: Rc<FrameLimit>) -> Self {
        Limited { inner, limit, frame: Frame::Count { got: 0, bytes: [0; 4] } }
    }

    /// Advances the framing over `data`; an error if a table breaks the limit.
    fn scan(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match &mut self.frame {
                Frame::Body { left } => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.frame = Frame::Count { got: 0, bytes: [0; 4] };
                    }
                }
                Frame::Count { got, bytes } => {
                    bytes[*got] = data[0];
                    *got += 1;
                    data = &data[1..];
                    if *got == 4 {
                        let segments = u32::from_le_bytes(*bytes).wrapping_add(1);
                        if segments == 0 || segments > self.limit.max_segments.get() {
                            let max = self.limit.max_segments.get();
                            return Err(self.limit.refuse(format!("a message of {segments} segments (the limit is {max})")));
                        }
                        self.frame = Frame::Sizes { segments, index: 0, got: 0, bytes: [0; 4], words: 0 };
                    }
                }
                Frame::Sizes { segments, index, got, bytes, words } => {
                    bytes[*got] = data[0];
                    *got += 1;
                    data = &data[1..];
                    if *got == 4 {
                        *words += u32::from_le_bytes(*bytes) as u64;
                        let size = *words * 8;
                        if size > self.limit.max_bytes.get() {
                            let max = self.limit.max_bytes.get();
                            return Err(self.limit.refuse(format!("a message of {size} bytes (the limit is {max})")));
                        }
                        *index += 1;
                        *got = 0;
                        if *index == *segments {
                            // The table (count + sizes) is padded to a whole word.
                            let pad = if *segments % 2 == 0 { 4 } else { 0 };
                            let words = *words;
                            self.frame = if pad > 0 { Frame::Pad { left: pad, words } } else { body(words) };
                        }
                    }
                }
                Frame::Pad { left, words } => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.frame = body(*words);
                    }
                }
            }
        }
        Ok(())
    }
}

fn body(words: u64) -> Frame {
    if words == 0 {
        Frame::Count { got: 0, bytes: [0; 4] }
    } else {
        Frame::Body { left: words * 8 }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Limited<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let scanned = this.scan(&buf.filled()[before..]);
                match scanned {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(e) => {
                        buf.set_filled(before);
                        Poll::Ready(Err(e))
                    }
                }
            }
            other => other,
        }
    }
}

/// The reader options every connection uses: traversal bounded by the message
/// limit, nesting deep enough for [`MAX_DEPTH`] levels of values.
pub fn reader_options() -> capnp::message::ReaderOptions {
    let mut options = capnp::message::ReaderOptions::new();
    let words = (MAX_MESSAGE_BYTES as u64 + ENVELOPE_BYTES) / 8;
    // Traversal counts words read, and a message may be read more than once (RPC layer, then values).
    options.traversal_limit_in_words(Some(4 * words as usize));
    options.nesting_limit(NESTING_LIMIT);
    options
}

/// A map level of a value costs three levels of the reader's nesting count
/// (entry list, entry, value), a list level less; the RPC envelope a few more.
pub(crate) const NESTING_LIMIT: i32 = 3 * MAX_DEPTH as i32 + 16;

type Reader<S> = BufReader<Compat<Limited<ReadHalf<S>>>>;

/// A Cap'n Proto two-party network over a byte stream, for a trusted peer.
/// Must be called on a `tokio::task::LocalSet` (its writer's flusher runs there).
pub fn vat_network<S>(stream: S, side: Side) -> VatNetwork<Reader<S>>
where
    S: AsyncRead + AsyncWrite + 'static,
{
    vat_network_limited(stream, side, FrameLimit::trusted())
}

/// A Cap'n Proto two-party network whose incoming messages are bounded by `limit`.
pub fn vat_network_limited<S>(stream: S, side: Side, limit: Rc<FrameLimit>) -> VatNetwork<Reader<S>>
where
    S: AsyncRead + AsyncWrite + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    // Coalesced: capnp writes a message's table and segments separately and
    // flushes after each message; every message of one engine pass leaves in one write.
    let writer = Coalescing::new(writer.compat_write());
    let reader = Limited::new(reader, limit).compat();
    VatNetwork::new(BufReader::new(reader), writer, side, reader_options())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &capnp::message::Builder<capnp::message::HeapAllocator>) -> Vec<u8> {
        let mut out = Vec::new();
        capnp::serialize::write_message(&mut out, message).unwrap();
        out
    }

    #[test]
    fn real_messages_pass_byte_by_byte_and_whole() {
        let mut m = capnp::message::Builder::new_default();
        crate::value::write(&crate::Value::Text("x".repeat(1000)), m.init_root());
        let bytes = frame(&m);
        let mut both = bytes.clone();
        both.extend_from_slice(&bytes);
        let mut r = Limited::new((), FrameLimit::unauthenticated());
        r.scan(&both).unwrap();
        for b in &both {
            r.scan(std::slice::from_ref(b)).unwrap();
        }
        assert!(matches!(r.frame, Frame::Count { got: 0, .. }));
    }

    #[test]
    fn a_huge_segment_table_is_refused_before_any_body() {
        // One segment claiming 2^30 - 1 words: the pre-authentication memory bomb.
        let bomb = [0u8, 0, 0, 0, 0xff, 0xff, 0xff, 0x3f];
        let mut r = Limited::new((), FrameLimit::unauthenticated());
        let err = r.scan(&bomb).unwrap_err();
        assert!(err.to_string().contains("unauthenticated peer sent a message of 8589934584 bytes"), "{err}");
        let mut r = Limited::new((), FrameLimit::trusted());
        assert!(r.scan(&bomb).is_err());
        // Many segments.
        let mut r = Limited::new((), FrameLimit::unauthenticated());
        assert!(r.scan(&[100, 0, 0, 0]).unwrap_err().to_string().contains("101 segments"));
    }
}
