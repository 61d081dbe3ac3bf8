//! Rust mirrors of the schema's data structs and their codecs, shared by the
//! host and the agent: errors as data, worker descriptions and health reports.
//!
//! ```
//! use titan_pm::protocol::{ErrorInfo, ErrorInfoKind};
//! let e = ErrorInfo::method_not_found("nope", vec!["add".into()]);
//! assert_eq!(e.kind, ErrorInfoKind::MethodNotFound);
//! assert_eq!(e.into_error().to_string(), "no public method \"nope\" (available: add)");
//! ```

use crate::error::{Error, Result};
use crate::policy::method::{self as mp, ArgKey, MethodPolicies};
use crate::state::ProcessState;
use crate::titan_capnp::{description, error_info, health_report, method_policies, workflow_info};
use crate::value::text;
use crate::dialect::{Dialect, Section};
use crate::value::Value;

/// What went wrong in a worker, as it crosses the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorInfo {
    pub kind: ErrorInfoKind,
    pub type_name: String,
    pub message: String,
    pub stack: String,
    pub code: Option<String>,
    pub available: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorInfoKind {
    Remote,
    MethodNotFound,
    Serialization,
    Cancelled,
    Init,
}

impl ErrorInfo {
    pub fn new(kind: ErrorInfoKind, type_name: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind,
            type_name: type_name.into(),
            message: message.into(),
            stack: String::new(),
            code: None,
            available: Vec::new(),
        }
    }
    /// The method raised `type_name: message`.
    pub fn remote(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorInfoKind::Remote, type_name, message)
    }
    pub fn method_not_found(method: &str, available: Vec<String>) -> Self {
        let mut e = Self::new(ErrorInfoKind::MethodNotFound, "MethodNotFoundError", method);
        e.available = available;
        e
    }
    /// A `SerializationError` as it crosses the wire (its path travels as the type name).
    pub fn serialization(e: Error) -> Self {
        match e {
            Error::Serialization { path, message } => Self::new(ErrorInfoKind::Serialization, path, message),
            other => Self::new(ErrorInfoKind::Serialization, "value", other.to_string()),
        }
    }
    pub fn with_stack(mut self, stack: impl Into<String>) -> Self {
        self.stack = stack.into();
        self
    }

    /// A host-side error, relayed to a worker that called another process through
    /// a `Caller`: [`into_error`](Self::into_error) on the worker side gives the
    /// same error back (same variant, same kind), so a worker handles it as a host would.
    ///
    /// ```
    /// use titan_pm::{protocol::ErrorInfo, Error, ErrorKind, ProcessState};
    /// let e = Error::CallTimeout { method: "slow".into(), timeout_ms: 50 };
    /// let back = ErrorInfo::relay(&e).into_error();
    /// assert_eq!((back.to_string(), back.kind()), (e.to_string(), ErrorKind::Overloaded));
    /// let e = Error::ProcessFailed { process_id: 3, state: ProcessState::Stopped };
    /// assert!(matches!(ErrorInfo::relay(&e).into_error(), Error::ProcessFailed { process_id: 3, state: ProcessState::Stopped }));
    /// ```
    pub fn relay(e: &Error) -> ErrorInfo {
        let fields: Vec<String> = match e {
            Error::Remote { remote_type, message, remote_traceback, code } => {
                let mut i = ErrorInfo::remote(remote_type.as_str(), message.as_str()).with_stack(remote_traceback.as_str());
                i.code = code.clone();
                return i;
            }
            Error::MethodNotFound { method, available } => return ErrorInfo::method_not_found(method, available.clone()),
            Error::Serialization { path, message } => return ErrorInfo::new(ErrorInfoKind::Serialization, path.as_str(), message.as_str()),
            Error::ProcessCrashed { process_id, exit_code, signal } => {
                let opt = |x: &Option<i32>| x.map(|n| n.to_string()).unwrap_or_default();
                vec!["crashed".into(), process_id.to_string(), opt(exit_code), opt(signal)]
            }
            Error::ProcessFailed { process_id, state } => vec!["failed".into(), process_id.to_string(), state.as_str().into()],
            Error::CallTimeout { method, timeout_ms } => vec!["timeout".into(), method.clone(), timeout_ms.to_string()],
            Error::PoolBackpressure { queue_size } => vec!["backpressure".into(), queue_size.to_string()],
            Error::CircuitOpen => vec!["circuit".into()],
            Error::Cancelled => vec!["cancelled".into()],
            Error::ManagerShutDown => vec!["shutdown".into()],
            // Each failure as two fields, path then message (at most as many as fit the list).
            Error::Validation { failures } => std::iter::once("validation".to_string())
                .chain(failures.iter().take(MAX_ERROR_LIST / 2 - 1).flat_map(|(p, m)| [p.clone(), m.clone()]))
                .collect(),
            other => vec!["config".into(), other.to_string()],
        };
        let mut i = ErrorInfo::remote(e.class_name(), e.to_string());
        i.code = Some(RELAYED.into());
        i.available = fields;
        i
    }

    /// A worker's own validator (`@Validate` with a validator object or function,
    /// run in the worker) refused the arguments: the host sees `ValidationError`
    /// with these (path, message) failures, as for a JSON Schema it checks itself.
    ///
    /// ```
    /// use titan_pm::{protocol::ErrorInfo, Error};
    /// let failures = vec![("/email".to_string(), "not an email".to_string())];
    /// let back = ErrorInfo::validation(failures.clone()).into_error();
    /// assert!(matches!(back, Error::Validation { failures: f } if f == failures));
    /// ```
    pub fn validation(failures: Vec<(String, String)>) -> ErrorInfo {
        ErrorInfo::relay(&Error::Validation { failures })
    }

    /// The host-side error for this worker-side failure.
    pub fn into_error(self) -> Error {
        if self.code.as_deref() == Some(RELAYED) {
            if let Some(e) = relayed(&self.available) {
                return e;
            }
        }
        match self.kind {
            ErrorInfoKind::MethodNotFound => Error::MethodNotFound { method: self.message, available: self.available },
            ErrorInfoKind::Serialization => Error::Serialization { path: self.type_name, message: self.message },
            _ => Error::Remote {
                remote_type: self.type_name,
                message: self.message,
                remote_traceback: self.stack,
                code: self.code,
            },
        }
    }

    pub fn write(&self, mut b: error_info::Builder<'_>) {
        b.set_kind(match self.kind {
            ErrorInfoKind::Remote => error_info::Kind::Remote,
            ErrorInfoKind::MethodNotFound => error_info::Kind::MethodNotFound,
            ErrorInfoKind::Serialization => error_info::Kind::Serialization,
            ErrorInfoKind::Cancelled => error_info::Kind::Cancelled,
            ErrorInfoKind::Init => error_info::Kind::Init,
        });
        // Texts are cut to MAX_ERROR_TEXT: an error must always fit in its reply.
        b.set_type(clip(&self.type_name));
        b.set_message(clip(&self.message));
        b.set_stack(clip(&self.stack));
        b.set_code(clip(self.code.as_deref().unwrap_or("")));
        let available = &self.available[..self.available.len().min(MAX_ERROR_LIST)];
        let mut l = b.init_available(available.len() as u32);
        for (i, m) in available.iter().enumerate() {
            l.set(i as u32, clip(m));
        }
    }

    pub fn read(r: error_info::Reader<'_>) -> Result<Self> {
        let p = "error";
        let kind = match r.get_kind() {
            Ok(error_info::Kind::Remote) | Err(_) => ErrorInfoKind::Remote,
            Ok(error_info::Kind::MethodNotFound) => ErrorInfoKind::MethodNotFound,
            Ok(error_info::Kind::Serialization) => ErrorInfoKind::Serialization,
            Ok(error_info::Kind::Cancelled) => ErrorInfoKind::Cancelled,
            Ok(error_info::Kind::Init) => ErrorInfoKind::Init,
        };
        let code = text(r.get_code().map_err(ser)?, p)?;
        Ok(ErrorInfo {
            kind,
            type_name: text(r.get_type().map_err(ser)?, p)?,
            message: text(r.get_message().map_err(ser)?, p)?,
            stack: text(r.get_stack().map_err(ser)?, p)?,
            code: (!code.is_empty()).then_some(code),
            available: r
                .get_available()
                .map_err(ser)?
                .iter()
                .map(|t| text(t.map_err(ser)?, p))
                .collect::<Result<_>>()?,
        })
    }
}

/// The longest text of an error (message, stack, type) sent; longer ones are cut.
pub const MAX_ERROR_TEXT: usize = 1 << 20;
const MAX_ERROR_LIST: usize = 10_000;

fn clip(s: &str) -> &str {
    if s.len() <= MAX_ERROR_TEXT {
        return s;
    }
    let mut cut = MAX_ERROR_TEXT;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The `code` of an [`ErrorInfo::relay`]ed host error; its fields ride in `available`.
const RELAYED: &str = "titan-pm:relayed";

fn relayed(f: &[String]) -> Option<Error> {
    let num = |i: usize| f.get(i)?.parse::<u64>().ok();
    let opt = |i: usize| f.get(i).and_then(|s| s.parse::<i32>().ok());
    Some(match f.first()?.as_str() {
        "crashed" => Error::ProcessCrashed { process_id: num(1)?, exit_code: opt(2), signal: opt(3) },
        "failed" => {
            let state = [ProcessState::Starting, ProcessState::Running, ProcessState::Restarting, ProcessState::Stopping, ProcessState::Stopped, ProcessState::Failed]
                .into_iter()
                .find(|s| Some(s.as_str()) == f.get(2).map(String::as_str))?;
            Error::ProcessFailed { process_id: num(1)?, state }
        }
        "timeout" => Error::CallTimeout { method: f.get(1)?.clone(), timeout_ms: num(2)? },
        "backpressure" => Error::PoolBackpressure { queue_size: num(1)? as usize },
        "circuit" => Error::CircuitOpen,
        "cancelled" => Error::Cancelled,
        "shutdown" => Error::ManagerShutDown,
        "config" => Error::Config(f.get(1)?.trim_start_matches("invalid configuration: ").to_string()),
        "validation" => Error::Validation { failures: f[1..].chunks_exact(2).map(|pm| (pm[0].clone(), pm[1].clone())).collect() },
        _ => return None,
    })
}

pub(crate) fn ser(e: capnp::Error) -> Error {
    Error::Serialization { path: "message".into(), message: e.to_string() }
}

/// A worker's answer to `describe`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub methods: Vec<MethodInfo>,
    pub pid: u32,
    pub runtime: String,
    pub has_health_check: bool,
    /// The class's own health probe interval (`@HealthCheck({ interval })`); 0 = the host's.
    pub health_interval_ms: u64,
    /// The stage graph, when the class is a workflow.
    pub workflow: Option<WorkflowInfo>,
}

/// A workflow class's stage graph as it crosses the wire (validated by
/// [`crate::workflow::WorkflowDef::new`] when the workflow is loaded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowInfo {
    pub stages: Vec<StageInfo>,
    pub compensations: Vec<CompensationInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageInfo {
    pub name: String,
    pub depends_on: Vec<String>,
    /// Per attempt; 0 = the method's or the host's default deadline.
    pub timeout_ms: u64,
    /// Attempts after the first.
    pub retries: u32,
    /// `false`: the stage runs alone.
    pub parallel: bool,
    /// The public method that runs it.
    pub method: String,
}

impl Default for StageInfo {
    fn default() -> Self {
        StageInfo { name: String::new(), depends_on: Vec::new(), timeout_ms: 0, retries: 0, parallel: true, method: String::new() }
    }
}

/// A stage's own options (the Rust builder's; the decorators' `timeout`, `retries`, `parallel`).
#[derive(Debug, Clone, PartialEq)]
pub struct StageOptions {
    /// Per attempt; the attempt is cancelled in the worker when it passes.
    pub timeout: Option<std::time::Duration>,
    /// Attempts after the first (with the workflow's backoff and jitter between them).
    pub retries: u32,
    /// `false`: the stage never runs alongside another one.
    pub parallel: bool,
}

impl Default for StageOptions {
    fn default() -> Self {
        StageOptions { timeout: None, retries: 0, parallel: true }
    }
}

/// What a stage or compensation learns about its run (the second argument of a
/// stage, the third of a compensation).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageContext {
    pub run_id: String,
    pub stage: String,
    /// 1 for the first attempt; a stage run again after its host died gets the next number.
    pub attempt: u32,
    /// `runId/stage` (`runId/stage/compensate` for a compensation): the same on every
    /// attempt and after a resume, for the stage's side effects to be done once.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompensationInfo {
    pub stage: String,
    pub method: String,
}

impl WorkflowInfo {
    pub fn write(&self, mut b: workflow_info::Builder<'_>) {
        let mut l = b.reborrow().init_stages(self.stages.len() as u32);
        for (i, st) in self.stages.iter().enumerate() {
            let mut e = l.reborrow().get(i as u32);
            e.set_name(st.name.as_str());
            e.set_timeout_ms(st.timeout_ms);
            e.set_retries(st.retries);
            e.set_parallel(st.parallel);
            e.set_method(st.method.as_str());
            let mut d = e.init_depends_on(st.depends_on.len() as u32);
            for (j, dep) in st.depends_on.iter().enumerate() {
                d.set(j as u32, dep.as_str());
            }
        }
        let mut l = b.init_compensations(self.compensations.len() as u32);
        for (i, c) in self.compensations.iter().enumerate() {
            let mut e = l.reborrow().get(i as u32);
            e.set_stage(c.stage.as_str());
            e.set_method(c.method.as_str());
        }
    }

    pub fn read(r: workflow_info::Reader<'_>) -> Result<Self> {
        let p = "description.workflow";
        let mut stages = Vec::new();
        for st in r.get_stages().map_err(ser)?.iter() {
            let depends_on = st.get_depends_on().map_err(ser)?.iter().map(|t| text(t.map_err(ser)?, p)).collect::<Result<_>>()?;
            stages.push(StageInfo {
                name: text(st.get_name().map_err(ser)?, p)?,
                depends_on,
                timeout_ms: st.get_timeout_ms(),
                retries: st.get_retries(),
                parallel: st.get_parallel(),
                method: text(st.get_method().map_err(ser)?, p)?,
            });
        }
        let mut compensations = Vec::new();
        for c in r.get_compensations().map_err(ser)?.iter() {
            compensations.push(CompensationInfo { stage: text(c.get_stage().map_err(ser)?, p)?, method: text(c.get_method().map_err(ser)?, p)? });
        }
        Ok(WorkflowInfo { stages, compensations })
    }

    /// A runtime's `workflow` entry, in its dialect: `{stages: [{name, dependsOn (a name or a list),
    /// timeout, retries, parallel, method}], compensations: [{stage, method}] | {stage: method}}`.
    /// A stage without `method` runs the method of its own name.
    pub fn from_value(v: &Value, dialect: Dialect) -> Result<Self> {
        let mut s = Section::root(v, "workflow", dialect)?;
        let mut stages = Vec::new();
        let list = |s: &Section<'_>, name: &str, v: Option<&Value>| -> Result<Vec<Value>> {
            match v {
                None => Ok(Vec::new()),
                Some(Value::List(items)) => Ok(items.clone()),
                Some(other) => Err(s.error(name, format!("must be a list, not {}", other.type_name()))),
            }
        };
        let raw = s.get("stages");
        for (i, st) in list(&s, "stages", raw)?.iter().enumerate() {
            let mut e = Section::root(st, "stage", dialect).map_err(|e| Error::Config(format!("workflow.stages[{i}]: {e}")))?;
            let at = |e: Error| Error::Config(format!("workflow.stages[{i}].{}", e.to_string().trim_start_matches("invalid configuration: ")));
            let name = e.text("name").map_err(at)?.ok_or_else(|| Error::Config(format!("workflow.stages[{i}]: a stage needs a name")))?.to_string();
            let depends_on = match e.get("dependsOn") {
                None => Vec::new(),
                Some(Value::Text(t)) => vec![t.clone()],
                Some(Value::List(items)) => items
                    .iter()
                    .map(|d| match d {
                        Value::Text(t) => Ok(t.clone()),
                        other => Err(Error::Config(format!("workflow.stages[{i}] ({name}): dependsOn must list stage names, not {}", other.type_name()))),
                    })
                    .collect::<Result<_>>()?,
                Some(other) => return Err(Error::Config(format!("workflow.stages[{i}] ({name}): dependsOn must be a name or a list, not {}", other.type_name()))),
            };
            let timeout_ms = e.duration("timeout").map_err(at)?.map(|d| d.as_millis().max(1) as u64).unwrap_or(0);
            let retries = e.count("retries").map_err(at)?.unwrap_or(0) as u32;
            let parallel = e.bool("parallel").map_err(at)?.unwrap_or(true);
            let method = e.text("method").map_err(at)?.unwrap_or(&name).to_string();
            e.finish().map_err(at)?;
            stages.push(StageInfo { name, depends_on, timeout_ms, retries, parallel, method });
        }
        let mut compensations = Vec::new();
        match s.get("compensations") {
            None => {}
            Some(Value::Map(entries)) => {
                for (stage, m) in entries {
                    let Value::Text(method) = m else {
                        return Err(Error::Config(format!("workflow.compensations.{stage}: must be a method name, not {}", m.type_name())));
                    };
                    compensations.push(CompensationInfo { stage: stage.clone(), method: method.clone() });
                }
            }
            Some(Value::List(items)) => {
                for (i, c) in items.iter().enumerate() {
                    let (Some(Value::Text(stage)), Some(Value::Text(method))) = (c.get("stage"), c.get("method")) else {
                        return Err(Error::Config(format!("workflow.compensations[{i}]: expected {{stage, method}}")));
                    };
                    compensations.push(CompensationInfo { stage: stage.clone(), method: method.clone() });
                }
            }
            Some(other) => return Err(Error::Config(format!("workflow.compensations: must be a list or a map, not {}", other.type_name()))),
        }
        s.finish()?;
        Ok(WorkflowInfo { stages, compensations })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodInfo {
    pub name: String,
    /// The method's own default deadline in ms; 0 means the host's.
    pub timeout_ms: u64,
    /// The method's decorators (§8); empty: none.
    pub policies: MethodPolicies,
}

impl MethodInfo {
    pub fn new(name: impl Into<String>) -> Self {
        MethodInfo { name: name.into(), ..Default::default() }
    }
}

impl Description {
    pub fn write(&self, mut b: description::Builder<'_>) {
        b.set_name(self.name.as_str());
        b.set_version(self.version.as_str());
        b.set_pid(self.pid);
        b.set_runtime(self.runtime.as_str());
        b.set_has_health_check(self.has_health_check);
        b.set_health_interval_ms(self.health_interval_ms);
        if let Some(w) = &self.workflow {
            w.write(b.reborrow().init_workflow());
        }
        let mut l = b.init_methods(self.methods.len() as u32);
        for (i, m) in self.methods.iter().enumerate() {
            let mut e = l.reborrow().get(i as u32);
            e.set_name(m.name.as_str());
            e.set_timeout_ms(m.timeout_ms);
            if !m.policies.is_empty() {
                write_policies(&m.policies, e.init_policies());
            }
        }
    }

    /// True when some method declares a policy (else every call takes the plain path).
    pub fn has_policies(&self) -> bool {
        self.methods.iter().any(|m| !m.policies.is_empty())
    }

    pub fn read(r: description::Reader<'_>) -> Result<Self> {
        let p = "description";
        let mut methods = Vec::new();
        for m in r.get_methods().map_err(ser)?.iter() {
            let policies = if m.has_policies() { read_policies(m.get_policies().map_err(ser)?)? } else { MethodPolicies::default() };
            methods.push(MethodInfo { name: text(m.get_name().map_err(ser)?, p)?, timeout_ms: m.get_timeout_ms(), policies });
        }
        Ok(Description {
            name: text(r.get_name().map_err(ser)?, p)?,
            version: text(r.get_version().map_err(ser)?, p)?,
            methods,
            pid: r.get_pid(),
            runtime: text(r.get_runtime().map_err(ser)?, p)?,
            has_health_check: r.get_has_health_check(),
            health_interval_ms: r.get_health_interval_ms(),
            workflow: if r.has_workflow() { Some(WorkflowInfo::read(r.get_workflow().map_err(ser)?)?) } else { None },
        })
    }

    /// A worker runtime's description of its class, in its language's dialect:
    /// `{name, version, methods: [name | [name, timeoutMs] | {name, timeout, policies}], runtime,
    /// hasHealthCheck, healthInterval, workflow}` (durations in the dialect's unit; `workflow` as
    /// [`WorkflowInfo::from_value`] reads it). `pid` is this process's.
    /// `policies` is read by [`MethodPolicies::from_section`] and checked: bad options fail here,
    /// naming the option.
    pub fn from_value(v: &Value, dialect: Dialect) -> Result<Self> {
        let mut s = Section::root(v, "description", dialect)?;
        let mut methods = Vec::new();
        for (i, m) in s.get("methods").map(|m| match m {
            Value::List(items) => items.as_slice(),
            _ => &[],
        }).unwrap_or(&[]).iter().enumerate() {
            let bad = || Error::Serialization { path: format!("description.methods[{i}]"), message: "expected a name or [name, timeout]".into() };
            let (name, timeout_ms, policies) = match m {
                Value::Text(n) => (n.clone(), 0, MethodPolicies::default()),
                Value::List(pair) => match pair.as_slice() {
                    [Value::Text(n), Value::Int(t)] if *t >= 0 => (n.clone(), *t as u64, MethodPolicies::default()),
                    _ => return Err(bad()),
                },
                Value::Map(_) => {
                    let mut ms = Section::root(m, "method", dialect)?;
                    let name = ms.text("name")?.ok_or_else(bad)?.to_string();
                    let timeout = ms.duration("timeout")?.map(|d| d.as_millis() as u64).unwrap_or(0);
                    let policies = match ms.section("policies")? {
                        Some(ps) => MethodPolicies::from_section(ps, &name)?,
                        None => MethodPolicies::default(),
                    };
                    (name, timeout, policies)
                }
                _ => return Err(bad()),
            };
            methods.push(MethodInfo { name, timeout_ms, policies });
        }
        let d = Description {
            name: s.text("name")?.unwrap_or_default().to_string(),
            version: s.text("version")?.unwrap_or_default().to_string(),
            methods,
            pid: std::process::id(),
            runtime: s.text("runtime")?.unwrap_or_default().to_string(),
            has_health_check: s.bool("hasHealthCheck")?.unwrap_or(false),
            health_interval_ms: s.duration("healthInterval")?.map(|d| d.as_millis() as u64).unwrap_or(0),
            workflow: match s.get("workflow") {
                None => None,
                Some(w) => Some(WorkflowInfo::from_value(w, dialect)?),
            },
        };
        Ok(d)
    }
}

fn write_policies(p: &MethodPolicies, mut b: method_policies::Builder<'_>) {
    use method_policies::{rate_limit::Strategy, self_heal::Action};
    let key = |k: &Option<ArgKey>| k.as_ref().map(ArgKey::to_wire).unwrap_or_default();
    if let Some(r) = &p.rate_limit {
        let mut x = b.reborrow().init_rate_limit();
        x.set_rps(r.rps);
        x.set_burst(r.burst);
        x.set_strategy(match r.strategy {
            mp::RateStrategy::TokenBucket => Strategy::TokenBucket,
            mp::RateStrategy::SlidingWindow => Strategy::SlidingWindow,
            mp::RateStrategy::FixedWindow => Strategy::FixedWindow,
        });
        x.set_key_arg(key(&r.key).as_str());
    }
    if let Some(c) = &p.cache {
        let mut x = b.reborrow().init_cache();
        x.set_ttl_ms(c.ttl.as_millis() as u64);
        x.set_key_arg(key(&c.key).as_str());
        x.set_has_condition(c.has_condition);
    }
    if let Some(v) = &p.validate {
        let mut x = b.reborrow().init_validate();
        x.set_has_validator(v.has_validator);
        if let Some(schema) = &v.json_schema {
            crate::value::write(schema, x.init_json_schema());
        }
    }
    b.set_trace(p.trace);
    if let Some(m) = &p.metric {
        b.reborrow().init_metric().set_name(m.name.as_deref().unwrap_or(""));
    }
    if let Some(c) = &p.circuit_breaker {
        let mut x = b.reborrow().init_circuit_breaker();
        x.set_threshold(c.options.threshold);
        x.set_timeout_ms(c.options.timeout.as_millis() as u64);
        x.set_half_open_requests(c.options.half_open_requests);
        x.set_fallback(c.fallback.as_deref().unwrap_or(""));
    }
    if let Some(i) = &p.idempotent {
        let mut x = b.reborrow().init_idempotent();
        x.set_key_field(i.key.to_wire().as_str());
        x.set_ttl_ms(i.ttl.as_millis() as u64);
    }
    if let Some(h) = &p.self_heal {
        let mut x = b.reborrow().init_self_heal();
        x.set_action(match h.action {
            mp::HealAction::Restart => Action::Restart,
            mp::HealAction::Recycle => Action::Recycle,
            mp::HealAction::Reinit => Action::Reinit,
        });
        x.set_cooldown_ms(h.cooldown.as_millis() as u64);
        let mut l = x.init_symptoms(h.symptoms.len() as u32);
        for (i, s) in h.symptoms.iter().enumerate() {
            l.set(i as u32, s.as_str());
        }
    }
}

fn read_policies(r: method_policies::Reader<'_>) -> Result<MethodPolicies> {
    use method_policies::{rate_limit::Strategy, self_heal::Action};
    use std::time::Duration;
    let p = "policies";
    let ms = Duration::from_millis;
    let mut out = MethodPolicies { trace: r.get_trace(), ..Default::default() };
    if r.has_rate_limit() {
        let x = r.get_rate_limit().map_err(ser)?;
        out.rate_limit = Some(mp::RateLimit {
            rps: x.get_rps(),
            burst: x.get_burst(),
            strategy: match x.get_strategy() {
                Ok(Strategy::SlidingWindow) => mp::RateStrategy::SlidingWindow,
                Ok(Strategy::FixedWindow) => mp::RateStrategy::FixedWindow,
                _ => mp::RateStrategy::TokenBucket,
            },
            key: ArgKey::from_wire(&text(x.get_key_arg().map_err(ser)?, p)?),
        });
    }
    if r.has_cache() {
        let x = r.get_cache().map_err(ser)?;
        out.cache = Some(mp::Cache {
            ttl: ms(x.get_ttl_ms()),
            key: ArgKey::from_wire(&text(x.get_key_arg().map_err(ser)?, p)?),
            has_condition: x.get_has_condition(),
        });
    }
    if r.has_validate() {
        let x = r.get_validate().map_err(ser)?;
        let json_schema = if x.has_json_schema() { Some(crate::value::read(x.get_json_schema().map_err(ser)?, p)?) } else { None };
        out.validate = Some(mp::Validate { json_schema, has_validator: x.get_has_validator() });
    }
    if r.has_metric() {
        let name = text(r.get_metric().map_err(ser)?.get_name().map_err(ser)?, p)?;
        out.metric = Some(mp::Metric { name: (!name.is_empty()).then_some(name) });
    }
    if r.has_circuit_breaker() {
        let x = r.get_circuit_breaker().map_err(ser)?;
        let fallback = text(x.get_fallback().map_err(ser)?, p)?;
        out.circuit_breaker = Some(mp::CircuitBreaker {
            options: crate::policy::BreakerOptions {
                threshold: x.get_threshold(),
                timeout: ms(x.get_timeout_ms()),
                half_open_requests: x.get_half_open_requests(),
            },
            fallback: (!fallback.is_empty()).then_some(fallback),
        });
    }
    if r.has_idempotent() {
        let x = r.get_idempotent().map_err(ser)?;
        let key = ArgKey::from_wire(&text(x.get_key_field().map_err(ser)?, p)?).unwrap_or(ArgKey::Index(0));
        out.idempotent = Some(mp::Idempotent { key, ttl: ms(x.get_ttl_ms()) });
    }
    if r.has_self_heal() {
        let x = r.get_self_heal().map_err(ser)?;
        out.self_heal = Some(mp::SelfHeal {
            symptoms: x.get_symptoms().map_err(ser)?.iter().map(|t| text(t.map_err(ser)?, p)).collect::<Result<_>>()?,
            action: match x.get_action() {
                Ok(Action::Recycle) => mp::HealAction::Recycle,
                Ok(Action::Reinit) => mp::HealAction::Reinit,
                _ => mp::HealAction::Restart,
            },
            cooldown: ms(x.get_cooldown_ms()),
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthStatus {
    #[default]
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "healthy" => Some(HealthStatus::Healthy),
            "degraded" => Some(HealthStatus::Degraded),
            "unhealthy" => Some(HealthStatus::Unhealthy),
            _ => None,
        }
    }
    fn to_wire(self) -> health_report::Status {
        match self {
            HealthStatus::Healthy => health_report::Status::Healthy,
            HealthStatus::Degraded => health_report::Status::Degraded,
            HealthStatus::Unhealthy => health_report::Status::Unhealthy,
        }
    }
    fn from_wire(s: std::result::Result<health_report::Status, capnp::NotInSchema>) -> Self {
        match s {
            Ok(health_report::Status::Healthy) => HealthStatus::Healthy,
            Ok(health_report::Status::Degraded) => HealthStatus::Degraded,
            _ => HealthStatus::Unhealthy,
        }
    }
}

/// One check's verdict, kept as the worker said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
        }
    }

    /// `pass|warn|fail`, also `healthy|degraded|unhealthy` and `true`/`false`.
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(true) => Some(CheckStatus::Pass),
            Value::Bool(false) => Some(CheckStatus::Fail),
            Value::Text(s) => match s.as_str() {
                "pass" | "healthy" | "ok" => Some(CheckStatus::Pass),
                "warn" | "degraded" => Some(CheckStatus::Warn),
                "fail" | "unhealthy" => Some(CheckStatus::Fail),
                _ => None,
            },
            _ => None,
        }
    }

    fn to_wire(self) -> health_report::CheckStatus {
        match self {
            CheckStatus::Pass => health_report::CheckStatus::Pass,
            CheckStatus::Warn => health_report::CheckStatus::Warn,
            CheckStatus::Fail => health_report::CheckStatus::Fail,
        }
    }

    fn from_wire(s: std::result::Result<health_report::CheckStatus, capnp::NotInSchema>) -> Self {
        match s {
            Ok(health_report::CheckStatus::Pass) => CheckStatus::Pass,
            Ok(health_report::CheckStatus::Warn) => CheckStatus::Warn,
            _ => CheckStatus::Fail,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub name: String,
    pub status: CheckStatus,
    pub message: String,
}

/// `{status, checks, timestamp}`; `timestamp_ms` is ms since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub checks: Vec<HealthCheck>,
    pub timestamp_ms: u64,
}

impl HealthReport {
    pub fn new(status: HealthStatus, checks: Vec<HealthCheck>) -> Self {
        HealthReport { status, checks, timestamp_ms: now_ms() }
    }
    pub fn healthy() -> Self {
        Self::new(HealthStatus::Healthy, Vec::new())
    }
    /// An unhealthy report with one check that says why.
    pub fn unhealthy(check: &str, message: impl Into<String>) -> Self {
        let c = HealthCheck { name: check.into(), status: CheckStatus::Fail, message: message.into() };
        Self::new(HealthStatus::Unhealthy, vec![c])
    }

    /// What a worker's health check returned: `{status?, checks?: [{name, status, message}], timestamp?}`,
    /// or a bare status / bool. The overall status is the worker's own, else derived from the checks
    /// (any `fail` -> unhealthy, any `warn` -> degraded, else healthy); the worker's timestamp is kept.
    pub fn from_value(v: &Value) -> Self {
        let overall = |s: &Value| match s {
            Value::Bool(true) => Some(HealthStatus::Healthy),
            Value::Bool(false) => Some(HealthStatus::Unhealthy),
            Value::Text(t) => HealthStatus::parse(t),
            _ => None,
        };
        if let Some(s) = overall(v) {
            return Self::new(s, Vec::new());
        }
        if matches!(v, Value::Null) {
            return Self::healthy(); // the check returned nothing and raised nothing
        }
        if !matches!(v, Value::Map(_)) {
            return Self::unhealthy("health_check", format!("the health check returned {}, not a status", v.type_name()));
        }
        let mut checks = Vec::new();
        if let Some(Value::List(items)) = v.get("checks") {
            for (i, c) in items.iter().enumerate() {
                if let Value::Text(name) = c {
                    checks.push(HealthCheck { name: name.clone(), status: CheckStatus::Pass, message: String::new() });
                    continue;
                }
                let name = c.get("name").and_then(Value::as_str).map(String::from).unwrap_or_else(|| format!("check {i}"));
                let status = c.get("status").or(c.get("healthy")).and_then(CheckStatus::from_value);
                let mut message = c.get("message").and_then(Value::as_str).unwrap_or("").to_string();
                if status.is_none() {
                    message = format!("no valid status (expected pass, warn or fail){}", if message.is_empty() { String::new() } else { format!(": {message}") });
                }
                checks.push(HealthCheck { name, status: status.unwrap_or(CheckStatus::Fail), message });
            }
        }
        let derived = if checks.iter().any(|c| c.status == CheckStatus::Fail) {
            HealthStatus::Unhealthy
        } else if checks.iter().any(|c| c.status == CheckStatus::Warn) {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        let status = match v.get("status") {
            None | Some(Value::Null) => derived,
            Some(s) => match overall(s) {
                Some(s) => s,
                None => return Self::unhealthy("health_check", format!("unknown status {s:?} (expected healthy, degraded or unhealthy)")),
            },
        };
        let mut report = Self::new(status, checks);
        match v.get("timestamp") {
            Some(Value::Int(t)) if *t > 0 => report.timestamp_ms = *t as u64,
            Some(Value::Float(t)) if *t > 0.0 => report.timestamp_ms = *t as u64,
            _ => {}
        }
        report
    }

    pub fn write(&self, mut b: health_report::Builder<'_>) {
        b.set_status(self.status.to_wire());
        b.set_timestamp_ms(self.timestamp_ms);
        let mut l = b.init_checks(self.checks.len() as u32);
        for (i, c) in self.checks.iter().enumerate() {
            let mut e = l.reborrow().get(i as u32);
            e.set_name(c.name.as_str());
            e.set_status(c.status.to_wire());
            e.set_message(c.message.as_str());
        }
    }

    pub fn read(r: health_report::Reader<'_>) -> Result<Self> {
        let p = "health";
        let mut checks = Vec::new();
        for c in r.get_checks().map_err(ser)?.iter() {
            checks.push(HealthCheck {
                name: text(c.get_name().map_err(ser)?, p)?,
                status: CheckStatus::from_wire(c.get_status()),
                message: text(c.get_message().map_err(ser)?, p)?,
            });
        }
        Ok(HealthReport { status: HealthStatus::from_wire(r.get_status()), checks, timestamp_ms: r.get_timestamp_ms() })
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(dialect: Dialect, policies: Value) -> Result<Description> {
        let method = Value::Map(vec![("name".into(), Value::Text("pay".into())), ("policies".into(), policies)]);
        let v = Value::Map(vec![("name".into(), Value::Text("svc".into())), ("methods".into(), Value::List(vec![method]))]);
        Description::from_value(&v, dialect)
    }

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn policies_are_read_in_both_dialects_and_survive_the_wire() {
        let js = map(&[
            ("rateLimit", map(&[("rps", Value::Int(10)), ("burst", Value::Int(5)), ("strategy", Value::Text("sliding-window".into())), ("key", Value::Int(0))])),
            ("circuitBreaker", map(&[("threshold", Value::Int(2)), ("timeout", Value::Int(1500)), ("halfOpenRequests", Value::Int(2)), ("fallback", Value::Text("slow".into()))])),
            ("idempotent", map(&[("key", Value::Text("transactionId".into())), ("ttl", Value::Text("1h".into()))])),
            ("selfHeal", map(&[("symptoms", Value::List(vec![Value::Text("timeout".into())])), ("action", Value::Text("reinit".into())), ("cooldown", Value::Int(2000))])),
            ("validate", map(&[("schema", map(&[("type", Value::Text("object".into()))]))])),
            ("metric", Value::Text("pays".into())),
            ("trace", Value::Bool(true)),
            ("cache", map(&[("ttl", Value::Int(30_000))])),
        ]);
        let d = described(Dialect::Js, js).unwrap();
        let p = &d.methods[0].policies;
        assert_eq!(p.rate_limit.as_ref().unwrap().key, Some(ArgKey::Index(0)));
        assert_eq!(p.circuit_breaker.as_ref().unwrap().options.timeout, std::time::Duration::from_millis(1500));
        assert_eq!(p.idempotent.as_ref().unwrap().ttl, std::time::Duration::from_secs(3600));
        assert_eq!(p.cache.as_ref().unwrap().ttl, std::time::Duration::from_secs(30));
        let py = map(&[
            ("circuit_breaker", map(&[("timeout", Value::Float(1.5)), ("half_open_requests", Value::Int(2))])),
            ("self_heal", map(&[("symptoms", Value::List(vec![Value::Text("crash".into())])), ("cooldown", Value::Int(2))])),
        ]);
        let dp = described(Dialect::Python, py).unwrap();
        let pp = &dp.methods[0].policies;
        assert_eq!(pp.circuit_breaker.as_ref().unwrap().options.timeout, std::time::Duration::from_millis(1500));
        assert_eq!(pp.self_heal.as_ref().unwrap().cooldown, std::time::Duration::from_secs(2));

        let mut msg = capnp::message::Builder::new_default();
        d.write(msg.init_root());
        let back = Description::read(msg.get_root_as_reader().unwrap()).unwrap();
        assert_eq!(back.methods, d.methods);
        assert!(back.has_policies());
    }

    #[test]
    fn bad_policy_options_fail_naming_the_option() {
        let e = described(Dialect::Js, map(&[("rateLimit", map(&[("rps", Value::Int(-1))]))])).unwrap_err();
        assert!(e.to_string().contains("methods.pay.rateLimit.rps: must be > 0"), "{e}");
        let e = described(Dialect::Python, map(&[("rate_limit", map(&[("rps", Value::Int(1)), ("strategy", Value::Text("leaky".into()))]))])).unwrap_err();
        assert!(e.to_string().contains("rate_limit.strategy: unknown strategy"), "{e}");
        let e = described(Dialect::Js, map(&[("validate", map(&[("schema", map(&[("type", Value::Int(3))]))]))])).unwrap_err();
        assert!(e.to_string().contains("methods.pay.validate.schema: not a valid JSON Schema"), "{e}");
        let e = described(Dialect::Js, map(&[("cache", map(&[("ttl", Value::Int(1)), ("tll", Value::Int(1))]))])).unwrap_err();
        assert!(e.to_string().contains("cache.tll: unknown option"), "{e}");
    }
}
