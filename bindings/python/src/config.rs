//! Keyword options from Python (snake_case, durations in seconds as floats)
//! -> the core's `ManagerConfig`, `SpawnOptions`, `CallOptions` and `Target`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use titan_pm::agent::Handler;
use titan_pm::protocol::ErrorInfoKind;
use titan_pm::host::OutputStream;
use titan_pm::pool::{AutoScale, BreakerOptions, PoolHealth, PoolOptions, PoolSize, Recycle};
use titan_pm::{CallOptions, Error, ManagerConfig, Output, RestartPolicy, SpawnOptions, Target};

use crate::worker::PyHandler;
use crate::{convert, errors};

fn bad(message: String) -> PyErr {
    errors::to_py(Error::Config(message))
}

fn seconds(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let s: f64 = v.extract().map_err(|_| bad(format!("{name} must be a number of seconds")))?;
    Duration::try_from_secs_f64(s).map_err(|_| bad(format!("{name} must be a non-negative number of seconds, not {s}")))
}

/// Options given as `None` are left to the core's defaults.
fn each<'py>(options: &Bound<'py, PyDict>) -> impl Iterator<Item = (String, Bound<'py, PyAny>)> {
    options
        .iter()
        .filter(|(_, v)| !v.is_none())
        .map(|(k, v)| (k.extract::<String>().unwrap_or_default(), v))
        .collect::<Vec<_>>()
        .into_iter()
}

/// Checks manager options without starting anything (a bad one is a `ConfigError`).
#[pyfunction]
pub fn check_manager_options(options: &Bound<'_, PyDict>) -> PyResult<()> {
    manager(options).map(|_| ())
}

pub fn manager(options: &Bound<'_, PyDict>) -> PyResult<ManagerConfig> {
    let mut c = ManagerConfig::default();
    for (k, v) in each(options) {
        match k.as_str() {
            "isolation" => c.isolation = v.extract::<String>()?.parse().map_err(errors::to_py)?,
            "transport" => c.transport = v.extract::<String>()?.parse().map_err(errors::to_py)?,
            "timeout" => c.timeout = seconds(&k, &v)?,
            "spawn_timeout" => c.spawn_timeout = seconds(&k, &v)?,
            "health_timeout" => c.health_timeout = seconds(&k, &v)?,
            "shutdown_timeout" => c.shutdown_timeout = seconds(&k, &v)?,
            "cancel_grace" => c.cancel_grace = seconds(&k, &v)?,
            "restart_policy" => c.restart = restart_policy(&v)?,
            "output" => c.output = output(&v)?,
            "python" => c.python = v.extract()?,
            "node" => c.node = v.extract()?,
            "tcp_host" => c.tcp_host = v.extract()?,
            "spin" => c.spin = seconds(&k, &v)?,
            other => return Err(bad(format!("unknown option {other:?}"))),
        }
    }
    Ok(c)
}

pub fn spawn(options: &Bound<'_, PyDict>) -> PyResult<SpawnOptions> {
    let mut s = SpawnOptions::default();
    for (k, v) in each(options) {
        match k.as_str() {
            "isolation" => s.isolation = Some(v.extract::<String>()?.parse().map_err(errors::to_py)?),
            "transport" => s.transport = Some(v.extract::<String>()?.parse().map_err(errors::to_py)?),
            "dependencies" => s.dependencies = convert::to_value(&v, "dependencies").map_err(errors::to_py)?,
            "env" => s.env = v.extract::<std::collections::BTreeMap<String, String>>()?.into_iter().collect(),
            "args" => s.args = v.extract()?,
            "name" => s.name = Some(v.extract()?),
            "timeout" => s.timeout = Some(seconds(&k, &v)?),
            "restart_policy" => s.restart = Some(restart_policy(&v)?),
            "output" => s.output = Some(output(&v)?),
            other => return Err(bad(format!("unknown spawn option {other:?}"))),
        }
    }
    Ok(s)
}

pub fn call(timeout: Option<f64>, key: Option<String>) -> PyResult<CallOptions> {
    let timeout = match timeout {
        Some(t) => Some(Duration::try_from_secs_f64(t).map_err(|_| bad(format!("timeout must be >= 0 seconds, not {t}")))?),
        None => None,
    };
    Ok(CallOptions { timeout, key })
}

/// `False` disables restarts; a dict sets the policy's fields (durations in seconds).
fn restart_policy(v: &Bound<'_, PyAny>) -> PyResult<RestartPolicy> {
    if let Ok(enabled) = v.extract::<bool>() {
        return Ok(if enabled { RestartPolicy::default() } else { RestartPolicy::disabled() });
    }
    let d = v.cast::<PyDict>().map_err(|_| bad("restart_policy must be a dict or a bool".into()))?;
    let mut p = RestartPolicy::default();
    for (k, v) in each(d) {
        match k.as_str() {
            "enabled" => p.enabled = v.extract()?,
            "max_restarts" => p.max_restarts = v.extract()?,
            "window" => p.window = seconds(&k, &v)?,
            "initial_backoff" | "backoff" => p.initial_backoff = seconds(&k, &v)?,
            "multiplier" => p.multiplier = v.extract()?,
            "max_backoff" => p.max_backoff = seconds(&k, &v)?,
            other => return Err(bad(format!("unknown restart_policy field {other:?}"))),
        }
    }
    Ok(p)
}

/// "prefix", "inherit", "ignore", or a callable `(stream, name, pid, line)`.
fn output(v: &Bound<'_, PyAny>) -> PyResult<Output> {
    if let Ok(s) = v.extract::<String>() {
        return match s.as_str() {
            "prefix" => Ok(Output::Prefix),
            "inherit" => Ok(Output::Inherit),
            "ignore" => Ok(Output::Ignore),
            _ => Err(bad(format!("unknown output {s:?} (expected prefix, inherit, ignore or a callable)"))),
        };
    }
    if !v.is_callable() {
        return Err(bad("output must be prefix, inherit, ignore or a callable".into()));
    }
    let callback = v.clone().unbind();
    Ok(Output::Callback(Arc::new(move |stream, name, pid, line| {
        Python::attach(|py| {
            let stream = match stream {
                OutputStream::Stdout => "stdout",
                OutputStream::Stderr => "stderr",
            };
            if let Err(e) = callback.call1(py, (stream, name, pid, line)) {
                e.print(py);
            }
        })
    })))
}

/// A target: a file path, or (`in_process`) a Python class or `.py` file served in this process.
pub fn target(target: &Bound<'_, PyAny>, in_process: bool) -> PyResult<Target> {
    if !in_process {
        let path: std::path::PathBuf = target.extract().map_err(|_| bad("target must be a path".into()))?;
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
            PyHandler::new(py, runtime.unbind())
        })
        .map(|h| Rc::new(h) as Rc<dyn Handler>)
        .map_err(|e| Python::attach(|py| errors::to_info(py, e.value(py), ErrorInfoKind::Init)))
    }))
}

/// Pool options: the pool's own fields (durations in seconds), then the spawn options of its workers.
pub fn pool(options: &Bound<'_, PyDict>) -> PyResult<PoolOptions> {
    let mut p = PoolOptions::default();
    let spawn_options = PyDict::new(options.py());
    for (k, v) in each(options) {
        match k.as_str() {
            "size" => {
                p.size = match v.extract::<String>() {
                    Ok(s) if s == "auto" => PoolSize::Auto,
                    Ok(s) => return Err(bad(format!("pool size must be a number or \"auto\", not {s:?}"))),
                    Err(_) => PoolSize::Fixed(v.extract()?),
                }
            }
            "strategy" => p.strategy = v.extract::<String>()?.parse().map_err(errors::to_py)?,
            "concurrency" => p.concurrency = v.extract()?,
            "max_queue_size" => p.max_queue_size = v.extract()?,
            "request_timeout" => p.request_timeout = Some(seconds(&k, &v)?),
            "retries" => p.retries = v.extract()?,
            "weights" => p.weights = v.extract()?,
            "auto_scale" => p.auto_scale = fields(&k, &v, AutoScale::default(), |a, k, v| {
                match k {
                    "enabled" => a.enabled = v.extract()?,
                    "min" => a.min = v.extract()?,
                    "max" => a.max = v.extract()?,
                    "target_cpu" => a.target_cpu = v.extract()?,
                    "target_memory" => a.target_memory = v.extract()?,
                    "scale_up_threshold" => a.scale_up_threshold = v.extract()?,
                    "scale_down_threshold" => a.scale_down_threshold = v.extract()?,
                    "cooldown_period" | "cooldown" => a.cooldown = seconds(k, v)?,
                    "interval" => a.interval = seconds(k, v)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?,
            "circuit_breaker" => p.circuit_breaker = fields(&k, &v, BreakerOptions::default(), |b, k, v| {
                match k {
                    "threshold" => b.threshold = v.extract()?,
                    "timeout" => b.timeout = seconds(k, v)?,
                    "half_open_requests" => b.half_open_requests = v.extract()?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?,
            "health" => p.health = fields(&k, &v, PoolHealth::default(), |h, k, v| {
                match k {
                    "interval" => h.interval = seconds(k, v)?,
                    "unhealthy_threshold" => h.unhealthy_threshold = v.extract()?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?,
            "recycle" => {
                p.recycle = fields(&k, &v, Recycle::default(), |r, k, v| {
                    match k {
                        "max_requests" => r.max_requests = Some(v.extract()?),
                        "max_lifetime" => r.max_lifetime = Some(seconds(k, v)?),
                        "max_memory" => r.max_memory = Some(v.extract()?),
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?
                .unwrap_or_default()
            }
            _ => spawn_options.set_item(k, v)?,
        }
    }
    p.spawn = spawn(&spawn_options)?;
    Ok(p)
}

/// A dict of fields over `T`'s defaults (`False`: off; `True`: the defaults).
fn fields<T>(
    name: &str,
    v: &Bound<'_, PyAny>,
    default: T,
    mut set: impl FnMut(&mut T, &str, &Bound<'_, PyAny>) -> PyResult<bool>,
) -> PyResult<Option<T>> {
    if let Ok(on) = v.extract::<bool>() {
        return Ok(on.then_some(default));
    }
    let d = v.cast::<PyDict>().map_err(|_| bad(format!("{name} must be a dict or a bool")))?;
    let mut t = default;
    for (k, v) in each(d) {
        if k == "enabled" {
            if !v.extract::<bool>()? {
                return Ok(None); // {"enabled": False, ...} is off
            }
            continue;
        }
        if !set(&mut t, &k, &v)? {
            return Err(bad(format!("unknown {name} field {k:?}")));
        }
    }
    Ok(Some(t))
}
