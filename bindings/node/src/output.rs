//! Worker output lines on their way to a JS output callback (`output: fn`).
//!
//! The core hands each line over on its engine thread; the line waits in the
//! host's threadsafe-function queue until the JS thread is free. That wait is
//! bounded: at most [`MAX_QUEUED_LINES`] lines and [`MAX_QUEUED_BYTES`] bytes of
//! lines wait at once in this process. A line past the bound is dropped and
//! counted, never blocking the engine; the count reaches JS as the manager's
//! `output:dropped` event (`{ dropped }`, lines dropped since the last such
//! event), sent once the JS thread takes its messages again.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use titan_pm::host::OutputStream;
use titan_pm::Output;

use crate::host::HostMsg;
use crate::tsfn::Tsfn;

/// Lines waiting for the JS thread, at most (all output callbacks of the process).
pub const MAX_QUEUED_LINES: usize = 10_000;
/// Bytes of lines waiting for the JS thread, at most.
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

static QUEUED_LINES: AtomicUsize = AtomicUsize::new(0);
static QUEUED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A queued line's share of the bound, given back when the line is delivered or dropped.
pub struct Ticket {
    bytes: usize,
}

impl Ticket {
    /// A share for a line of `bytes`, if the bound has room (one line always fits an empty queue).
    fn take(bytes: usize) -> Option<Ticket> {
        let lines = QUEUED_LINES.fetch_add(1, Ordering::AcqRel);
        let queued = QUEUED_BYTES.fetch_add(bytes, Ordering::AcqRel);
        let ticket = Ticket { bytes };
        if lines > 0 && (lines >= MAX_QUEUED_LINES || queued + bytes > MAX_QUEUED_BYTES) {
            return None; // dropping the ticket gives the share back
        }
        Some(ticket)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        QUEUED_LINES.fetch_sub(1, Ordering::AcqRel);
        QUEUED_BYTES.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Lines one output callback lost, and whether a notice about them is queued.
#[derive(Default)]
pub struct Drops {
    count: AtomicU64,
    notice_queued: AtomicBool,
}

impl Drops {
    /// On the JS thread: the lines dropped since the last notice (0: nothing to say).
    pub fn take(&self) -> u64 {
        self.notice_queued.store(false, Ordering::Release);
        self.count.swap(0, Ordering::AcqRel)
    }
}

/// The core's `Output` for the JS callback numbered `callback`.
pub fn to_callback(tsfn: Arc<Tsfn<HostMsg>>, callback: u64) -> Output {
    let drops = Arc::new(Drops::default());
    Output::Callback(Arc::new(move |stream, name, pid, line| {
        let Some(ticket) = Ticket::take(name.len() + line.len()) else {
            drops.count.fetch_add(1, Ordering::AcqRel);
            // At most one notice waits in the queue per callback.
            if !drops.notice_queued.swap(true, Ordering::AcqRel) {
                tsfn.send(HostMsg::OutputDropped { callback, drops: drops.clone() });
            }
            return;
        };
        let stream = if stream == OutputStream::Stdout { "stdout" } else { "stderr" };
        tsfn.send(HostMsg::Output { callback, stream, name: name.into(), pid, line: line.into(), ticket });
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_in_lines_and_bytes() {
        let held: Vec<Ticket> = (0..MAX_QUEUED_LINES).map_while(|_| Ticket::take(10)).collect();
        assert_eq!(held.len(), MAX_QUEUED_LINES);
        assert!(Ticket::take(10).is_none(), "a line past the bound is refused");
        drop(held);
        assert!(Ticket::take(10).is_some(), "delivered lines give their share back");
        let big = Ticket::take(MAX_QUEUED_BYTES).expect("one line always fits an empty queue");
        assert!(Ticket::take(1).is_none(), "the bytes are bounded too");
        drop(big);
        assert_eq!(QUEUED_LINES.load(Ordering::Acquire), 0);
        assert_eq!(QUEUED_BYTES.load(Ordering::Acquire), 0);
    }
}
