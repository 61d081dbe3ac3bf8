//! The Postgres journal (`tokio-postgres`): several hosts share one set of runs,
//! and the lease rule of [`super::Journal`] keeps any one run on one host at a
//! time. Same tables and same five operations as the SQLite journal; each
//! operation is one transaction, committed before it returns. Selected by a
//! `postgres://` / `postgresql://` URL as `workflows.journal`.
//!
//! The connection is opened on first use, on the runtime that uses it (the
//! manager's engine), and reopened after it breaks: an operation that meets a
//! broken connection fails (the run stops, as with any journal error), the next
//! one reconnects.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Transaction};

use super::{encode, entry_from_row, lease_lost, now_ms, Claim, ClaimStep, Entry, Journal, RunState, RunSummary, StoredRun};
use crate::error::{Error, Result};
use crate::value::Value;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS titan_runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    state       TEXT NOT NULL,
    input       BYTEA NOT NULL,
    outcome     BYTEA,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS titan_run_entries (
    run_id  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    stage   TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    value   BYTEA NOT NULL,
    at_ms   BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS titan_runs_by_created ON titan_runs (created_ms);
";

/// The advisory lock taken while the tables are created (an arbitrary constant: "titanpm" in ASCII).
const SCHEMA_LOCK: i64 = 0x0074_6974_616e_706d;

/// How long connecting (and creating the tables) may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A journal in a Postgres database.
pub struct PostgresJournal {
    url: String,
    client: Mutex<Option<Client>>,
}

/// Whether `journal` names a Postgres database rather than a SQLite file.
pub fn is_postgres_url(journal: &str) -> bool {
    journal.starts_with("postgres://") || journal.starts_with("postgresql://")
}

/// The URL without its password, for messages.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl PostgresJournal {
    /// A journal at `url`; nothing connects until the first operation. A URL the
    /// driver cannot read is an error now.
    pub fn new(url: &str) -> Result<Self> {
        url.parse::<tokio_postgres::Config>()
            .map_err(|e| Error::Config(format!("workflows.journal: {} is not a Postgres URL: {e}", shown(url))))?;
        Ok(PostgresJournal { url: url.into(), client: Mutex::new(None) })
    }

    fn db(&self, e: tokio_postgres::Error) -> Error {
        // The driver's own text is only "db error" for a server's error: give the server's.
        let message = match (e.as_db_error(), std::error::Error::source(&e)) {
            (Some(db), _) => format!("{} ({})", db.message(), db.code().code()),
            (None, Some(cause)) => format!("{e}: {cause}"),
            (None, None) => e.to_string(),
        };
        Error::io(format!("workflow journal {}", shown(&self.url)), message)
    }

    async fn connect(&self) -> Result<Client> {
        let work = async {
            let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.map_err(|e| self.db(e))?;
            tokio::spawn(async move {
                let _ = connection.await; // ends when the client is dropped or the server goes away
            });
            // Under a lock: hosts starting together would race on CREATE TABLE IF NOT EXISTS.
            let schema = format!("BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA} COMMIT;");
            client.batch_execute(&schema).await.map_err(|e| self.db(e))?;
            Ok(client)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, work)
            .await
            .map_err(|_| Error::Config(format!("workflow journal {}: no connection within {CONNECT_TIMEOUT:?}", shown(&self.url))))?
    }

    /// The connection, (re)opened if there is none or it broke.
    async fn connected(&self) -> Result<tokio::sync::MappedMutexGuard<'_, Client>> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(self.connect().await?);
        }
        Ok(tokio::sync::MutexGuard::map(slot, |c| c.as_mut().expect("connected above")))
    }

    /// Commits `tx` when the operation succeeded (dropping it otherwise rolls it back).
    async fn settle<T>(&self, tx: Transaction<'_>, out: PgResult<Result<T>>) -> Result<T> {
        let v = out.map_err(|e| self.db(e))??;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(v)
    }
}

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

async fn claim_in(
    tx: &Transaction<'_>,
    run_id: &str,
    workflow: &str,
    input: &Value,
    owner: &str,
    lease: Duration,
) -> PgResult<Result<Claim>> {
    let now = now_ms() as i64;
    let until = now + lease.as_millis() as i64;
    let inserted = tx
        .execute(
            "INSERT INTO titan_runs (run_id, workflow, state, input, lease_owner, lease_until, created_ms, updated_ms)
             VALUES ($1, $2, 'running', $3, $4, $5, $6, $6) ON CONFLICT (run_id) DO NOTHING",
            &[&run_id, &workflow, &encode(input), &owner, &until, &now],
        )
        .await?;
    if inserted == 1 {
        return Ok(Ok(Claim::Started));
    }
    let row = tx
        .query_one(
            "SELECT workflow, state, input, outcome, lease_owner, lease_until FROM titan_runs WHERE run_id = $1 FOR UPDATE",
            &[&run_id],
        )
        .await?;
    let stored = StoredRun {
        workflow: row.get(0),
        state: row.get(1),
        input: row.get(2),
        outcome: row.get(3),
        lease_owner: row.get(4),
        lease_until_ms: row.get(5),
    };
    let state = match stored.step(run_id, workflow, owner, now as u64) {
        Err(e) => return Ok(Err(e)),
        Ok(ClaimStep::Busy(busy)) => return Ok(Ok(busy)),
        Ok(ClaimStep::Read(state)) => state,
        Ok(ClaimStep::TakeLease(state)) => {
            tx.execute(
                "UPDATE titan_runs SET lease_owner = $2, lease_until = $3, updated_ms = $4 WHERE run_id = $1",
                &[&run_id, &owner, &until, &now],
            )
            .await?;
            state
        }
    };
    let rows = tx
        .query("SELECT kind, stage, attempt, value FROM titan_run_entries WHERE run_id = $1 ORDER BY seq", &[&run_id])
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        let value: Vec<u8> = r.get(3);
        match entry_from_row(r.get(0), r.get(1), r.get(2), &value) {
            Ok(e) => entries.push(e),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(stored.into_claim(run_id, state, entries))
}

async fn append_in(
    tx: &Transaction<'_>,
    run_id: &str,
    owner: &str,
    entry: &Entry,
) -> PgResult<Result<()>> {
    let (kind, stage, attempt, value) = entry.to_row();
    let compensating = matches!(entry, Entry::Compensating { .. });
    let now = now_ms() as i64;
    // The row lock this update takes serialises appends to one run (the seq below).
    let n = tx
        .execute(
            "UPDATE titan_runs SET updated_ms = $3, state = CASE WHEN $4 THEN 'compensating' ELSE state END
             WHERE run_id = $1 AND lease_owner = $2",
            &[&run_id, &owner, &now, &compensating],
        )
        .await?;
    if n != 1 {
        return Ok(Err(lease_lost(run_id)));
    }
    tx.execute(
        "INSERT INTO titan_run_entries (run_id, seq, kind, stage, attempt, value, at_ms)
         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM titan_run_entries WHERE run_id = $1), $2, $3, $4, $5, $6)",
        &[&run_id, &kind, &stage, &(attempt as i64), &encode(&value), &now],
    )
    .await?;
    Ok(Ok(()))
}

async fn runs_in(tx: &Transaction<'_>, limit: usize) -> PgResult<Result<Vec<RunSummary>>> {
    let now = now_ms() as i64;
    let rows = tx
        .query(
            "SELECT run_id, workflow, state, created_ms, updated_ms, CASE WHEN lease_until > $2 THEN lease_owner END
             FROM titan_runs ORDER BY created_ms DESC, run_id DESC LIMIT $1",
            &[&(limit as i64), &now],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let state = match RunState::parse(r.get::<_, &str>(2)) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        out.push(RunSummary {
            run_id: r.get(0),
            workflow: r.get(1),
            state,
            created_ms: r.get::<_, i64>(3) as u64,
            updated_ms: r.get::<_, i64>(4) as u64,
            lease_owner: r.get(5),
        });
    }
    Ok(Ok(out))
}

/// An `UPDATE … WHERE run_id AND lease_owner` that must touch exactly the run's row.
async fn owned_update(
    tx: &Transaction<'_>,
    run_id: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> PgResult<Result<()>> {
    let n = tx.execute(sql, params).await?;
    Ok(if n == 1 { Ok(()) } else { Err(lease_lost(run_id)) })
}

impl PostgresJournal {
    async fn claim_now(&self, run_id: &str, workflow: &str, input: &Value, owner: &str, lease: Duration) -> Result<Claim> {
        let mut client = self.connected().await?;
        let tx = client.transaction().await.map_err(|e| self.db(e))?;
        let out = claim_in(&tx, run_id, workflow, input, owner, lease).await;
        self.settle(tx, out).await
    }

    async fn renew_now(&self, run_id: &str, owner: &str, lease: Duration) -> Result<()> {
        let until = (now_ms() + lease.as_millis() as u64) as i64;
        let mut client = self.connected().await?;
        let tx = client.transaction().await.map_err(|e| self.db(e))?;
        let sql = "UPDATE titan_runs SET lease_until = $3 WHERE run_id = $1 AND lease_owner = $2";
        let out = owned_update(&tx, run_id, sql, &[&run_id, &owner, &until]).await;
        self.settle(tx, out).await
    }

    async fn append_now(&self, run_id: &str, owner: &str, entry: &Entry) -> Result<()> {
        let mut client = self.connected().await?;
        let tx = client.transaction().await.map_err(|e| self.db(e))?;
        let out = append_in(&tx, run_id, owner, entry).await;
        self.settle(tx, out).await
    }

    async fn finish_now(&self, run_id: &str, owner: &str, state: RunState, outcome: &Value) -> Result<()> {
        let (outcome, now) = (encode(outcome), now_ms() as i64);
        let mut client = self.connected().await?;
        let tx = client.transaction().await.map_err(|e| self.db(e))?;
        let sql = "UPDATE titan_runs SET state = $3, outcome = $4, lease_owner = NULL, lease_until = 0, updated_ms = $5
                   WHERE run_id = $1 AND lease_owner = $2";
        let out = owned_update(&tx, run_id, sql, &[&run_id, &owner, &state.as_str(), &outcome, &now]).await;
        self.settle(tx, out).await
    }

    async fn runs_now(&self, limit: usize) -> Result<Vec<RunSummary>> {
        let mut client = self.connected().await?;
        let tx = client.transaction().await.map_err(|e| self.db(e))?;
        let out = runs_in(&tx, limit).await;
        self.settle(tx, out).await
    }
}

impl Journal for PostgresJournal {
    fn claim<'a>(&'a self, run_id: &'a str, workflow: &'a str, input: &'a Value, owner: &'a str, lease: Duration) -> BoxFuture<'a, Result<Claim>> {
        Box::pin(self.claim_now(run_id, workflow, input, owner, lease))
    }
    fn renew<'a>(&'a self, run_id: &'a str, owner: &'a str, lease: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.renew_now(run_id, owner, lease))
    }
    fn append<'a>(&'a self, run_id: &'a str, owner: &'a str, entry: Entry) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.append_now(run_id, owner, &entry).await })
    }
    fn finish<'a>(&'a self, run_id: &'a str, owner: &'a str, state: RunState, outcome: Value) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.finish_now(run_id, owner, state, &outcome).await })
    }
    fn runs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RunSummary>>> {
        Box::pin(self.runs_now(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_do_not_show_the_password() {
        assert_eq!(shown("postgres://app:s3cret@db:5432/runs"), "postgres://app@db:5432/runs");
        assert_eq!(shown("postgresql:///runs?host=/tmp"), "postgresql:///runs?host=/tmp");
        assert!(is_postgres_url("postgresql://x") && !is_postgres_url("runs.db"));
        let e = PostgresJournal::new("postgres://app:pw@db:notaport/runs").err().unwrap().to_string();
        assert!(e.contains("is not a Postgres URL") && !e.contains("pw"), "{e}");
    }
}
