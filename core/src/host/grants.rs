//! What the host hands a worker at `init`: a `Caller` capability per process it
//! was given (@InjectProcess, sidecars) and the `SharedState` capability of its
//! class (@SharedState). Both are served here on the engine thread; a worker
//! holds capabilities, never addresses or secrets, so it can reach exactly the
//! processes it was given. A process handle passed among spawn `dependencies`
//! (`{"$process": id}`) is given too ([`given_dependencies`]).
//!
//! Shared state lives in [`SharedStore`]: one value per (class name, property)
//! under one manager. `get`, `set` and `add` each run in one step on the engine
//! thread, so `add` never loses an increment, and a read sees every write that
//! completed before it (an instance reads a value at least as new as its own last write).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Weak;
use std::time::Duration;

use capnp::capability::Rc as CapRc;

use super::engine::Engine;
use super::CallOptions;
use crate::error::{Error, Result};
use crate::policy::trace::TraceContext;
use crate::protocol::ErrorInfo;
use crate::titan_capnp::{caller, shared_state};
use crate::value::{self, Value};

/// How a front end writes a process handle inside spawn `dependencies`: `{"$process": id}`.
pub const PROCESS_REF: &str = "$process";
/// What the worker's init receives in its place: `{"$given": name}`, which its runtime turns
/// into the process given under `name`.
pub const GIVEN_REF: &str = "$given";

/// Process handles passed as spawn dependencies (the sidecar pattern) are given to the
/// worker: each becomes a grant under its dependency's key (as `processes` would), and
/// the dependency a `{"$given": key}` that the worker's runtime turns into the given process.
pub(crate) fn given_dependencies(dependencies: &mut Value, processes: &mut Vec<(String, u64)>) -> Result<()> {
    let Value::Map(deps) = dependencies else { return Ok(()) };
    for (key, v) in deps.iter_mut() {
        let Value::Map(entries) = v else { continue };
        let [(tag, id)] = entries.as_slice() else { continue };
        if tag != PROCESS_REF {
            continue;
        }
        let id = match id {
            Value::Int(n) if *n > 0 => *n as u64,
            Value::Int(n) => return Err(Error::Config(format!("dependencies.{key}: {PROCESS_REF} must be a process id, not {n}"))),
            other => return Err(Error::Config(format!("dependencies.{key}: {PROCESS_REF} must be a process id, not {}", other.type_name()))),
        };
        if processes.iter().any(|(n, _)| n == key) {
            return Err(Error::Config(format!("dependencies.{key}: a process is also given under processes.{key}")));
        }
        processes.push((key.clone(), id));
        *v = Value::Map(vec![(GIVEN_REF.to_string(), Value::Text(key.clone()))]);
    }
    Ok(())
}

/// Shared properties one manager holds (class × property); past it, `set` and `add` fail.
pub(crate) const MAX_SHARED_VALUES: usize = 10_000;

/// A process a worker may call, as the capability the worker holds.
pub(crate) struct CallerServer {
    pub engine: Weak<Engine>,
    pub process_id: u64,
}

impl caller::Server for CallerServer {
    async fn call(self: CapRc<Self>, params: caller::CallParams, mut results: caller::CallResults) -> std::result::Result<(), capnp::Error> {
        let p = params.get()?;
        let method = p.get_method()?.to_str()?.to_string();
        let timeout = (p.get_timeout_ms() > 0).then(|| Duration::from_millis(p.get_timeout_ms()));
        // The calling worker's span: this call's parent (W3C ids; anything else starts a new trace).
        let trace_id = p.get_trace_id()?.to_str()?;
        let span_id = p.get_span_id()?.to_str()?;
        let w3c = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let parent = (w3c(trace_id, 32) && w3c(span_id, 16))
            .then(|| TraceContext { trace_id: trace_id.to_string(), span_id: span_id.to_string(), parent_span_id: String::new() });
        let outcome = match value::read_list(p.get_args()?, "args") {
            Ok(args) => match self.engine.upgrade() {
                Some(engine) => engine.call_any(self.process_id, method, args, CallOptions { timeout, ..Default::default() }, parent).await,
                None => Err(Error::ManagerShutDown),
            },
            Err(e) => Err(e),
        };
        let r = results.get().init_result();
        match outcome {
            Ok(v) => value::write(&v, r.init_ok()),
            Err(e) => ErrorInfo::relay(&e).write(r.init_error()),
        }
        Ok(())
    }
}

/// Every shared property of one manager.
#[derive(Default)]
pub(crate) struct SharedStore {
    values: RefCell<HashMap<(String, String), Value>>,
}

impl SharedStore {
    fn get(&self, class: &str, property: &str) -> Value {
        self.values.borrow().get(&(class.to_string(), property.to_string())).cloned().unwrap_or(Value::Null)
    }

    fn set(&self, class: &str, property: &str, v: Value) -> Result<()> {
        let mut values = self.values.borrow_mut();
        let key = (class.to_string(), property.to_string());
        if !values.contains_key(&key) && values.len() >= MAX_SHARED_VALUES {
            return Err(Error::Config(format!("shared state is full ({MAX_SHARED_VALUES} properties); cannot add {class}.{property}")));
        }
        values.insert(key, v);
        Ok(())
    }

    /// Adds `delta` to a number (null counts as 0), in one step; returns the new value.
    fn add(&self, class: &str, property: &str, delta: &Value) -> Result<Value> {
        let now = self.get(class, property);
        let sum = match (&now, delta) {
            (Value::Null, Value::Int(d)) => Value::Int(*d),
            (Value::Null, Value::Float(d)) => Value::Float(*d),
            (Value::Int(a), Value::Int(d)) => Value::Int(a.checked_add(*d).ok_or_else(|| Error::Config(format!("shared {class}.{property} would overflow")))?),
            (Value::Int(a), Value::Float(d)) => Value::Float(*a as f64 + d),
            (Value::Float(a), Value::Int(d)) => Value::Float(a + *d as f64),
            (Value::Float(a), Value::Float(d)) => Value::Float(a + d),
            (_, Value::Int(_) | Value::Float(_)) => {
                return Err(Error::Config(format!("shared {class}.{property} is a {}, not a number: cannot add to it", now.type_name())))
            }
            _ => return Err(Error::Config(format!("shared add needs a number, not {}", delta.type_name()))),
        };
        self.set(class, property, sum.clone())?;
        Ok(sum)
    }
}

/// One class's shared properties, as the capability its instances hold.
pub(crate) struct SharedServer {
    pub engine: Weak<Engine>,
    pub class: String,
}

fn failed(e: Error) -> capnp::Error {
    capnp::Error::failed(e.to_string())
}

impl shared_state::Server for SharedServer {
    async fn get(self: CapRc<Self>, params: shared_state::GetParams, mut results: shared_state::GetResults) -> std::result::Result<(), capnp::Error> {
        let property = params.get()?.get_property()?.to_str()?.to_string();
        let engine = self.engine.upgrade().ok_or_else(|| failed(Error::ManagerShutDown))?;
        value::write(&engine.shared.get(&self.class, &property), results.get().init_value());
        Ok(())
    }

    async fn set(self: CapRc<Self>, params: shared_state::SetParams, _: shared_state::SetResults) -> std::result::Result<(), capnp::Error> {
        let p = params.get()?;
        let property = p.get_property()?.to_str()?.to_string();
        let v = value::read(p.get_value()?, "value").map_err(failed)?;
        let engine = self.engine.upgrade().ok_or_else(|| failed(Error::ManagerShutDown))?;
        engine.shared.set(&self.class, &property, v).map_err(failed)
    }

    async fn add(self: CapRc<Self>, params: shared_state::AddParams, mut results: shared_state::AddResults) -> std::result::Result<(), capnp::Error> {
        let p = params.get()?;
        let property = p.get_property()?.to_str()?.to_string();
        let delta = value::read(p.get_delta()?, "delta").map_err(failed)?;
        let engine = self.engine.upgrade().ok_or_else(|| failed(Error::ManagerShutDown))?;
        let v = engine.shared.add(&self.class, &property, &delta).map_err(failed)?;
        value::write(&v, results.get().init_value());
        Ok(())
    }
}
