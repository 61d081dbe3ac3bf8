//! The one error type every front end maps from.
//!
//! Each variant is an error kind of the brief (§4 "Errors"); its doc says what a
//! caller does about it. [`Error::kind`] groups them the way retries and circuit
//! breakers read them: a `Disconnected` call may be retried elsewhere, an
//! `Overloaded` one later, a `Failed` one not at all.
//!
//! ```
//! use titan_pm::{Error, ErrorKind};
//! let e = Error::CallTimeout { method: "add".into(), timeout_ms: 50 };
//! assert_eq!(e.kind(), ErrorKind::Overloaded);
//! assert_eq!(e.to_string(), "call to add timed out after 50 ms");
//! ```

use crate::state::ProcessState;

/// How a caller should respond to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself failed; retrying the same request fails again.
    Failed,
    /// Too much load or too little time; retry later or with a longer deadline.
    Overloaded,
    /// The worker went away; the call may be retried on another instance.
    Disconnected,
    /// The thing asked for does not exist.
    Unimplemented,
    /// The process or manager is stopped or failed; calls fail fast.
    ShutDown,
}

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The method raised. Front ends re-raise it with the remote type and stack.
    #[error("{remote_type}: {message}")]
    Remote { remote_type: String, message: String, remote_traceback: String, code: Option<String> },

    /// The worker died with the call in flight. Safe to retry only if the call is idempotent.
    #[error("process {process_id} crashed with the call in flight ({})", describe_exit(*.exit_code, *.signal))]
    ProcessCrashed { process_id: u64, exit_code: Option<i32>, signal: Option<i32> },

    /// The process is failed (restart budget spent), killed or stopped: calls fail fast.
    #[error("process {process_id} is {state}")]
    ProcessFailed { process_id: u64, state: ProcessState },

    /// The deadline passed; the worker was told to cancel the call.
    #[error("call to {method} timed out after {timeout_ms} ms")]
    CallTimeout { method: String, timeout_ms: u64 },

    /// No public method of that name; `available` lists the ones there are.
    #[error("no public method {method:?} (available: {})", available.join(", "))]
    MethodNotFound { method: String, available: Vec<String> },

    /// A value could not be encoded or decoded; `path` names where (`args[1]["items"][3]`).
    #[error("cannot serialize {path}: {message}")]
    Serialization { path: String, message: String },

    /// The worker could not be started; `stderr_tail` holds its last stderr lines.
    #[error("cannot spawn {target}: {reason}{}", tail_suffix(stderr_tail))]
    Spawn { target: String, reason: String, stderr_tail: String },

    /// A pool's queue is full: back off.
    #[error("pool queue is full ({queue_size} calls waiting)")]
    PoolBackpressure { queue_size: usize },

    /// A circuit breaker is open: calls are refused until it half-opens.
    #[error("circuit breaker is open")]
    CircuitOpen,

    /// An option or argument given to the manager is invalid; the message starts
    /// with the option's path (`autoScale.targetCPU: must be a number`). Fix the call.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// No process or pool has that id (killed and forgotten, or never there).
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: u64 },

    /// The operating system refused something (a socket, a file, a thread).
    #[error("{context}: {message}")]
    Io { context: String, message: String },

    /// The other side refused us (a host refusing a worker's registration, a
    /// worker that cannot reach its host).
    #[error("refused: {0}")]
    Refused(String),

    /// The caller cancelled the operation (dropped it, or an abort signal fired).
    #[error("cancelled")]
    Cancelled,

    /// The manager was shut down.
    #[error("the process manager is shut down")]
    ManagerShutDown,

    /// A workflow stage failed after its retries: the run's other stages were
    /// cancelled and the compensations ran. `cause` is the stage's own error
    /// (its `kind()` says timeout, remote error or crash); `compensations` says
    /// how each compensation ended. The run is finished: running it again with
    /// the same run id returns this error without running anything.
    #[error("workflow {workflow} failed at stage {stage:?} (run {run_id}): {cause}{}", describe_compensations(compensations))]
    Workflow {
        workflow: String,
        run_id: String,
        stage: String,
        cause: Box<Error>,
        compensations: Vec<CompensationOutcome>,
    },

    /// A method's rate limit refused the call (it did not run): retry after `retry_after_ms`.
    #[error("rate limit exceeded: retry after {retry_after_ms} ms")]
    RateLimit { retry_after_ms: u64 },

    /// The arguments failed the method's validation (it did not run): each failing
    /// path (a JSON pointer, `""` for the whole argument) and why.
    #[error("validation failed: {}", failures.iter().map(|(p, m)| format!("{}: {m}", if p.is_empty() { "/" } else { p })).collect::<Vec<_>>().join("; "))]
    Validation { failures: Vec<(String, String)> },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Remote { .. }
            | Error::Serialization { .. }
            | Error::Spawn { .. }
            | Error::Config(_)
            | Error::Io { .. }
            | Error::Refused(_)
            | Error::Validation { .. }
            | Error::Cancelled => ErrorKind::Failed,
            Error::RateLimit { .. } => ErrorKind::Overloaded,
            Error::NotFound { .. } => ErrorKind::Unimplemented,
            Error::CallTimeout { .. } | Error::PoolBackpressure { .. } | Error::CircuitOpen => ErrorKind::Overloaded,
            Error::ProcessCrashed { .. } => ErrorKind::Disconnected,
            Error::MethodNotFound { .. } => ErrorKind::Unimplemented,
            Error::ProcessFailed { .. } | Error::ManagerShutDown => ErrorKind::ShutDown,
            Error::Workflow { .. } => ErrorKind::Failed,
        }
    }

    /// The brief's name for this error kind, as front ends name their classes.
    pub fn class_name(&self) -> &'static str {
        match self {
            Error::Remote { .. } => "RemoteError",
            Error::ProcessCrashed { .. } => "ProcessCrashedError",
            Error::ProcessFailed { .. } => "ProcessFailedError",
            Error::CallTimeout { .. } => "CallTimeoutError",
            Error::MethodNotFound { .. } => "MethodNotFoundError",
            Error::Serialization { .. } => "SerializationError",
            Error::Spawn { .. } => "SpawnError",
            Error::PoolBackpressure { .. } => "PoolBackpressureError",
            Error::CircuitOpen => "CircuitOpenError",
            Error::Config(_) | Error::NotFound { .. } | Error::Io { .. } | Error::Refused(_) => "ConfigError",
            Error::Cancelled => "CancelledError",
            Error::ManagerShutDown => "ProcessFailedError",
            Error::Workflow { .. } => "WorkflowError",
            Error::RateLimit { .. } => "RateLimitError",
            Error::Validation { .. } => "ValidationError",
        }
    }

    pub(crate) fn io(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Io { context: context.into(), message: e.to_string() }
    }

    pub(crate) fn spawn(target: &str, reason: impl Into<String>) -> Error {
        Error::Spawn { target: target.to_string(), reason: reason.into(), stderr_tail: String::new() }
    }
}

/// How one compensation of a failed workflow run ended (part of [`Error::Workflow`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CompensationOutcome {
    /// The stage it undid.
    pub stage: String,
    pub method: String,
    pub attempts: u32,
    /// `None`: it succeeded; else the last attempt's error (`Class: message`).
    pub error: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// "exit code 3", "signal 9", "disconnected, exit status unknown".
pub fn describe_exit(exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (exit_code, signal) {
        (_, Some(s)) => format!("signal {s}"),
        (Some(c), None) => format!("exit code {c}"),
        // A remote worker's connection closed (or no status could be read).
        (None, None) => "disconnected, exit status unknown".to_string(),
    }
}

fn describe_compensations(c: &[CompensationOutcome]) -> String {
    if c.is_empty() {
        return String::new();
    }
    let each: Vec<String> = c.iter().map(|o| format!("{} {}", o.method, if o.error.is_none() { "ok" } else { "failed" })).collect();
    format!("; compensations: {}", each.join(", "))
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- worker stderr ---\n{}", tail.trim_end())
    }
}
