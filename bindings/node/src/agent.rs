//! The worker side: a [`JsHandler`] is the core `Handler` for a JS object that
//! lives on some JS thread (a worker thread, the host's main thread, or the
//! main thread of a child process). It forwards describe/init/call/health/
//! shutdown to that thread through a [`Port`] and waits for the JS runtime
//! (`node/src/worker/runtime.ts`) to `settle` or `fail` each request.
//!
//! A worker thread is named by a *slot*: the host asks JS to start a runtime
//! for a slot, the runtime attaches its port to the slot, and its exit closes
//! the slot (the handler's `terminated`, so the core restarts it).
//!
//! What the host handed over at `init` (processes to call, shared state) is
//! core's `agent::Remote`, registered here under a *grant* id that the INIT
//! request hands the JS runtime; `grantCall`/`grantShared*` (lib.rs) send its
//! operations to the agent's thread, and each outcome comes back to the same
//! JS runtime as a REPLY request. What may be called, and shared state's
//! semantics, are core's.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use futures::future::{FutureExt, LocalBoxFuture, Shared};
use titan_pm::agent::{CallContext, Capabilities, Handler, Remote};
use titan_pm::options::Dialect;
use titan_pm::protocol::{Description, ErrorInfo, ErrorInfoKind, HealthReport};
use titan_pm::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::js::{self, Env, Js};
use crate::{convert, errors};
use crate::tsfn::Tsfn;

// What the JS runtime's dispatch function is asked to do (its first argument).
pub const CALL: u32 = 0;
pub const CANCEL: u32 = 1;
pub const INIT: u32 = 2;
pub const HEALTH: u32 = 3;
pub const SHUTDOWN: u32 = 4;
pub const EXIT: u32 = 5;
/// The outcome of a `grantCall`/`grantShared*` operation: `dispatch(REPLY, token, null, value, ok)`.
pub const REPLY: u32 = 6;

pub struct Request {
    kind: u32,
    token: u64,
    method: Option<String>,
    payload: Payload,
}

enum Payload {
    None,
    /// A call's arguments, its W3C trace context (trace id, span id, parent span id) and
    /// its bound on running calls (`CallContext::max_running`: the JS runtime holds the call
    /// until fewer than that many run; 0: none).
    Call(Vec<Value>, [String; 3], u32),
    Value(Value),
    /// INIT: the dependencies and the grant id of what the host handed over (0: none).
    Init(Value, u64),
    /// REPLY: an operation's outcome.
    Reply(titan_pm::Result<Value>),
}

type Reply = Result<Value, ErrorInfo>;

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
static PENDING: LazyLock<Mutex<HashMap<u64, oneshot::Sender<Reply>>>> = LazyLock::new(Default::default);

/// The way into one JS runtime: its dispatch function and its description.
pub struct Port {
    tsfn: Tsfn<Request>,
    pub description: Description,
}

impl Port {
    /// Made on the runtime's own JS thread; `dispatch(kind, token, method, payload)`.
    pub fn new(env: Env, description: Description, dispatch: Js, weak: bool) -> napi::Result<Arc<Port>> {
        let tsfn = Tsfn::new(env, Some(dispatch), weak, |env, dispatch, r: Request, _| {
            let _ = deliver(env, dispatch, r);
        })?;
        Ok(Arc::new(Port { tsfn, description }))
    }

    fn send(&self, kind: u32, token: u64, method: Option<String>, payload: Payload) -> bool {
        self.tsfn.send(Request { kind, token, method, payload })
    }

    /// Sends a request and waits for its reply; dropping the future cancels it in JS.
    async fn request(self: Arc<Self>, kind: u32, method: Option<String>, payload: Payload) -> Reply {
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        PENDING.lock().unwrap().insert(token, tx);
        let guard = CancelOnDrop { port: self.clone(), token };
        if !self.send(kind, token, method, payload) {
            return Err(gone());
        }
        let reply = rx.await.unwrap_or_else(|_| Err(gone()));
        std::mem::forget(guard);
        reply
    }

    /// Child processes: tells the JS runtime to exit with `code`.
    pub fn exit(&self, code: i32) {
        self.send(EXIT, 0, None, Payload::Value(Value::Int(code as i64)));
    }
}

struct CancelOnDrop {
    port: Arc<Port>,
    token: u64,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if PENDING.lock().unwrap().remove(&self.token).is_some() {
            self.port.send(CANCEL, self.token, None, Payload::None);
        }
    }
}

fn gone() -> ErrorInfo {
    ErrorInfo::remote("WorkerGone", "the worker's JS runtime is gone")
}

fn deliver(env: Env, dispatch: Js, r: Request) -> napi::Result<()> {
    let method = match &r.method {
        Some(m) => js::string(env, m)?,
        None => js::null(env)?,
    };
    let mut max_running = 0;
    let (payload, extra) = match r.payload {
        Payload::None => (js::null(env)?, js::null(env)?),
        Payload::Call(args, trace, max) => {
            max_running = max;
            (convert::list_into_js(env, args)?, trace_to_js(env, &trace)?)
        }
        Payload::Value(v) => (convert::into_js(env, v)?, js::null(env)?),
        Payload::Init(v, grant) => (convert::into_js(env, v)?, js::number(env, grant as f64)?),
        Payload::Reply(Ok(v)) => (convert::into_js(env, v)?, js::boolean(env, true)?),
        Payload::Reply(Err(e)) => (errors::to_js(env, &e), js::boolean(env, false)?),
    };
    let args = [js::number(env, r.kind as f64)?, js::number(env, r.token as f64)?, method, payload, extra, js::number(env, max_running as f64)?];
    js::call(env, dispatch, &args).map(|_| ())
}

/// A call's trace context as `[traceId, spanId, parentSpanId]`, or null when it has none.
fn trace_to_js(env: Env, trace: &[String; 3]) -> napi::Result<Js> {
    if trace[0].is_empty() {
        return js::null(env);
    }
    let arr = js::array(env, 3)?;
    for (i, s) in trace.iter().enumerate() {
        js::set_index(env, arr, i as u32, js::string(env, s)?)?;
    }
    Ok(arr)
}

/// The JS runtime answers request `token` with `value`.
pub fn settle(env: Env, token: u64, value: Js) {
    let Some(tx) = PENDING.lock().unwrap().remove(&token) else { return };
    let reply = convert::from_js(env, value)
        .map_err(|u| ErrorInfo::new(ErrorInfoKind::Serialization, u.path("result"), u.message.clone()));
    let _ = tx.send(reply);
}

/// The JS runtime answers request `token` with an error.
pub fn fail(token: u64, info: ErrorInfo) {
    let tx = PENDING.lock().unwrap().remove(&token);
    if let Some(tx) = tx {
        let _ = tx.send(Err(info));
    }
}

// ---- grants: what hosts handed the JS runtimes of this process ----

struct GrantEntry {
    remote: Remote,
    /// The runtime the outcomes go to, once its port is known.
    port: Option<Arc<Port>>,
}

static NEXT_GRANT: AtomicU64 = AtomicU64::new(1);
static GRANTS: LazyLock<Mutex<HashMap<u64, GrantEntry>>> = LazyLock::new(Default::default);

/// A `Reply` that sends the outcome of operation `token` to the runtime of `grant`.
fn reply_to(grant: u64, token: u64) -> titan_pm::agent::Reply {
    Box::new(move |r| {
        let port = GRANTS.lock().unwrap().get(&grant).and_then(|g| g.port.clone());
        if let Some(port) = port {
            port.send(REPLY, token, None, Payload::Reply(r));
        }
    })
}

fn remote(grant: u64) -> titan_pm::Result<Remote> {
    GRANTS.lock().unwrap().get(&grant).map(|g| g.remote.clone()).ok_or_else(|| {
        titan_pm::Error::Config("this worker was given nothing yet: processes and shared state are usable from init on".into())
    })
}

/// Calls `method` of the process given to runtime `grant` as `process`; the outcome comes as REPLY `token`.
pub fn grant_call(grant: u64, token: u64, process: &str, method: &str, args: Vec<Value>, timeout: Option<std::time::Duration>, trace: Option<[String; 3]>) -> titan_pm::Result<()> {
    let trace = trace.map(|[trace_id, span_id, parent_span_id]| titan_pm::policy::trace::TraceContext { trace_id, span_id, parent_span_id });
    remote(grant)?.call(process, method, args, timeout, trace, reply_to(grant, token))
}

/// Reads a shared property of runtime `grant` (`initial` while it was never set); the value comes as REPLY `token`.
pub fn grant_shared_get(grant: u64, token: u64, property: &str, initial: Value) -> titan_pm::Result<()> {
    remote(grant)?.shared_get(property, initial, reply_to(grant, token))
}

/// Sets a shared property of runtime `grant`; the outcome comes as REPLY `token`.
pub fn grant_shared_set(grant: u64, token: u64, property: &str, value: Value) -> titan_pm::Result<()> {
    remote(grant)?.shared_set(property, value, reply_to(grant, token))
}

/// Adds `delta` to a shared property of runtime `grant` (atomic); the new value comes as REPLY `token`.
pub fn grant_shared_add(grant: u64, token: u64, property: &str, delta: Value) -> titan_pm::Result<()> {
    remote(grant)?.shared_add(property, delta, reply_to(grant, token))
}

/// Writes `value` to a @SharedState view of runtime `grant` (core's write rule: `SharedView::write`).
pub fn shared_write(view: &titan_pm::agent::SharedView, grant: u64, value: Value) -> titan_pm::Result<()> {
    view.write(&remote(grant)?, value)
}

/// Seeds and loads a @SharedState view of runtime `grant`; the view's value comes as REPLY `token`.
pub fn shared_load(view: &titan_pm::agent::SharedView, grant: u64, token: u64) -> titan_pm::Result<()> {
    view.load(&remote(grant)?, reply_to(grant, token))
}

// ---- slots: worker threads started on the host's request ----

pub struct Slot {
    port: watch::Sender<Option<Result<Arc<Port>, String>>>,
    exit: watch::Sender<Option<Option<i32>>>,
    /// The worker thread's output lines for the process's log ring (`Handler::output_lines`).
    lines: mpsc::Sender<(bool, String)>,
    lines_rx: Mutex<Option<mpsc::Receiver<(bool, String)>>>,
    /// Lines not queued because the queue was full, reported in the ring once there is room.
    lines_dropped: AtomicU64,
}

/// Output lines of one worker thread waiting for the core's log ring.
const LINES_QUEUE: usize = 1024;

static NEXT_SLOT: AtomicU64 = AtomicU64::new(1);
static SLOTS: LazyLock<Mutex<HashMap<u64, Arc<Slot>>>> = LazyLock::new(Default::default);

pub fn new_slot() -> u64 {
    let id = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    let (lines, lines_rx) = mpsc::channel(LINES_QUEUE);
    let slot = Slot {
        port: watch::channel(None).0,
        exit: watch::channel(None).0,
        lines,
        lines_rx: Mutex::new(Some(lines_rx)),
        lines_dropped: AtomicU64::new(0),
    };
    SLOTS.lock().unwrap().insert(id, Arc::new(slot));
    id
}

pub fn slot(id: u64) -> Option<Arc<Slot>> {
    SLOTS.lock().unwrap().get(&id).cloned()
}

pub fn release_slot(id: u64) {
    SLOTS.lock().unwrap().remove(&id);
}

/// The runtimes behind slots as the core counts them (`titan_pm::host::live`), by slot:
/// a worker thread's until it exits, one on the host's thread until its handler goes.
static LIVE: LazyLock<Mutex<HashMap<u64, titan_pm::host::live::LiveRuntime>>> = LazyLock::new(Default::default);

/// Counts the runtime of `slot` as live (called from a handler factory, so the core knows whose it is),
/// unless it already exited.
pub fn hold_live(id: u64, what: &str) {
    if slot(id).is_some_and(|s| s.exit.borrow().is_some()) {
        return;
    }
    let live = titan_pm::host::live::register(what);
    if live.counted() {
        LIVE.lock().unwrap().insert(id, live);
    }
}

/// The runtime of `slot` ended.
pub fn drop_live(id: u64) {
    let live = LIVE.lock().unwrap().remove(&id);
    drop(live);
}

impl Slot {
    pub fn attach(&self, port: Result<Arc<Port>, String>) {
        self.port.send_if_modified(|p| p.is_none() && p.replace(port).is_none());
    }

    /// The runtime exited (a worker thread's exit code).
    pub fn closed(&self, code: Option<i32>) {
        let why = format!("the worker thread exited (code {}) before it was ready", code.unwrap_or(-1));
        self.attach(Err(why));
        self.exit.send_replace(Some(code));
    }

    /// A line the runtime's thread wrote (its stdout or stderr), for the log ring.
    /// A full queue drops it and counts it; the count goes in the ring with the next line that fits.
    pub fn output(&self, stderr: bool, line: &str) {
        let dropped = self.lines_dropped.load(Ordering::Relaxed);
        if dropped > 0 && self.lines.try_send((true, format!("[{dropped} lines not kept: the log queue was full]"))).is_ok() {
            self.lines_dropped.fetch_sub(dropped, Ordering::Relaxed);
        }
        if self.lines.try_send((stderr, titan_pm::host::logs::cut(line).into_owned())).is_err() {
            self.lines_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn port_now(&self) -> Option<Result<Arc<Port>, String>> {
        self.port.borrow().clone()
    }

    /// The runtime's port once it attaches, or why it could not load.
    pub async fn wait_port(&self) -> Result<Arc<Port>, String> {
        let mut rx = self.port.subscribe();
        let attached = rx.wait_for(|p| p.is_some()).await.map(|p| p.clone());
        match attached {
            Ok(Some(port)) => port,
            _ => Err("the worker runtime is gone".into()),
        }
    }
}

type PortFuture = Shared<LocalBoxFuture<'static, Result<Arc<Port>, ErrorInfo>>>;

/// The core `Handler` for a JS object behind a port.
pub struct JsHandler {
    description: Description,
    port: PortFuture,
    exit: Option<watch::Receiver<Option<Option<i32>>>>,
    on_drop: Option<Box<dyn Fn()>>,
    /// Its worker thread's output lines, until the core takes them.
    lines: std::cell::RefCell<Option<mpsc::Receiver<(bool, String)>>>,
    /// The grant id of what the host handed over (0 until `grant`).
    grant: std::cell::Cell<u64>,
}

impl JsHandler {
    /// A handler whose runtime is already attached (a child process).
    pub fn ready(port: Arc<Port>) -> Self {
        JsHandler {
            description: port.description.clone(),
            port: futures::future::ready(Ok(port)).boxed_local().shared(),
            exit: None,
            on_drop: None,
            lines: std::cell::RefCell::new(None),
            grant: Default::default(),
        }
    }

    /// A handler for the runtime that will attach to `slot`; `on_drop` stops that runtime.
    pub fn for_slot(slot: Arc<Slot>, description: Description, on_drop: Box<dyn Fn()>) -> Self {
        let mut rx = slot.port.subscribe();
        let port = async move {
            let attached = rx.wait_for(|p| p.is_some()).await.map(|p| p.clone().unwrap());
            match attached {
                Ok(Ok(port)) => Ok(port),
                Ok(Err(why)) => Err(ErrorInfo::new(ErrorInfoKind::Init, "SpawnError", why)),
                Err(_) => Err(gone()),
            }
        };
        JsHandler {
            description,
            port: port.boxed_local().shared(),
            exit: Some(slot.exit.subscribe()),
            on_drop: Some(on_drop),
            lines: std::cell::RefCell::new(slot.lines_rx.lock().unwrap().take()),
            grant: Default::default(),
        }
    }

    fn request(&self, kind: u32, method: Option<String>, payload: Payload) -> LocalBoxFuture<'static, Reply> {
        let port = self.port.clone();
        Box::pin(async move { port.await?.request(kind, method, payload).await })
    }
}

impl Drop for JsHandler {
    fn drop(&mut self) {
        GRANTS.lock().unwrap().remove(&self.grant.get());
        if let Some(f) = &self.on_drop {
            f();
        }
    }
}

impl Handler for JsHandler {
    fn describe(&self) -> Description {
        self.description.clone()
    }

    fn grant(&self, capabilities: Capabilities) {
        let id = NEXT_GRANT.fetch_add(1, Ordering::Relaxed);
        GRANTS.lock().unwrap().insert(id, GrantEntry { remote: capabilities.remote(), port: None });
        let old = self.grant.replace(id);
        GRANTS.lock().unwrap().remove(&old);
        let port = self.port.clone();
        tokio::task::spawn_local(async move {
            if let Ok(port) = port.await {
                if let Some(g) = GRANTS.lock().unwrap().get_mut(&id) {
                    g.port = Some(port);
                }
            }
        });
    }

    fn init(&self, dependencies: Value) -> LocalBoxFuture<'static, Result<(), ErrorInfo>> {
        let reply = self.request(INIT, None, Payload::Init(dependencies, self.grant.get()));
        Box::pin(async move {
            reply.await.map(|_| ()).map_err(|mut e| {
                if e.kind == ErrorInfoKind::Remote {
                    e.kind = ErrorInfoKind::Init;
                }
                e
            })
        })
    }

    fn call(&self, method: &str, args: Vec<Value>, ctx: CallContext) -> LocalBoxFuture<'static, Reply> {
        let trace = [ctx.trace_id, ctx.span_id, ctx.parent_span_id];
        self.request(CALL, Some(method.to_string()), Payload::Call(args, trace, ctx.max_running))
    }

    /// The JS runtime holds calls past their `maxRunning` itself (`runtime.ts`), so a pool
    /// pipelining to this worker hands it the next calls without a round trip each.
    fn gates_calls(&self) -> bool {
        true
    }

    fn health(&self) -> Option<LocalBoxFuture<'static, HealthReport>> {
        if !self.description.has_health_check {
            return None;
        }
        let reply = self.request(HEALTH, None, Payload::None);
        Some(Box::pin(async move {
            match reply.await {
                Ok(v) => HealthReport::from_value(&v),
                Err(e) => HealthReport::unhealthy("health_check", format!("{}: {}", e.type_name, e.message)),
            }
        }))
    }

    fn shutdown(&self) -> LocalBoxFuture<'static, ()> {
        let reply = self.request(SHUTDOWN, None, Payload::None);
        Box::pin(async move {
            let _ = reply.await;
        })
    }

    fn output_lines(&self) -> Option<mpsc::Receiver<(bool, String)>> {
        self.lines.borrow_mut().take()
    }

    fn terminated(&self) -> Option<LocalBoxFuture<'static, Option<i32>>> {
        let mut rx = self.exit.clone()?;
        Some(Box::pin(async move {
            match rx.wait_for(|c| c.is_some()).await {
                Ok(code) => code.unwrap_or(None),
                Err(_) => futures::future::pending().await,
            }
        }))
    }
}

/// A description from the JS runtime (`{name, version, methods, hasHealthCheck, healthInterval}`),
/// read by the core's one parser.
pub fn description_from_js(env: Env, d: Js) -> napi::Result<Description> {
    let v = convert::from_js(env, d).map_err(|u| napi::Error::from_reason(u.message))?;
    let mut d = Description::from_value(&v, Dialect::Js).map_err(|e| napi::Error::from_reason(e.to_string()))?;
    if d.runtime.is_empty() {
        d.runtime = "node".into();
    }
    Ok(d)
}

/// An error the JS runtime reports: `{kind, type, message, stack, code, available}`, or
/// a worker-side validator's verdict `{kind: "validation", failures: [[path, message], ...]}`.
pub fn error_info_from_js(env: Env, e: Js) -> ErrorInfo {
    let Ok(v) = convert::report_from_js(env, e) else {
        return ErrorInfo::remote("Error", "the worker raised an error it could not describe");
    };
    if v.get("kind").and_then(|k| k.as_str()) == Some("validation") {
        let failures = match v.get("failures") {
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|f| match f {
                    Value::List(pm) if pm.len() == 2 => Some((pm[0].as_str()?.to_string(), pm[1].as_str()?.to_string())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        return ErrorInfo::validation(failures);
    }
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let kind = match text("kind").as_str() {
        "methodNotFound" => ErrorInfoKind::MethodNotFound,
        "serialization" => ErrorInfoKind::Serialization,
        "init" => ErrorInfoKind::Init,
        _ => ErrorInfoKind::Remote,
    };
    let mut info = ErrorInfo::new(kind, text("type"), text("message")).with_stack(text("stack"));
    let code = text("code");
    info.code = (!code.is_empty()).then_some(code);
    if let Some(Value::List(names)) = v.get("available") {
        info.available = names.iter().filter_map(|n| n.as_str()).map(String::from).collect();
    }
    info
}

pub fn handler_rc(h: JsHandler) -> Rc<dyn Handler> {
    Rc::new(h)
}
