//! Keyword options from Python -> the core's option types. This file only
//! converts: the dict becomes a `Value` and core's `titan_pm::options` reads it
//! in the Python dialect (snake_case, seconds), names unknown keys by path and
//! applies every default. A callable `output` becomes a core output callback.

use std::rc::Rc;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use titan_pm::agent::Handler;
use titan_pm::host::OutputStream;
use titan_pm::options::{self, Dialect};
use titan_pm::pool::PoolOptions;
use titan_pm::protocol::ErrorInfoKind;
use titan_pm::{CallOptions, Error, ManagerConfig, Output, SpawnOptions, Target, Value};

use crate::agent::PyHandler;
use crate::{convert, errors};

const DIALECT: Dialect = Dialect::Python;

/// Checks manager options without starting anything (a bad one is a `ConfigError`).
#[pyfunction]
#[pyo3(signature = (options, test=false))]
pub fn check_manager_options(options: &Bound<'_, PyDict>, test: bool) -> PyResult<()> {
    if test {
        return test_manager(options).map(|_| ());
    }
    manager(options).map(|_| ())
}

/// A duration string (`"250ms"`, `"30s"`, `"5m"`, `"1h"`) in seconds, read by the core's one
/// parser (the worker-side part of `@cache` with a key function or a condition uses it).
#[pyfunction]
pub fn parse_duration(text: &str) -> PyResult<f64> {
    titan_pm::dialect::parse_duration(text).map(|d| d.as_secs_f64()).map_err(pyo3::exceptions::PyValueError::new_err)
}

/// Every process event name core emits.
#[pyfunction]
pub fn event_names() -> Vec<&'static str> {
    titan_pm::EventKind::NAMES.to_vec()
}

/// Every option path core accepts for `kind` (core's `SCHEMA_KINDS`), in Python's spelling; an unknown kind is a ConfigError.
#[pyfunction]
pub fn option_schema(kind: &str) -> PyResult<Vec<String>> {
    options::schema(kind, DIALECT).map_err(errors::to_py)
}

pub fn manager(options: &Bound<'_, PyDict>) -> PyResult<ManagerConfig> {
    read(options, options::manager)
}

/// `titan_pm.testing`'s manager options: a manager's plus `record_operations`, `control_time`.
pub fn test_manager(options: &Bound<'_, PyDict>) -> PyResult<(ManagerConfig, options::TestOptions)> {
    read(options, options::test_manager)
}

/// A duration in seconds from Python (`name` for the error).
pub fn seconds(name: &str, t: f64) -> PyResult<std::time::Duration> {
    DIALECT
        .duration(t)
        .filter(|_| t >= 0.0)
        .ok_or_else(|| errors::to_py(Error::Config(format!("{name}: must be a number of seconds >= 0, not {t}"))))
}

pub fn spawn(options: &Bound<'_, PyDict>) -> PyResult<SpawnOptions> {
    read(options, options::spawn)
}

pub fn listen(options: &Bound<'_, PyDict>) -> PyResult<titan_pm::ListenOptions> {
    let value = convert::to_value(options, "listen").map_err(errors::to_py)?;
    options::listen(&value, DIALECT).map_err(errors::to_py)
}

pub fn pool(options: &Bound<'_, PyDict>) -> PyResult<PoolOptions> {
    read(options, options::pool)
}

pub fn workflow(options: &Bound<'_, PyDict>) -> PyResult<titan_pm::workflow::WorkflowOptions> {
    read(options, options::workflow)
}

/// A whole supervision tree (`titan_pm.supervise` builds the dict from a decorated class).
pub fn supervisor_tree(tree: &Bound<'_, PyAny>) -> PyResult<titan_pm::SupervisorSpec> {
    let value = convert::to_value(tree, "supervisor").map_err(errors::to_py)?;
    options::supervisor_tree(&value, DIALECT, &|_| None).map_err(errors::to_py)
}

/// A call's options (`with_options(timeout=, key=, retries=)`), read by core's call-option
/// reader; none given: the defaults, without building anything.
pub fn call(timeout: Option<f64>, key: Option<String>, retries: Option<&Bound<'_, PyAny>>) -> PyResult<CallOptions> {
    if timeout.is_none() && key.is_none() && retries.is_none() {
        return Ok(CallOptions::default());
    }
    let mut m = Vec::with_capacity(3);
    m.extend(timeout.map(|t| ("timeout".to_string(), Value::Float(t))));
    m.extend(key.map(|k| ("key".to_string(), Value::Text(k))));
    if let Some(r) = retries {
        m.push(("retries".to_string(), convert::to_value(r, "retries").map_err(errors::to_py)?));
    }
    options::call(&Value::Map(m), DIALECT).map_err(errors::to_py)
}

/// Checks `with_options(...)`'s keywords at once (a bad one is a `ConfigError` naming it).
#[pyfunction]
#[pyo3(signature = (timeout=None, key=None, retries=None))]
pub fn check_call_options(timeout: Option<f64>, key: Option<String>, retries: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    call(timeout, key, retries).map(|_| ())
}

/// The dict as a `Value` (a callable `output` named `callback:0`), read by `parse`.
fn read<T>(options: &Bound<'_, PyDict>, parse: fn(&Value, Dialect, options::OutputCallbacks<'_>) -> titan_pm::Result<T>) -> PyResult<T> {
    let mut callback = None;
    let plain = options.copy()?;
    if let Some(o) = plain.get_item("output")?.filter(|o| o.is_callable()) {
        callback = Some(output_callback(o.unbind()));
        plain.set_item("output", "callback:0")?;
    }
    let value = convert::options_to_value(plain.as_any(), "options").map_err(errors::to_py)?;
    parse(&value, DIALECT, &|n| if n == 0 { callback.clone() } else { None }).map_err(errors::to_py)
}

/// Lines go to `callback(stream, name, pid, line)`; an exception in it is printed, not raised.
fn output_callback(callback: Py<PyAny>) -> Output {
    Output::Callback(Arc::new(move |stream, name, pid, line| {
        Python::attach(|py| {
            let stream = match stream {
                OutputStream::Stdout => "stdout",
                OutputStream::Stderr => "stderr",
            };
            if let Err(e) = callback.call1(py, (stream, name, pid, line)) {
                e.print(py);
            }
        })
    }))
}

/// A target: a file path, or (`in_process`) a Python class or `.py` file served in this process.
pub fn target(target: &Bound<'_, PyAny>, in_process: bool) -> PyResult<Target> {
    let bad = |m: &str| errors::to_py(Error::Config(m.into()));
    if !in_process {
        let path: std::path::PathBuf = target.extract().map_err(|_| bad("target must be a path"))?;
        return Ok(Target::Path(path.display().to_string()));
    }
    let name = match target.extract::<std::path::PathBuf>() {
        Ok(p) => p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "worker".into()),
        Err(_) => target.getattr("__name__").and_then(|n| n.extract::<String>()).unwrap_or_else(|_| "worker".into()),
    };
    let target = target.clone().unbind();
    Ok(Target::handler(&name, move || {
        Python::attach(|py| {
            let runtime = py.import("titan_pm._runtime")?.getattr("Runtime")?.call_method1("load", (target.bind(py),))?;
            // The runtime's own threads outlive the instance if user code is stuck: the core counts them.
            runtime.setattr("_live", crate::agent::LiveToken::register())?;
            PyHandler::new(py, runtime.unbind())
        })
        .map(|h| Rc::new(h) as Rc<dyn Handler>)
        .map_err(|e| Python::attach(|py| errors::to_info(py, e.value(py), ErrorInfoKind::Init)))
    }))
}
