//! The one place errors cross the bridge: a core `Error` becomes an instance of
//! the matching `titan_pm.errors` class (built by `titan_pm.errors._from_native`,
//! which also maps a remote built-in type such as `ValueError`), and a Python
//! exception raised in a worker becomes the `ErrorInfo` that crosses the wire.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use titan_pm::protocol::{ErrorInfo, ErrorInfoKind};
use titan_pm::Error;

static FROM_NATIVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static VALIDATION_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The Python exception for a core error.
pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| match build(py, &err) {
        Ok(e) => e,
        Err(e) => e,
    })
}

fn build(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let attrs = PyDict::new(py);
    let class = match err {
        Error::Remote { remote_type, remote_traceback, code, .. } => {
            attrs.set_item("remote_type", remote_type)?;
            attrs.set_item("remote_traceback", remote_traceback)?;
            attrs.set_item("code", code)?;
            "RemoteError"
        }
        Error::ProcessCrashed { process_id, exit_code, signal } => {
            attrs.set_item("process_id", process_id)?;
            attrs.set_item("exit_code", exit_code)?;
            attrs.set_item("signal", signal)?;
            "ProcessCrashedError"
        }
        Error::ProcessFailed { process_id, state } => {
            attrs.set_item("process_id", process_id)?;
            attrs.set_item("state", state.as_str())?;
            "ProcessFailedError"
        }
        Error::ManagerShutDown => {
            attrs.set_item("state", "stopped")?;
            "ProcessFailedError"
        }
        Error::CallTimeout { method, timeout_ms } => {
            attrs.set_item("method", method)?;
            attrs.set_item("timeout", *timeout_ms as f64 / 1000.0)?;
            "CallTimeoutError"
        }
        Error::MethodNotFound { method, available } => {
            attrs.set_item("method", method)?;
            attrs.set_item("available", available.clone())?;
            "MethodNotFoundError"
        }
        Error::Serialization { path, .. } => {
            attrs.set_item("path", path)?;
            "SerializationError"
        }
        Error::Spawn { target, reason, stderr_tail } => {
            attrs.set_item("target", target)?;
            attrs.set_item("reason", reason)?;
            attrs.set_item("stderr_tail", stderr_tail)?;
            "SpawnError"
        }
        Error::PoolBackpressure { queue_size } => {
            attrs.set_item("queue_size", queue_size)?;
            "PoolBackpressureError"
        }
        Error::CircuitOpen => "CircuitOpenError",
        Error::Workflow { workflow, run_id, stage, cause, compensations } => {
            attrs.set_item("workflow", workflow)?;
            attrs.set_item("run_id", run_id)?;
            attrs.set_item("stage", stage)?;
            attrs.set_item("kind", titan_pm::workflow::failure_kind(cause))?;
            attrs.set_item("cause", build(py, cause)?.into_value(py))?;
            let outcomes = pyo3::types::PyList::empty(py);
            for c in compensations {
                let d = PyDict::new(py);
                d.set_item("stage", &c.stage)?;
                d.set_item("method", &c.method)?;
                d.set_item("attempts", c.attempts)?;
                d.set_item("error", &c.error)?;
                outcomes.append(d)?;
            }
            attrs.set_item("compensations", outcomes)?;
            "WorkflowError"
        }
        Error::RateLimit { retry_after_ms } => {
            attrs.set_item("retry_after", *retry_after_ms as f64 / 1000.0)?;
            "RateLimitError"
        }
        Error::Validation { failures } => {
            attrs.set_item("failures", failures.clone())?;
            "ValidationError"
        }
        other => other.class_name(),
    };
    let message = match err {
        Error::Remote { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let make = FROM_NATIVE.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("titan_pm.errors")?.getattr("_from_native")?.unbind())
    })?;
    let exc = make.bind(py).call1((class, message, attrs))?;
    Ok(PyErr::from_value(exc))
}

/// The wire form of an exception a worker raised (`kind` says where it was raised).
pub fn to_info(py: Python<'_>, exc: &Bound<'_, PyAny>, kind: ErrorInfoKind) -> ErrorInfo {
    // A worker-side validator's verdict (titan_pm.policies raises ValidationError): the
    // host sees a ValidationError with the same failures.
    if let Some(failures) = validation_failures(py, exc) {
        return ErrorInfo::validation(failures);
    }
    let type_name = exc.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    // A remote error re-raised by a worker keeps its original type.
    let type_name = exc
        .getattr("remote_type")
        .ok()
        .and_then(|t| t.extract::<String>().ok())
        .filter(|t| !t.is_empty())
        .unwrap_or(type_name);
    let message = exc.str().map(|s| s.to_string()).unwrap_or_default();
    let stack = format_traceback(py, exc).unwrap_or_default();
    let mut info = ErrorInfo::new(kind, type_name, message).with_stack(stack);
    info.code = exc.getattr("code").ok().and_then(|c| c.extract::<String>().ok());
    info
}

/// The (path, message) failures of a `titan_pm.ValidationError`; `None` for any other exception.
fn validation_failures(py: Python<'_>, exc: &Bound<'_, PyAny>) -> Option<Vec<(String, String)>> {
    let class = VALIDATION_ERROR
        .get_or_try_init(py, || -> PyResult<_> { Ok(py.import("titan_pm.errors")?.getattr("ValidationError")?.unbind()) })
        .ok()?;
    if !exc.is_instance(class.bind(py)).unwrap_or(false) {
        return None;
    }
    let failures = exc.getattr("failures").ok()?;
    let mut out = Vec::new();
    for f in failures.try_iter().ok()? {
        let (path, message): (String, String) = f.ok()?.extract().ok()?;
        out.push((path, message));
    }
    Some(out)
}

fn format_traceback(py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<String> {
    let tb = py.import("traceback")?;
    let args = PyTuple::new(py, [exc.get_type().into_any(), exc.clone(), exc.getattr("__traceback__")?])?;
    let lines = tb.getattr("format_exception")?.call1(args)?;
    Ok(lines.extract::<Vec<String>>()?.concat())
}
