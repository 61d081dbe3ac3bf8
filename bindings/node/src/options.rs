//! Options from JS: the TypeScript object is converted to a `Value` and read by
//! the core's one option schema (`titan_pm::options`) in the JS dialect
//! (camelCase, ms). Nothing here knows an option's name: unknown keys, bad
//! types and their paths (`autoScale.targetCPU: ...`) are the core's errors.
//! The one thing the TypeScript layer adds is `output: 'callback:N'` for an
//! output function, resolved through the `callbacks` closure the host passes.

use titan_pm::options::{self, Dialect, OutputCallbacks};
use titan_pm::{CallOptions, ManagerConfig, PoolOptions, SpawnOptions, SupervisorSpec, Value};

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

/// `titan-pm/testing`'s options: a manager's plus `recordOperations` and `controlTime`.
pub fn test_manager(env: Env, v: Js, callbacks: OutputCallbacks<'_>) -> Result<(ManagerConfig, options::TestOptions), Js> {
    options::test_manager(&value(env, "config", v)?, Dialect::Js, callbacks).map_err(|e| errors::to_js(env, &e))
}

/// An object a test hands over (`setMetrics`, `setHealth`) as a `Value`.
pub fn object(env: Env, root: &str, v: Js) -> Result<Value, Js> {
    value(env, root, v)
}

pub fn spawn(env: Env, v: Js, callbacks: OutputCallbacks<'_>) -> Result<SpawnOptions, Js> {
    options::spawn(&value(env, "options", v)?, Dialect::Js, callbacks).map_err(|e| errors::to_js(env, &e))
}

pub fn listen(env: Env, v: Js) -> Result<titan_pm::ListenOptions, Js> {
    options::listen(&value(env, "listen", v)?, Dialect::Js).map_err(|e| errors::to_js(env, &e))
}

pub fn pool(env: Env, v: Js, callbacks: OutputCallbacks<'_>) -> Result<PoolOptions, Js> {
    options::pool(&value(env, "options", v)?, Dialect::Js, callbacks).map_err(|e| errors::to_js(env, &e))
}

/// A whole supervision tree (what `@Supervisor` and its `@Child` fields become in TypeScript).
pub fn supervisor_tree(env: Env, v: Js, callbacks: OutputCallbacks<'_>) -> Result<SupervisorSpec, Js> {
    options::supervisor_tree(&value(env, "supervisor", v)?, Dialect::Js, callbacks).map_err(|e| errors::to_js(env, &e))
}

/// Has core read one declaration (`supervisor` or `child`) and drop it.
#[cfg_attr(test, allow(dead_code))] // used by `supervise::check_options`, which JavaScript calls
pub fn check(env: Env, kind: &str, v: Js) -> Result<(), Js> {
    let v = value(env, kind, v)?;
    options::check_declaration(kind, &v, Dialect::Js).map_err(|e| errors::to_js(env, &e))
}

/// A `withOptions` object (the proxy leaves out `signal`), read by the core.
pub fn call_object(env: Env, v: Js) -> Result<CallOptions, Js> {
    options::call(&value(env, "options", v)?, Dialect::Js).map_err(|e| errors::to_js(env, &e))
}

/// A call's typed options (ms), read by the core's call-option reader; none given: the defaults.
pub fn call(timeout: Option<f64>, key: Option<String>, retries: Option<f64>) -> titan_pm::Result<CallOptions> {
    if timeout.is_none() && key.is_none() && retries.is_none() {
        return Ok(CallOptions::default());
    }
    let mut m = Vec::with_capacity(3);
    m.extend(timeout.map(|t| ("timeout".to_string(), Value::Float(t))));
    m.extend(key.map(|k| ("key".to_string(), Value::Text(k))));
    m.extend(retries.map(|r| ("retries".to_string(), Value::Float(r))));
    options::call(&Value::Map(m), Dialect::Js)
}

/// Every option path of `kind` as TypeScript spells it; an unknown kind is core's error.
pub fn schema(kind: &str) -> titan_pm::Result<Vec<String>> {
    options::schema(kind, Dialect::Js)
}
