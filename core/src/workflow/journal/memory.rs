//! The in-memory journal (`workflows: { journal: ':memory:' }`, the default):
//! the same rules as the durable ones, for this process only. It keeps every
//! unfinished run and the last [`MEMORY_FINISHED_RUNS`] finished ones; an
//! older finished run is forgotten, and running its id again runs it again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{lease_lost, now_ms, Claim, Entry, Journal, RunRecord, RunState, RunSummary};
use crate::error::{Error, Result};
use crate::value::Value;

/// How many finished runs the in-memory journal remembers.
pub const MEMORY_FINISHED_RUNS: usize = 1024;

struct Run {
    record: RunRecord,
    lease_owner: Option<String>,
    lease_until: u64,
    created_ms: u64,
    updated_ms: u64,
    seq: u64,
}

#[derive(Default)]
struct Runs {
    by_id: HashMap<String, Run>,
    finished: VecDeque<String>,
    next_seq: u64,
}

/// Runs in this process's memory.
#[derive(Default)]
pub struct MemoryJournal {
    runs: Mutex<Runs>,
}

impl MemoryJournal {
    fn with<T>(&self, f: impl FnOnce(&mut Runs) -> Result<T>) -> Result<T> {
        f(&mut self.runs.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn owned<'a>(runs: &'a mut Runs, run_id: &str, owner: &str) -> Result<&'a mut Run> {
        match runs.by_id.get_mut(run_id) {
            Some(r) if r.lease_owner.as_deref() == Some(owner) => {
                r.updated_ms = now_ms();
                Ok(r)
            }
            _ => Err(lease_lost(run_id)),
        }
    }
}

impl Journal for MemoryJournal {
    fn claim<'a>(&'a self, run_id: &'a str, workflow: &'a str, input: &'a Value, owner: &'a str, lease: Duration) -> BoxFuture<'a, Result<Claim>> {
        Box::pin(async move {
            self.with(|runs| {
                let now = now_ms();
                let until = now + lease.as_millis() as u64;
                let seq = runs.next_seq;
                let Some(run) = runs.by_id.get_mut(run_id) else {
                    let record = RunRecord {
                        run_id: run_id.into(),
                        workflow: workflow.into(),
                        input: input.clone(),
                        state: RunState::Running,
                        entries: Vec::new(),
                        outcome: Value::Null,
                    };
                    let run = Run { record, lease_owner: Some(owner.into()), lease_until: until, created_ms: now, updated_ms: now, seq };
                    runs.next_seq += 1;
                    runs.by_id.insert(run_id.into(), run);
                    return Ok(Claim::Started);
                };
                if run.record.workflow != workflow {
                    return Err(Error::Config(format!("run id {run_id:?} belongs to workflow {}, not {workflow}", run.record.workflow)));
                }
                if run.record.state.finished() {
                    return Ok(Claim::Finished(run.record.clone()));
                }
                if let Some(other) = run.lease_owner.as_ref().filter(|o| *o != owner && run.lease_until > now) {
                    return Ok(Claim::Busy { owner: other.clone(), until_ms: run.lease_until });
                }
                run.lease_owner = Some(owner.into());
                run.lease_until = until;
                Ok(Claim::Resumed(run.record.clone()))
            })
        })
    }

    fn renew<'a>(&'a self, run_id: &'a str, owner: &'a str, lease: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.with(|runs| {
                Self::owned(runs, run_id, owner)?.lease_until = now_ms() + lease.as_millis() as u64;
                Ok(())
            })
        })
    }

    fn append<'a>(&'a self, run_id: &'a str, owner: &'a str, entry: Entry) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.with(|runs| {
                let run = Self::owned(runs, run_id, owner)?;
                if matches!(entry, Entry::Compensating { .. }) {
                    run.record.state = RunState::Compensating;
                }
                run.record.entries.push(entry);
                Ok(())
            })
        })
    }

    fn finish<'a>(&'a self, run_id: &'a str, owner: &'a str, state: RunState, outcome: Value) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.with(|runs| {
                let run = Self::owned(runs, run_id, owner)?;
                run.record.state = state;
                run.record.outcome = outcome;
                // A finished run needs only its outcome.
                run.record.entries = Vec::new();
                run.lease_owner = None;
                runs.finished.push_back(run_id.to_string());
                while runs.finished.len() > MEMORY_FINISHED_RUNS {
                    if let Some(old) = runs.finished.pop_front() {
                        runs.by_id.remove(&old);
                    }
                }
                Ok(())
            })
        })
    }

    fn runs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RunSummary>>> {
        Box::pin(async move {
            self.with(|runs| {
                let now = now_ms();
                let mut all: Vec<&Run> = runs.by_id.values().collect();
                all.sort_by(|a, b| b.seq.cmp(&a.seq));
                Ok(all
                    .into_iter()
                    .take(limit)
                    .map(|r| RunSummary {
                        run_id: r.record.run_id.clone(),
                        workflow: r.record.workflow.clone(),
                        state: r.record.state,
                        created_ms: r.created_ms,
                        updated_ms: r.updated_ms,
                        lease_owner: r.lease_owner.clone().filter(|_| r.lease_until > now),
                    })
                    .collect())
            })
        })
    }
}
