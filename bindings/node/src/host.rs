//! The host side: `NativeManager` wraps a core `ProcessManager`. Each method
//! converts its arguments (`options`), starts the core future with
//! `runtime::spawn` and returns a promise that the manager's threadsafe
//! function settles on this JS thread with the core's report (`reports`). The
//! same function carries process and pool events, output lines and requests to
//! start or stop a JS worker runtime (a worker thread) for a slot.
//!
//! Pools are the core's (`pm.pool_handle(id)`); the host keeps no registry of
//! its own. Pending promises keep the event loop alive; nothing else does, so a
//! host exits normally once it is done (after `shutdown`, or without it). The
//! one exception is a listener's next event (`listen`): like `pm.on`, it never
//! keeps the loop alive, and it ends (null) when the manager is shut down.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, LazyLock, Mutex};

use futures::future::{AbortHandle, Abortable};

use titan_pm::host::{HandlerFactory, Resources};
use titan_pm::testing::TestProcessManager;
use titan_pm::pool::PoolEvent;
use titan_pm::{Error, Event, Output, ProcessManager, SpawnOptions, Target, Value};

use crate::agent::{self, JsHandler};
use crate::convert;
use crate::errors;
use crate::js::{self, Deferred, Env, Js};
use crate::options;
use crate::reports;
use crate::runtime;
use crate::tsfn::Tsfn;

type Outcome = Box<dyn FnOnce(Env) -> Result<Js, Js> + Send>;

pub enum HostMsg {
    /// A promise's outcome; `counted`: the promise kept the event loop alive until now.
    Settle(Deferred, Outcome, bool),
    Event(Event),
    /// Start a JS runtime for `slot` (a restart of an in-process worker, or a new pool member);
    /// `heap_limit`: the thread's heap limit in bytes (`resources.maxMemory`).
    Start { slot: u64, target: String, isolation: String, heap_limit: Option<u64> },
    /// Stop the JS runtime of `slot`.
    Stop { slot: u64 },
    /// A worker's output line for the JS callback numbered `callback` (its `ticket` holds
    /// its place in the bounded queue until delivered).
    Output { callback: u64, stream: &'static str, name: String, pid: u32, line: String, ticket: crate::output::Ticket },
    /// Lines for the JS callback numbered `callback` were dropped (the queue was full).
    OutputDropped { callback: u64, drops: Arc<crate::output::Drops> },
    Pool { pool: u64, event: PoolEvent },
}

pub struct Host {
    pub pm: ProcessManager,
    pub(crate) tsfn: Arc<Tsfn<HostMsg>>,
    pending: Rc<Cell<usize>>,
    /// The manager's resource limits: a JS worker thread's heap limit when its spawn sets none.
    resources: Resources,
    /// Becomes true once `shutdown` is done: pending listeners end.
    closed: tokio::sync::watch::Sender<bool>,
    /// Set for `titan-pm/testing`'s manager: the same engine, with the testing utilities.
    pub test: Option<Arc<TestProcessManager>>,
}

impl Host {
    /// `on_message(kind, ...)` receives events, output lines and start/stop requests.
    pub fn new(env: Env, config: Js, on_message: Js, test: bool) -> Result<Host, Js> {
        let pending = Rc::new(Cell::new(0usize));
        let counter = pending.clone();
        let deliver = move |env: Env, cb: Js, msg: HostMsg, keep: &crate::tsfn::KeepAlive| {
            if let HostMsg::Settle(deferred, outcome, counted) = msg {
                deferred.settle(env, outcome(env));
                if counted {
                    counter.set(counter.get() - 1);
                    if counter.get() == 0 {
                        keep.set(false);
                    }
                }
            } else {
                let _ = notify(env, cb, msg);
            }
        };
        let tsfn = Arc::new(Tsfn::new(env, Some(on_message), true, deliver).map_err(|e| js_err(env, e))?);
        let (pm, resources, test) = if test {
            let (config, test_options) = options::test_manager(env, config, &output_callbacks(&tsfn))?;
            let resources = config.resources.clone();
            let tpm = TestProcessManager::try_new(config, test_options).map_err(|e| errors::to_js(env, &e))?;
            (tpm.manager().clone(), resources, Some(Arc::new(tpm)))
        } else {
            let config = options::manager(env, config, &output_callbacks(&tsfn))?;
            let resources = config.resources.clone();
            (ProcessManager::try_new(config).map_err(|e| errors::to_js(env, &e))?, resources, None)
        };
        let events_tsfn = tsfn.clone();
        forward(pm.events(), move |e| events_tsfn.send(HostMsg::Event(e)));
        Ok(Host { pm, tsfn, pending, resources, test, closed: tokio::sync::watch::Sender::new(false) })
    }

    /// A promise settled with `to_js(result)` once `future` completes.
    pub fn promise<T: Send + 'static>(
        &self,
        env: Env,
        future: impl Future<Output = Result<T, Error>> + Send + 'static,
        to_js: fn(Env, T) -> napi::Result<Js>,
    ) -> napi::Result<Js> {
        self.settle_later(env, future, to_js, true)
    }

    /// A listener's next event: `next(shut)` with `shut`, a future that completes once the
    /// manager is shut down (the listener should then end). The promise does not keep the
    /// event loop alive.
    pub fn listen<T: Send + 'static, F: Future<Output = Result<T, Error>> + Send + 'static>(
        &self,
        env: Env,
        next: impl FnOnce(ShutDown) -> F,
        to_js: fn(Env, T) -> napi::Result<Js>,
    ) -> napi::Result<Js> {
        let mut closed = self.closed.subscribe();
        let shut = ShutDown(Box::pin(async move {
            let _ = closed.wait_for(|c| *c).await;
        }));
        self.settle_later(env, next(shut), to_js, false)
    }

    fn settle_later<T: Send + 'static>(
        &self,
        env: Env,
        future: impl Future<Output = Result<T, Error>> + Send + 'static,
        to_js: fn(Env, T) -> napi::Result<Js>,
        counted: bool,
    ) -> napi::Result<Js> {
        let (deferred, promise) = js::promise(env)?;
        if counted {
            if self.pending.get() == 0 {
                self.tsfn.keep_alive(env, true);
            }
            self.pending.set(self.pending.get() + 1);
        }
        let tsfn = self.tsfn.clone();
        runtime::spawn(async move {
            let result = future.await;
            let outcome: Outcome = Box::new(move |env| match result {
                Ok(v) => to_js(env, v).map_err(|e| js_err(env, e)),
                Err(e) => Err(errors::to_js(env, &e)),
            });
            tsfn.send(HostMsg::Settle(deferred, outcome, counted));
        });
        Ok(promise)
    }

    /// A promise rejected with `error` (a conversion failure found before anything was sent).
    pub fn rejected(&self, env: Env, error: Js) -> napi::Result<Js> {
        let (deferred, promise) = js::promise(env)?;
        deferred.settle(env, Err(error));
        Ok(promise)
    }

    pub(crate) fn callbacks(&self) -> impl Fn(u64) -> Option<Output> {
        output_callbacks(&self.tsfn)
    }

    pub fn spawn_path(&self, env: Env, target: String, options: Js) -> napi::Result<Js> {
        let options = match options::spawn(env, options, &self.callbacks()) {
            Ok(o) => o,
            Err(e) => return self.rejected(env, e),
        };
        let pm = self.pm.clone();
        self.promise(env, async move { pm.spawn(target, options).await.map(|h| h.id()) }, id_to_js)
    }

    pub fn listen_remote(&self, env: Env, options: Js) -> napi::Result<Js> {
        let options = match options::listen(env, options) {
            Ok(o) => o,
            Err(e) => return self.rejected(env, e),
        };
        let pm = self.pm.clone();
        self.promise(env, async move { pm.listen(options).await.map(|a| Value::Text(a.to_string())) }, value_to_js)
    }

    pub fn attach(&self, env: Env, name: String, options: Js) -> napi::Result<Js> {
        let options = match options::spawn(env, options, &self.callbacks()) {
            Ok(o) => o,
            Err(e) => return self.rejected(env, e),
        };
        let pm = self.pm.clone();
        self.promise(env, async move { pm.attach(&name, options).await.map(|h| h.id()) }, id_to_js)
    }

    /// Spawns the JS object attached (now or later) to `slot` (isolation `worker` or `none`):
    /// the core serves it on its engine; a restart asks JS for a new runtime in a new slot.
    /// The host may call this while the slot's worker thread is still loading: the spawn
    /// goes on from the thread that attaches (`attach`), with no hop through the host's
    /// thread, and a runtime that fails to load (`attachFailed`) fails it.
    pub fn spawn_slot(&self, env: Env, slot_id: u64, target: String, options: Js) -> napi::Result<Js> {
        let options = match options::spawn(env, options, &self.callbacks()) {
            Ok(o) => o,
            Err(e) => return self.rejected(env, e),
        };
        let Some(slot) = agent::slot(slot_id) else {
            let e = Error::Spawn { target, reason: "the worker runtime is gone".into(), stderr_tail: String::new() };
            return self.rejected(env, errors::to_js(env, &e));
        };
        let (pm, tsfn, heap_limit) = (self.pm.clone(), self.tsfn.clone(), self.max_memory(&options));
        self.promise(
            env,
            async move {
                let port = slot.wait_port().await.map_err(|reason| Error::Spawn { target: target.clone(), reason, stderr_tail: String::new() })?;
                let target = slot_target(tsfn, heap_limit, slot_id, target, port, &options);
                pm.spawn(target, options).await.map(|h| h.id())
            },
            id_to_js,
        )
    }

    /// Core's `restart_with` onto `target` (a file the core runs, or with `slot` the JS runtime
    /// attached to it): the new instance is ready before the old one drains; the id stays.
    pub fn restart_with(&self, env: Env, id: u64, slot_id: Option<u64>, target: String, options: Js) -> napi::Result<Js> {
        let built = options::spawn(env, options, &self.callbacks()).and_then(|o| {
            let target = match slot_id {
                Some(slot) => self.handler_target(slot, target, &o).map_err(|e| errors::to_js(env, &e))?,
                None => Target::Path(target),
            };
            Ok((target, o))
        });
        let (target, options) = match built {
            Ok(x) => x,
            Err(e) => return self.rejected(env, e),
        };
        let pm = self.pm.clone();
        self.promise(env, async move { pm.restart_with(id, target, options).await }, unit_to_js)
    }

    /// A pool of `target` (a file the core runs, or with `slot` the JS runtime attached to it).
    pub fn pool(&self, env: Env, slot_id: Option<u64>, target: String, options: Js) -> napi::Result<Js> {
        let built = options::pool(env, options, &self.callbacks()).and_then(|o| {
            let target = match slot_id {
                Some(slot) => self.handler_target(slot, target, &o.spawn).map_err(|e| errors::to_js(env, &e))?,
                None => Target::Path(target),
            };
            Ok((target, o))
        });
        let (target, options) = match built {
            Ok(x) => x,
            Err(e) => return self.rejected(env, e),
        };
        let (pm, tsfn) = (self.pm.clone(), self.tsfn.clone());
        let future = async move {
            let pool = pm.pool(target, options).await?;
            let id = pool.id();
            forward(pool.events(), move |event| {
                let last = matches!(event, PoolEvent::Destroyed);
                tsfn.send(HostMsg::Pool { pool: id, event }) && !last
            });
            Ok(id)
        };
        self.promise(env, future, id_to_js)
    }

    /// The heap limit in bytes of a JS worker thread started with these spawn (or pool) options:
    /// `resources.maxMemory`, else the manager's. Bad options throw the core's `ConfigError`.
    pub fn heap_limit(&self, env: Env, kind: &str, options: Js) -> Result<Option<u64>, Js> {
        let ignore = |_| Some(Output::Ignore);
        let spawn = match kind {
            "pool" => options::pool(env, options, &ignore)?.spawn,
            _ => options::spawn(env, options, &ignore)?,
        };
        Ok(self.max_memory(&spawn))
    }

    fn max_memory(&self, options: &SpawnOptions) -> Option<u64> {
        options.resources_or(&self.resources).max_memory
    }

    /// The core target for the JS runtime attached to `slot_id`: its factory uses that
    /// runtime first, then asks JS for a new one (restarts, pool members) in a new slot.
    fn handler_target(&self, slot_id: u64, target: String, options: &SpawnOptions) -> Result<Target, Error> {
        let port = agent::slot(slot_id).and_then(|s| s.port_now());
        let Some(Ok(port)) = port else {
            return Err(Error::Spawn { target, reason: "the worker runtime is not ready".into(), stderr_tail: String::new() });
        };
        Ok(slot_target(self.tsfn.clone(), self.max_memory(options), slot_id, target, port, options))
    }

    /// Calls a process (or with `options.pool` a pool). With `cancel`, `cancel_call(cancel)`
    /// drops the call, which the core cancels in the worker too.
    pub fn call(&self, env: Env, id: u64, method: String, args: Js, options: CallArgs) -> napi::Result<Js> {
        let args = match convert::list_from_js(env, args) {
            Ok(a) => a,
            Err(u) => return self.rejected(env, errors::unsupported(env, "args", &u)),
        };
        let call_options = match options::call(options.timeout, options.key, options.retries) {
            Ok(o) => o,
            Err(e) => return self.rejected(env, errors::to_js(env, &e)),
        };
        let pm = self.pm.clone();
        let pool = options.pool;
        let call = async move {
            if pool {
                pm.pool_handle(id)?.with_options(call_options).call_value(&method, args).await
            } else {
                pm.call_value(id, &method, args, call_options).await
            }
        };
        let to_js = convert::into_js;
        let Some(token) = options.cancel else {
            return self.promise(env, call, to_js);
        };
        let (abort, registration) = AbortHandle::new_pair();
        CANCELS.lock().unwrap().insert(token, abort);
        let call = Abortable::new(call, registration);
        let future = async move {
            let result = call.await;
            CANCELS.lock().unwrap().remove(&token);
            result.unwrap_or(Err(Error::Cancelled))
        };
        self.promise(env, future, to_js)
    }

    pub fn pool_size(&self, env: Env, id: u64) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.pool_handle(id)?.size().await.map(|n| n as u64) }, id_to_js)
    }

    pub fn pool_scale(&self, env: Env, id: u64, size: usize) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.pool_handle(id)?.scale(size).await }, unit_to_js)
    }

    pub fn pool_metrics(&self, env: Env, id: u64) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.pool_handle(id)?.metrics().await }, reports::to_js)
    }

    pub fn pool_drain(&self, env: Env, id: u64) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.pool_handle(id)?.drain().await }, unit_to_js)
    }

    pub fn pool_destroy(&self, env: Env, id: u64) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.pool_handle(id)?.destroy().await }, unit_to_js)
    }

    pub fn kill(&self, env: Env, id: u64) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.kill(id).await }, unit_to_js)
    }

    pub fn list(&self, env: Env) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { Ok(pm.list_processes().await) }, reports::to_js)
    }

    pub fn get(&self, env: Env, id: u64) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.get_process(id).await }, reports::to_js)
    }

    pub fn health(&self, env: Env, id: u64) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.get_health(id).await }, reports::to_js)
    }

    pub fn metrics(&self, env: Env, id: u64) -> napi::Result<Js> {
        let pm = self.pm.clone();
        self.promise(env, async move { pm.get_metrics(id).await }, reports::to_js)
    }

    pub fn shutdown(&self, env: Env) -> napi::Result<Js> {
        let (pm, closed) = (self.pm.clone(), self.closed.clone());
        let future = async move {
            pm.shutdown().await;
            closed.send_replace(true);
            Ok(())
        };
        self.promise(env, future, unit_to_js)
    }

    /// Serves the control socket at `path`, else core's default socket.
    pub fn serve_control(&self, env: Env, path: Option<String>) -> Result<titan_pm::control::ControlServer, Js> {
        let path = path.map(std::path::PathBuf::from).unwrap_or_else(titan_pm::control::default_socket);
        self.pm.serve_control(path).map_err(|e| errors::to_js(env, &e))
    }
}

/// Completes once the manager is shut down (see `Host::listen`).
pub struct ShutDown(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>);

impl ShutDown {
    /// The next message of `events`; None once the channel is closed or the manager shut down.
    pub async fn next<T: Clone>(mut self, events: &mut tokio::sync::broadcast::Receiver<T>) -> Option<T> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            tokio::select! {
                r = events.recv() => match r {
                    Ok(e) => return Some(e),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                },
                _ = &mut self.0 => return None,
            }
        }
    }
}

/// Output lines for `output: 'callback:N'` go to the JS callback the TypeScript layer numbered N.
fn output_callbacks(tsfn: &Arc<Tsfn<HostMsg>>) -> impl Fn(u64) -> Option<Output> {
    let tsfn = tsfn.clone();
    move |callback| Some(crate::output::to_callback(tsfn.clone(), callback))
}

/// Hands every message of `events` to `send` until it returns false or the channel closes.
pub(crate) fn forward<T: Clone + Send + 'static>(mut events: tokio::sync::broadcast::Receiver<T>, send: impl Fn(T) -> bool + Send + 'static) {
    runtime::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(e) => {
                    if !send(e) {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// A call's per-call options; `cancel` names it for `cancel_call`.
pub struct CallArgs {
    pub pool: bool,
    pub timeout: Option<f64>,
    pub key: Option<String>,
    pub retries: Option<f64>,
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

pub(crate) fn id_to_js(env: Env, id: u64) -> napi::Result<Js> {
    js::number(env, id as f64)
}

pub(crate) fn bool_to_js(env: Env, b: bool) -> napi::Result<Js> {
    convert::to_js(env, &Value::Bool(b))
}

pub(crate) fn value_to_js(env: Env, v: Value) -> napi::Result<Js> {
    convert::into_js(env, v)
}

/// A duration the TypeScript layer gives in ms; a negative or non-finite one names `what`.
pub(crate) fn ms_duration(what: &str, x: f64) -> Result<std::time::Duration, Error> {
    if !x.is_finite() || x < 0.0 {
        return Err(Error::Config(format!("{what}: must be a number of ms >= 0, not {x}")));
    }
    Ok(std::time::Duration::try_from_secs_f64(x / 1000.0).unwrap_or(std::time::Duration::MAX))
}

pub(crate) fn unit_to_js(env: Env, _: ()) -> napi::Result<Js> {
    js::undefined(env)
}

fn notify(env: Env, cb: Js, msg: HostMsg) -> napi::Result<()> {
    let s = |x: &str| js::string(env, x);
    let n = |x: f64| js::number(env, x);
    let args = match msg {
        HostMsg::Settle(..) => return Ok(()),
        HostMsg::Event(e) => vec![s("event")?, s(e.kind.name())?, reports::to_js(env, e)?],
        HostMsg::Start { slot, target, isolation, heap_limit } => {
            let limit = match heap_limit {
                Some(b) => n(b as f64)?,
                None => js::null(env)?,
            };
            vec![s("start")?, n(slot as f64)?, s(&target)?, s(&isolation)?, limit]
        }
        HostMsg::Stop { slot } => vec![s("stop")?, n(slot as f64)?],
        HostMsg::Output { callback, stream, name, pid, line, ticket } => {
            drop(ticket);
            vec![s("output")?, n(callback as f64)?, s(stream)?, s(&name)?, n(pid as f64)?, s(&line)?]
        }
        HostMsg::OutputDropped { callback, drops } => match drops.take() {
            0 => return Ok(()),
            dropped => vec![s("outputDropped")?, n(callback as f64)?, n(dropped as f64)?],
        },
        HostMsg::Pool { pool, event } => vec![s("pool")?, n(pool as f64)?, s(event.name())?, reports::to_js(env, event)?],
    };
    js::call(env, cb, &args).map(|_| ())
}

/// The core's target for the JS runtime attached to `slot_id` (its `port`): the first
/// instance is that runtime; a restart asks the host's thread (`tsfn`) for a new one.
fn slot_target(tsfn: Arc<Tsfn<HostMsg>>, heap_limit: Option<u64>, slot_id: u64, target: String, port: Arc<agent::Port>, options: &SpawnOptions) -> Target {
    let description = port.description.clone();
    let name = options.name.clone().unwrap_or_else(|| description.name.clone());
    let isolation = options.isolation.map(|i| i.as_str()).unwrap_or("worker").to_string();
    let first = Mutex::new(Some(slot_id));
    let factory: HandlerFactory = Arc::new(move || {
        let id = first.lock().unwrap().take().unwrap_or_else(|| {
            let id = agent::new_slot();
            tsfn.send(HostMsg::Start { slot: id, target: target.clone(), isolation: isolation.clone(), heap_limit });
            id
        });
        let slot = agent::slot(id).ok_or_else(|| titan_pm::protocol::ErrorInfo::remote("SpawnError", "slot gone"))?;
        // A worker thread counts as live until its `exit` (port_closed); one on the host's thread until its handler goes.
        let on_host_thread = isolation == "none";
        agent::hold_live(id, if on_host_thread { "a node runtime on the host's thread" } else { "a node worker thread" });
        let stop = tsfn.clone();
        let on_drop = Box::new(move || {
            agent::release_slot(id);
            if on_host_thread {
                agent::drop_live(id);
            }
            stop.send(HostMsg::Stop { slot: id });
        });
        Ok(agent::handler_rc(JsHandler::for_slot(slot, description.clone(), on_drop)))
    });
    Target::Handler { name, factory, own_thread: true }
}
