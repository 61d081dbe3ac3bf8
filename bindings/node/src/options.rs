//! Options from JS: the TypeScript object is converted to a `Value` and read by
//! the core's one option schema (`titan_pm::options`) in the JS dialect
//! (camelCase, ms). Nothing here knows an option's name: unknown keys, bad
//! types and their paths (`autoScale.targetCPU: ...`) are the core's errors.
//! The one thing the TypeScript layer adds is `output: 'callback:N'` for an
//! output function, resolved through the `callbacks` closure the host passes.

use titan_pm::options::{self, Dialect, OutputCallbacks};
use titan_pm::{Error, ManagerConfig, PoolOptions, SpawnOptions, SupervisorSpec, Value};

use crate::convert;
use crate::errors;
use crate::js::{Env, Js};

/// The JS object as a `Value`; a value that cannot be converted is a `SerializationError` naming where.
fn value(env: Env, root: &str, v: Js) -> Result<Value, Js> {
    convert::options_from_js(env, v).map_err(|u| errors::unsupported(env, root, &u))
}

pub fn manager(env: Env, v: Js, callbacks: OutputCallbacks<'_>) -> Result<ManagerConfig, Js> {
    options::manager(&value(env, "config", v)?, Dialect::Js, callbacks).map_err(|e| errors::to_js(env, &e))
}

pub fn spawn(env: Env, v: Js, callbacks: OutputCallbacks<'_>) -> Result<SpawnOptions, Js> {
    options::spawn(&value(env, "options", v)?, Dialect::Js, callbacks).map_err(|e| errors::to_js(env, &e))
}

pub fn pool(env: Env, v: Js, callbacks: OutputCallbacks<'_>) -> Result<PoolOptions, Js> {
    options::pool(&value(env, "options", v)?, Dialect::Js, callbacks).map_err(|e| errors::to_js(env, &e))
}

/// A whole supervision tree (what `@Supervisor` and its `@Child` fields become in TypeScript).
pub fn supervisor_tree(env: Env, v: Js, callbacks: OutputCallbacks<'_>) -> Result<SupervisorSpec, Js> {
    options::supervisor_tree(&value(env, "supervisor", v)?, Dialect::Js, callbacks).map_err(|e| errors::to_js(env, &e))
}

/// Reads one declaration (`supervisor`: a supervisor's own options, `child`: a child's) and drops it.
pub fn check(env: Env, kind: &str, v: Js) -> Result<(), Js> {
    let v = value(env, kind, v)?;
    let read = match kind {
        "supervisor" => options::supervisor(&v, Dialect::Js).map(|_| ()),
        "child" => options::child(&v, Dialect::Js, &|_| Some(titan_pm::Output::Ignore)).map(|_| ()),
        other => Err(Error::Config(format!("unknown declaration kind {other:?} (expected supervisor or child)"))),
    };
    read.map_err(|e| errors::to_js(env, &e))
}

/// Every option path of `kind` (`manager`, `spawn`, `pool`, `supervisor`, `child`) as TypeScript spells it.
pub fn schema(kind: &str) -> Option<Vec<String>> {
    matches!(kind, "manager" | "spawn" | "pool" | "supervisor" | "child").then(|| options::schema(kind, Dialect::Js))
}
