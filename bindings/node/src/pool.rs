//! Pools for Node: the core's pools behind a pool id. Options arrive as the
//! TypeScript `PoolOptions` (camelCase, durations in ms); events are forwarded
//! to the host's `onMessage('pool', poolId, name, data)`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use titan_pm::pool::{AutoScale, BreakerOptions, PoolHandle, PoolHealth, PoolMetrics, PoolOptions, PoolSize, Recycle};
use titan_pm::{CallOptions, Error, SpawnOptions, Target, Value};

use crate::host::{duration, map, HostMsg};
use crate::runtime;
use crate::tsfn::Tsfn;

static POOLS: LazyLock<Mutex<HashMap<u64, PoolHandle>>> = LazyLock::new(Default::default);

pub fn get(id: u64) -> Result<PoolHandle, Error> {
    POOLS.lock().unwrap().get(&id).cloned().ok_or_else(|| Error::Config(format!("no pool with id {id}")))
}

/// Which JS isolation each in-process worker was asked for, by process id.
pub type Isolations = Arc<Mutex<HashMap<u64, String>>>;

/// Starts a pool of `target` and forwards its events; resolves with the pool's id.
/// `isolation`: the JS isolation of in-process members, recorded for `listProcesses`.
pub async fn start(
    pm: titan_pm::ProcessManager,
    target: Target,
    options: PoolOptions,
    tsfn: Arc<Tsfn<HostMsg>>,
    isolation: Option<(String, Isolations)>,
) -> Result<u64, Error> {
    let pool = pm.pool(target, options).await?;
    let id = pool.id();
    let mut events = pool.events();
    if let Some((isolation, isolations)) = &isolation {
        let members = pool.metrics().await?.workers;
        isolations.lock().unwrap().extend(members.iter().map(|w| (w.process_id, isolation.clone())));
    }
    POOLS.lock().unwrap().insert(id, pool);
    runtime::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let (titan_pm::pool::PoolEvent::WorkerSpawned { process_id }, Some((isolation, isolations))) = (&e, &isolation) {
                        isolations.lock().unwrap().insert(*process_id, isolation.clone());
                    }
                    let destroyed = e.name() == "pool:destroyed";
                    if !tsfn.send(HostMsg::Pool { pool: id, name: e.name(), data: e.data() }) || destroyed {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(id)
}

pub async fn call(id: u64, method: String, args: Vec<Value>, options: CallOptions) -> Result<Value, Error> {
    get(id)?.with_options(options).call_value(&method, args).await
}

pub async fn destroy(id: u64) -> Result<(), Error> {
    let pool = get(id)?;
    let result = pool.destroy().await;
    POOLS.lock().unwrap().remove(&id);
    result
}

pub fn metrics_value(m: PoolMetrics) -> Value {
    let latency = |l: titan_pm::host::Latency| {
        map(vec![("p50", Value::Float(l.p50)), ("p95", Value::Float(l.p95)), ("p99", Value::Float(l.p99))])
    };
    let workers = m
        .workers
        .iter()
        .map(|w| {
            map(vec![
                ("processId", Value::Int(w.process_id as i64)),
                ("pid", Value::Int(w.pid as i64)),
                ("inFlight", Value::Int(w.in_flight as i64)),
                ("requests", Value::Int(w.requests as i64)),
                ("errors", Value::Int(w.errors as i64)),
                ("latency", latency(w.latency)),
                ("cpu", Value::Float(w.cpu)),
                ("memory", Value::Int(w.memory as i64)),
            ])
        })
        .collect();
    map(vec![
        ("size", Value::Int(m.size as i64)),
        ("busy", Value::Int(m.busy as i64)),
        ("idle", Value::Int(m.idle as i64)),
        ("queueLength", Value::Int(m.queue_length as i64)),
        ("requests", Value::Int(m.requests as i64)),
        ("errors", Value::Int(m.errors as i64)),
        ("errorRate", Value::Float(m.error_rate)),
        ("latency", latency(m.latency)),
        ("state", Value::Text(m.state.into())),
        ("breaker", m.breaker.map(|b| Value::Text(b.event().trim_start_matches("circuitbreaker:").into())).unwrap_or(Value::Null)),
        ("workers", Value::List(workers)),
    ])
}

fn count(v: &Value, key: &str) -> Result<Option<u64>, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Int(n)) if *n >= 0 => Ok(Some(*n as u64)),
        Some(other) => Err(Error::Config(format!("{key} must be a whole number, not {other:?}"))),
    }
}

fn number(v: &Value, key: &str) -> Option<f64> {
    match v.get(key) {
        Some(Value::Int(n)) => Some(*n as f64),
        Some(Value::Float(x)) => Some(*x),
        _ => None,
    }
}

/// An options object (or `true` for its defaults); a key it does not know is an error.
fn section<'a>(v: &'a Value, key: &str, known: &[&str]) -> Result<Option<&'a Value>, Error> {
    match v.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(m @ Value::Map(entries)) => {
            if let Some((k, _)) = entries.iter().find(|(k, _)| k != "enabled" && !known.contains(&k.as_str())) {
                return Err(Error::Config(format!("unknown {key} option {k:?} (expected: {})", known.join(", "))));
            }
            // `{ enabled: false, ... }` is off.
            Ok((m.get("enabled") != Some(&Value::Bool(false))).then_some(m))
        }
        Some(Value::Bool(true)) => Ok(Some(&Value::Null)),
        Some(other) => Err(Error::Config(format!("{key} must be an object, not {}", other.type_name()))),
    }
}

/// `PoolOptions` from the TypeScript options; `spawn` holds the per-worker spawn options.
pub fn options(v: &Value, spawn: SpawnOptions) -> Result<PoolOptions, Error> {
    let mut o = PoolOptions { spawn, ..PoolOptions::default() };
    match v.get("size") {
        None | Some(Value::Null) => {}
        Some(Value::Text(s)) if s == "auto" => o.size = PoolSize::Auto,
        Some(Value::Int(n)) if *n >= 0 => o.size = PoolSize::Fixed(*n as usize),
        Some(other) => return Err(Error::Config(format!("size must be a number or 'auto', not {other:?}"))),
    }
    if let Some(Value::Text(s)) = v.get("strategy") {
        o.strategy = s.parse()?;
    }
    if let Some(n) = count(v, "concurrency")? {
        o.concurrency = n.max(1) as usize;
    }
    if let Some(n) = count(v, "maxQueueSize")? {
        o.max_queue_size = n as usize;
    }
    o.request_timeout = duration(v, "requestTimeout")?;
    if let Some(n) = count(v, "retries")? {
        o.retries = n as u32;
    }
    if let Some(Value::List(ws)) = v.get("weights") {
        o.weights = ws.iter().map(|w| w.as_i64().unwrap_or(1).max(0) as u32).collect();
    }
    const AUTO_SCALE: &[&str] = &[
        "enabled", "min", "max", "targetCPU", "targetCpu", "targetMemory", "scaleUpThreshold", "scaleDownThreshold",
        "cooldownPeriod", "cooldown", "interval",
    ];
    if let Some(a) = section(v, "autoScale", AUTO_SCALE)? {
        let mut s = AutoScale::default();
        if let Some(Value::Bool(b)) = a.get("enabled") {
            s.enabled = *b;
        }
        s.min = count(a, "min")?.map(|n| n as usize).unwrap_or(s.min);
        s.max = count(a, "max")?.map(|n| n as usize).unwrap_or(s.max);
        s.target_cpu = number(a, "targetCPU").or(number(a, "targetCpu")).unwrap_or(s.target_cpu);
        s.target_memory = count(a, "targetMemory")?.unwrap_or(s.target_memory);
        s.scale_up_threshold = number(a, "scaleUpThreshold").unwrap_or(s.scale_up_threshold);
        s.scale_down_threshold = number(a, "scaleDownThreshold").unwrap_or(s.scale_down_threshold);
        s.cooldown = duration(a, "cooldownPeriod")?.or(duration(a, "cooldown")?).unwrap_or(s.cooldown);
        s.interval = duration(a, "interval")?.unwrap_or(s.interval);
        o.auto_scale = Some(s);
    }
    if let Some(b) = section(v, "circuitBreaker", &["threshold", "timeout", "halfOpenRequests"])? {
        let mut s = BreakerOptions::default();
        s.threshold = count(b, "threshold")?.map(|n| n as u32).unwrap_or(s.threshold);
        s.timeout = duration(b, "timeout")?.unwrap_or(s.timeout);
        s.half_open_requests = count(b, "halfOpenRequests")?.map(|n| n as u32).unwrap_or(s.half_open_requests);
        o.circuit_breaker = Some(s);
    }
    if let Some(h) = section(v, "health", &["interval", "unhealthyThreshold"])? {
        let mut s = PoolHealth::default();
        s.interval = duration(h, "interval")?.unwrap_or(s.interval);
        s.unhealthy_threshold = count(h, "unhealthyThreshold")?.map(|n| n as u32).unwrap_or(s.unhealthy_threshold);
        o.health = Some(s);
    }
    if let Some(r) = section(v, "recycle", &["maxRequests", "maxLifetime", "maxMemory"])? {
        o.recycle = Recycle {
            max_requests: count(r, "maxRequests")?,
            max_lifetime: duration(r, "maxLifetime")?,
            max_memory: count(r, "maxMemory")?,
        };
    }
    Ok(o)
}
