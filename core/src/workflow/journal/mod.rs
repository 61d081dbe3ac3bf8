//! The journal: where a run's progress is written before it is acknowledged,
//! so that a run survives its host. A backend implements [`Journal`], one file
//! each: [`SqliteJournal`] (a file, the durable default), [`PostgresJournal`]
//! (a `postgres://` URL: several hosts sharing runs) and [`MemoryJournal`]
//! (`:memory:`: this process only, the last [`MEMORY_FINISHED_RUNS`] finished
//! runs). [`open`] picks one from the manager's `workflows.journal`.
//!
//! A run is a row (id, workflow, input, state, outcome, lease) and an
//! append-only list of [`Entry`]s. Every write names the lease owner and is
//! refused once another owner holds the lease: two hosts never both write one
//! run. A lease that is not renewed expires, and the next `claim` resumes the run.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use titan_pm::workflow::journal::{Claim, Entry, Journal, MemoryJournal, RunState};
//! use titan_pm::Value;
//! let j = MemoryJournal::default();
//! let lease = Duration::from_secs(5);
//! assert!(matches!(j.claim("r1", "order", &Value::Null, "host-a", lease).await.unwrap(), Claim::Started));
//! assert!(matches!(j.claim("r1", "order", &Value::Null, "host-b", lease).await.unwrap(), Claim::Busy { .. }));
//! j.append("r1", "host-a", Entry::StageStarted { stage: "a".into(), attempt: 1 }).await.unwrap();
//! assert!(j.append("r1", "host-b", Entry::StageStarted { stage: "a".into(), attempt: 1 }).await.is_err());
//! j.finish("r1", "host-a", RunState::Completed, Value::Int(1)).await.unwrap();
//! let Claim::Finished(run) = j.claim("r1", "order", &Value::Null, "host-b", lease).await.unwrap() else { panic!() };
//! assert_eq!(run.outcome, Value::Int(1));
//! # });
//! ```

mod memory;
mod postgres;
mod sqlite;

use std::time::Duration;

use futures::future::BoxFuture;

pub use memory::{MemoryJournal, MEMORY_FINISHED_RUNS};
pub use postgres::{is_postgres_url, PostgresJournal};
pub use sqlite::SqliteJournal;

use crate::error::{Error, Result};
use crate::value::Value;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Stages are running (or were, when its host died).
    Running,
    /// A stage failed; compensations are running (or were).
    Compensating,
    /// Every stage completed; the outcome is the result map.
    Completed,
    /// A stage failed and the compensations ran; the outcome is the error.
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Compensating => "compensating",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "running" => RunState::Running,
            "compensating" => RunState::Compensating,
            "completed" => RunState::Completed,
            "failed" => RunState::Failed,
            other => return Err(Error::Config(format!("journal: unknown run state {other:?}"))),
        })
    }

    pub fn finished(self) -> bool {
        matches!(self, RunState::Completed | RunState::Failed)
    }
}

/// One step of a run, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    StageStarted { stage: String, attempt: u32 },
    StageCompleted { stage: String, attempt: u32, result: Value },
    /// One attempt failed (`error` as [`super::error_to_value`] writes it).
    StageFailed { stage: String, attempt: u32, error: Value },
    /// `stage` failed for good: the run now compensates.
    Compensating { stage: String, error: Value },
    CompensationStarted { stage: String, attempt: u32 },
    CompensationCompleted { stage: String, attempt: u32 },
    /// The compensation failed after its retries; recorded, and the next one runs.
    CompensationFailed { stage: String, attempt: u32, error: Value },
}

impl Entry {
    /// `(kind, stage, attempt, value)`: how a backend stores it.
    pub fn to_row(&self) -> (&'static str, &str, u32, Value) {
        match self {
            Entry::StageStarted { stage, attempt } => ("stage:started", stage, *attempt, Value::Null),
            Entry::StageCompleted { stage, attempt, result } => ("stage:completed", stage, *attempt, result.clone()),
            Entry::StageFailed { stage, attempt, error } => ("stage:failed", stage, *attempt, error.clone()),
            Entry::Compensating { stage, error } => ("compensating", stage, 0, error.clone()),
            Entry::CompensationStarted { stage, attempt } => ("compensation:started", stage, *attempt, Value::Null),
            Entry::CompensationCompleted { stage, attempt } => ("compensation:completed", stage, *attempt, Value::Null),
            Entry::CompensationFailed { stage, attempt, error } => ("compensation:failed", stage, *attempt, error.clone()),
        }
    }

    pub fn from_row(kind: &str, stage: String, attempt: u32, value: Value) -> Result<Self> {
        Ok(match kind {
            "stage:started" => Entry::StageStarted { stage, attempt },
            "stage:completed" => Entry::StageCompleted { stage, attempt, result: value },
            "stage:failed" => Entry::StageFailed { stage, attempt, error: value },
            "compensating" => Entry::Compensating { stage, error: value },
            "compensation:started" => Entry::CompensationStarted { stage, attempt },
            "compensation:completed" => Entry::CompensationCompleted { stage, attempt },
            "compensation:failed" => Entry::CompensationFailed { stage, attempt, error: value },
            other => return Err(Error::Config(format!("journal: unknown entry kind {other:?}"))),
        })
    }
}

/// A run as the journal holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub workflow: String,
    pub input: Value,
    pub state: RunState,
    pub entries: Vec<Entry>,
    /// The result map (completed) or the error (failed); null before.
    pub outcome: Value,
}

/// What `claim` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// A new run: the caller holds its lease.
    Started,
    /// An unfinished run whose lease was free or expired: the caller holds it now and resumes.
    Resumed(RunRecord),
    /// A finished run: nothing to do but return its outcome.
    Finished(RunRecord),
    /// Another owner holds a live lease on it.
    Busy { owner: String, until_ms: u64 },
}

/// One row of `workflow_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub workflow: String,
    pub state: RunState,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Who runs it now (unfinished runs with a live lease).
    pub lease_owner: Option<String>,
}

/// A run summary as a report (`workflow_runs`, `titan-pm workflows`), in the caller's dialect.
impl crate::reports::Report for RunSummary {
    fn report(&self, d: crate::dialect::Dialect) -> Value {
        let f = |name: &str, v: Value| (d.name(name).into_owned(), v);
        Value::Map(vec![
            f("runId", Value::Text(self.run_id.clone())),
            f("workflow", Value::Text(self.workflow.clone())),
            f("state", Value::Text(self.state.as_str().into())),
            f("created", Value::Int(self.created_ms as i64)),
            f("updated", Value::Int(self.updated_ms as i64)),
            f("leaseOwner", self.lease_owner.clone().map(Value::Text).unwrap_or(Value::Null)),
        ])
    }
}

/// A stored run's row as a backend reads it in `claim` (values still encoded).
pub(crate) struct StoredRun {
    pub workflow: String,
    pub state: String,
    pub input: Vec<u8>,
    pub outcome: Option<Vec<u8>>,
    pub lease_owner: Option<String>,
    pub lease_until_ms: i64,
}

/// What `claim` does with a run that exists: the lease rule, decided here for every backend.
pub(crate) enum ClaimStep {
    /// Another owner holds a live lease: answer this.
    Busy(Claim),
    /// Unfinished, and the lease is free, expired or the caller's: take it, then read the run.
    TakeLease(RunState),
    /// Finished: read the run, take nothing.
    Read(RunState),
}

impl StoredRun {
    pub(crate) fn step(&self, run_id: &str, workflow: &str, owner: &str, now_ms: u64) -> Result<ClaimStep> {
        if self.workflow != workflow {
            return Err(Error::Config(format!("run id {run_id:?} belongs to workflow {}, not {workflow}", self.workflow)));
        }
        let state = RunState::parse(&self.state)?;
        if state.finished() {
            return Ok(ClaimStep::Read(state));
        }
        match &self.lease_owner {
            Some(other) if other != owner && self.lease_until_ms > now_ms as i64 => {
                Ok(ClaimStep::Busy(Claim::Busy { owner: other.clone(), until_ms: self.lease_until_ms as u64 }))
            }
            _ => Ok(ClaimStep::TakeLease(state)),
        }
    }

    /// The claim's answer once the entries are read: `Finished` or `Resumed` with the run.
    pub(crate) fn into_claim(self, run_id: &str, state: RunState, entries: Vec<Entry>) -> Result<Claim> {
        let input = decode(&self.input)?;
        let outcome = self.outcome.as_deref().map(decode).transpose()?.unwrap_or(Value::Null);
        let record = RunRecord { run_id: run_id.into(), workflow: self.workflow, input, state, entries, outcome };
        Ok(if state.finished() { Claim::Finished(record) } else { Claim::Resumed(record) })
    }
}

/// An entry from its stored row.
pub(crate) fn entry_from_row(kind: &str, stage: String, attempt: i64, value: &[u8]) -> Result<Entry> {
    decode(value).and_then(|v| Entry::from_row(kind, stage, attempt as u32, v))
}

/// A run store. Every method is one atomic step; writes check the lease owner.
pub trait Journal: Send + Sync + 'static {
    /// Takes the run's lease for `lease`: creates the run, resumes an unfinished one
    /// whose lease is free or expired, or reports it finished or busy. A run id
    /// already used by another workflow is an error.
    fn claim<'a>(&'a self, run_id: &'a str, workflow: &'a str, input: &'a Value, owner: &'a str, lease: Duration) -> BoxFuture<'a, Result<Claim>>;
    /// Extends `owner`'s lease; an error once the lease is lost.
    fn renew<'a>(&'a self, run_id: &'a str, owner: &'a str, lease: Duration) -> BoxFuture<'a, Result<()>>;
    /// Appends `entry`; durable when it returns. An error if `owner` no longer holds the lease.
    fn append<'a>(&'a self, run_id: &'a str, owner: &'a str, entry: Entry) -> BoxFuture<'a, Result<()>>;
    /// Ends the run (`Completed` or `Failed`) with its outcome and frees the lease.
    fn finish<'a>(&'a self, run_id: &'a str, owner: &'a str, state: RunState, outcome: Value) -> BoxFuture<'a, Result<()>>;
    /// The newest `limit` runs, newest first.
    fn runs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RunSummary>>>;
}

/// The journal `workflows.journal` names: a `postgres://` (or `postgresql://`)
/// URL, a SQLite file path, or none (`:memory:`).
pub fn open(journal: Option<&str>) -> Result<std::sync::Arc<dyn Journal>> {
    Ok(match journal {
        Some(url) if is_postgres_url(url) => std::sync::Arc::new(PostgresJournal::new(url)?),
        Some(path) => std::sync::Arc::new(SqliteJournal::open(path)?),
        None => std::sync::Arc::new(MemoryJournal::default()),
    })
}

pub(crate) fn now_ms() -> u64 {
    crate::protocol::now_ms()
}

pub(crate) fn lease_lost(run_id: &str) -> Error {
    Error::Refused(format!("run {run_id}: this host no longer holds its lease (another host took the run over)"))
}

/// A value as bytes (the wire's own encoding, so every value round-trips).
pub fn encode(v: &Value) -> Vec<u8> {
    let mut m = capnp::message::Builder::new_default();
    crate::value::write(v, m.init_root());
    capnp::serialize::write_message_to_words(&m)
}

pub fn decode(bytes: &[u8]) -> Result<Value> {
    let opts = capnp::message::ReaderOptions { traversal_limit_in_words: None, nesting_limit: 128 };
    let m = capnp::serialize::read_message_from_flat_slice(&mut &bytes[..], opts)
        .map_err(|e| Error::Serialization { path: "journal".into(), message: e.to_string() })?;
    let root = m.get_root::<crate::titan_capnp::value::Reader<'_>>()
        .map_err(|e| Error::Serialization { path: "journal".into(), message: e.to_string() })?;
    crate::value::read(root, "journal")
}
