//! What a test manager keeps: the operations record, the failures to inject
//! and the health and metrics overrides. [`Hooks`] is the host's
//! [`Interceptor`]: the engine calls it at each spawn, call, kill, scale and event.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::clock::Clock;
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::host::{Event, EventKind, Interceptor, ProcessMetrics};
use crate::protocol::HealthReport;
use crate::reports::Report;
use crate::supervise::SupervisorEvent;
use crate::workflow::{WorkflowEvent, WorkflowEventKind};
use crate::value::Value;

/// The most operations kept; past it the oldest go (and [`Hooks::dropped`] counts them).
pub const MAX_OPERATIONS: usize = 100_000;
/// The most failures waiting to be injected at once.
pub const MAX_FAILURES: usize = 1024;

/// One thing that happened on a test manager.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Spawn { process_class: String, process_id: u64 },
    Kill { process_id: u64 },
    Crash { process_id: u64, exit_code: Option<i32>, signal: Option<i32> },
    Restart { process_id: u64, attempt: u32, delay_ms: u64 },
    /// The restart budget is spent: the process is `failed`.
    Failed { process_id: u64 },
    Exit { process_id: u64 },
    /// Restarted by the manager for its memory, its health, or a self-heal action.
    Recycle { process_id: u64, reason: String },
    Call { process_id: u64, method: String, outcome: CallOutcome },
    Scale { pool_id: u64, from: usize, to: usize },
    /// A supervisor's event: type `supervisor:child:started`, `supervisor:child:exited`,
    /// `supervisor:child:restarted`, `supervisor:failed`, `supervisor:stopped`.
    Supervisor { supervisor_id: u64, event: SupervisorEvent },
    /// A workflow run's event: type `workflow:started`, `workflow:stage:started|completed|failed|retrying`,
    /// `workflow:compensation:started|completed`, `workflow:completed`, `workflow:failed`.
    /// `process_id`: the process the workflow class runs in (0 when it was loaded over a pool).
    Workflow { process_id: u64, event: WorkflowEvent },
}

/// How a recorded call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    Ok,
    /// The error's class name (`RemoteError`, `CallTimeoutError`, ...) and message.
    Error { class: String, message: String },
}

impl Operation {
    /// The record's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Spawn { .. } => "spawn",
            Operation::Kill { .. } => "kill",
            Operation::Crash { .. } => "crash",
            Operation::Restart { .. } => "restart",
            Operation::Failed { .. } => "failed",
            Operation::Exit { .. } => "exit",
            Operation::Recycle { .. } => "recycle",
            Operation::Call { .. } => "call",
            Operation::Scale { .. } => "scale",
            Operation::Supervisor { event, .. } => match event {
                SupervisorEvent::ChildStarted { .. } => "supervisor:child:started",
                SupervisorEvent::ChildExited { .. } => "supervisor:child:exited",
                SupervisorEvent::ChildRestarted { .. } => "supervisor:child:restarted",
                SupervisorEvent::Failed { .. } => "supervisor:failed",
                SupervisorEvent::Stopped => "supervisor:stopped",
            },
            Operation::Workflow { event, .. } => match event.kind {
                WorkflowEventKind::Started { .. } => "workflow:started",
                WorkflowEventKind::StageStarted { .. } => "workflow:stage:started",
                WorkflowEventKind::StageCompleted { .. } => "workflow:stage:completed",
                WorkflowEventKind::StageFailed { .. } => "workflow:stage:failed",
                WorkflowEventKind::StageRetrying { .. } => "workflow:stage:retrying",
                WorkflowEventKind::CompensationStarted { .. } => "workflow:compensation:started",
                WorkflowEventKind::CompensationCompleted { .. } => "workflow:compensation:completed",
                WorkflowEventKind::Completed => "workflow:completed",
                WorkflowEventKind::Failed { .. } => "workflow:failed",
            },
        }
    }

    /// The process the operation concerns (a pool's id for `scale`).
    pub fn process_id(&self) -> u64 {
        match self {
            Operation::Spawn { process_id, .. }
            | Operation::Kill { process_id }
            | Operation::Crash { process_id, .. }
            | Operation::Restart { process_id, .. }
            | Operation::Failed { process_id }
            | Operation::Exit { process_id }
            | Operation::Recycle { process_id, .. }
            | Operation::Call { process_id, .. } => *process_id,
            Operation::Scale { pool_id, .. } => *pool_id,
            // The child's process, else the supervisor.
            Operation::Supervisor { supervisor_id, event } => match event {
                SupervisorEvent::ChildStarted { process_id, .. }
                | SupervisorEvent::ChildExited { process_id, .. }
                | SupervisorEvent::ChildRestarted { process_id, .. } => *process_id,
                SupervisorEvent::Failed { .. } | SupervisorEvent::Stopped => *supervisor_id,
            },
            Operation::Workflow { process_id, .. } => *process_id,
        }
    }
}

/// An operation and when it happened (ms since the epoch, on the manager's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub operation: Operation,
    pub timestamp_ms: u64,
}

impl Recorded {
    /// The record as front ends return it: `{ type, processId, ..., timestamp }` in the caller's dialect.
    pub fn report(&self, dialect: Dialect) -> Value {
        let n = |camel: &str| dialect.name(camel).into_owned();
        let int = |x: u64| Value::Int(x.min(i64::MAX as u64) as i64);
        let opt = |x: Option<i32>| x.map(|v| Value::Int(v as i64)).unwrap_or(Value::Null);
        let mut m = vec![("type".to_string(), Value::Text(self.operation.kind().into()))];
        match &self.operation {
            Operation::Spawn { process_class, process_id } => {
                m.push((n("processClass"), Value::Text(process_class.clone())));
                m.push((n("processId"), int(*process_id)));
            }
            Operation::Kill { process_id } | Operation::Failed { process_id } | Operation::Exit { process_id } => {
                m.push((n("processId"), int(*process_id)));
            }
            Operation::Crash { process_id, exit_code, signal } => {
                m.push((n("processId"), int(*process_id)));
                m.push((n("exitCode"), opt(*exit_code)));
                m.push((n("signal"), opt(*signal)));
            }
            Operation::Restart { process_id, attempt, delay_ms } => {
                m.push((n("processId"), int(*process_id)));
                m.push((n("attempt"), Value::Int(*attempt as i64)));
                m.push((n("delay"), Value::Float(dialect.number(std::time::Duration::from_millis(*delay_ms)))));
            }
            Operation::Recycle { process_id, reason } => {
                m.push((n("processId"), int(*process_id)));
                m.push((n("reason"), Value::Text(reason.clone())));
            }
            Operation::Call { process_id, method, outcome } => {
                m.push((n("processId"), int(*process_id)));
                m.push((n("method"), Value::Text(method.clone())));
                match outcome {
                    CallOutcome::Ok => m.push((n("outcome"), Value::Text("ok".into()))),
                    CallOutcome::Error { class, message } => {
                        m.push((n("outcome"), Value::Text("error".into())));
                        m.push((n("error"), Value::Text(class.clone())));
                        m.push((n("message"), Value::Text(message.clone())));
                    }
                }
            }
            Operation::Scale { pool_id, from, to } => {
                m.push((n("poolId"), int(*pool_id)));
                m.push((n("from"), int(*from as u64)));
                m.push((n("to"), int(*to as u64)));
            }
            Operation::Supervisor { supervisor_id, event } => {
                m.push((n("supervisorId"), int(*supervisor_id)));
                if let Value::Map(fields) = event.report(dialect) {
                    m.extend(fields.into_iter().filter(|(k, _)| k != "type"));
                }
            }
            Operation::Workflow { process_id, event } => {
                m.push((n("processId"), int(*process_id)));
                if let Value::Map(fields) = event.report(dialect) {
                    m.extend(fields.into_iter().filter(|(k, _)| k != "type"));
                }
            }
        }
        m.push((n("timestamp"), int(self.timestamp_ms)));
        Value::Map(m)
    }
}

/// Which operation a simulated failure waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum FailurePoint {
    /// The next spawn of a process with this name (the spawn's name or file stem, or the worker's declared name).
    Spawn(String),
    /// The next call of `method`, on a process with this name if one is given.
    Call { process: Option<String>, method: String },
}

impl std::str::FromStr for FailurePoint {
    type Err = Error;
    /// `spawn:Name`, `call:method` or `call:Name.method`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config(format!("failure point {s:?}: {why} (expected 'spawn:Name', 'call:method' or 'call:Name.method')"));
        let (op, rest) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        if rest.is_empty() {
            return Err(bad("nothing after ':'"));
        }
        match op {
            "spawn" => Ok(FailurePoint::Spawn(rest.to_string())),
            "call" => match rest.rsplit_once('.') {
                Some((p, m)) if !p.is_empty() && !m.is_empty() => Ok(FailurePoint::Call { process: Some(p.into()), method: m.into() }),
                Some(_) => Err(bad("an empty name or method")),
                None => Ok(FailurePoint::Call { process: None, method: rest.into() }),
            },
            _ => Err(bad(&format!("unknown operation {op:?}"))),
        }
    }
}

/// The error a simulated failure raises: a spawn fails with `SpawnError` carrying
/// the message, a call with `RemoteError` of this type and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub type_name: String,
    pub message: String,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure { type_name: "Error".into(), message: message.into() }
    }
    pub fn of_type(mut self, type_name: impl Into<String>) -> Self {
        self.type_name = type_name.into();
        self
    }
}

/// A test manager's state, shared with the engine.
pub(crate) struct Hooks {
    pub record: bool,
    pub clock: Clock,
    ops: Mutex<VecDeque<Recorded>>,
    dropped: Mutex<u64>,
    failures: Mutex<Vec<(FailurePoint, Failure)>>,
    health: Mutex<HashMap<u64, HealthReport>>,
    metrics: Mutex<HashMap<u64, MetricsOverride>>,
}

/// What `set_metrics` gave: whole metrics, or a front end's fields laid over the measured ones.
pub(crate) enum MetricsOverride {
    Whole(ProcessMetrics),
    Fields(Value, Dialect),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hooks {
    pub(crate) fn new(record: bool, clock: Clock) -> Self {
        Hooks {
            record,
            clock,
            ops: Mutex::default(),
            dropped: Mutex::default(),
            failures: Mutex::default(),
            health: Mutex::default(),
            metrics: Mutex::default(),
        }
    }

    fn push(&self, operation: Operation) {
        if !self.record {
            return;
        }
        let mut ops = lock(&self.ops);
        if ops.len() >= MAX_OPERATIONS {
            ops.pop_front();
            *lock(&self.dropped) += 1;
        }
        ops.push_back(Recorded { operation, timestamp_ms: self.clock.now_ms() });
    }

    pub(crate) fn operations(&self) -> Vec<Recorded> {
        lock(&self.ops).iter().cloned().collect()
    }

    /// Operations that went past [`MAX_OPERATIONS`].
    pub(crate) fn dropped(&self) -> u64 {
        *lock(&self.dropped)
    }

    pub(crate) fn clear_operations(&self) {
        lock(&self.ops).clear();
    }

    pub(crate) fn add_failure(&self, point: FailurePoint, failure: Failure) -> Result<()> {
        let mut f = lock(&self.failures);
        if f.len() >= MAX_FAILURES {
            return Err(Error::Config(format!("more than {MAX_FAILURES} simulated failures are waiting (clear_failures)")));
        }
        f.push((point, failure));
        Ok(())
    }

    pub(crate) fn clear_failures(&self) {
        lock(&self.failures).clear();
    }

    /// Takes the first waiting failure that `matches`.
    fn take_failure(&self, matches: impl Fn(&FailurePoint) -> bool) -> Option<Failure> {
        let mut f = lock(&self.failures);
        let i = f.iter().position(|(p, _)| matches(p))?;
        Some(f.remove(i).1)
    }

    pub(crate) fn set_health(&self, id: u64, report: Option<HealthReport>) {
        match report {
            Some(r) => lock(&self.health).insert(id, r),
            None => lock(&self.health).remove(&id),
        };
    }

    pub(crate) fn set_metrics(&self, id: u64, metrics: Option<MetricsOverride>) {
        match metrics {
            Some(m) => lock(&self.metrics).insert(id, m),
            None => lock(&self.metrics).remove(&id),
        };
    }
}

impl Interceptor for Hooks {
    fn before_spawn(&self, names: &[&str]) -> Result<()> {
        let failure = self.take_failure(|p| matches!(p, FailurePoint::Spawn(n) if names.contains(&n.as_str())));
        match failure {
            Some(f) => Err(Error::Spawn { target: names.first().unwrap_or(&"").to_string(), reason: f.message, stderr_tail: String::new() }),
            None => Ok(()),
        }
    }

    fn spawned(&self, process_id: u64, process_class: &str) {
        self.push(Operation::Spawn { process_class: process_class.to_string(), process_id });
    }

    fn before_call(&self, _process_id: u64, names: &[&str], method: &str) -> Result<()> {
        let failure = self.take_failure(|p| match p {
            FailurePoint::Call { process, method: m } => m == method && process.as_deref().into_iter().all(|p| names.contains(&p)),
            FailurePoint::Spawn(_) => false,
        });
        match failure {
            Some(f) => Err(Error::Remote { remote_type: f.type_name, message: f.message, remote_traceback: String::new(), code: None }),
            None => Ok(()),
        }
    }

    fn called(&self, process_id: u64, method: &str, outcome: &Result<Value>) {
        if !self.record {
            return;
        }
        let outcome = match outcome {
            Ok(_) => CallOutcome::Ok,
            Err(e) => CallOutcome::Error { class: e.class_name().to_string(), message: e.to_string() },
        };
        self.push(Operation::Call { process_id, method: method.to_string(), outcome });
    }

    fn killed(&self, process_id: u64) {
        self.push(Operation::Kill { process_id });
    }

    fn scaled(&self, pool_id: u64, from: usize, to: usize) {
        self.push(Operation::Scale { pool_id, from, to });
    }

    fn event(&self, event: &Event) {
        let process_id = event.process_id;
        let op = match &event.kind {
            EventKind::Crashed { exit_code, signal } => Operation::Crash { process_id, exit_code: *exit_code, signal: *signal },
            EventKind::Restarting { attempt, delay } => Operation::Restart { process_id, attempt: *attempt, delay_ms: delay.as_millis() as u64 },
            EventKind::Failed => Operation::Failed { process_id },
            EventKind::Exited => Operation::Exit { process_id },
            EventKind::MemoryExceeded { .. } => Operation::Recycle { process_id, reason: "memory".into() },
            EventKind::Unhealthy { .. } => Operation::Recycle { process_id, reason: "unhealthy".into() },
            EventKind::SelfHeal { action, .. } => Operation::Recycle { process_id, reason: format!("selfheal:{action}") },
            // Spawns are recorded once, with their class (`spawned`); these repeat on every restart.
            EventKind::Spawned { .. } | EventKind::Ready { .. } | EventKind::ConnectionRefused | EventKind::Refused { .. } => return,
        };
        self.push(op);
    }

    fn service_event(&self, service_id: u64, event: &dyn std::any::Any) {
        if let Some(e) = event.downcast_ref::<SupervisorEvent>() {
            self.push(Operation::Supervisor { supervisor_id: service_id, event: e.clone() });
        } else if let Some(e) = event.downcast_ref::<WorkflowEvent>() {
            self.push(Operation::Workflow { process_id: service_id, event: e.clone() });
        }
    }

    fn health(&self, process_id: u64) -> Option<HealthReport> {
        lock(&self.health).get(&process_id).cloned()
    }

    fn metrics(&self, process_id: u64, real: ProcessMetrics) -> ProcessMetrics {
        match lock(&self.metrics).get(&process_id) {
            None => real,
            Some(MetricsOverride::Whole(m)) => m.clone(),
            // Checked when it was set; a failure here cannot happen, the measured ones stand then.
            Some(MetricsOverride::Fields(v, d)) => crate::options::metrics_override(v, *d, real.clone()).unwrap_or(real),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_points_parse_or_say_why_not() {
        assert_eq!("spawn:Calc".parse::<FailurePoint>().unwrap(), FailurePoint::Spawn("Calc".into()));
        assert_eq!("call:add".parse::<FailurePoint>().unwrap(), FailurePoint::Call { process: None, method: "add".into() });
        assert_eq!(
            "call:my.calc.add".parse::<FailurePoint>().unwrap(),
            FailurePoint::Call { process: Some("my.calc".into()), method: "add".into() }
        );
        let e = "kill:x".parse::<FailurePoint>().unwrap_err().to_string();
        assert!(e.contains("unknown operation \"kill\""), "{e}");
        assert!("spawn".parse::<FailurePoint>().is_err());
        assert!("call:".parse::<FailurePoint>().is_err());
    }

    #[test]
    fn a_failure_is_taken_once_by_the_first_matching_operation() {
        let h = Hooks::new(true, Clock::Real);
        h.add_failure("call:calc.add".parse().unwrap(), Failure::new("boom").of_type("ValueError")).unwrap();
        assert!(h.before_call(1, &["other"], "add").is_ok());
        match h.before_call(1, &["Calc", "calc"], "add") {
            Err(Error::Remote { remote_type, message, .. }) => assert_eq!((remote_type.as_str(), message.as_str()), ("ValueError", "boom")),
            other => panic!("{other:?}"),
        }
        assert!(h.before_call(1, &["calc"], "add").is_ok())
    }
}
