//! The host side: `NativeManager` wraps a core `ProcessManager`. Each method
//! converts its arguments, starts the core future with `runtime::spawn` and
//! returns a promise that the manager's threadsafe function settles on this JS
//! thread. The same function carries events, output lines and requests to
//! start or stop a JS worker runtime (a worker thread) for a slot.
//!
//! Pending promises keep the event loop alive; nothing else does, so a host
//! exits normally once it is done (after `shutdown`, or without it).

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, LazyLock, Mutex};

use futures::future::{AbortHandle, Abortable};
use std::time::Duration;

use titan_pm::host::HandlerFactory;
use titan_pm::{
    CallOptions, Error, Event, EventKind, HealthReport, Isolation, ManagerConfig, Output, ProcessInfo, ProcessManager,
    ProcessMetrics, RestartPolicy, SpawnOptions, Target, Transport, Value,
};

use crate::agent::{self, JsHandler};
use crate::convert;
use crate::errors;
use crate::js::{self, Deferred, Env, Js};
use crate::runtime;
use crate::tsfn::Tsfn;

type Outcome = Box<dyn FnOnce(Env) -> Result<Js, Js> + Send>;

pub enum HostMsg {
    Settle(Deferred, Outcome),
    Event(Event),
    /// Start a JS runtime for `slot` (a restart of an in-process worker).
    Start { slot: u64, target: String, isolation: String },
    /// Stop the JS runtime of `slot`.
    Stop { slot: u64 },
    /// A worker's output line for the JS callback numbered `callback` (its `ticket` holds
    /// its place in the bounded queue until delivered).
    Output { callback: u64, stream: &'static str, name: String, pid: u32, line: String, ticket: crate::output::Ticket },
    /// Lines for the JS callback numbered `callback` were dropped (the queue was full).
    OutputDropped { callback: u64, drops: Arc<crate::output::Drops> },
    Pool { pool: u64, name: &'static str, data: Value },
}

pub struct Host {
    pub pm: ProcessManager,
    tsfn: Arc<Tsfn<HostMsg>>,
    pending: Rc<Cell<usize>>,
    /// The isolation each in-process worker was asked for (the core runs them all on its engine).
    isolations: crate::pool::Isolations,
}

impl Host {
    /// `on_message(kind, ...)` receives events, output lines and start/stop requests.
    pub fn new(env: Env, config: Js, on_message: Js) -> Result<Host, Js> {
        let pending = Rc::new(Cell::new(0usize));
        let counter = pending.clone();
        let deliver = move |env: Env, cb: Js, msg: HostMsg, keep: &crate::tsfn::KeepAlive| {
            if let HostMsg::Settle(deferred, outcome) = msg {
                deferred.settle(env, outcome(env));
                counter.set(counter.get() - 1);
                if counter.get() == 0 {
                    keep.set(false);
                }
            } else {
                let _ = notify(env, cb, msg);
            }
        };
        let tsfn = Arc::new(Tsfn::new(env, Some(on_message), true, deliver).map_err(|e| js_err(env, e))?);
        let config = convert::options_from_js(env, config).map_err(|u| errors::unsupported(env, "config", &u))?;
        let config = manager_config(&config, &tsfn).map_err(|e| errors::to_js(env, &e))?;
        let pm = ProcessManager::new(config);
        let mut events = pm.events();
        let events_tsfn = tsfn.clone();
        runtime::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(e) => {
                        if !events_tsfn.send(HostMsg::Event(e)) {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Host { pm, tsfn, pending, isolations: Default::default() })
    }

    /// A promise settled with `to_js(result)` once `future` completes.
    pub fn promise<T: Send + 'static>(
        &self,
        env: Env,
        future: impl Future<Output = Result<T, Error>> + Send + 'static,
        to_js: fn(Env, T) -> napi::Result<Js>,
    ) -> napi::Result<Js> {
        let (deferred, promise) = js::promise(env)?;
        if self.pending.get() == 0 {
            self.tsfn.keep_alive(env, true);
        }
        self.pending.set(self.pending.get() + 1);
        let tsfn = self.tsfn.clone();
        runtime::spawn(async move {
            let result = future.await;
            let outcome: Outcome = Box::new(move |env| match result {
                Ok(v) => to_js(env, v).map_err(|e| js_err(env, e)),
                Err(e) => Err(errors::to_js(env, &e)),
            });
            tsfn.send(HostMsg::Settle(deferred, outcome));
        });
        Ok(promise)
    }

    /// A promise rejected with `error` (a conversion failure found before anything was sent).
    pub fn rejected(&self, env: Env, error: Js) -> napi::Result<Js> {
        let (deferred, promise) = js::promise(env)?;
        deferred.settle(env, Err(error));
        Ok(promise)
    }

    pub fn spawn_path(&self, env: Env, target: String, options: Js) -> napi::Result<Js> {
        let options = match self.spawn_options(env, options) {
            Ok(o) => o,
            Err(e) => return self.rejected(env, e),
        };
        let pm = self.pm.clone();
        self.promise(env, async move { pm.spawn(target, options).await.map(|h| h.id()) }, id_to_js)
    }

    /// Spawns the JS object attached to `slot` (isolation `worker` or `none`): the core
    /// serves it on its engine; a restart asks JS for a new runtime in a new slot.
    pub fn spawn_slot(&self, env: Env, slot_id: u64, target: String, isolation: String, options: Js) -> napi::Result<Js> {
        let options = match self.spawn_options(env, options) {
            Ok(o) => o,
            Err(e) => return self.rejected(env, e),
        };
        let (handler, options) = match self.handler_target(slot_id, target, options) {
            Ok(x) => x,
            Err(e) => return self.rejected(env, errors::to_js(env, &e)),
        };
        let pm = self.pm.clone();
        let isolations = self.isolations.clone();
        let future = async move {
            let id = pm.spawn(handler, options).await?.id();
            isolations.lock().unwrap().insert(id, isolation);
            Ok(id)
        };
        self.promise(env, future, id_to_js)
    }

    /// A pool of `target` (a file the core runs, or with `slot` the JS runtime attached to it).
    pub fn pool(&self, env: Env, slot_id: Option<u64>, target: String, options: Js) -> napi::Result<Js> {
        let v = match convert::options_from_js(env, options) {
            Ok(v) => v,
            Err(u) => return self.rejected(env, errors::unsupported(env, "options", &u)),
        };
        let built = spawn_options(&v, &self.tsfn).and_then(|spawn| {
            let isolation = spawn.isolation.map(|i| (i.as_str().to_string(), self.isolations.clone()));
            let (target, spawn, isolation) = match slot_id {
                Some(slot) => {
                    let (target, spawn) = self.handler_target(slot, target, spawn)?;
                    (target, spawn, isolation)
                }
                None => (Target::Path(target), spawn, None),
            };
            Ok((target, crate::pool::options(&v, spawn)?, isolation))
        });
        let (target, options, isolation) = match built {
            Ok(x) => x,
            Err(e) => return self.rejected(env, errors::to_js(env, &e)),
        };
        let future = crate::pool::start(self.pm.clone(), target, options, self.tsfn.clone(), isolation);
        self.promise(env, future, id_to_js)
    }

    /// The core target for the JS runtime attached to `slot_id`: its factory uses that
    /// runtime first, then asks JS for a new one (restarts, pool members) in a new slot.
    fn handler_target(&self, slot_id: u64, target: String, mut options: SpawnOptions) -> Result<(Target, SpawnOptions), Error> {
        let port = agent::slot(slot_id).and_then(|s| s.port_now());
        let Some(Ok(port)) = port else {
            return Err(Error::Spawn { target, reason: "the worker runtime is not ready".into(), stderr_tail: String::new() });
        };
        let description = port.description.clone();
        let name = options.name.clone().unwrap_or_else(|| description.name.clone());
        let runtime_isolation = options.isolation.map(|i| i.as_str()).unwrap_or("worker").to_string();
        options.isolation = Some(Isolation::None);
        let tsfn = self.tsfn.clone();
        let first = Mutex::new(Some(slot_id));
        let factory: HandlerFactory = Arc::new(move || {
            let id = first.lock().unwrap().take().unwrap_or_else(|| {
                let id = agent::new_slot();
                let start = HostMsg::Start { slot: id, target: target.clone(), isolation: runtime_isolation.clone() };
                tsfn.send(start);
                id
            });
            let slot = agent::slot(id).ok_or_else(|| titan_pm::protocol::ErrorInfo::remote("SpawnError", "slot gone"))?;
            let stop = tsfn.clone();
            let on_drop = Box::new(move || {
                agent::release_slot(id);
                stop.send(HostMsg::Stop { slot: id });
            });
            Ok(agent::handler_rc(JsHandler::for_slot(slot, description.clone(), on_drop)))
        });
        Ok((Target::Handler { name, factory }, options))
    }

    /// Calls a process (or with `options.pool` a pool). With `cancel`, `cancel_call(cancel)`
    /// drops the call, which the core cancels in the worker too.
    pub fn call(&self, env: Env, id: u64, method: String, args: Js, options: CallArgs) -> napi::Result<Js> {
        let args = match convert::list_from_js(env, args) {
            Ok(a) => a,
            Err(u) => return self.rejected(env, errors::unsupported(env, "args", &u)),
        };
        let call_options = CallOptions { timeout: options.timeout.map(ms), key: options.key };
        let pm = self.pm.clone();
        let pool = options.pool;
        let call = async move {
            if pool {
                crate::pool::call(id, method, args, call_options).await
            } else {
                pm.call_value(id, &method, args, call_options).await
            }
        };
        let to_js = |env, v: Value| convert::to_js(env, &v);
        let Some(token) = options.cancel else {
            return self.promise(env, call, to_js);
        };
        let (abort, registration) = AbortHandle::new_pair();
        CANCELS.lock().unwrap().insert(token, abort);
        let call = Abortable::new(call, registration);
        let future = async move {
            let result = call.await;
            CANCELS.lock().unwrap().remove(&token);
            result.unwrap_or_else(|_| Err(Error::Config("the call was cancelled by its AbortSignal".into())))
        };
        self.promise(env, future, to_js)
    }

    pub fn list(&self, env: Env) -> napi::Result<Js> {
        let (pm, isolations) = (self.pm.clone(), self.isolations.clone());
        let future = async move {
            let list = pm.list_processes().await;
            let isolations = isolations.lock().unwrap();
            Ok(list.into_iter().map(|p| info_value(&p, &isolations)).collect::<Vec<_>>())
        };
        self.promise(env, future, |env, l| convert::list_to_js(env, &l))
    }

    pub fn get(&self, env: Env, id: u64) -> napi::Result<Js> {
        let (pm, isolations) = (self.pm.clone(), self.isolations.clone());
        let future = async move {
            let p = pm.get_process(id).await?;
            Ok(info_value(&p, &isolations.lock().unwrap()))
        };
        self.promise(env, future, |env, v| convert::to_js(env, &v))
    }

    fn spawn_options(&self, env: Env, options: Js) -> Result<SpawnOptions, Js> {
        let v = convert::options_from_js(env, options).map_err(|u| errors::unsupported(env, "options", &u))?;
        spawn_options(&v, &self.tsfn).map_err(|e| errors::to_js(env, &e))
    }
}

/// A call's per-call options; `cancel` names it for `cancel_call`.
pub struct CallArgs {
    pub pool: bool,
    pub timeout: Option<f64>,
    pub key: Option<String>,
    pub cancel: Option<u64>,
}

static CANCELS: LazyLock<Mutex<HashMap<u64, AbortHandle>>> = LazyLock::new(Default::default);

/// Drops the call named `token` (its AbortSignal fired).
pub fn cancel_call(token: u64) {
    let abort = CANCELS.lock().unwrap().remove(&token);
    if let Some(abort) = abort {
        abort.abort(); // polls the call on this thread, which takes CANCELS again
    }
}

fn js_err(env: Env, e: napi::Error) -> Js {
    js::error(env, &e.reason).unwrap_or(std::ptr::null_mut())
}

pub fn id_to_js(env: Env, id: u64) -> napi::Result<Js> {
    js::number(env, id as f64)
}

pub fn unit_to_js(env: Env, _: ()) -> napi::Result<Js> {
    js::undefined(env)
}

fn notify(env: Env, cb: Js, msg: HostMsg) -> napi::Result<()> {
    let s = |x: &str| js::string(env, x);
    let n = |x: f64| js::number(env, x);
    let args = match msg {
        HostMsg::Settle(..) => return Ok(()),
        HostMsg::Event(e) => vec![s("event")?, s(e.kind.name())?, convert::to_js(env, &event_value(&e))?],
        HostMsg::Start { slot, target, isolation } => vec![s("start")?, n(slot as f64)?, s(&target)?, s(&isolation)?],
        HostMsg::Stop { slot } => vec![s("stop")?, n(slot as f64)?],
        HostMsg::Output { callback, stream, name, pid, line, ticket } => {
            drop(ticket);
            vec![s("output")?, n(callback as f64)?, s(stream)?, s(&name)?, n(pid as f64)?, s(&line)?]
        }
        HostMsg::OutputDropped { callback, drops } => match drops.take() {
            0 => return Ok(()),
            dropped => vec![s("outputDropped")?, n(callback as f64)?, n(dropped as f64)?],
        },
        HostMsg::Pool { pool, name, data } => vec![s("pool")?, n(pool as f64)?, s(name)?, convert::to_js(env, &data)?],
    };
    js::call(env, cb, &args).map(|_| ())
}

// ---- values the host hands to JS ----

pub fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn opt(x: Option<i32>) -> Value {
    x.map(|c| Value::Int(c as i64)).unwrap_or(Value::Null)
}

fn event_value(e: &Event) -> Value {
    let mut fields = vec![("processId", Value::Int(e.process_id as i64))];
    match &e.kind {
        EventKind::Spawned { pid } | EventKind::Ready { pid } => fields.push(("pid", Value::Int(*pid as i64))),
        EventKind::Crashed { exit_code, signal } => {
            fields.push(("exitCode", opt(*exit_code)));
            fields.push(("signal", opt(*signal)));
        }
        EventKind::Restarting { attempt, delay } => {
            fields.push(("attempt", Value::Int(*attempt as i64)));
            fields.push(("delay", Value::Float(delay.as_secs_f64() * 1000.0)));
        }
        EventKind::Failed | EventKind::Exited | EventKind::ConnectionRefused => {}
    }
    map(fields)
}

fn info_value(p: &ProcessInfo, isolations: &HashMap<u64, String>) -> Value {
    let isolation = isolations.get(&p.process_id).cloned().unwrap_or_else(|| p.isolation.as_str().to_string());
    map(vec![
        ("processId", Value::Int(p.process_id as i64)),
        ("name", Value::Text(p.name.clone())),
        ("pid", Value::Int(p.pid as i64)),
        ("state", Value::Text(p.state.as_str().into())),
        ("restarts", Value::Int(p.restarts as i64)),
        ("isolation", Value::Text(isolation)),
        ("transport", Value::Text(p.transport.as_str().into())),
    ])
}

pub fn health_to_js(env: Env, h: HealthReport) -> napi::Result<Js> {
    let checks = h
        .checks
        .iter()
        .map(|c| {
            map(vec![
                ("name", Value::Text(c.name.clone())),
                ("status", Value::Text(c.status.as_str().into())),
                ("message", Value::Text(c.message.clone())),
            ])
        })
        .collect();
    let v = map(vec![
        ("status", Value::Text(h.status.as_str().into())),
        ("checks", Value::List(checks)),
        ("timestamp", Value::Int(h.timestamp_ms as i64)),
    ]);
    convert::to_js(env, &v)
}

pub fn metrics_to_js(env: Env, m: ProcessMetrics) -> napi::Result<Js> {
    let v = map(vec![
        ("cpu", Value::Float(m.cpu)),
        ("memory", Value::Int(m.memory as i64)),
        ("requests", Value::Int(m.requests as i64)),
        ("errors", Value::Int(m.errors as i64)),
        ("inFlight", Value::Int(m.in_flight as i64)),
        (
            "latency",
            map(vec![
                ("p50", Value::Float(m.latency.p50)),
                ("p95", Value::Float(m.latency.p95)),
                ("p99", Value::Float(m.latency.p99)),
            ]),
        ),
    ]);
    convert::to_js(env, &v)
}

// ---- options (durations in ms) ----

fn ms(x: f64) -> Duration {
    Duration::from_secs_f64(x.max(0.0) / 1000.0)
}

pub fn duration(v: &Value, key: &str) -> Result<Option<Duration>, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Int(x)) if *x >= 0 => Ok(Some(ms(*x as f64))),
        Some(Value::Float(x)) if *x >= 0.0 && x.is_finite() => Ok(Some(ms(*x))),
        Some(other) => Err(Error::Config(format!("{key} must be a duration in ms, not {other:?}"))),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, Error> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Text(s)) => Ok(Some(s)),
        Some(other) => Err(Error::Config(format!("{key} must be a string, not {}", other.type_name()))),
    }
}

fn restart_policy(v: &Value) -> Result<Option<RestartPolicy>, Error> {
    let p = match v.get("restartPolicy") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Bool(false)) => return Ok(Some(RestartPolicy::disabled())),
        Some(Value::Bool(true)) => return Ok(Some(RestartPolicy::default())),
        Some(p @ Value::Map(_)) => p,
        Some(other) => return Err(Error::Config(format!("restartPolicy must be an object, not {}", other.type_name()))),
    };
    let mut r = RestartPolicy::default();
    if let Some(Value::Bool(b)) = p.get("enabled") {
        r.enabled = *b;
    }
    if let Some(Value::Int(n)) = p.get("maxRestarts") {
        r.max_restarts = (*n).max(0) as u32;
    }
    if let Some(d) = duration(p, "window")? {
        r.window = d;
    }
    if let Some(d) = duration(p, "initialBackoff")? {
        r.initial_backoff = d;
    }
    if let Some(d) = duration(p, "maxBackoff")? {
        r.max_backoff = d;
    }
    match p.get("multiplier") {
        Some(Value::Int(x)) => r.multiplier = *x as f64,
        Some(Value::Float(x)) => r.multiplier = *x,
        _ => {}
    }
    Ok(Some(r))
}

fn output(v: &Value, tsfn: &Arc<Tsfn<HostMsg>>) -> Result<Option<Output>, Error> {
    Ok(Some(match text(v, "output")? {
        None => return Ok(None),
        Some("prefix") => Output::Prefix,
        Some("inherit") => Output::Inherit,
        Some("ignore") => Output::Ignore,
        // `callback:N`: lines go to the JS callback the TypeScript layer numbered N.
        Some(c) if c.strip_prefix("callback:").is_some_and(|n| n.parse::<u64>().is_ok()) => {
            let callback: u64 = c["callback:".len()..].parse().unwrap_or(0);
            crate::output::to_callback(tsfn.clone(), callback)
        }
        Some(other) => return Err(Error::Config(format!("unknown output {other:?} (expected prefix, inherit, ignore or a function)"))),
    }))
}

fn manager_config(v: &Value, tsfn: &Arc<Tsfn<HostMsg>>) -> Result<ManagerConfig, Error> {
    let mut c = ManagerConfig::default();
    if let Some(s) = text(v, "isolation")? {
        c.isolation = s.parse()?;
    }
    if let Some(s) = text(v, "transport")? {
        c.transport = s.parse()?;
    }
    if let Some(r) = restart_policy(v)? {
        c.restart = r;
    }
    let durations: [(&str, &mut Duration); 6] = [
        ("spin", &mut c.spin),
        ("timeout", &mut c.timeout),
        ("spawnTimeout", &mut c.spawn_timeout),
        ("healthTimeout", &mut c.health_timeout),
        ("shutdownTimeout", &mut c.shutdown_timeout),
        ("cancelGrace", &mut c.cancel_grace),
    ];
    for (key, field) in durations {
        if let Some(d) = duration(v, key)? {
            *field = d;
        }
    }
    if let Some(o) = output(v, tsfn)? {
        c.output = o;
    }
    if let Some(s) = text(v, "python")? {
        c.python = s.into();
    }
    if let Some(s) = text(v, "node")? {
        c.node = s.into();
    }
    if let Some(s) = text(v, "tcpHost")? {
        c.tcp_host = s.into();
    }
    Ok(c)
}

fn spawn_options(v: &Value, tsfn: &Arc<Tsfn<HostMsg>>) -> Result<SpawnOptions, Error> {
    let mut o = SpawnOptions::default();
    if let Some(s) = text(v, "isolation")? {
        o.isolation = Some(s.parse::<Isolation>()?);
    }
    if let Some(s) = text(v, "transport")? {
        o.transport = Some(s.parse::<Transport>()?);
    }
    o.dependencies = v.get("dependencies").cloned().unwrap_or(Value::Null);
    if let Some(Value::Map(env)) = v.get("env") {
        for (k, x) in env {
            let Value::Text(s) = x else { return Err(Error::Config(format!("env.{k} must be a string"))) };
            o.env.push((k.clone(), s.clone()));
        }
    }
    if let Some(Value::List(args)) = v.get("args") {
        o.args = args.iter().map(|a| a.as_str().map(String::from).ok_or_else(|| Error::Config("args must be strings".into()))).collect::<Result<_, _>>()?;
    }
    o.name = text(v, "name")?.map(String::from);
    o.timeout = duration(v, "timeout")?;
    o.restart = restart_policy(v)?;
    o.output = output(v, tsfn)?;
    Ok(o)
}
