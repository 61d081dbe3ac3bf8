//! The core's reports as the Python dicts the API returns: process info,
//! health (`timestamp` in ms since the epoch), metrics (latency in ms) and events.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use titan_pm::pool::{BreakerState, PoolEvent, PoolMetrics};
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
    d.set_item("latency", latency(py, &m.latency)?)?;
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

pub fn pool_metrics<'py>(py: Python<'py>, m: &PoolMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("size", m.size)?;
    d.set_item("busy", m.busy)?;
    d.set_item("idle", m.idle)?;
    d.set_item("queue_length", m.queue_length)?;
    d.set_item("requests", m.requests)?;
    d.set_item("errors", m.errors)?;
    d.set_item("error_rate", m.error_rate)?;
    d.set_item("latency", latency(py, &m.latency)?)?;
    d.set_item("state", m.state)?;
    d.set_item(
        "breaker",
        m.breaker.map(|b| match b {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }),
    )?;
    let workers = PyList::empty(py);
    for w in &m.workers {
        let wd = PyDict::new(py);
        wd.set_item("process_id", w.process_id)?;
        wd.set_item("pid", w.pid)?;
        wd.set_item("in_flight", w.in_flight)?;
        wd.set_item("requests", w.requests)?;
        wd.set_item("errors", w.errors)?;
        wd.set_item("latency", latency(py, &w.latency)?)?;
        wd.set_item("cpu", w.cpu)?;
        wd.set_item("memory", w.memory)?;
        workers.append(wd)?;
    }
    d.set_item("workers", workers)?;
    Ok(d)
}

fn latency<'py>(py: Python<'py>, l: &titan_pm::host::Latency) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("p50", l.p50)?;
    d.set_item("p95", l.p95)?;
    d.set_item("p99", l.p99)?;
    Ok(d)
}

/// `{"type": "pool:scaled", "from": 2, "to": 4}` and the like.
pub fn pool_event<'py>(py: Python<'py>, e: &PoolEvent) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("type", e.name())?;
    match e {
        PoolEvent::Initialized { size } => d.set_item("size", size)?,
        PoolEvent::Scaled { from, to } => {
            d.set_item("from", from)?;
            d.set_item("to", to)?;
        }
        PoolEvent::Failed { reason } => d.set_item("reason", reason)?,
        PoolEvent::WorkerSpawned { process_id } | PoolEvent::WorkerCrashed { process_id } | PoolEvent::WorkerUnhealthy { process_id } => {
            d.set_item("process_id", process_id)?
        }
        PoolEvent::WorkerReplaced { old, new } => {
            d.set_item("old", old)?;
            d.set_item("new", new)?;
        }
        PoolEvent::Drained | PoolEvent::Destroyed | PoolEvent::Breaker(_) => {}
    }
    Ok(d)
}
