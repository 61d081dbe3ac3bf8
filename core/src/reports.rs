//! Every report the API returns, as one [`Value`] shape: process info, health,
//! metrics, events, pool metrics and pool events, supervisor children and events. Names are written once in
//! camelCase and spelled per [`Dialect`] (Python gets `process_id`, `in_flight`);
//! durations follow the dialect's unit, metrics do not (cpu %, bytes, latency ms,
//! timestamps ms since the epoch, the same everywhere). Bridges convert the
//! `Value` to native objects and never rebuild a report.
//!
//! ```
//! use titan_pm::{options::Dialect, reports::Report, ProcessState, Isolation, ProcessInfo, Transport};
//! let info = ProcessInfo { process_id: 1, name: "calc".into(), pid: 42, state: ProcessState::Running,
//!                          restarts: 0, isolation: Isolation::Child, transport: Transport::Ipc };
//! let v = info.report(Dialect::Python);
//! assert_eq!(v.get("process_id"), Some(&titan_pm::Value::Int(1)));
//! assert_eq!(info.report(Dialect::Js).get("processId"), Some(&titan_pm::Value::Int(1)));
//! ```

use crate::host::{Event, EventKind, Latency, MethodMetrics, ProcessInfo, ProcessMetrics};
use crate::dialect::Dialect;
use crate::pool::{PoolEvent, PoolMetrics, PoolWorkerMetrics};
use crate::protocol::HealthReport;
use crate::supervise::{ChildInfo, SupervisorEvent};
use crate::value::Value;

/// Something the API reports, as a `Value` in the caller's dialect.
pub trait Report {
    fn report(&self, dialect: Dialect) -> Value;
}

/// Builds a map from camelCase names.
struct Fields {
    dialect: Dialect,
    entries: Vec<(String, Value)>,
}

impl Fields {
    fn new(dialect: Dialect) -> Self {
        Fields { dialect, entries: Vec::new() }
    }
    fn put(mut self, name: &str, v: impl Into<Value>) -> Self {
        self.entries.push((self.dialect.name(name).into_owned(), v.into()));
        self
    }
    fn done(self) -> Value {
        Value::Map(self.entries)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(n.min(i64::MAX as u64) as i64)
    }
}
impl From<u32> for Value {
    fn from(n: u32) -> Value {
        Value::Int(n as i64)
    }
}
impl From<usize> for Value {
    fn from(n: usize) -> Value {
        Value::Int(n as i64)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Value {
        Value::Int(n as i64)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map(Into::into).unwrap_or(Value::Null)
    }
}

impl Report for ProcessInfo {
    fn report(&self, d: Dialect) -> Value {
        Fields::new(d)
            .put("processId", self.process_id)
            .put("name", self.name.as_str())
            .put("pid", self.pid)
            .put("state", self.state.as_str())
            .put("restarts", self.restarts)
            .put("isolation", self.isolation.as_str())
            .put("transport", self.transport.as_str())
            .done()
    }
}

impl Report for HealthReport {
    fn report(&self, d: Dialect) -> Value {
        let checks = self
            .checks
            .iter()
            .map(|c| Fields::new(d).put("name", c.name.as_str()).put("status", c.status.as_str()).put("message", c.message.as_str()).done())
            .collect();
        Fields::new(d).put("status", self.status.as_str()).put("checks", Value::List(checks)).put("timestamp", self.timestamp_ms).done()
    }
}

impl Report for Latency {
    fn report(&self, d: Dialect) -> Value {
        Fields::new(d).put("p50", self.p50).put("p95", self.p95).put("p99", self.p99).done()
    }
}

impl Report for ProcessMetrics {
    fn report(&self, d: Dialect) -> Value {
        Fields::new(d)
            .put("cpu", self.cpu)
            .put("memory", self.memory)
            .put("requests", self.requests)
            .put("errors", self.errors)
            .put("inFlight", self.in_flight)
            .put("latency", self.latency.report(d))
            .put("methods", methods_report(&self.methods, d))
            .done()
    }
}

/// `{name: {requests, errors, latency}}` per `@Metric` method (names as declared, not re-spelled).
fn methods_report(methods: &[MethodMetrics], d: Dialect) -> Value {
    Value::Map(
        methods
            .iter()
            .map(|m| {
                let v = Fields::new(d).put("requests", m.requests).put("errors", m.errors).put("latency", m.latency.report(d)).done();
                (m.method.clone(), v)
            })
            .collect(),
    )
}

impl Report for Event {
    fn report(&self, d: Dialect) -> Value {
        let f = Fields::new(d).put("type", self.kind.name()).put("processId", self.process_id);
        match &self.kind {
            EventKind::Spawned { pid } | EventKind::Ready { pid } => f.put("pid", *pid),
            EventKind::Crashed { exit_code, signal } => f.put("exitCode", *exit_code).put("signal", *signal),
            EventKind::Restarting { attempt, delay } => f.put("attempt", *attempt).put("delay", d.number(*delay)),
            EventKind::MemoryExceeded { rss, limit } => f.put("rss", *rss).put("limit", *limit),
            EventKind::Unhealthy { probes } => f.put("probes", *probes),
            EventKind::SelfHeal { method, symptom, action } => {
                f.put("method", method.as_str()).put("symptom", symptom.as_str()).put("action", *action)
            }
            EventKind::Failed | EventKind::Exited | EventKind::ConnectionRefused => f,
            EventKind::Refused { reason } => f.put("reason", reason.as_str()),
        }
        .done()
    }
}

impl Report for PoolWorkerMetrics {
    fn report(&self, d: Dialect) -> Value {
        Fields::new(d)
            .put("processId", self.process_id)
            .put("pid", self.pid)
            .put("inFlight", self.in_flight)
            .put("requests", self.requests)
            .put("errors", self.errors)
            .put("latency", self.latency.report(d))
            .put("cpu", self.cpu)
            .put("memory", self.memory)
            .done()
    }
}

impl Report for PoolMetrics {
    fn report(&self, d: Dialect) -> Value {
        Fields::new(d)
            .put("size", self.size)
            .put("busy", self.busy)
            .put("idle", self.idle)
            .put("queueLength", self.queue_length)
            .put("requests", self.requests)
            .put("errors", self.errors)
            .put("errorRate", self.error_rate)
            .put("latency", self.latency.report(d))
            .put("state", self.state)
            .put("breaker", self.breaker.map(|b| b.as_str()))
            .put("workers", Value::List(self.workers.iter().map(|w| w.report(d)).collect()))
            .put("methods", methods_report(&self.methods, d))
            .done()
    }
}

impl Report for PoolEvent {
    fn report(&self, d: Dialect) -> Value {
        let f = Fields::new(d).put("type", self.name());
        match self {
            PoolEvent::Initialized { size } => f.put("size", *size),
            PoolEvent::Scaled { from, to } => f.put("from", *from).put("to", *to),
            PoolEvent::Failed { reason } => f.put("reason", reason.as_str()),
            PoolEvent::WorkerSpawned { process_id } | PoolEvent::WorkerCrashed { process_id } | PoolEvent::WorkerUnhealthy { process_id } => {
                f.put("processId", *process_id)
            }
            PoolEvent::WorkerReplaced { old, new } => f.put("old", *old).put("new", *new),
            PoolEvent::Drained | PoolEvent::Destroyed => f,
            PoolEvent::Breaker(s) => f.put("state", s.as_str()),
        }
        .done()
    }
}

impl Report for ChildInfo {
    fn report(&self, d: Dialect) -> Value {
        Fields::new(d)
            .put("name", self.name.as_str())
            .put("kind", self.kind.as_str())
            .put("state", self.state.as_str())
            .put("restarts", self.restarts)
            .put("processId", self.process_id)
            .put("processIds", Value::List(self.process_ids.iter().map(|&id| Value::from(id)).collect()))
            .done()
    }
}

impl Report for SupervisorEvent {
    fn report(&self, d: Dialect) -> Value {
        let f = Fields::new(d).put("type", self.name());
        match self {
            SupervisorEvent::ChildStarted { name, process_id } => f.put("name", name.as_str()).put("processId", *process_id),
            SupervisorEvent::ChildExited { name, process_id, exit_code, signal, normal } => f
                .put("name", name.as_str())
                .put("processId", *process_id)
                .put("exitCode", *exit_code)
                .put("signal", *signal)
                .put("normal", Value::Bool(*normal)),
            SupervisorEvent::ChildRestarted { name, process_id, restarts } => {
                f.put("name", name.as_str()).put("processId", *process_id).put("restarts", *restarts)
            }
            SupervisorEvent::Failed { reason } => f.put("reason", reason.as_str()),
            SupervisorEvent::Stopped => f,
        }
        .done()
    }
}

impl<T: Report> Report for Vec<T> {
    fn report(&self, d: Dialect) -> Value {
        Value::List(self.iter().map(|x| x.report(d)).collect())
    }
}
