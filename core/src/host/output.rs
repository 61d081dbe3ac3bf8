//! Worker output: each stdout/stderr line of a child goes to the host's own
//! stdout/stderr prefixed `[name:pid] ` (or inherited, ignored, or handed to a
//! callback), and the last stderr lines are kept for `SpawnError`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

const TAIL_LINES: usize = 40;

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
    /// Called with (stream, worker name, pid, line).
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
        lines.push_back(line.to_string());
    }

    pub(crate) fn text(&self) -> String {
        self.0.borrow().iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Reads `stream` line by line until it closes, forwarding each line.
pub(crate) async fn forward(
    stream: impl AsyncRead + Unpin,
    which: OutputStream,
    output: Output,
    name: Rc<RefCell<String>>,
    pid: u32,
    tail: StderrTail,
    logs: Rc<super::logs::LogRing>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if which == OutputStream::Stderr {
            tail.push(&line);
        }
        let name = name.borrow();
        logs.push(which, &name, pid, &line); // the `titan-pm logs` ring: one call per line
        match &output {
            Output::Prefix => {
                let _ = match which {
                    OutputStream::Stdout => writeln!(std::io::stdout().lock(), "[{name}:{pid}] {line}"),
                    OutputStream::Stderr => writeln!(std::io::stderr().lock(), "[{name}:{pid}] {line}"),
                };
            }
            Output::Callback(f) => f(which, &name[..], pid, &line),
            Output::Inherit | Output::Ignore => {}
        }
    }
}
