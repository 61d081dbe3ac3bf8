//! One run of a workflow: claim it in the journal (or find it finished, or
//! wait while another host holds it), replay what the journal says happened,
//! then start every stage whose dependencies are done, all at once, until all
//! are done or one fails for good (then [`super::saga`]).
//!
//! The order of writes is the durability contract: an attempt is journaled
//! (`stage:started`) before its method is called, a result (`stage:completed`)
//! before any stage that needs it starts and before `run` returns, and the
//! outcome before `run` returns. A resumed run therefore never runs a completed
//! stage again, and runs again every stage that had started without a
//! journaled result (at least once; the stage gets `runId/stage` as its
//! idempotency key). A `parallel: false` stage waits until nothing else runs,
//! and nothing else starts while it runs. The lease is renewed every third of
//! its length; a run that loses it stops (its stages are cancelled).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use super::journal::{now_ms, Claim, Entry, RunRecord, RunState};
use super::{error_from_value, error_to_value, CompensationOutcome, Inner, WorkflowEvent, WorkflowEventKind};
use crate::error::{Error, Result};
use crate::value::Value;

/// Extra time past a stage's timeout before the engine itself gives up on an
/// attempt (the runner's own deadline fires first and cancels the call in the worker).
const TIMEOUT_GUARD: Duration = Duration::from_secs(5);

/// What the journal says about a run so far.
#[derive(Default)]
pub(crate) struct Progress {
    /// Completed stages' results.
    pub results: HashMap<String, Value>,
    /// Completed stages, in the order they completed.
    pub order: Vec<String>,
    /// Stages started without a journaled result or final failure, in start order.
    pub started: Vec<String>,
    /// The last attempt number of each stage.
    pub attempts: HashMap<String, u32>,
    /// Failed attempts of each stage (the retry budget spans hosts).
    pub failures: HashMap<String, u32>,
    /// The stage that failed for good and its error, once the run compensates.
    pub failure: Option<(String, Value)>,
    /// Stages running when the failure happened (cancelled).
    pub cancelled: Vec<String>,
    /// Compensations: last attempt, and how the finished ones ended.
    pub compensation_attempts: HashMap<String, u32>,
    pub compensated: HashMap<String, CompensationOutcome>,
}

impl Progress {
    fn replay(entries: &[Entry], methods: impl Fn(&str) -> String) -> Self {
        let mut p = Progress::default();
        for e in entries {
            match e {
                Entry::StageStarted { stage, attempt } => {
                    p.attempts.insert(stage.clone(), *attempt);
                    if !p.started.contains(stage) {
                        p.started.push(stage.clone());
                    }
                }
                Entry::StageCompleted { stage, result, .. } => p.complete(stage, result.clone()),
                Entry::StageFailed { stage, .. } => *p.failures.entry(stage.clone()).or_default() += 1,
                Entry::Compensating { stage, error } => {
                    p.cancelled = p.started.iter().filter(|s| *s != stage).cloned().collect();
                    p.failure = Some((stage.clone(), error.clone()));
                }
                Entry::CompensationStarted { stage, attempt } => {
                    p.compensation_attempts.insert(stage.clone(), *attempt);
                }
                Entry::CompensationCompleted { stage, attempt } => {
                    let o = CompensationOutcome { stage: stage.clone(), method: methods(stage), attempts: *attempt, error: None };
                    p.compensated.insert(stage.clone(), o);
                }
                Entry::CompensationFailed { stage, attempt, error } => {
                    let message = super::saga::outcome_message(error);
                    let o = CompensationOutcome { stage: stage.clone(), method: methods(stage), attempts: *attempt, error: Some(message) };
                    p.compensated.insert(stage.clone(), o);
                }
            }
        }
        p
    }

    fn complete(&mut self, stage: &str, result: Value) {
        self.started.retain(|s| s != stage);
        self.results.insert(stage.to_string(), result);
        self.order.push(stage.to_string());
    }
}

/// How one stage's attempts ended.
enum StageEnd {
    Done { attempt: u32, result: Value, elapsed: Duration },
    Failed { error: Error },
    /// The journal refused a write (lease lost, disk error): the run stops here.
    Journal(Error),
}

/// One run in progress on this host.
pub(crate) struct Run {
    pub wf: Arc<Inner>,
    pub run_id: String,
    pub owner: String,
    pub input: Value,
    pub progress: Progress,
}

pub(crate) async fn run(wf: Arc<Inner>, input: Value, run_id: String) -> Result<Value> {
    let owner = owner_id();
    let name = wf.def.name().to_string();
    let record = loop {
        match wf.journal.claim(&run_id, &name, &input, &owner, wf.lease).await? {
            Claim::Started => break None,
            Claim::Resumed(r) => break Some(r),
            Claim::Finished(r) => {
                same_input(&r, &input)?;
                return finished(&r);
            }
            Claim::Busy { until_ms, .. } => {
                // Another host runs it: wait for it to finish or for its lease to lapse.
                let left = Duration::from_millis(until_ms.saturating_sub(now_ms()));
                tokio::time::sleep(left.clamp(Duration::from_millis(20), wf.lease / 2)).await;
            }
        }
    };
    if let Some(r) = &record {
        if let Err(e) = same_input(r, &input) {
            let _ = wf.journal.renew(&run_id, &owner, Duration::ZERO).await; // hand the lease back
            return Err(e);
        }
    }
    let resumed = record.is_some();
    let (input, progress) = match record {
        Some(r) => {
            let def = &wf.def;
            let methods = |stage: &str| def.stage(stage).and_then(|s| s.compensation.clone()).unwrap_or_default();
            let p = Progress::replay(&r.entries, methods);
            (r.input, p)
        }
        None => (input, Progress::default()),
    };
    let mut this = Run { wf: wf.clone(), run_id: run_id.clone(), owner: owner.clone(), input, progress };
    this.emit(WorkflowEventKind::Started { resumed });
    let heartbeat = async {
        loop {
            tokio::time::sleep(wf.lease / 3).await;
            if let Err(e) = wf.journal.renew(&run_id, &owner, wf.lease).await {
                return e;
            }
        }
    };
    tokio::select! {
        r = this.drive() => r,
        e = heartbeat => Err(e),
    }
}

/// A reused id must come with the same input (or null: "whatever it was started with").
fn same_input(r: &RunRecord, input: &Value) -> Result<()> {
    if matches!(input, Value::Null) || *input == r.input {
        return Ok(());
    }
    Err(Error::Config(format!("run id {:?} was started with a different input (pass the same input, or null)", r.run_id)))
}

fn finished(r: &RunRecord) -> Result<Value> {
    match r.state {
        RunState::Completed => Ok(r.outcome.clone()),
        _ => Err(error_from_value(&r.outcome)),
    }
}

/// `hostname:pid:random`: who holds a lease (unique per `run` call).
fn owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}:{:08x}", host.trim(), std::process::id(), fastrand::u32(..))
}

impl Run {
    fn emit(&self, kind: WorkflowEventKind) {
        emit(&self.wf, &self.run_id, kind);
    }

    async fn append(&self, entry: Entry) -> Result<()> {
        self.wf.journal.append(&self.run_id, &self.owner, entry).await
    }

    async fn drive(&mut self) -> Result<Value> {
        if let Some((stage, error)) = self.progress.failure.clone() {
            let cancelled = self.progress.cancelled.clone();
            return self.fail(stage, error_from_value(&error), cancelled, true).await;
        }
        let wf = self.wf.clone();
        let stages = wf.def.stages();
        let mut running: FuturesUnordered<BoxFuture<'static, (usize, StageEnd)>> = FuturesUnordered::new();
        let mut in_flight: HashSet<usize> = HashSet::new();
        while self.progress.results.len() < stages.len() {
            // A serial stage starts only when nothing runs, and stops the scan: nothing
            // else starts while it waits or runs.
            for (i, s) in stages.iter().enumerate() {
                let ready = !self.progress.results.contains_key(&s.name)
                    && !in_flight.contains(&i)
                    && s.depends_on.iter().all(|d| self.progress.results.contains_key(d));
                if in_flight.iter().any(|&j| !stages[j].parallel) {
                    break;
                }
                if !ready {
                    continue;
                }
                if !s.parallel {
                    if in_flight.is_empty() {
                        running.push(self.start(i));
                        in_flight.insert(i);
                    }
                    break;
                }
                running.push(self.start(i));
                in_flight.insert(i);
            }
            let Some((i, end)) = running.next().await else {
                return Err(Error::Config(format!("workflow {}: no stage can start", wf.def.name())));
            };
            in_flight.remove(&i);
            let stage = &stages[i];
            match end {
                StageEnd::Done { attempt, result, elapsed } => {
                    self.append(Entry::StageCompleted { stage: stage.name.clone(), attempt, result: result.clone() }).await?;
                    self.progress.complete(&stage.name, result);
                    self.emit(WorkflowEventKind::StageCompleted { stage: stage.name.clone(), attempt, duration: elapsed });
                }
                StageEnd::Failed { error } => {
                    // Cancel the others: dropping their calls cancels them in the workers.
                    drop(running);
                    let cancelled = stages.iter().enumerate().filter(|(j, _)| in_flight.contains(j)).map(|(_, s)| s.name.clone()).collect();
                    return self.fail(stage.name.clone(), error, cancelled, false).await;
                }
                StageEnd::Journal(e) => return Err(e),
            }
        }
        let result = Value::Map(stages.iter().map(|s| (s.name.clone(), self.progress.results[&s.name].clone())).collect());
        self.wf.journal.finish(&self.run_id, &self.owner, RunState::Completed, result.clone()).await?;
        self.emit(WorkflowEventKind::Completed);
        Ok(result)
    }

    /// Stage `i`'s attempts, as a future of their end.
    fn start(&self, i: usize) -> BoxFuture<'static, (usize, StageEnd)> {
        let stage = &self.wf.def.stages()[i];
        let input = if stage.depends_on.is_empty() {
            self.input.clone()
        } else {
            let done = self.wf.def.stages().iter().filter_map(|s| self.progress.results.get(&s.name).map(|r| (s.name.clone(), r.clone())));
            Value::Map(done.collect())
        };
        let first = self.progress.attempts.get(&stage.name).copied().unwrap_or(0) + 1;
        let failures = self.progress.failures.get(&stage.name).copied().unwrap_or(0);
        let (wf, run_id, owner) = (self.wf.clone(), self.run_id.clone(), self.owner.clone());
        Box::pin(async move { (i, attempts(wf, run_id, owner, i, input, first, failures).await) })
    }

    /// `stage` failed for good: journal it, compensate, journal the outcome, raise `WorkflowError`.
    async fn fail(&mut self, stage: String, error: Error, cancelled: Vec<String>, resumed: bool) -> Result<Value> {
        if !resumed {
            self.append(Entry::Compensating { stage: stage.clone(), error: error_to_value(&error) }).await?;
        }
        let compensations = super::saga::compensate(self, &stage, &error, &cancelled).await?;
        let err = Error::Workflow {
            workflow: self.wf.def.name().to_string(),
            run_id: self.run_id.clone(),
            stage: stage.clone(),
            cause: Box::new(error),
            compensations,
        };
        self.wf.journal.finish(&self.run_id, &self.owner, RunState::Failed, error_to_value(&err)).await?;
        let cause = match &err {
            Error::Workflow { cause, .. } => cause.to_string(),
            _ => String::new(),
        };
        self.emit(WorkflowEventKind::Failed { stage, error: cause });
        Err(err)
    }
}

pub(crate) fn emit(wf: &Inner, run_id: &str, kind: WorkflowEventKind) {
    let event = WorkflowEvent { workflow: wf.def.name().to_string(), run_id: run_id.to_string(), kind };
    if let Some(hooks) = wf.pm.interceptor() {
        // The workflow's process (0 for a workflow over a pool or a runner of the caller's own).
        hooks.service_event(wf.process.as_ref().map(|p| p.id()).unwrap_or(0), &event);
    }
    let _ = wf.events.send(event);
}

/// `{runId, stage, attempt, idempotencyKey}` in the workflow's dialect.
pub(crate) fn context(wf: &Inner, run_id: &str, stage: &str, attempt: u32, key: String) -> Value {
    let d = wf.options.dialect;
    Value::Map(vec![
        (d.name("runId").into_owned(), Value::Text(run_id.into())),
        (d.name("stage").into_owned(), Value::Text(stage.into())),
        (d.name("attempt").into_owned(), Value::Int(attempt as i64)),
        (d.name("idempotencyKey").into_owned(), Value::Text(key)),
    ])
}

/// Whether another attempt can help: not for a missing method, a bad value or a stopped manager.
pub(crate) fn retryable(e: &Error) -> bool {
    !matches!(
        e,
        Error::MethodNotFound { .. } | Error::Serialization { .. } | Error::ManagerShutDown | Error::Cancelled | Error::Config(_)
    )
}

/// Calls one stage until it succeeds or its retries are spent; journals each attempt first.
async fn attempts(wf: Arc<Inner>, run_id: String, owner: String, i: usize, input: Value, first: u32, failures: u32) -> StageEnd {
    let stage = &wf.def.stages()[i];
    let mut attempt = first;
    let mut failures = failures;
    loop {
        if let Err(e) = wf.journal.append(&run_id, &owner, Entry::StageStarted { stage: stage.name.clone(), attempt }).await {
            return StageEnd::Journal(e);
        }
        emit(&wf, &run_id, WorkflowEventKind::StageStarted { stage: stage.name.clone(), attempt });
        let ctx = context(&wf, &run_id, &stage.name, attempt, format!("{run_id}/{}", stage.name));
        let started = Instant::now();
        let call = wf.runner.call_stage(&stage.method, vec![input.clone(), ctx], stage.timeout);
        let result = match stage.timeout {
            Some(t) => match tokio::time::timeout(t + TIMEOUT_GUARD, call).await {
                Ok(r) => r,
                Err(_) => Err(Error::CallTimeout { method: stage.method.clone(), timeout_ms: t.as_millis() as u64 }),
            },
            None => call.await,
        };
        let error = match result {
            Ok(result) => return StageEnd::Done { attempt, result, elapsed: started.elapsed() },
            Err(e) => e,
        };
        let entry = Entry::StageFailed { stage: stage.name.clone(), attempt, error: error_to_value(&error) };
        if let Err(e) = wf.journal.append(&run_id, &owner, entry).await {
            return StageEnd::Journal(e);
        }
        emit(&wf, &run_id, WorkflowEventKind::StageFailed { stage: stage.name.clone(), attempt, error: error.to_string() });
        failures += 1;
        if failures > stage.retries || !retryable(&error) {
            return StageEnd::Failed { error };
        }
        let delay = wf.options.backoff.jittered(failures, wf.options.jitter, fastrand::f64());
        emit(&wf, &run_id, WorkflowEventKind::StageRetrying { stage: stage.name.clone(), attempt: attempt + 1, delay });
        wf.pm.clock().sleep(delay).await;
        attempt += 1;
    }
}
