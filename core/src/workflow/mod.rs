//! Workflows: a DAG of stages with per-attempt timeouts, retries with
//! exponential backoff and jitter, saga compensation, and runs that survive
//! their host (a journal). The engine lives here once; every front end declares
//! a workflow class (its stage methods are public methods of a worker) and
//! calls [`ProcessManager::workflow`].
//!
//! - [`definition`]: the stage graph, checked when the workflow is loaded.
//! - [`execution`]: one run: stages whose dependencies are done run at once;
//!   each attempt is journaled before it runs and its result before it counts.
//! - [`saga`]: what happens when a stage fails for good.
//! - [`journal`]: the run store ([`journal::Journal`]: SQLite, Postgres, memory).
//! - [`runner`]: where stages run ([`StageRunner`]: a process or a pool).
//! - [`events`]: what a run reports while it goes.
//!
//! ```no_run
//! # async fn demo(pm: titan_pm::ProcessManager) -> titan_pm::Result<()> {
//! use titan_pm::workflow::WorkflowOptions;
//! let wf = pm.workflow("target/debug/order-workflow", WorkflowOptions::default()).await?;
//! let input = titan_pm::value::to_value(&serde_json::json!({ "orderId": 42 }))?;
//! let result = wf.run(input, Some("order-42")).await?;   // {"reserve": ..., "charge": ...}
//! // The same id again: the stored result, nothing runs.
//! assert_eq!(wf.run(titan_pm::Value::Null, Some("order-42")).await?, result);
//! # Ok(()) }
//! ```
//!
//! What a stage receives: `(input, context)`, where `input` is the run's input
//! for a stage without dependencies, else the map of results so far by stage
//! name, and `context` is `{runId, stage, attempt, idempotencyKey}` with
//! `idempotencyKey = "runId/stage"`. A compensation receives `(result, error,
//! context)`: its stage's result (null for the failed stage and for stages
//! cancelled mid-flight) and the error (null for completed stages).

pub mod definition;
pub mod events;
mod execution;
pub mod journal;
pub mod runner;
mod saga;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

pub use definition::{Stage, WorkflowDef};
pub use events::{WorkflowEvent, WorkflowEventKind};
pub use journal::{Journal, RunState, RunSummary};
pub use runner::StageRunner;
pub use crate::error::CompensationOutcome;
pub use crate::host::WorkflowsConfig;
pub use crate::protocol::{StageContext, StageOptions};

use crate::error::{Error, Result};
use crate::host::{ProcessHandle, ProcessManager, SpawnOptions, Target};
use crate::dialect::Dialect;
use crate::policy::Backoff;
use crate::protocol::Description;
use crate::value::Value;

/// Options of one workflow (`pm.workflow(target, options)`).
#[derive(Clone)]
pub struct WorkflowOptions {
    /// How the workflow class is spawned (isolation `none` runs stages in this process).
    pub spawn: SpawnOptions,
    /// The wait before each retry of a stage or compensation (exponential from 100 ms by default).
    pub backoff: Backoff,
    /// The spread of each wait: uniform in `[wait × (1 − jitter), wait]`.
    pub jitter: f64,
    /// Attempts after the first for a failing compensation, before it is recorded as failed.
    pub compensation_retries: u32,
    /// How the stage context and events are spelled (`runId` or `run_id`).
    pub dialect: Dialect,
    /// A journal of its own instead of the manager's (a test's, or another database).
    pub journal: Option<Arc<dyn Journal>>,
}

impl Default for WorkflowOptions {
    fn default() -> Self {
        WorkflowOptions {
            spawn: SpawnOptions::default(),
            backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30)),
            jitter: 0.5,
            compensation_retries: 2,
            dialect: Dialect::Js,
            journal: None,
        }
    }
}

/// A loaded workflow. Clone it freely; `run` may be called concurrently with different run ids.
#[derive(Clone)]
pub struct WorkflowHandle {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub def: WorkflowDef,
    pub runner: Arc<dyn StageRunner>,
    pub journal: Arc<dyn Journal>,
    pub options: WorkflowOptions,
    pub lease: Duration,
    pub events: broadcast::Sender<WorkflowEvent>,
    /// The process the workflow class runs in, when `pm.workflow` spawned it.
    pub process: Option<ProcessHandle>,
    /// Runs are driven on the manager's engine thread, so `run` works from any executor.
    pub pm: ProcessManager,
}

impl ProcessManager {
    /// Spawns `target` (a workflow class) with `options.spawn`, reads its stage
    /// graph and checks it: a cycle, a duplicate name, an unknown `dependsOn` or a
    /// stage whose method is not public is an error here, and the process is stopped.
    pub async fn workflow(&self, target: impl Into<Target>, options: WorkflowOptions) -> Result<WorkflowHandle> {
        let process = self.spawn(target, options.spawn.clone()).await?;
        let id = process.id();
        match self.load_workflow(Arc::new(process.clone()), Some(process), options).await {
            Ok(h) => Ok(h),
            Err(e) => {
                let _ = self.kill(id).await;
                Err(e)
            }
        }
    }

    /// A workflow whose stages run through `runner` (a pool, say: each attempt on the
    /// member its strategy picks). The stage graph is the runner's description's.
    pub async fn workflow_on(&self, runner: Arc<dyn StageRunner>, options: WorkflowOptions) -> Result<WorkflowHandle> {
        self.load_workflow(runner, None, options).await
    }

    async fn load_workflow(&self, runner: Arc<dyn StageRunner>, process: Option<ProcessHandle>, options: WorkflowOptions) -> Result<WorkflowHandle> {
        let description = runner.describe().await?;
        let def = check(&description)?;
        let journal = match options.journal.clone() {
            Some(j) => j,
            None => manager_journal(self)?,
        };
        let lease = self.shared.workflows.lease;
        let (events, _) = broadcast::channel(1024);
        let pm = self.clone();
        Ok(WorkflowHandle { inner: Arc::new(Inner { def, runner, journal, options, lease, events, process, pm }) })
    }

    /// The newest `limit` runs of the manager's journal, newest first, with their state.
    pub async fn workflow_runs(&self, limit: usize) -> Result<Vec<RunSummary>> {
        manager_journal(self)?.runs(limit).await
    }
}

/// The manager's journal, opened from `workflows` on first use (the host keeps it type-erased).
fn manager_journal(pm: &ProcessManager) -> Result<Arc<dyn Journal>> {
    let mut slot = pm.shared.journal.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(j) = slot.as_ref().and_then(|any| any.downcast_ref::<Arc<dyn Journal>>()) {
        return Ok(j.clone());
    }
    let j = journal::open(pm.shared.workflows.journal.as_ref().map(|p| p.to_string_lossy()).as_deref())?;
    *slot = Some(Arc::new(j.clone()));
    Ok(j)
}

/// The checked definition of a described class; every stage and compensation method must be public.
fn check(d: &Description) -> Result<WorkflowDef> {
    let name = if d.name.is_empty() { "workflow" } else { d.name.as_str() };
    let Some(info) = &d.workflow else {
        return Err(Error::Config(format!("{name} is not a workflow: it declares no stages")));
    };
    let def = WorkflowDef::new(name, info)?;
    let public: Vec<&str> = d.methods.iter().map(|m| m.name.as_str()).collect();
    for s in def.stages() {
        for m in std::iter::once(&s.method).chain(s.compensation.as_ref()) {
            if !public.contains(&m.as_str()) {
                return Err(Error::Config(format!(
                    "workflow {name}: stage {:?} uses method {m:?}, which is not a public method (found: {})",
                    s.name,
                    public.join(", ")
                )));
            }
        }
    }
    Ok(def)
}

impl WorkflowHandle {
    pub fn definition(&self) -> &WorkflowDef {
        &self.inner.def
    }

    pub fn name(&self) -> &str {
        self.inner.def.name()
    }

    /// The process the workflow class runs in (when `pm.workflow` spawned it).
    pub fn process(&self) -> Option<&ProcessHandle> {
        self.inner.process.as_ref()
    }

    /// Runs the workflow: every stage's result by name. With the id of a finished
    /// run, its stored outcome (result or `WorkflowError`) without running anything;
    /// with an unfinished one (its host died), resumes it: completed stages are not
    /// run again; the stages that were running are run again. While another host
    /// holds the run, waits for it to finish or for its lease to expire.
    /// Without an id, a new random one. An id reused with a different input is an error.
    pub async fn run(&self, input: Value, run_id: Option<&str>) -> Result<Value> {
        let run_id = match run_id {
            Some("") => return Err(Error::Config("run id must not be empty".into())),
            Some(id) => id.to_string(),
            None => format!("run-{:016x}", fastrand::u64(..)),
        };
        let inner = self.inner.clone();
        // On the engine thread (timers, the lease heartbeat); dropping `run` cancels the run and its stages.
        self.inner.pm.exec_with(true, move |_| execution::run(inner, input, run_id)).await
    }

    /// This workflow's run events, from now on.
    pub fn events(&self) -> broadcast::Receiver<WorkflowEvent> {
        self.inner.events.subscribe()
    }

    /// The newest `limit` runs of this workflow's journal (every workflow's), newest first.
    pub async fn runs(&self, limit: usize) -> Result<Vec<RunSummary>> {
        self.inner.journal.runs(limit).await
    }
}

/// How a stage failure is classed: `timeout`, `remote`, `crash`, `cancelled`, ... (the cause's kind).
pub fn failure_kind(e: &Error) -> &'static str {
    match e {
        Error::CallTimeout { .. } => "timeout",
        Error::Remote { .. } => "remote",
        Error::ProcessCrashed { .. } => "crash",
        Error::ProcessFailed { .. } | Error::ManagerShutDown => "failed",
        Error::MethodNotFound { .. } => "method-not-found",
        Error::Serialization { .. } => "serialization",
        Error::Cancelled => "cancelled",
        Error::CircuitOpen | Error::PoolBackpressure { .. } => "overloaded",
        _ => "error",
    }
}

/// An error as the journal stores it (`{class, kind, message, ...}`).
pub fn error_to_value(e: &Error) -> Value {
    let t = |s: &str| Value::Text(s.to_string());
    let mut f = vec![("class", t(e.class_name())), ("kind", t(failure_kind(e))), ("message", t(&e.to_string()))];
    match e {
        Error::Remote { remote_type, message, remote_traceback, code } => {
            f.extend([("remoteType", t(remote_type)), ("message", t(message)), ("stack", t(remote_traceback))]);
            if let Some(c) = code {
                f.push(("code", t(c)));
            }
        }
        Error::CallTimeout { method, timeout_ms } => f.extend([("method", t(method)), ("timeoutMs", Value::Int(*timeout_ms as i64))]),
        Error::ProcessCrashed { process_id, exit_code, signal } => f.extend([
            ("processId", Value::Int(*process_id as i64)),
            ("exitCode", exit_code.map(|c| Value::Int(c as i64)).unwrap_or(Value::Null)),
            ("signal", signal.map(|c| Value::Int(c as i64)).unwrap_or(Value::Null)),
        ]),
        Error::Workflow { workflow, run_id, stage, cause, compensations } => {
            let comps = compensations
                .iter()
                .map(|c| {
                    Value::Map(vec![
                        ("stage".into(), t(&c.stage)),
                        ("method".into(), t(&c.method)),
                        ("attempts".into(), Value::Int(c.attempts as i64)),
                        ("error".into(), c.error.as_deref().map(t).unwrap_or(Value::Null)),
                    ])
                })
                .collect();
            f.extend([
                ("workflow", t(workflow)),
                ("runId", t(run_id)),
                ("stage", t(stage)),
                ("cause", error_to_value(cause)),
                ("compensations", Value::List(comps)),
            ]);
        }
        _ => {}
    }
    // Later fields of one name replace earlier ones (the remote message is the bare one).
    let mut out: Vec<(String, Value)> = Vec::new();
    for (k, v) in f {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k.to_string(), v)),
        }
    }
    Value::Map(out)
}

/// The error a stored value describes (the inverse of [`error_to_value`] for the
/// kinds a stage failure has; any other comes back as a `RemoteError` of its class).
pub fn error_from_value(v: &Value) -> Error {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let n = |k: &str| match v.get(k) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    match s("class").as_str() {
        "RemoteError" => Error::Remote {
            remote_type: s("remoteType"),
            message: s("message"),
            remote_traceback: s("stack"),
            code: v.get("code").and_then(Value::as_str).map(String::from),
        },
        "CallTimeoutError" => Error::CallTimeout { method: s("method"), timeout_ms: n("timeoutMs").unwrap_or(0) as u64 },
        "ProcessCrashedError" => Error::ProcessCrashed {
            process_id: n("processId").unwrap_or(0) as u64,
            exit_code: n("exitCode").map(|c| c as i32),
            signal: n("signal").map(|c| c as i32),
        },
        "CancelledError" => Error::Cancelled,
        "WorkflowError" => Error::Workflow {
            workflow: s("workflow"),
            run_id: s("runId"),
            stage: s("stage"),
            cause: Box::new(v.get("cause").map(error_from_value).unwrap_or(Error::Cancelled)),
            compensations: match v.get("compensations") {
                Some(Value::List(items)) => items
                    .iter()
                    .map(|c| CompensationOutcome {
                        stage: c.get("stage").and_then(Value::as_str).unwrap_or("").into(),
                        method: c.get("method").and_then(Value::as_str).unwrap_or("").into(),
                        attempts: match c.get("attempts") {
                            Some(Value::Int(i)) => *i as u32,
                            _ => 0,
                        },
                        error: c.get("error").and_then(Value::as_str).map(String::from),
                    })
                    .collect(),
                _ => Vec::new(),
            },
        },
        class => Error::Remote { remote_type: class.to_string(), message: s("message"), remote_traceback: String::new(), code: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_the_journal_shape() {
        let cause = Error::CallTimeout { method: "charge".into(), timeout_ms: 50 };
        let e = Error::Workflow {
            workflow: "order".into(),
            run_id: "r1".into(),
            stage: "charge-payment".into(),
            cause: Box::new(cause),
            compensations: vec![CompensationOutcome { stage: "charge-payment".into(), method: "refund".into(), attempts: 1, error: None }],
        };
        let v = error_to_value(&e);
        assert_eq!(v.get("cause").and_then(|c| c.get("kind")), Some(&Value::Text("timeout".into())));
        let back = error_from_value(&v);
        assert_eq!(back.to_string(), e.to_string());
        let remote = Error::Remote { remote_type: "ValueError".into(), message: "no".into(), remote_traceback: "tb".into(), code: None };
        assert_eq!(error_from_value(&error_to_value(&remote)).to_string(), "ValueError: no");
    }
}
