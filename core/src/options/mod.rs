//! Every option of the manager, of a spawn, of a pool, of a supervisor and its children, read once: from a
//! [`Value`] in the caller's [`Dialect`] (TypeScript camelCase + ms, Python
//! snake_case + seconds) into the core's own types. A bridge converts its
//! native object to a `Value` and calls these; it keeps no option table.
//!
//! Unknown keys are a `ConfigError` naming the full path in the caller's
//! spelling (`autoScale.targetCPU`, `auto_scale.target_cpu`). The seed's
//! configuration block is accepted as written; today's flat names stay as
//! aliases (`timeout` = `resources.timeout`, `healthTimeout` =
//! `monitoring.healthCheck.timeout`, `restartPolicy.initialBackoff` =
//! `restartPolicy.backoff.initial`).
//!
//! ```
//! use titan_pm::options::{self, Dialect};
//! use titan_pm::value::to_value;
//! let v = to_value(&serde_json::json!({
//!     "restartPolicy": { "maxRestarts": 5, "backoff": { "type": "linear", "initial": 100, "max": 1000 } },
//!     "resources": { "maxMemory": "512MB", "timeout": 2000 },
//! })).unwrap();
//! let c = options::manager(&v, Dialect::Js, &|_| None).unwrap();
//! assert_eq!(c.restart.max_restarts, 5);
//! assert_eq!(c.resources.max_memory, Some(512 << 20));
//! assert_eq!(c.timeout, std::time::Duration::from_secs(2));
//! let bad = to_value(&serde_json::json!({ "resources": { "maxMem": 1 } })).unwrap();
//! let e = options::manager(&bad, Dialect::Js, &|_| None).err().unwrap();
//! assert!(e.to_string().contains("resources.maxMem: unknown option"));
//! ```
//!
//! A new option is one getter call in the reader of its object here, one field
//! in the core type it fills, and a line in the TS types and Python stubs.

pub use crate::dialect::{parse_bytes, parse_duration, probe, Dialect, Section, Toggle};

use crate::error::{Error, Result};
use crate::host::{CallOptions, HealthProbe, ManagerConfig, Monitoring, Output, Resources, SpawnOptions};
use crate::policy::backoff::BackoffKind;
use crate::policy::{Backoff, BreakerOptions, RestartPolicy};
use crate::pool::{AutoScale, PoolHealth, PoolOptions, PoolSize, Recycle};
use crate::supervise::{ChildDef, ChildSpec, ChildTarget, SupervisorSpec};
use crate::value::Value;

/// Resolves a native output callback: a bridge names one `callback:N`.
pub type OutputCallbacks<'a> = &'a dyn Fn(u64) -> Option<Output>;

/// The manager's options.
pub fn manager(v: &Value, dialect: Dialect, callbacks: OutputCallbacks<'_>) -> Result<ManagerConfig> {
    let mut s = Section::root(v, "manager", dialect)?;
    let c = manager_fields(&mut s, ManagerConfig::default(), callbacks)?;
    s.finish()?;
    Ok(c)
}

/// What a test manager adds to a manager's options (the `testing` module reads them).
#[derive(Debug, Clone, PartialEq)]
pub struct TestOptions {
    /// Keep the operations record (`recordOperations`, default true).
    pub record_operations: bool,
    /// Start with a manual clock that only `advance_time` moves (`controlTime`, default false).
    pub control_time: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions { record_operations: true, control_time: false }
    }
}

/// A test manager's options (`createTestProcessManager`): every manager option (isolation
/// defaults to `none`), plus `recordOperations` (default true) and `controlTime` (default false).
///
/// ```
/// use titan_pm::options::{test_manager, Dialect};
/// use titan_pm::{Isolation, Value};
/// let v = Value::Map(vec![("controlTime".into(), Value::Bool(true))]);
/// let (config, t) = test_manager(&v, Dialect::Js, &|_| None).unwrap();
/// assert_eq!(config.isolation, Isolation::None);
/// assert!(t.control_time && t.record_operations);
/// let bad = Value::Map(vec![("recordOps".into(), Value::Bool(true))]);
/// assert!(test_manager(&bad, Dialect::Js, &|_| None).err().unwrap().to_string().contains("recordOps: unknown option"));
/// ```
pub fn test_manager(v: &Value, dialect: Dialect, callbacks: OutputCallbacks<'_>) -> Result<(ManagerConfig, TestOptions)> {
    let mut s = Section::root(v, "test manager", dialect)?;
    let mut t = TestOptions::default();
    if let Some(b) = s.bool("recordOperations")? {
        t.record_operations = b;
    }
    if let Some(b) = s.bool("controlTime")? {
        t.control_time = b;
    }
    let base = ManagerConfig { isolation: crate::host::Isolation::None, ..ManagerConfig::default() };
    let c = manager_fields(&mut s, base, callbacks)?;
    s.finish()?;
    Ok((c, t))
}

/// The metrics a test sets for a process (`setMetrics`): `cpu`, `memory`, `requests`,
/// `errors`, `inFlight`, `latency: {p50, p95, p99}`; each one given replaces
/// `base`'s (the process's current metrics), the rest stay.
pub fn metrics_override(v: &Value, dialect: Dialect, base: crate::host::ProcessMetrics) -> Result<crate::host::ProcessMetrics> {
    let mut s = Section::root(v, "metrics", dialect)?;
    let mut m = base;
    if let Some(x) = s.number("cpu")? {
        m.cpu = x;
    }
    if let Some(x) = s.bytes("memory")? {
        m.memory = x;
    }
    for (name, field) in [("requests", &mut m.requests), ("errors", &mut m.errors), ("inFlight", &mut m.in_flight)] {
        if let Some(x) = s.count(name)? {
            *field = x;
        }
    }
    if let Some(mut l) = s.section("latency")? {
        for (name, field) in [("p50", &mut m.latency.p50), ("p95", &mut m.latency.p95), ("p99", &mut m.latency.p99)] {
            if let Some(x) = l.number(name)? {
                *field = x;
            }
        }
        l.finish()?;
    }
    s.finish()?;
    Ok(m)
}

fn manager_fields(s: &mut Section<'_>, mut c: ManagerConfig, callbacks: OutputCallbacks<'_>) -> Result<ManagerConfig> {
    if let Some(i) = s.parse("isolation")? {
        c.isolation = i;
    }
    if let Some(t) = s.parse("transport")? {
        c.transport = t;
    }
    if let Some(r) = restart_policy(s)? {
        c.restart = r;
    }
    if let Some(d) = s.duration("timeout")? {
        c.timeout = d;
    }
    if let Some((r, timeout)) = resources(s)? {
        c.resources = r;
        c.timeout = timeout.unwrap_or(c.timeout);
    }
    if let Some(d) = s.duration("healthTimeout")? {
        c.health_timeout = d;
    }
    if let Some((m, timeout)) = monitoring(s)? {
        c.monitoring = m;
        c.health_timeout = timeout.unwrap_or(c.health_timeout);
    }
    for (name, field) in [
        ("spawnTimeout", &mut c.spawn_timeout),
        ("shutdownTimeout", &mut c.shutdown_timeout),
        ("cancelGrace", &mut c.cancel_grace),
        ("spin", &mut c.spin),
    ] {
        if let Some(d) = s.duration(name)? {
            *field = d;
        }
    }
    if let Some(o) = output(s, callbacks)? {
        c.output = o;
    }
    if let Some(b) = s.bool("forkServer")? {
        c.fork_server = b;
    }
    if let Some(w) = workflows(s)? {
        c.workflows = w;
    }
    for (name, field) in [("python", &mut c.python), ("node", &mut c.node), ("tcpHost", &mut c.tcp_host)] {
        if let Some(t) = s.text(name)? {
            *field = t.to_string();
        }
    }
    // A Python program's manager whose workers are children most likely spawns `.py` files: its
    // fork server starts with it (in the background), so the first such spawn does not wait for it.
    c.fork_server_early = s.dialect() == Dialect::Python && c.isolation == crate::host::Isolation::Child;
    Ok(c)
}

/// The options of one spawn (`None` fields take the manager's).
pub fn spawn(v: &Value, dialect: Dialect, callbacks: OutputCallbacks<'_>) -> Result<SpawnOptions> {
    let mut s = Section::root(v, "spawn", dialect)?;
    let o = spawn_fields(&mut s, callbacks)?;
    s.finish()?;
    Ok(o)
}

fn spawn_fields(s: &mut Section<'_>, callbacks: OutputCallbacks<'_>) -> Result<SpawnOptions> {
    let mut o = SpawnOptions {
        isolation: s.parse("isolation")?,
        transport: s.parse("transport")?,
        dependencies: s.get("dependencies").cloned().unwrap_or(Value::Null),
        env: s.text_map("env")?.unwrap_or_default(),
        args: s.texts("args")?.unwrap_or_default(),
        name: s.text("name")?.map(String::from),
        version: s.text("version")?.map(String::from),
        timeout: s.duration("timeout")?,
        restart: restart_policy(s)?,
        output: output(s, callbacks)?,
        ..SpawnOptions::default()
    };
    if !matches!(o.dependencies, Value::Null | Value::Map(_)) {
        return Err(s.error("dependencies", format!("must be an object, not {}", o.dependencies.type_name())));
    }
    match s.get("processes") {
        None => {}
        Some(Value::Map(m)) => {
            for (name, id) in m {
                match id {
                    Value::Int(n) if *n > 0 => o.processes.push((name.clone(), *n as u64)),
                    other => return Err(s.error("processes", format!("{name} must be a process id, not {}", describe(other)))),
                }
            }
        }
        Some(other) => return Err(s.error("processes", format!("must be an object of name: process id, not {}", other.type_name()))),
    }
    if let Some((r, timeout)) = resources(s)? {
        o.resources = Some(r);
        o.timeout = timeout.or(o.timeout);
    }
    Ok(o)
}

/// A pool's options: its own, then the spawn options of its members.
pub fn pool(v: &Value, dialect: Dialect, callbacks: OutputCallbacks<'_>) -> Result<PoolOptions> {
    let mut s = Section::root(v, "pool", dialect)?;
    let mut o = pool_fields(&mut s)?;
    o.spawn = spawn_fields(&mut s, callbacks)?;
    s.finish()?;
    Ok(o)
}

/// A pool's own fields (not its members' spawn options).
fn pool_fields(s: &mut Section<'_>) -> Result<PoolOptions> {
    let mut o = PoolOptions::default();
    match s.get("size") {
        None => {}
        Some(Value::Text(t)) if t == "auto" => o.size = PoolSize::Auto,
        Some(Value::Int(n)) if *n >= 1 => o.size = PoolSize::Fixed(*n as usize),
        Some(other) => return Err(s.error("size", format!("must be a number >= 1 or \"auto\", not {}", describe(other)))),
    }
    // A `remote:NAME` pool's fewest members (calls queue until they have joined): its size.
    if let Some(n) = s.count("min")? {
        if s.get("size").is_some() {
            return Err(s.error("min", "give size or min, not both"));
        }
        if n == 0 {
            return Err(s.error("min", "must be at least 1"));
        }
        o.size = PoolSize::Fixed(n as usize);
    }
    if let Some(st) = s.parse("strategy")? {
        o.strategy = st;
    }
    if let Some(n) = s.count("concurrency")? {
        if n == 0 {
            return Err(s.error("concurrency", "must be at least 1"));
        }
        o.concurrency = n as usize;
    }
    if let Some(n) = s.count("maxQueueSize")? {
        o.max_queue_size = n as usize;
    }
    if let Some(n) = s.count("pipeline")? {
        o.pipeline = n as usize;
    }
    o.request_timeout = s.duration("requestTimeout")?;
    if let Some(n) = retries(s)? {
        o.retries = n;
    }
    if let Some(ws) = s.get("weights") {
        let Value::List(items) = ws else { return Err(s.error("weights", "must be a list of whole numbers")) };
        o.weights = items
            .iter()
            .map(|w| match w {
                Value::Int(n) if *n >= 0 => Ok(*n as u32),
                other => Err(s.error("weights", format!("must be whole numbers >= 0, not {}", describe(other)))),
            })
            .collect::<Result<_>>()?;
    }
    o.auto_scale = match s.toggle("autoScale")? {
        Toggle::On(mut a) => {
            let mut x = AutoScale::default();
            x.min = a.count("min")?.map(|n| n as usize).unwrap_or(x.min);
            x.max = a.count("max")?.map(|n| n as usize).unwrap_or(x.max);
            if let Some((_, v)) = a.get_any(&["targetCPU", "targetCpu"]) {
                x.target_cpu = positive(&a, "targetCPU", v)?;
            }
            x.target_memory = a.percent("targetMemory")?.unwrap_or(x.target_memory);
            x.scale_up_threshold = a.number("scaleUpThreshold")?.unwrap_or(x.scale_up_threshold);
            x.scale_down_threshold = a.number("scaleDownThreshold")?.unwrap_or(x.scale_down_threshold);
            let cooldown = a.duration("cooldownPeriod")?;
            x.cooldown = a.duration("cooldown")?.or(cooldown).unwrap_or(x.cooldown);
            x.interval = a.duration("interval")?.unwrap_or(x.interval);
            if x.min > x.max {
                return Err(a.error("min", format!("({}) must not be above max ({})", x.min, x.max)));
            }
            a.finish()?;
            Some(x)
        }
        Toggle::Off | Toggle::Absent => None,
    };
    o.circuit_breaker = match s.toggle("circuitBreaker")? {
        Toggle::On(mut b) => {
            let d = BreakerOptions::default();
            let x = BreakerOptions {
                threshold: b.count("threshold")?.map(|n| n as u32).unwrap_or(d.threshold),
                timeout: b.duration("timeout")?.unwrap_or(d.timeout),
                half_open_requests: b.count("halfOpenRequests")?.map(|n| n as u32).unwrap_or(d.half_open_requests),
            };
            b.finish()?;
            Some(x)
        }
        Toggle::Off | Toggle::Absent => None,
    };
    o.health = match s.toggle("health")? {
        Toggle::On(mut h) => {
            let d = PoolHealth::default();
            let x = PoolHealth {
                interval: h.duration("interval")?.unwrap_or(d.interval),
                unhealthy_threshold: h.count("unhealthyThreshold")?.map(|n| n as u32).unwrap_or(d.unhealthy_threshold),
            };
            h.finish()?;
            Some(x)
        }
        Toggle::Off | Toggle::Absent => None,
    };
    if let Toggle::On(mut r) = s.toggle("recycle")? {
        o.recycle = Recycle {
            max_requests: r.count("maxRequests")?,
            max_lifetime: r.duration("maxLifetime")?,
            max_memory: r.bytes("maxMemory")?,
        };
        r.finish()?;
    }
    Ok(o)
}

/// One call's options (`with_options(...)` / `withOptions({...})`): `timeout`, `key`
/// and `retries` (a crashed call sent again after the restart, within the same
/// deadline; only for calls safe to repeat). A front end's own call options (TS
/// `signal`) are not passed here.
///
/// ```
/// use titan_pm::options::{self, Dialect};
/// use titan_pm::value::to_value;
/// let v = to_value(&serde_json::json!({ "timeout": 1.5, "retries": 2 })).unwrap();
/// let c = options::call(&v, Dialect::Python).unwrap();
/// assert_eq!((c.timeout, c.retries), (Some(std::time::Duration::from_millis(1500)), Some(2)));
/// for bad in [serde_json::json!({ "retries": -1 }), serde_json::json!({ "retries": 1.5 }), serde_json::json!({ "retries": "2" })] {
///     let e = options::call(&to_value(&bad).unwrap(), Dialect::Js).err().unwrap().to_string();
///     assert!(e.contains("retries: must be a whole number >= 0"), "{e}");
/// }
/// let e = options::call(&to_value(&serde_json::json!({ "retrys": 1 })).unwrap(), Dialect::Js).err().unwrap().to_string();
/// assert!(e.contains("retrys: unknown option (expected one of: key, retries, timeout)"), "{e}");
/// ```
pub fn call(v: &Value, dialect: Dialect) -> Result<CallOptions> {
    let mut s = Section::root(v, "call", dialect)?;
    let c = CallOptions { timeout: s.duration("timeout")?, key: s.text("key")?.map(String::from), retries: retries(&mut s)? };
    s.finish()?;
    Ok(c)
}

/// `retries` (of a call or a pool): a whole number >= 0; above `u32::MAX` it is that (the deadline ends it first).
fn retries(s: &mut Section<'_>) -> Result<Option<u32>> {
    Ok(s.count("retries")?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// A supervisor's options (`@Supervisor({ strategy, maxRestarts, window, backoff })`),
/// as a spec without children; `name` is the class's unless given.
///
/// ```
/// use titan_pm::options::{self, Dialect};
/// use titan_pm::value::to_value;
/// let v = to_value(&serde_json::json!({ "strategy": "rest-for-one", "max_restarts": 5, "window": 2.5,
///                                        "backoff": { "type": "linear", "initial": 0.1, "max": 1 } })).unwrap();
/// let s = options::supervisor(&v, Dialect::Python).unwrap();
/// assert_eq!((s.strategy.as_str(), s.policy.max_restarts), ("rest-for-one", 5));
/// assert_eq!(s.policy.window, std::time::Duration::from_millis(2500));
/// let bad = to_value(&serde_json::json!({ "strategy": "one-for-some" })).unwrap();
/// let e = options::supervisor(&bad, Dialect::Js).err().unwrap().to_string();
/// assert!(e.contains("strategy: unknown supervision strategy"), "{e}");
/// ```
pub fn supervisor(v: &Value, dialect: Dialect) -> Result<SupervisorSpec> {
    let mut s = Section::root(v, "supervisor", dialect)?;
    let spec = supervisor_fields(&mut s)?;
    s.finish()?;
    Ok(spec)
}

fn supervisor_fields(s: &mut Section<'_>) -> Result<SupervisorSpec> {
    let mut spec = SupervisorSpec::new(s.parse("strategy")?.unwrap_or_default());
    if let Some(n) = s.text("name")? {
        spec.name = n.to_string();
    }
    policy_fields(s, &mut spec.policy)?;
    Ok(spec)
}

/// A whole supervision tree from one value, what a front end's decorated class
/// becomes: the supervisor's options plus `children`, in declaration order, each
/// `{ name, target, ...child options }` with `target` a worker file or a nested
/// tree. Errors name the path (`children[1].pool.size`).
///
/// ```
/// use titan_pm::options::{self, Dialect};
/// use titan_pm::supervise::ChildTarget;
/// use titan_pm::value::to_value;
/// let v = to_value(&serde_json::json!({ "name": "App", "strategy": "one-for-all", "maxRestarts": 2, "children": [
///     { "name": "database", "target": "workers/db.py", "critical": true },
///     { "name": "nested", "target": { "name": "Inner", "children": [{ "name": "w", "target": "w.js" }] } },
/// ] })).unwrap();
/// let spec = options::supervisor_tree(&v, Dialect::Js, &|_| None).unwrap();
/// assert_eq!((spec.name.as_str(), spec.children.len()), ("App", 2));
/// assert!(matches!(&spec.children[1].target, ChildTarget::Supervisor(s) if s.children[0].name == "w"));
/// let bad = to_value(&serde_json::json!({ "children": [{ "name": "a", "target": "a.py" }, { "name": "b", "target": "b.py", "pool": { "size": 0 } }] })).unwrap();
/// let e = options::supervisor_tree(&bad, Dialect::Js, &|_| None).err().unwrap().to_string();
/// assert!(e.contains("children[1].pool.size: must be a number >= 1"), "{e}");
/// ```
pub fn supervisor_tree(v: &Value, dialect: Dialect, callbacks: OutputCallbacks<'_>) -> Result<SupervisorSpec> {
    let s = Section::root(v, "supervisor", dialect)?;
    tree(s, callbacks)
}

fn tree(mut s: Section<'_>, callbacks: OutputCallbacks<'_>) -> Result<SupervisorSpec> {
    let mut spec = supervisor_fields(&mut s)?;
    let children = match s.get("children") {
        None => &[][..],
        Some(Value::List(items)) => &items[..],
        Some(other) => return Err(s.error("children", format!("must be a list, not {}", other.type_name()))),
    };
    for (i, c) in children.iter().enumerate() {
        let mut cs = Section::at(c, format!("{}[{i}]", s.path("children")), "child", s.dialect())?;
        let name = cs.text("name")?.ok_or_else(|| cs.error("name", "is required"))?.to_string();
        let target = match cs.get("target") {
            Some(Value::Text(t)) => ChildTarget::Worker(t.as_str().into()),
            Some(m @ Value::Map(_)) => ChildTarget::Supervisor(Box::new(tree(Section::at(m, cs.path("target"), "supervisor", cs.dialect())?, callbacks)?)),
            None => return Err(cs.error("target", "is required (a worker file or a supervisor)")),
            Some(other) => return Err(cs.error("target", format!("must be a worker file or a supervisor, not {}", other.type_name()))),
        };
        let spec_of_child = child_fields(&mut cs, callbacks)?;
        cs.finish()?;
        spec.children.push(ChildDef { name, target, spec: spec_of_child });
    }
    s.finish()?;
    Ok(spec)
}

/// A child's options (`@Child({ critical, optional, restart, pool, ...spawn options })`).
///
/// ```
/// use titan_pm::options::{self, Dialect};
/// use titan_pm::value::to_value;
/// let v = to_value(&serde_json::json!({ "critical": true, "restart": "transient", "pool": { "size": 4 },
///                                        "env": { "A": "1" } })).unwrap();
/// let c = options::child(&v, Dialect::Js, &|_| None).unwrap();
/// assert!(c.critical && c.pool.is_some());
/// let bad = to_value(&serde_json::json!({ "pool": { "sise": 4 } })).unwrap();
/// let e = options::child(&bad, Dialect::Js, &|_| None).err().unwrap().to_string();
/// assert!(e.contains("pool.sise: unknown option"), "{e}");
/// ```
pub fn child(v: &Value, dialect: Dialect, callbacks: OutputCallbacks<'_>) -> Result<ChildSpec> {
    let mut s = Section::root(v, "child", dialect)?;
    let c = child_fields(&mut s, callbacks)?;
    s.finish()?;
    Ok(c)
}

fn child_fields(s: &mut Section<'_>, callbacks: OutputCallbacks<'_>) -> Result<ChildSpec> {
    let mut c = ChildSpec {
        critical: s.bool("critical")?.unwrap_or(false),
        optional: s.bool("optional")?.unwrap_or(false),
        restart: s.parse("restart")?.unwrap_or_default(),
        inject: s.texts("inject")?.unwrap_or_default(),
        ..ChildSpec::default()
    };
    if c.critical && c.optional {
        return Err(s.error("optional", "critical and optional exclude each other"));
    }
    if let Some(mut p) = s.section("pool")? {
        c.pool = Some(pool_fields(&mut p)?);
        p.finish()?;
    }
    c.spawn = spawn_fields(s, callbacks)?;
    // (While the schema is probed every sub-object is entered, `restartPolicy` too: the
    // probe goes on, so the child's own keys are listed; `restartPolicy.*` is listed as
    // read-to-refuse.)
    if c.spawn.restart.is_some() && !s.probing() {
        return Err(s.error("restartPolicy", "a supervised child's restarts belong to its supervisor (set maxRestarts, window, backoff there)"));
    }
    Ok(c)
}

fn positive(s: &Section<'_>, name: &str, v: &Value) -> Result<f64> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as f64),
        Value::Float(x) if *x >= 0.0 && x.is_finite() => Ok(*x),
        other => Err(s.error(name, format!("must be a number >= 0, not {}", describe(other)))),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Int(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Text(t) => format!("{t:?}"),
        other => other.type_name().into(),
    }
}

/// `restartPolicy`: `false` (off), `true` (defaults), or the seed's object.
fn restart_policy(s: &mut Section<'_>) -> Result<Option<RestartPolicy>> {
    let mut r = RestartPolicy::default();
    match s.toggle("restartPolicy")? {
        Toggle::Absent => return Ok(None),
        Toggle::Off => return Ok(Some(RestartPolicy::disabled())),
        Toggle::On(mut p) => {
            policy_fields(&mut p, &mut r)?;
            p.finish()?;
        }
    }
    Ok(Some(r))
}

/// A restart policy's fields (`maxRestarts`, `window`, `backoff`, the flat backoff aliases).
fn policy_fields(p: &mut Section<'_>, r: &mut RestartPolicy) -> Result<()> {
    r.max_restarts = p.count("maxRestarts")?.map(|n| n as u32).unwrap_or(r.max_restarts);
    r.window = p.duration("window")?.unwrap_or(r.window);
    // The flat names of before the seed's `backoff` object.
    if let Some(d) = p.duration("initialBackoff")? {
        r.backoff.initial = d;
    }
    if let Some(d) = p.duration("maxBackoff")? {
        r.backoff.max = d;
    }
    if let Some(m) = p.number("multiplier")? {
        if m < 1.0 {
            return Err(p.error("multiplier", format!("must be at least 1, not {m}")));
        }
        r.backoff.multiplier = m;
    }
    match p.get("backoff") {
        None if p.probing() => {
            let mut b = p.section("backoff")?.expect("probing enters every object");
            backoff(&mut b, r.backoff)?;
            b.finish()?;
        }
        None => {}
        // A bare duration: the initial wait.
        Some(Value::Int(_) | Value::Float(_) | Value::Text(_)) => r.backoff.initial = p.duration("backoff")?.unwrap_or(r.backoff.initial),
        Some(Value::Map(_)) => {
            let mut b = p.section("backoff")?.expect("backoff is an object");
            r.backoff = backoff(&mut b, r.backoff)?;
            b.finish()?;
        }
        Some(other) => return Err(p.error("backoff", format!("must be an object or a duration, not {}", other.type_name()))),
    }
    Ok(())
}

fn backoff(b: &mut Section<'_>, mut x: Backoff) -> Result<Backoff> {
    match b.text("type")? {
        None => {}
        Some("linear") => x.kind = BackoffKind::Linear,
        Some("exponential") => x.kind = BackoffKind::Exponential,
        Some(other) => return Err(b.error("type", format!("unknown backoff {other:?} (expected linear or exponential)"))),
    }
    x.initial = b.duration("initial")?.unwrap_or(x.initial);
    x.max = b.duration("max")?.unwrap_or(x.max);
    if let Some(m) = b.number("multiplier")? {
        if m < 1.0 {
            return Err(b.error("multiplier", format!("must be at least 1, not {m}")));
        }
        x.multiplier = m;
    }
    if x.max < x.initial {
        return Err(b.error("max", "must not be below initial"));
    }
    Ok(x)
}

/// `resources: { maxMemory, maxCpu, timeout }`; the timeout is returned apart (it is the call deadline).
fn resources(s: &mut Section<'_>) -> Result<Option<(Resources, Option<std::time::Duration>)>> {
    let Some(mut r) = s.section("resources")? else { return Ok(None) };
    let res = Resources { max_memory: r.bytes("maxMemory")?, max_cpu: r.number("maxCpu")? };
    if let Some(cpu) = res.max_cpu {
        if cpu <= 0.0 {
            return Err(r.error("maxCpu", format!("must be a percentage of one core above 0, not {cpu}")));
        }
    }
    let timeout = r.duration("timeout")?;
    r.finish()?;
    Ok(Some((res, timeout)))
}

/// `monitoring: { healthCheck: true | { interval, timeout }, metrics, tracing }`; the probe timeout is returned apart.
fn monitoring(s: &mut Section<'_>) -> Result<Option<(Monitoring, Option<std::time::Duration>)>> {
    let Some(mut m) = s.section("monitoring")? else { return Ok(None) };
    let mut out = Monitoring::default();
    let mut timeout = None;
    match m.toggle("healthCheck")? {
        Toggle::On(mut h) => {
            let interval = h.duration("interval")?.unwrap_or(HealthProbe::default().interval);
            if interval.is_zero() {
                return Err(h.error("interval", "must be above 0"));
            }
            timeout = h.duration("timeout")?;
            out.health_check = Some(HealthProbe { interval });
            h.finish()?;
        }
        Toggle::Off | Toggle::Absent => {}
    }
    out.metrics = m.bool("metrics")?.unwrap_or(out.metrics);
    match m.toggle("tracing")? {
        Toggle::On(t) => {
            out.tracing = true;
            out.otlp = otlp(t)?;
        }
        Toggle::Off => out.tracing = false,
        Toggle::Absent => {}
    }
    m.finish()?;
    Ok(Some((out, timeout)))
}

/// `tracing: { endpoint, protocol, serviceName, headers, timeout }`: where spans are
/// exported over OTLP/HTTP (none without an endpoint; the other keys need one).
fn otlp(mut t: Section<'_>) -> Result<Option<crate::telemetry::OtlpConfig>> {
    let endpoint = t.text("endpoint")?;
    let protocol = t.parse::<crate::telemetry::OtlpProtocol>("protocol")?;
    let service = t.text("serviceName")?;
    let headers = t.text_map("headers")?;
    let timeout = t.duration("timeout")?;
    let Some(endpoint) = endpoint else {
        if protocol.is_some() || service.is_some() || headers.is_some() || timeout.is_some() {
            return Err(t.error("endpoint", "is needed to export spans (protocol, serviceName, headers and timeout are the export's)"));
        }
        t.finish()?;
        return Ok(None);
    };
    let mut c = crate::telemetry::OtlpConfig::new(endpoint);
    c.traces_url().map_err(|e| t.error("endpoint", e))?;
    if let Some(p) = protocol {
        c.protocol = p;
    }
    if let Some(s) = service {
        if s.is_empty() {
            return Err(t.error("serviceName", "must not be empty"));
        }
        c.service_name = s.to_string();
    }
    c.headers = headers.unwrap_or_default();
    if let Some(d) = timeout {
        if d.is_zero() {
            return Err(t.error("timeout", "must be above 0"));
        }
        c.timeout = d;
    }
    t.finish()?;
    Ok(Some(c))
}

/// `workflows: { journal: 'path.db' | 'postgres://…' | ':memory:', lease }`: where runs are journaled
/// and how long a host's claim on a run lasts without renewal.
fn workflows(s: &mut Section<'_>) -> Result<Option<crate::workflow::WorkflowsConfig>> {
    let Some(mut w) = s.section("workflows")? else { return Ok(None) };
    let mut c = crate::workflow::WorkflowsConfig::default();
    match w.text("journal")? {
        None => {}
        Some("") => return Err(w.error("journal", "must be a file path or \":memory:\"")),
        Some(":memory:") => c.journal = None,
        Some(path) => c.journal = Some(path.into()),
    }
    if let Some(d) = w.duration("lease")? {
        if d < std::time::Duration::from_millis(100) {
            return Err(w.error("lease", "must be at least 100 ms"));
        }
        c.lease = d;
    }
    w.finish()?;
    Ok(Some(c))
}

/// A workflow's options (`pm.workflow(target, options)`): how its class is spawned
/// (the spawn options), and `retryBackoff` / `retryJitter` / `compensationRetries`.
pub fn workflow(v: &Value, dialect: Dialect, callbacks: OutputCallbacks<'_>) -> Result<crate::workflow::WorkflowOptions> {
    let mut s = Section::root(v, "workflow", dialect)?;
    let mut o = crate::workflow::WorkflowOptions { dialect, ..Default::default() };
    if let Some(mut b) = s.section("retryBackoff")? {
        o.backoff = backoff(&mut b, o.backoff)?;
        b.finish()?;
    }
    if let Some(j) = s.number("retryJitter")? {
        if !(0.0..=1.0).contains(&j) {
            return Err(s.error("retryJitter", format!("must be between 0 and 1, not {j}")));
        }
        o.jitter = j;
    }
    if let Some(n) = s.count("compensationRetries")? {
        o.compensation_retries = n as u32;
    }
    o.spawn = spawn_fields(&mut s, callbacks)?;
    s.finish()?;
    Ok(o)
}

/// `output`: `prefix`, `inherit`, `ignore`, or a bridge's `callback:N`.
fn output(s: &mut Section<'_>, callbacks: OutputCallbacks<'_>) -> Result<Option<Output>> {
    let Some(t) = s.text("output")? else { return Ok(None) };
    let o = match t {
        "prefix" => Output::Prefix,
        "inherit" => Output::Inherit,
        "ignore" => Output::Ignore,
        c => match c.strip_prefix("callback:").and_then(|n| n.parse().ok()).and_then(callbacks) {
            Some(o) => o,
            None => return Err(s.error("output", format!("unknown output {t:?} (expected prefix, inherit, ignore or a function)"))),
        },
    };
    Ok(Some(o))
}

/// The kinds [`schema`] lists, as the front ends name them.
pub const SCHEMA_KINDS: &[&str] = &["manager", "testManager", "spawn", "pool", "call", "workflow", "supervisor", "child", "listen"];

/// Every option path of `kind` (one of [`SCHEMA_KINDS`]) in `dialect`, sorted: what the
/// TS types and the Python stubs are checked against. An unknown kind is an error.
///
/// ```
/// use titan_pm::options::{schema, Dialect};
/// let paths = schema("pool", Dialect::Python).unwrap();
/// assert!(paths.contains(&"auto_scale.target_cpu".to_string()));
/// assert!(paths.contains(&"restart_policy.backoff.type".to_string()));
/// assert_eq!(schema("call", Dialect::Js).unwrap(), ["key", "retries", "timeout"]);
/// let child = schema("child", Dialect::Js).unwrap();
/// assert!(["critical", "optional", "restart", "inject", "pool.size", "env"].iter().all(|p| child.contains(&p.to_string())), "{child:?}");
/// assert!(schema("pools", Dialect::Js).unwrap_err().to_string().contains("unknown option kind \"pools\""));
/// ```
pub fn schema(kind: &str, dialect: Dialect) -> Result<Vec<String>> {
    if !SCHEMA_KINDS.contains(&kind) {
        return Err(Error::Config(format!("unknown option kind {kind:?} (expected one of {})", SCHEMA_KINDS.join(", "))));
    }
    let none = |_: u64| None;
    Ok(probe(|| {
        let _ = match kind {
            "manager" => manager(&Value::Null, dialect, &none).map(|_| ()),
            "testManager" => test_manager(&Value::Null, dialect, &none).map(|_| ()),
            "spawn" => spawn(&Value::Null, dialect, &none).map(|_| ()),
            "call" => call(&Value::Null, dialect).map(|_| ()),
            "workflow" => workflow(&Value::Null, dialect, &none).map(|_| ()),
            "supervisor" => supervisor(&Value::Null, dialect).map(|_| ()),
            "child" => child(&Value::Null, dialect, &none).map(|_| ()),
            "listen" => listen(&Value::Null, dialect).map(|_| ()),
            _ => pool(&Value::Null, dialect, &none).map(|_| ()),
        };
    }))
}

/// A listening host's options (`pm.listen(...)`): `address`, `tls: {cert, key, ca}`, `token`,
/// `gateway: {address, token}` (an HTTP gateway, see [`crate::gateway`]).
/// The rules (TLS, or loopback and a token) are checked by [`crate::remote::ListenOptions::check`].
///
/// ```
/// use titan_pm::options::{listen, Dialect};
/// use titan_pm::value::to_value;
/// let v = to_value(&serde_json::json!({"address": "0.0.0.0:7400", "tls": {"cert": "h.crt", "key": "h.key", "ca": "ca.crt"}})).unwrap();
/// assert_eq!(listen(&v, Dialect::Js).unwrap().tls.unwrap().ca.to_str(), Some("ca.crt"));
/// let bad = to_value(&serde_json::json!({"address": "127.0.0.1:0", "tls": {"cert": "a", "key": "b", "ca": "c", "cafile": "c"}})).unwrap();
/// assert!(listen(&bad, Dialect::Js).unwrap_err().to_string().contains("tls.cafile: unknown option"));
/// let g = to_value(&serde_json::json!({"address": "127.0.0.1:0", "token": "t", "gateway": {"address": "127.0.0.1:8080", "token": "g"}})).unwrap();
/// assert_eq!(listen(&g, Dialect::Python).unwrap().gateway.unwrap().token, "g");
/// let bad = to_value(&serde_json::json!({"address": "127.0.0.1:0", "token": "t", "gateway": {"address": "127.0.0.1:8080"}})).unwrap();
/// assert!(listen(&bad, Dialect::Js).unwrap_err().to_string().contains("gateway.token: is required"));
/// let bad = to_value(&serde_json::json!({"address": "127.0.0.1:0", "token": "t", "gateway": {"address": "127.0.0.1:8080", "token": "g", "port": 1}})).unwrap();
/// assert!(listen(&bad, Dialect::Js).unwrap_err().to_string().contains("gateway.port: unknown option"));
/// ```
pub fn listen(v: &Value, dialect: Dialect) -> Result<crate::remote::ListenOptions> {
    let mut s = Section::root(v, "listen", dialect)?;
    let address = s.text("address")?.map(str::to_string);
    let tls = match s.section("tls")? {
        None => None,
        Some(mut t) => {
            let mut file = |name: &'static str| -> Result<std::path::PathBuf> {
                match t.text(name)? {
                    Some(p) if !p.is_empty() => Ok(p.into()),
                    _ if t.probing() => Ok(Default::default()),
                    _ => Err(t.error(name, "is required (a PEM file path)")),
                }
            };
            let files = crate::transport::tls::TlsFiles { cert: file("cert")?, key: file("key")?, ca: file("ca")? };
            t.finish()?;
            Some(files)
        }
    };
    let token = s.text("token")?.map(str::to_string);
    let gateway = match s.section("gateway")? {
        None => None,
        Some(mut g) => {
            let mut required = |name: &'static str, what: &str| -> Result<String> {
                match g.text(name)? {
                    Some(t) if !t.is_empty() => Ok(t.to_string()),
                    _ if g.probing() => Ok(String::new()),
                    _ => Err(g.error(name, format!("is required ({what})"))),
                }
            };
            let gateway = crate::gateway::GatewayOptions {
                address: required("address", "ip:port, e.g. 127.0.0.1:8080")?,
                token: required("token", "the bearer token every request must carry")?,
            };
            g.finish()?;
            Some(gateway)
        }
    };
    let address = match address {
        Some(a) => a,
        None if s.probing() => String::new(),
        None => return Err(s.error("address", "is required (ip:port, e.g. 0.0.0.0:7400)")),
    };
    s.finish()?;
    Ok(crate::remote::ListenOptions { address, tls, token, gateway })
}

/// Reads one declaration a decorator carries (`supervisor`: a supervisor's own options,
/// `child`: a child's) and drops it: what a front end runs when the decorator is applied,
/// so a bad option fails there, named by its path.
pub fn check_declaration(kind: &str, v: &Value, dialect: Dialect) -> Result<()> {
    match kind {
        "supervisor" => supervisor(v, dialect).map(|_| ()),
        "child" => child(v, dialect, &|_| Some(crate::host::Output::Ignore)).map(|_| ()),
        other => Err(Error::Config(format!("unknown declaration kind {other:?} (expected supervisor or child)"))),
    }
}

/// The error every front end gives for an option object that is not an object.
pub fn not_an_object(what: &str, v: &Value) -> Error {
    Error::Config(format!("{what} options must be an object, not {}", v.type_name()))
}
