//! One write per engine pass: the writer under every Cap'n Proto connection.
//!
//! Cap'n Proto's write queue writes each outgoing message and flushes it before
//! it takes the next, so N calls sent in one pass of the engine cost N `write`
//! syscalls and wake the peer N times. [`Coalescing`] keeps what the queue
//! writes in a bounded buffer and answers its flush at once; a small task on
//! the same `LocalSet` (the flusher) writes the buffer out when it next runs.
//! A woken task runs after those already woken, so every message queued in the
//! same pass leaves in one write. A lone message waits only for that task
//! switch (well under a microsecond), never for a timer.
//!
//! Bounds and order: the buffer holds at most [`WRITE_BUFFER_BYTES`] bytes; past it
//! the writer waits for the flusher. A write of [`DIRECT_BYTES`] or more (a
//! large value's segment) goes straight to the stream, after what is buffered,
//! and is not copied. Only one side uses the stream at a time: the flusher
//! while a flush is in progress, the writer otherwise.
//!
//! Failure and the end: a failed write is kept and returned by the writer's
//! next write or flush, which ends the connection as an unbuffered write would.
//! When the connection drops its writer, what is still buffered is written as
//! far as the socket takes it at once, and the flusher keeps trying for at most
//! [`DRAIN_AFTER_CLOSE`]: a reply sent just before a worker exits still leaves.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::io::AsyncWrite;

/// The most bytes kept before the writer waits for them to be written.
pub const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// Writes this large skip the buffer (written in place, not copied).
const DIRECT_BYTES: usize = 32 * 1024;
/// How long what is left buffered when a connection closes may take to leave.
pub const DRAIN_AFTER_CLOSE: Duration = Duration::from_secs(5);

struct Shared<W> {
    stream: W,
    buf: Vec<u8>,
    /// How much of `buf` has been written.
    written: usize,
    /// The flusher owns the stream until the buffer and the stream are flushed.
    flushing: bool,
    /// Bytes went to the buffer or the stream since the last flush.
    dirty: bool,
    /// The first write error, returned to the writer (`io::Error` is not `Clone`).
    failed: Option<(io::ErrorKind, String)>,
    writer_waiting: Option<Waker>,
    flusher_waiting: Option<Waker>,
    writer_gone: bool,
}

impl<W: AsyncWrite + Unpin> Shared<W> {
    fn error(&self) -> Option<io::Error> {
        self.failed.as_ref().map(|(kind, what)| io::Error::new(*kind, what.clone()))
    }

    fn fail(&mut self, e: &io::Error) {
        self.failed.get_or_insert_with(|| (e.kind(), e.to_string()));
        self.flushing = false;
        self.buf = Vec::new();
        self.written = 0;
        if let Some(w) = self.writer_waiting.take() {
            w.wake();
        }
    }

    /// Writes the buffer out (the caller owns the stream).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.buf[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// The flusher's turn: everything buffered out, then the stream flushed.
    fn poll_flush_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Err(e) = futures::ready!(self.poll_drain(cx)) {
                return Poll::Ready(Err(e));
            }
            if let Err(e) = futures::ready!(Pin::new(&mut self.stream).poll_flush(cx)) {
                return Poll::Ready(Err(e));
            }
            // The writer may have added to the buffer while the stream flushed.
            if self.buf.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// The write side of a connection, batching what one engine pass sends.
pub struct Coalescing<W: AsyncWrite + Unpin> {
    shared: Rc<RefCell<Shared<W>>>,
}

impl<W: AsyncWrite + Unpin + 'static> Coalescing<W> {
    /// Wraps `stream` and starts its flusher on the current `LocalSet`.
    pub fn new(stream: W) -> Self {
        let shared = Rc::new(RefCell::new(Shared {
            stream,
            buf: Vec::new(),
            written: 0,
            flushing: false,
            dirty: false,
            failed: None,
            writer_waiting: None,
            flusher_waiting: None,
            writer_gone: false,
        }));
        tokio::task::spawn_local(Flusher { shared: shared.clone(), deadline: None });
        Coalescing { shared }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Coalescing<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.shared.borrow_mut();
        loop {
            if let Some(e) = s.error() {
                return Poll::Ready(Err(e));
            }
            let pending = s.buf.len() - s.written;
            if s.flushing {
                // The flusher has the stream: add to the buffer if there is room, else wait for it.
                if pending + data.len() <= WRITE_BUFFER_BYTES {
                    s.buf.extend_from_slice(data);
                    s.dirty = true;
                    return Poll::Ready(Ok(data.len()));
                }
                s.writer_waiting = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if data.len() < DIRECT_BYTES && pending + data.len() <= WRITE_BUFFER_BYTES {
                s.buf.extend_from_slice(data);
                s.dirty = true;
                return Poll::Ready(Ok(data.len()));
            }
            // Large, or the buffer is full: the writer has the stream; buffer first, then `data` in place.
            s.dirty = true;
            let s = &mut *s;
            let n = {
                let slices = [IoSlice::new(&s.buf[s.written..]), IoSlice::new(data)];
                match Pin::new(&mut s.stream).poll_write_vectored(cx, &slices) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => {
                        s.fail(&e);
                        return Poll::Ready(Err(e));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            };
            if n < pending {
                s.written += n;
                continue;
            }
            s.buf.clear();
            s.written = 0;
            if n > pending {
                return Poll::Ready(Ok(n - pending));
            }
            if data.len() < DIRECT_BYTES {
                continue; // the buffer is empty now: `data` fits in it
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.shared.borrow_mut();
        if let Some(e) = s.error() {
            return Poll::Ready(Err(e));
        }
        if s.dirty && !s.flushing {
            s.flushing = true;
            s.dirty = false;
            if let Some(w) = s.flusher_waiting.take() {
                w.wake();
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.shared.borrow_mut();
        if let Some(e) = s.error() {
            return Poll::Ready(Err(e));
        }
        if s.flushing {
            s.writer_waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Err(e) = futures::ready!(s.poll_flush_all(cx)) {
            s.fail(&e);
            return Poll::Ready(Err(e));
        }
        s.dirty = false;
        Pin::new(&mut s.stream).poll_close(cx)
    }
}

impl<W: AsyncWrite + Unpin> Drop for Coalescing<W> {
    fn drop(&mut self) {
        let mut s = self.shared.borrow_mut();
        s.writer_gone = true;
        if s.failed.is_none() && (s.dirty || s.flushing) {
            // Whatever the socket takes now (the process may exit next); the flusher tries for the rest.
            let mut cx = Context::from_waker(Waker::noop());
            match s.poll_flush_all(&mut cx) {
                Poll::Ready(Ok(())) => s.flushing = false,
                Poll::Ready(Err(e)) => s.fail(&e),
                Poll::Pending => s.flushing = true,
            }
        }
        // Woken even when it waits on the stream: the poll above took the stream's wake-up.
        if let Some(w) = s.flusher_waiting.take() {
            w.wake();
        }
    }
}

/// The task that writes the buffer out when the writer has flushed.
struct Flusher<W> {
    shared: Rc<RefCell<Shared<W>>>,
    /// Set when the writer is gone with bytes still buffered.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<W: AsyncWrite + Unpin> Future for Flusher<W> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut s = this.shared.borrow_mut();
        if s.writer_gone {
            if !s.flushing || s.failed.is_some() {
                return Poll::Ready(());
            }
            let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(DRAIN_AFTER_CLOSE)));
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        // Kept whether idle or waiting on the stream, so the writer's flush and drop can wake it.
        if !s.flushing {
            s.flusher_waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match s.poll_flush_all(cx) {
            Poll::Pending => {
                s.flusher_waiting = Some(cx.waker().clone());
                Poll::Pending
            }
            Poll::Ready(result) => {
                if let Err(e) = result {
                    s.fail(&e);
                    return Poll::Ready(());
                }
                s.flushing = false;
                if let Some(w) = s.writer_waiting.take() {
                    w.wake();
                }
                if s.writer_gone {
                    return Poll::Ready(());
                }
                s.flusher_waiting = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncWriteExt;
    use std::cell::Cell;

    /// A stream that records each write call (one entry per syscall it stands for).
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Rc<RefCell<Vec<Vec<u8>>>>,
        blocked: Rc<Cell<bool>>,
        broken: Rc<Cell<bool>>,
        waker: Rc<RefCell<Option<Waker>>>,
    }

    impl Recorder {
        fn bytes(&self) -> Vec<u8> {
            self.writes.borrow().concat()
        }
        fn unblock(&self) {
            self.blocked.set(false);
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(data)])
        }
        fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            if self.broken.get() {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if self.blocked.get() {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.writes.borrow_mut().push(all);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn run<F: Future<Output = ()>>(f: F) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async { tokio::time::timeout(Duration::from_secs(10), f).await.expect("hung") });
    }

    /// What capnp's write queue does per message: a table, a segment, a flush.
    async fn message(w: &mut Coalescing<Recorder>, body: &[u8]) {
        w.write_all(&[1, 0, 0, 0]).await.unwrap();
        w.write_all(body).await.unwrap();
        w.flush().await.unwrap();
    }

    #[test]
    fn messages_of_one_pass_leave_in_one_write() {
        run(async {
            let stream = Recorder::default();
            let mut w = Coalescing::new(stream.clone());
            for i in 0..10u8 {
                message(&mut w, &[i; 16]).await;
            }
            assert!(stream.writes.borrow().is_empty(), "nothing is written before the pass ends");
            tokio::task::yield_now().await;
            assert_eq!(stream.writes.borrow().len(), 1);
            let want: Vec<u8> = (0..10u8).flat_map(|i| [1, 0, 0, 0].into_iter().chain([i; 16])).collect();
            assert_eq!(stream.bytes(), want);
            // A lone message after it leaves on the next task switch, with no timer.
            message(&mut w, b"again").await;
            tokio::task::yield_now().await;
            assert_eq!(stream.writes.borrow().len(), 2);
        });
    }

    #[test]
    fn a_large_write_goes_in_place_after_what_is_buffered() {
        run(async {
            let stream = Recorder::default();
            let mut w = Coalescing::new(stream.clone());
            let big = vec![7u8; 100_000];
            message(&mut w, &big).await;
            // One vectored write: the table from the buffer, then the segment in place.
            assert_eq!(stream.writes.borrow().len(), 1);
            assert_eq!(stream.bytes().len(), 4 + big.len());
            assert_eq!(w.shared.borrow().buf.len(), 0);
        });
    }

    #[test]
    fn the_buffer_is_bounded_while_the_stream_is_blocked() {
        run(async {
            let stream = Recorder::default();
            stream.blocked.set(true);
            let mut w = Coalescing::new(stream.clone());
            let chunk = vec![3u8; 1000];
            let writer = async {
                for _ in 0..1000 {
                    message(&mut w, &chunk).await;
                    assert!(w.shared.borrow().buf.len() <= WRITE_BUFFER_BYTES + DIRECT_BYTES);
                }
            };
            let release = async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stream.unblock();
            };
            futures::join!(writer, release);
            w.close().await.unwrap();
            assert_eq!(stream.bytes().len(), 1000 * 1004);
        });
    }

    #[test]
    fn a_failed_write_is_returned_by_the_next_write() {
        run(async {
            let stream = Recorder::default();
            let mut w = Coalescing::new(stream.clone());
            stream.broken.set(true);
            message(&mut w, b"lost").await;
            tokio::task::yield_now().await;
            let err = w.write_all(b"next").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            assert_eq!(w.flush().await.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        });
    }

    #[test]
    fn what_is_buffered_when_the_writer_drops_still_leaves() {
        run(async {
            let stream = Recorder::default();
            let mut w = Coalescing::new(stream.clone());
            message(&mut w, b"last reply").await;
            drop(w);
            assert!(stream.bytes().ends_with(b"last reply"), "written at once on drop");
            // Blocked at the drop: the flusher finishes it when the stream opens.
            let blocked = Recorder::default();
            blocked.blocked.set(true);
            let mut w = Coalescing::new(blocked.clone());
            message(&mut w, b"later").await;
            drop(w);
            tokio::task::yield_now().await;
            blocked.unblock();
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert!(blocked.bytes().ends_with(b"later"));
        });
    }
}
