//! The SQLite journal (`rusqlite`, SQLite bundled): one file, WAL mode. Every
//! write is its own transaction, committed before the call returns, so what a
//! host acknowledged survives a crash of the host (`synchronous=NORMAL` in WAL
//! mode: a power loss may drop the last commits, never corrupt the file). The
//! connection is behind a mutex; a call blocks its thread for one commit (see
//! the benchmark in the README for what that costs).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{encode, entry_from_row, lease_lost, now_ms, Claim, ClaimStep, Entry, Journal, RunState, RunSummary, StoredRun};
use crate::error::{Error, Result};
use crate::value::Value;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS titan_runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    state       TEXT NOT NULL,
    input       BLOB NOT NULL,
    outcome     BLOB,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS titan_run_entries (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    stage   TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    value   BLOB NOT NULL,
    at_ms   INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS titan_runs_by_created ON titan_runs (created_ms);
";

/// A journal in a SQLite file.
pub struct SqliteJournal {
    conn: Mutex<Connection>,
    path: String,
}

fn db(path: &str, e: rusqlite::Error) -> Error {
    Error::io(format!("workflow journal {path}"), e)
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let shown = path.as_ref().display().to_string();
        let conn = Connection::open(path.as_ref()).map_err(|e| db(&shown, e))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(|e| db(&shown, e))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db(&shown, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| db(&shown, e))?;
        conn.execute_batch(SCHEMA).map_err(|e| db(&shown, e))?;
        Ok(SqliteJournal { conn: Mutex::new(conn), path: shown })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<Result<T>>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|e| db(&self.path, e))?
    }

    fn claim_now(&self, run_id: &str, workflow: &str, input: &Value, owner: &str, lease: Duration) -> Result<Claim> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let until = now + lease.as_millis() as u64;
            let row = tx
                .query_row(
                    "SELECT workflow, state, input, outcome, lease_owner, lease_until FROM titan_runs WHERE run_id = ?1",
                    params![run_id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, Option<Vec<u8>>>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?,
                        ))
                    },
                )
                .optional()?;
            let Some((stored_workflow, state, stored_input, outcome, lease_owner, lease_until)) = row else {
                tx.execute(
                    "INSERT INTO titan_runs (run_id, workflow, state, input, lease_owner, lease_until, created_ms, updated_ms)
                     VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?6)",
                    params![run_id, workflow, encode(input), owner, until as i64, now as i64],
                )?;
                tx.commit()?;
                return Ok(Ok(Claim::Started));
            };
            let stored = StoredRun { workflow: stored_workflow, state, input: stored_input, outcome, lease_owner, lease_until_ms: lease_until };
            let state = match stored.step(run_id, workflow, owner, now) {
                Err(e) => return Ok(Err(e)),
                Ok(ClaimStep::Busy(busy)) => return Ok(Ok(busy)),
                Ok(ClaimStep::Read(state)) => state,
                Ok(ClaimStep::TakeLease(state)) => {
                    tx.execute(
                        "UPDATE titan_runs SET lease_owner = ?2, lease_until = ?3, updated_ms = ?4 WHERE run_id = ?1",
                        params![run_id, owner, until as i64, now as i64],
                    )?;
                    state
                }
            };
            let mut entries = Vec::new();
            {
                let mut q = tx.prepare("SELECT kind, stage, attempt, value FROM titan_run_entries WHERE run_id = ?1 ORDER BY seq")?;
                let rows = q.query_map(params![run_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Vec<u8>>(3)?))
                })?;
                for row in rows {
                    let (kind, stage, attempt, value) = row?;
                    match entry_from_row(&kind, stage, attempt, &value) {
                        Ok(e) => entries.push(e),
                        Err(e) => return Ok(Err(e)),
                    }
                }
            }
            tx.commit()?;
            Ok(stored.into_claim(run_id, state, entries))
        })
    }

    fn renew_now(&self, run_id: &str, owner: &str, lease: Duration) -> Result<()> {
        let until = now_ms() + lease.as_millis() as u64;
        self.with(|conn| {
            let n = conn.execute(
                "UPDATE titan_runs SET lease_until = ?3 WHERE run_id = ?1 AND lease_owner = ?2",
                params![run_id, owner, until as i64],
            )?;
            Ok(if n == 1 { Ok(()) } else { Err(lease_lost(run_id)) })
        })
    }

    fn append_now(&self, run_id: &str, owner: &str, entry: &Entry) -> Result<()> {
        let (kind, stage, attempt, value) = entry.to_row();
        let value = encode(&value);
        let compensating = matches!(entry, Entry::Compensating { .. });
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms() as i64;
            let n = tx.execute(
                "UPDATE titan_runs SET updated_ms = ?3, state = CASE WHEN ?4 THEN 'compensating' ELSE state END
                 WHERE run_id = ?1 AND lease_owner = ?2",
                params![run_id, owner, now, compensating],
            )?;
            if n != 1 {
                return Ok(Err(lease_lost(run_id)));
            }
            tx.execute(
                "INSERT INTO titan_run_entries (run_id, seq, kind, stage, attempt, value, at_ms)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM titan_run_entries WHERE run_id = ?1), ?2, ?3, ?4, ?5, ?6)",
                params![run_id, kind, stage, attempt as i64, value, now],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    fn finish_now(&self, run_id: &str, owner: &str, state: RunState, outcome: &Value) -> Result<()> {
        let outcome = encode(outcome);
        self.with(|conn| {
            let n = conn.execute(
                "UPDATE titan_runs SET state = ?3, outcome = ?4, lease_owner = NULL, lease_until = 0, updated_ms = ?5
                 WHERE run_id = ?1 AND lease_owner = ?2",
                params![run_id, owner, state.as_str(), outcome, now_ms() as i64],
            )?;
            Ok(if n == 1 { Ok(()) } else { Err(lease_lost(run_id)) })
        })
    }

    fn runs_now(&self, limit: usize) -> Result<Vec<RunSummary>> {
        self.with(|conn| {
            let now = now_ms() as i64;
            let mut q = conn.prepare(
                "SELECT run_id, workflow, state, created_ms, updated_ms, CASE WHEN lease_until > ?2 THEN lease_owner END
                 FROM titan_runs ORDER BY created_ms DESC, rowid DESC LIMIT ?1",
            )?;
            let rows = q.query_map(params![limit as i64, now], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?, r.get::<_, Option<String>>(5)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (run_id, workflow, state, created, updated, lease_owner) = row?;
                let state = match RunState::parse(&state) {
                    Ok(s) => s,
                    Err(e) => return Ok(Err(e)),
                };
                out.push(RunSummary { run_id, workflow, state, created_ms: created as u64, updated_ms: updated as u64, lease_owner });
            }
            Ok(Ok(out))
        })
    }
}

impl Journal for SqliteJournal {
    fn claim<'a>(&'a self, run_id: &'a str, workflow: &'a str, input: &'a Value, owner: &'a str, lease: Duration) -> BoxFuture<'a, Result<Claim>> {
        Box::pin(async move { self.claim_now(run_id, workflow, input, owner, lease) })
    }
    fn renew<'a>(&'a self, run_id: &'a str, owner: &'a str, lease: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.renew_now(run_id, owner, lease) })
    }
    fn append<'a>(&'a self, run_id: &'a str, owner: &'a str, entry: Entry) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.append_now(run_id, owner, &entry) })
    }
    fn finish<'a>(&'a self, run_id: &'a str, owner: &'a str, state: RunState, outcome: Value) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.finish_now(run_id, owner, state, &outcome) })
    }
    fn runs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RunSummary>>> {
        Box::pin(async move { self.runs_now(limit) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_survives_reopening_and_resumes_with_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let lease = Duration::from_millis(50);
        let input = Value::Map(vec![("order".into(), Value::Data(vec![1, 2, 3].into()))]);
        {
            let j = SqliteJournal::open(&path).unwrap();
            assert_eq!(j.claim_now("r", "w", &input, "a", lease).unwrap(), Claim::Started);
            j.append_now("r", "a", &Entry::StageStarted { stage: "s1".into(), attempt: 1 }).unwrap();
            j.append_now("r", "a", &Entry::StageCompleted { stage: "s1".into(), attempt: 1, result: Value::Float(1.5) }).unwrap();
            assert!(matches!(j.claim_now("r", "w", &input, "b", lease).unwrap(), Claim::Busy { .. }));
            assert!(j.claim_now("r", "other", &input, "b", lease).unwrap_err().to_string().contains("belongs to workflow w"));
        }
        std::thread::sleep(Duration::from_millis(80));
        let j = SqliteJournal::open(&path).unwrap();
        let Claim::Resumed(run) = j.claim_now("r", "w", &input, "b", lease).unwrap() else { panic!("not resumed") };
        assert_eq!(run.input, input);
        assert_eq!(run.entries.len(), 2);
        assert_eq!(run.entries[1], Entry::StageCompleted { stage: "s1".into(), attempt: 1, result: Value::Float(1.5) });
        // The old owner is fenced off.
        assert!(j.append_now("r", "a", &Entry::StageStarted { stage: "s2".into(), attempt: 1 }).is_err());
        j.append_now("r", "b", &Entry::Compensating { stage: "s2".into(), error: Value::Null }).unwrap();
        assert_eq!(j.runs_now(10).unwrap()[0].state, RunState::Compensating);
        j.finish_now("r", "b", RunState::Failed, &Value::Text("boom".into())).unwrap();
        let Claim::Finished(run) = j.claim_now("r", "w", &input, "c", lease).unwrap() else { panic!("not finished") };
        assert_eq!((run.state, run.outcome), (RunState::Failed, Value::Text("boom".into())));
    }
}
