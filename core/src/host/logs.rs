//! The host's per-process log ring: the last [`LOG_LINES`] lines each worker
//! wrote on stdout/stderr (each cut at [`LOG_LINE_BYTES`]), kept whatever the
//! `output` mode (except `inherit`, where the host never sees the lines), for
//! `titan-pm logs`. Followers get new lines through one bounded broadcast
//! channel per manager; a follower that falls more than [`LOG_FOLLOW_BUFFER`]
//! lines behind skips the oldest and is told how many it missed.
//!
//! The output forwarder makes one call per line: [`LogRing::push`].

use std::cell::RefCell;
use std::collections::VecDeque;

use tokio::sync::broadcast;

use super::OutputStream;

/// Lines kept per process.
pub const LOG_LINES: usize = 1000;
/// Longer lines are cut (on a char boundary) and end with `…`.
pub const LOG_LINE_BYTES: usize = 4096;
/// Lines a `--follow` reader may fall behind before it skips.
pub const LOG_FOLLOW_BUFFER: usize = 4096;

/// One line a worker wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub process_id: u64,
    pub name: String,
    pub pid: u32,
    pub stream: OutputStream,
    pub line: String,
    /// Milliseconds since the epoch.
    pub timestamp_ms: u64,
}

/// A line as the ring keeps it: past [`LOG_LINE_BYTES`], cut on a char boundary and ended with `…`
/// (also what a bridge queues for the ring, so a queue of lines is bounded in bytes too).
pub fn cut(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= LOG_LINE_BYTES {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut end = LOG_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &line[..end]))
}

/// The ring of one process (shared by its instances, so lines survive restarts).
pub(crate) struct LogRing {
    process_id: u64,
    lines: RefCell<VecDeque<LogLine>>,
    live: broadcast::Sender<LogLine>,
}

impl LogRing {
    pub(crate) fn new(process_id: u64, live: broadcast::Sender<LogLine>) -> Self {
        LogRing { process_id, lines: RefCell::default(), live }
    }

    /// Keeps a line (evicting the oldest past [`LOG_LINES`]) and hands it to followers.
    pub(crate) fn push(&self, stream: OutputStream, name: &str, pid: u32, line: &str) {
        let line = cut(line).into_owned();
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let entry = LogLine { process_id: self.process_id, name: name.to_string(), pid, stream, line, timestamp_ms };
        let mut lines = self.lines.borrow_mut();
        if lines.len() >= LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(entry.clone());
        let _ = self.live.send(entry); // no follower: nothing to do
    }

    /// The last `n` lines (all kept ones for `0`), oldest first.
    pub(crate) fn tail(&self, n: usize) -> Vec<LogLine> {
        let lines = self.lines.borrow();
        let skip = if n == 0 { 0 } else { lines.len().saturating_sub(n) };
        lines.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_cuts_long_ones() {
        let (tx, mut rx) = broadcast::channel(4);
        let ring = LogRing::new(7, tx);
        for i in 0..LOG_LINES + 5 {
            ring.push(OutputStream::Stdout, "w", 1, &format!("line {i}"));
        }
        let all = ring.tail(0);
        assert_eq!(all.len(), LOG_LINES);
        assert_eq!(all[0].line, "line 5");
        assert_eq!(ring.tail(2).iter().map(|l| l.line.as_str()).collect::<Vec<_>>(), ["line 1003", "line 1004"]);
        ring.push(OutputStream::Stderr, "w", 1, &"é".repeat(LOG_LINE_BYTES));
        let last = ring.tail(1).remove(0);
        assert!(last.line.len() <= LOG_LINE_BYTES + '…'.len_utf8() && last.line.ends_with('…'));
        assert_eq!(last.process_id, 7);
        // The follower lagged (capacity 4): it is told, then reads the newest.
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(_))));
    }
}
