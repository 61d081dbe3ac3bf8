//! Worker output: each stdout/stderr line of a child goes to the host's own
//! stdout/stderr prefixed `[name:pid] ` (or inherited, ignored, or handed to a
//! callback), and the last stderr lines are kept for `SpawnError`.
//!
//! Output is bytes: it is read until the pipe closes, whatever it holds, and
//! decoded lossily (invalid UTF-8 becomes U+FFFD). A line longer than
//! [`MAX_LINE_BYTES`] is split. The engine never writes to the host's
//! stdout/stderr nor runs a callback itself: it queues the line for a writer
//! thread (one for the host's stdout, one for its stderr, and one per worker
//! instance whose output is a callback), each queue bounded by
//! [`OUTPUT_QUEUE_BYTES`]. When a queue is full (the host's stdout
//! is a pipe nobody drains, a callback is slow) the line is dropped and
//! counted in the process's metrics (`output_dropped`).

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest line forwarded whole; longer ones are split into pieces of at most this many bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// How many bytes of lines each writer thread's queue holds; past it lines are dropped and counted.
pub const OUTPUT_QUEUE_BYTES: usize = 4 << 20;
/// What a queued line costs beyond its text (allocations, queue slot), as counted against the bound.
const JOB_OVERHEAD: usize = 128;
const TAIL_LINES: usize = 40;
/// Longer stderr lines are cut in the tail kept for `SpawnError`.
const TAIL_LINE_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What happens to a worker's stdout and stderr.
#[derive(Clone, Default)]
pub enum Output {
    /// Line by line to the host's stdout/stderr, prefixed `[name:pid] `.
    #[default]
    Prefix,
    /// The child writes to the host's stdout/stderr directly (no stderr tail for errors).
    Inherit,
    Ignore,
    /// Called with (stream, worker name, pid, line), on a thread of its own
    /// (never the engine's), one line after another.
    Callback(Arc<dyn Fn(OutputStream, &str, u32, &str) + Send + Sync>),
}

/// The last stderr lines of one instance.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Rc<RefCell<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: &str) {
        let mut lines = self.0.borrow_mut();
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        let mut line = line.to_string();
        if line.len() > TAIL_LINE_BYTES {
            let mut cut = TAIL_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [...]");
        }
        lines.push_back(line);
    }

    pub(crate) fn text(&self) -> String {
        self.0.borrow().iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Lines of one process that could not be queued (cumulative across restarts).
#[derive(Clone, Default)]
pub(crate) struct Dropped(Rc<Cell<u64>>);

impl Dropped {
    pub(crate) fn get(&self) -> u64 {
        self.0.get()
    }

    fn add(&self, name: &str, pid: u32) {
        let n = self.0.get() + 1;
        self.0.set(n);
        // Say so on the first drop and then at 1024, 2^20, ..., not per line.
        if n.is_power_of_two() && n.trailing_zeros() % 10 == 0 {
            tracing::warn!(target: "titan_pm", "{n} output lines of {name}:{pid} dropped: the host's output is not keeping up");
        }
    }
}

/// Where the output lines of one instance go: its `Output`, and for a
/// callback, the queue of the thread that runs it (started on the first line,
/// ended when the instance's output has closed and the queue is empty).
pub(crate) struct Forwarder {
    output: Output,
    callbacks: OnceCell<Option<Arc<Queue>>>,
    tracker: Tracker,
}

impl Forwarder {
    pub(crate) fn new(output: Output, tracker: &Tracker) -> Rc<Self> {
        tracker.readers.set(tracker.readers.get() + 1);
        Rc::new(Forwarder { output, callbacks: OnceCell::new(), tracker: tracker.clone() })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.tracker.readers.set(self.tracker.readers.get() - 1);
        if let Some(Some(q)) = self.callbacks.get() {
            q.close();
        }
    }
}

/// One engine's output in progress: instances whose pipes are still being
/// read, and lines queued but not yet written (or called back).
#[derive(Clone, Default)]
pub(crate) struct Tracker {
    readers: Rc<Cell<usize>>,
    queued: Arc<AtomicUsize>,
}

impl Tracker {
    /// Waits until the output read so far has been written, or `deadline`
    /// (so that lines printed just before a shutdown are not lost).
    pub(crate) async fn flushed_by(&self, deadline: std::time::Instant) {
        while (self.readers.get() > 0 || self.queued.load(Ordering::Acquire) > 0) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// Reads `stream` until it closes, forwarding each line.
pub(crate) async fn forward(
    mut stream: impl AsyncRead + Unpin,
    which: OutputStream,
    forwarder: Rc<Forwarder>,
    name: Rc<RefCell<String>>,
    pid: u32,
    tail: StderrTail,
    dropped: Dropped,
    logs: Rc<super::logs::LogRing>,
) {
    let mut splitter = Lines::default();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut emit = |bytes: &[u8]| {
        let line = String::from_utf8_lossy(bytes);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if which == OutputStream::Stderr {
            tail.push(line);
        }
        let name = name.borrow();
        logs.push(which, &name, pid, line); // the `titan-pm logs` ring: one call per line
        let queued = match &forwarder.output {
            Output::Prefix => {
                let text = format!("[{name}:{pid}] {line}\n");
                let queue = if which == OutputStream::Stdout { &STDOUT } else { &STDERR };
                match queue.get_or_init(|| Queue::start(Target::Stdio(which))) {
                    Some(q) => q.submit(text.len() + JOB_OVERHEAD, Job::Write(text), &forwarder.tracker.queued),
                    None => false,
                }
            }
            Output::Callback(f) => match forwarder.callbacks.get_or_init(|| Queue::start(Target::Callback)) {
                Some(q) => {
                    let job = Job::Call(f.clone(), which, name.clone(), pid, line.to_string());
                    q.submit(line.len() + name.len() + JOB_OVERHEAD, job, &forwarder.tracker.queued)
                }
                None => false,
            },
            Output::Inherit | Output::Ignore => true,
        };
        if !queued {
            dropped.add(&name, pid);
        }
    };
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(target: "titan_pm", "reading the output of {}:{pid} failed: {e}", name.borrow());
                break;
            }
        };
        splitter.feed(&chunk[..n], &mut emit);
        // A flood of short lines is work for the engine: let calls through between chunks.
        tokio::task::yield_now().await;
    }
    splitter.finish(&mut emit);
}

/// Splits bytes into lines of at most [`MAX_LINE_BYTES`], holding no more than that.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_LINE_BYTES - self.pending.len();
            let take = data.len().min(room);
            match data[..take].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&data[..i]);
                    emit(&self.pending);
                    self.pending.clear();
                    data = &data[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.pending.len() == MAX_LINE_BYTES {
                        self.split(emit);
                    }
                }
            }
        }
    }

    /// Emits a full piece, keeping a UTF-8 character cut at its end for the next one.
    fn split(&mut self, emit: &mut impl FnMut(&[u8])) {
        let cut = match std::str::from_utf8(&self.pending) {
            Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > self.pending.len() => e.valid_up_to(),
            _ => self.pending.len(),
        };
        emit(&self.pending[..cut]);
        self.pending.drain(..cut);
    }

    fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// A unit of work for a writer thread.
enum Job {
    Write(String),
    Call(Arc<dyn Fn(OutputStream, &str, u32, &str) + Send + Sync>, OutputStream, String, u32, String),
}

/// The host's stdout and stderr writers, shared by every worker (lines must not interleave).
static STDOUT: OnceLock<Option<Arc<Queue>>> = OnceLock::new();
static STDERR: OnceLock<Option<Arc<Queue>>> = OnceLock::new();

#[derive(Clone, Copy)]
enum Target {
    Stdio(OutputStream),
    Callback,
}

/// A queue bounded by [`OUTPUT_QUEUE_BYTES`] and the thread that empties it.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    /// Each job with its size and the count of its engine's queued lines.
    jobs: VecDeque<(usize, Job, Arc<AtomicUsize>)>,
    bytes: usize,
    /// No more jobs will come: the thread ends once the queue is empty.
    closed: bool,
}

impl Queue {
    /// Queues `job` (counted as `bytes`), or returns false when the queue is full.
    fn submit(&self, bytes: usize, job: Job, queued: &Arc<AtomicUsize>) -> bool {
        let Ok(mut state) = self.state.lock() else { return false };
        if state.bytes + bytes > OUTPUT_QUEUE_BYTES && !state.jobs.is_empty() {
            return false;
        }
        state.bytes += bytes;
        queued.fetch_add(1, Ordering::AcqRel);
        state.jobs.push_back((bytes, job, queued.clone()));
        self.ready.notify_one();
        true
    }

    fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
            self.ready.notify_one();
        }
    }

    /// The next job; `None` once closed and empty.
    fn next(&self) -> Option<(usize, Job, Arc<AtomicUsize>)> {
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(item) = state.jobs.pop_front() {
                return Some(item);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).ok()?;
        }
    }

    /// Starts the thread; `None` (and every line dropped, counted) if it cannot start.
    fn start(target: Target) -> Option<Arc<Queue>> {
        let queue = Arc::new(Queue { state: Mutex::default(), ready: Condvar::new() });
        let q = queue.clone();
        let name = match target {
            Target::Stdio(OutputStream::Stdout) => "titan-pm-stdout",
            Target::Stdio(OutputStream::Stderr) => "titan-pm-stderr",
            Target::Callback => "titan-pm-output",
        };
        let started = std::thread::Builder::new().name(name.into()).spawn(move || {
            while let Some((bytes, job, queued)) = q.next() {
                match job {
                    Job::Write(text) => {
                        let _ = match target {
                            Target::Stdio(OutputStream::Stderr) => std::io::stderr().lock().write_all(text.as_bytes()),
                            _ => std::io::stdout().lock().write_all(text.as_bytes()),
                        };
                    }
                    Job::Call(f, which, name, pid, line) => {
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| f(which, &name, pid, &line)));
                    }
                }
                if let Ok(mut state) = q.state.lock() {
                    state.bytes -= bytes;
                }
                queued.fetch_sub(1, Ordering::AcqRel);
            }
        });
        match started {
            Ok(_) => Some(queue),
            Err(e) => {
                tracing::warn!(target: "titan_pm", "cannot start the {name} thread ({e}); worker output is dropped");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut lines = Lines::default();
        for chunk in input {
            lines.feed(chunk, &mut |l: &[u8]| out.push(l.to_vec()));
        }
        lines.finish(&mut |l: &[u8]| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_split_on_newlines_and_at_the_limit() {
        assert_eq!(split(&[b"a\nb", b"c\n\nd"]), vec![b"a".to_vec(), b"bc".to_vec(), b"".to_vec(), b"d".to_vec()]);
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 5];
        let pieces = split(&[&long, b"\n"]);
        assert_eq!(pieces.iter().map(Vec::len).collect::<Vec<_>>(), vec![MAX_LINE_BYTES, MAX_LINE_BYTES, 5]);
    }

    #[test]
    fn a_split_never_cuts_a_character() {
        let mut text = vec![b'x'; MAX_LINE_BYTES - 1];
        text.extend_from_slice("é".as_bytes()); // straddles the limit
        text.extend_from_slice(b"yz");
        let pieces = split(&[&text]);
        assert_eq!(pieces[0].len(), MAX_LINE_BYTES - 1);
        assert_eq!(pieces[1], "éyz".as_bytes());
        assert!(pieces.iter().all(|p| std::str::from_utf8(p).is_ok()));
    }
}
