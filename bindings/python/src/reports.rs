//! The core's reports as the Python dicts the API returns: process info,
//! health (`timestamp` in ms since the epoch), metrics (latency in ms) and events.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use titan_pm::{Event, EventKind, HealthReport, ProcessInfo, ProcessMetrics};

pub fn info<'py>(py: Python<'py>, i: &ProcessInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("process_id", i.process_id)?;
    d.set_item("name", &i.name)?;
    d.set_item("pid", i.pid)?;
    d.set_item("state", i.state.as_str())?;
    d.set_item("restarts", i.restarts)?;
    d.set_item("isolation", i.isolation.as_str())?;
    d.set_item("transport", i.transport.as_str())?;
    Ok(d)
}

pub fn infos<'py>(py: Python<'py>, list: &[ProcessInfo]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, list.iter().map(|i| info(py, i)).collect::<PyResult<Vec<_>>>()?)
}

pub fn health<'py>(py: Python<'py>, h: &HealthReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("status", h.status.as_str())?;
    let checks = PyList::empty(py);
    for c in &h.checks {
        let cd = PyDict::new(py);
        cd.set_item("name", &c.name)?;
        cd.set_item("status", c.status.as_str())?;
        cd.set_item("message", &c.message)?;
        checks.append(cd)?;
    }
    d.set_item("checks", checks)?;
    d.set_item("timestamp", h.timestamp_ms)?;
    Ok(d)
}

pub fn metrics<'py>(py: Python<'py>, m: &ProcessMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("cpu", m.cpu)?;
    d.set_item("memory", m.memory)?;
    d.set_item("requests", m.requests)?;
    d.set_item("errors", m.errors)?;
    d.set_item("in_flight", m.in_flight)?;
    let l = PyDict::new(py);
    l.set_item("p50", m.latency.p50)?;
    l.set_item("p95", m.latency.p95)?;
    l.set_item("p99", m.latency.p99)?;
    d.set_item("latency", l)?;
    Ok(d)
}

pub fn event<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("type", e.kind.name())?;
    d.set_item("process_id", e.process_id)?;
    match &e.kind {
        EventKind::Spawned { pid } | EventKind::Ready { pid } => d.set_item("pid", pid)?,
        EventKind::Crashed { exit_code, signal } => {
            d.set_item("exit_code", exit_code)?;
            d.set_item("signal", signal)?;
        }
        EventKind::Restarting { attempt, delay } => {
            d.set_item("attempt", attempt)?;
            d.set_item("delay", delay.as_secs_f64())?;
        }
        EventKind::Failed | EventKind::Exited | EventKind::ConnectionRefused => {}
    }
    Ok(d)
}
