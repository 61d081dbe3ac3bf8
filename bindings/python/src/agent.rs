//! The worker side: [`PyHandler`] is the core agent's `Handler` over a
//! `titan_pm._runtime.Runtime` (the Python object that owns the user's
//! instance), and [`serve_worker_on`] serves it in a child started by a host,
//! from the child's asyncio loop (see `runtime::LoopRuntime`).
//!
//! The agent runs on the thread that serves (a child's main thread). Each entry
//! point hands the runtime a [`Completion`]: a fast sync method runs right there
//! and completes before the call returns (no thread hop); async methods and
//! slow sync ones complete later from the runtime's own threads. Dropping a
//! call's future (host cancel or deadline) asks the runtime to cancel it.
//!
//! What the host handed over at `init` (processes to call, shared state)
//! reaches the runtime as a [`Granted`] (`runtime.grant(granted)`): core's
//! `agent::Remote`, whose operations run on the agent's thread and answer
//! through a `done(ok, value)` callback, from whatever thread the Python code
//! calls it. Which process a name reaches, and what shared state does, is core's.

use std::rc::Rc;
use std::sync::Mutex;

use futures::future::LocalBoxFuture;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use titan_pm::agent::{self, CallContext, Capabilities, Handler, Remote};
use titan_pm::policy::trace::TraceContext;
use titan_pm::options::Dialect;
use titan_pm::protocol::{Description, ErrorInfo, ErrorInfoKind, HealthReport};
use titan_pm::transport::Endpoint;
use titan_pm::Value;
use tokio::sync::oneshot;

use crate::runtime::{LoopRuntime, Out};
use crate::{convert, errors};

type Outcome = Result<Value, ErrorInfo>;

/// The callback the runtime calls once with an entry point's outcome: `done(True, value)`,
/// `done(False, exception)`, or `done.not_found(available)`.
#[pyclass(frozen, module = "titan_pm._native")]
pub struct Completion {
    tx: Mutex<Option<oneshot::Sender<Outcome>>>,
    kind: ErrorInfoKind,
}

impl Completion {
    fn new(kind: ErrorInfoKind) -> (Self, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        (Completion { tx: Mutex::new(Some(tx)), kind }, rx)
    }

    fn send(&self, outcome: Outcome) {
        if let Some(tx) = self.tx.lock().unwrap().take() {
            let _ = tx.send(outcome);
        }
    }
}

#[pymethods]
impl Completion {
    fn __call__(&self, py: Python<'_>, ok: bool, value: &Bound<'_, PyAny>) {
        let outcome = if ok {
            convert::to_value(value, "result").map_err(|e| match e {
                titan_pm::Error::Serialization { path, message } => {
                    ErrorInfo::new(ErrorInfoKind::Serialization, path, message)
                }
                other => ErrorInfo::remote("SerializationError", other.to_string()),
            })
        } else {
            Err(errors::to_info(py, value, self.kind))
        };
        self.send(outcome);
    }

    fn not_found(&self, method: String, available: Vec<String>) {
        self.send(Err(ErrorInfo::method_not_found(&method, available)));
    }
}

/// Asks the runtime to cancel a call whose future was dropped before it finished.
struct CancelGuard {
    runtime: Py<PyAny>,
    call_id: u64,
    armed: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.armed {
            Python::attach(|py| {
                if let Err(e) = self.runtime.call_method1(py, intern!(py, "cancel"), (self.call_id,)) {
                    e.print(py);
                }
            });
        }
    }
}

/// A Python runtime's threads as the core counts them (`titan_pm::host::live`): the
/// runtime calls `release()` once `close()` ran and its threads ended.
#[pyclass(frozen, module = "titan_pm._native")]
pub struct LiveToken(Mutex<Option<titan_pm::host::live::LiveRuntime>>);

impl LiveToken {
    /// Registers the runtime being launched on this thread (inside a handler factory).
    pub fn register() -> Self {
        LiveToken(Mutex::new(Some(titan_pm::host::live::register("a python runtime thread"))))
    }
}

#[pymethods]
impl LiveToken {
    fn release(&self) {
        self.0.lock().unwrap().take();
    }
}

pub struct PyHandler {
    runtime: Py<PyAny>,
    /// The runtime's bound `call`, looked up once.
    call_entry: Py<PyAny>,
    description: Description,
}

impl PyHandler {
    pub fn new(py: Python<'_>, runtime: Py<PyAny>) -> PyResult<Self> {
        let d = runtime.call_method0(py, "describe")?;
        let d = convert::to_value(d.bind(py), "description").map_err(errors::to_py)?;
        let description = Description::from_value(&d, Dialect::Python).map_err(errors::to_py)?;
        let call_entry = runtime.getattr(py, "call")?;
        Ok(PyHandler { runtime, call_entry, description })
    }

    /// Calls `runtime.<entry>(*args, done)` and returns what `done` receives.
    fn enter(
        &self,
        entry: &'static str,
        kind: ErrorInfoKind,
        args: impl FnOnce(Python<'_>) -> PyResult<Vec<Bound<'_, PyAny>>>,
    ) -> oneshot::Receiver<Outcome> {
        let (completion, rx) = Completion::new(kind);
        Python::attach(|py| {
            let done = match Bound::new(py, completion) {
                Ok(done) => done,
                Err(e) => return e.print(py), // the caller gets `lost()`
            };
            let called = args(py).and_then(|mut a| {
                a.push(done.clone().into_any());
                let f = match entry {
                    "call" => self.call_entry.bind(py).clone(),
                    _ => self.runtime.bind(py).getattr(entry)?,
                };
                f.call1(PyTuple::new(py, a)?).map(|_| ())
            });
            // The runtime reports through `done`; if it raised before it could, that is the outcome.
            if let Err(e) = called {
                done.get().send(Err(errors::to_info(py, e.value(py), kind)));
            }
        });
        rx
    }
}

fn lost() -> ErrorInfo {
    ErrorInfo::remote("RuntimeError", "the worker runtime dropped the call")
}

/// The processes and shared state a worker was given, for its Python runtime.
/// Each operation converts its arguments here and answers `done(True, value)`
/// or `done(False, exception)` later, from the agent's thread.
#[pyclass(frozen, module = "titan_pm._native")]
pub struct Granted {
    remote: Remote,
}

/// Hands an outcome to `done` (with the GIL, on the agent's thread).
fn reply_to(done: Py<PyAny>) -> agent::Reply {
    Box::new(move |r: titan_pm::Result<Value>| {
        Python::attach(|py| {
            let (ok, v) = match r.map_err(errors::to_py).and_then(|v| convert::to_py(py, &v)) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_bound(py).into_any()),
            };
            if let Err(e) = done.call1(py, (ok, v)) {
                e.print(py);
            }
        })
    })
}

#[pymethods]
impl Granted {
    /// The names of the processes this worker was given.
    fn names(&self) -> Vec<String> {
        self.remote.process_names().to_vec()
    }

    /// Calls `method(*args)` of the process given as `process`; `timeout` in
    /// seconds (None: the process's default); `trace` the current call's
    /// `(trace id, span id, parent span id)`, whose span becomes the callee's parent.
    #[pyo3(signature = (process, method, args, timeout, trace, done))]
    fn call(
        &self,
        process: &str,
        method: &str,
        args: &Bound<'_, PyTuple>,
        timeout: Option<f64>,
        trace: Option<(String, String, String)>,
        done: Py<PyAny>,
    ) -> PyResult<()> {
        let args = convert::args_to_values(args).map_err(errors::to_py)?;
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Some(std::time::Duration::from_secs_f64(t)),
            Some(t) => return Err(errors::to_py(titan_pm::Error::Config(format!("timeout must be a number of seconds above 0, not {t}")))),
        };
        let trace = trace.map(|(trace_id, span_id, parent_span_id)| TraceContext { trace_id, span_id, parent_span_id });
        self.remote.call(process, method, args, timeout, trace, reply_to(done)).map_err(errors::to_py)
    }

    /// The host's value; `initial` while it was never set (core's rule).
    fn shared_get(&self, property: &str, initial: &Bound<'_, PyAny>, done: Py<PyAny>) -> PyResult<()> {
        let initial = convert::to_value(initial, property).map_err(errors::to_py)?;
        self.remote.shared_get(property, initial, reply_to(done)).map_err(errors::to_py)
    }

    fn shared_set(&self, property: &str, value: &Bound<'_, PyAny>, done: Py<PyAny>) -> PyResult<()> {
        let v = convert::to_value(value, property).map_err(errors::to_py)?;
        self.remote.shared_set(property, v, reply_to(done)).map_err(errors::to_py)
    }

    /// The atomic increment: `delta` (an int or a float) added in one step on the host.
    fn shared_add(&self, property: &str, delta: &Bound<'_, PyAny>, done: Py<PyAny>) -> PyResult<()> {
        let v = convert::to_value(delta, property).map_err(errors::to_py)?;
        self.remote.shared_add(property, v, reply_to(done)).map_err(errors::to_py)
    }
}

/// One instance's view of a `shared_state` property: core's write rule
/// (`titan_pm::agent::SharedView`: a numeric write adds its difference, anything else is a
/// set, replies fold in the adds in flight); `titan_pm.given` only converts. Used from any thread.
#[pyclass(frozen, module = "titan_pm._native")]
pub struct SharedView {
    view: titan_pm::agent::SharedView,
}

#[pymethods]
impl SharedView {
    #[new]
    fn new(property: String, initial: &Bound<'_, PyAny>) -> PyResult<Self> {
        let initial = convert::to_value(initial, &property).map_err(errors::to_py)?;
        Ok(SharedView { view: titan_pm::agent::SharedView::new(property, initial) })
    }

    /// The view (raises an earlier operation's failure, once).
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.view.read().map_err(errors::to_py)?;
        convert::to_py(py, &v)
    }

    /// Writes `value` through `granted`'s shared state.
    fn write(&self, granted: &Granted, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = convert::to_value(value, self.view.property()).map_err(errors::to_py)?;
        self.view.write(&granted.remote, v).map_err(errors::to_py)
    }

    /// Seeds the host's value if no instance did and loads it; then `done(ok, view or exception)`.
    fn load(&self, granted: &Granted, done: Py<PyAny>) -> PyResult<()> {
        self.view.load(&granted.remote, reply_to(done)).map_err(errors::to_py)
    }
}

impl Handler for PyHandler {
    fn describe(&self) -> Description {
        self.description.clone()
    }

    fn grant(&self, capabilities: Capabilities) {
        let granted = Granted { remote: capabilities.remote() };
        Python::attach(|py| {
            let given = Bound::new(py, granted).and_then(|g| self.runtime.call_method1(py, intern!(py, "grant"), (g,)));
            if let Err(e) = given {
                e.print(py);
            }
        });
    }

    fn init(&self, dependencies: Value) -> LocalBoxFuture<'static, Result<(), ErrorInfo>> {
        let rx = self.enter("init", ErrorInfoKind::Init, |py| Ok(vec![convert::to_py(py, &dependencies)?]));
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(lost())).map(|_| ()) })
    }

    fn call(&self, method: &str, args: Vec<Value>, ctx: CallContext) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>> {
        let call_id = ctx.call_id;
        let rx = self.enter("call", ErrorInfoKind::Remote, |py| {
            let list = PyList::empty(py);
            for a in &args {
                list.append(convert::to_py(py, a)?)?;
            }
            // The call's W3C trace context, for `titan_pm.get_trace_context()` inside the method.
            let trace = PyTuple::new(py, [ctx.trace_id.as_str(), ctx.span_id.as_str(), ctx.parent_span_id.as_str()])?;
            Ok(vec![
                pyo3::types::PyString::new(py, method).into_any(),
                list.into_any(),
                call_id.into_pyobject(py)?.into_any(),
                trace.into_any(),
            ])
        });
        let runtime = Python::attach(|py| self.runtime.clone_ref(py));
        let guard = CancelGuard { runtime, call_id, armed: true };
        Box::pin(async move {
            let mut guard = guard;
            let outcome = rx.await.unwrap_or_else(|_| Err(lost()));
            guard.armed = false;
            outcome
        })
    }

    fn health(&self) -> Option<LocalBoxFuture<'static, HealthReport>> {
        if !self.description.has_health_check {
            return None;
        }
        let rx = self.enter("health", ErrorInfoKind::Remote, |_| Ok(vec![]));
        Some(Box::pin(async move {
            match rx.await.unwrap_or_else(|_| Err(lost())) {
                Ok(v) => HealthReport::from_value(&v),
                Err(e) => HealthReport::unhealthy("health_check", format!("{}: {}", e.type_name, e.message)),
            }
        }))
    }

    fn shutdown(&self) -> LocalBoxFuture<'static, ()> {
        let rx = self.enter("shutdown", ErrorInfoKind::Remote, |_| Ok(vec![]));
        Box::pin(async move {
            if let Ok(Err(e)) = rx.await {
                eprintln!("titan-pm: a shutdown hook raised {}: {}", e.type_name, e.message);
            }
        })
    }
}

impl Drop for PyHandler {
    fn drop(&mut self) {
        Python::attach(|py| {
            let _ = self.runtime.call_method0(py, intern!(py, "close"));
        });
    }
}

/// Takes a remote worker's dial flags (`--connect`, `--tls-*`, `--token`, `--name`) out of
/// `args` (core reads them); returns the rest.
#[pyfunction]
pub fn take_worker_args(args: Vec<String>) -> PyResult<Vec<String>> {
    titan_pm::transport::dial::DialOptions::take_args(&args).map_err(errors::to_py)
}

/// Serves `runtime` to the host that started this process from the event loop
/// that `loop_runtime` drives (the worker's main thread runs both the agent and
/// the asyncio loop, so an async method needs no thread hop). Returns the token
/// under which the agent's end is handed over (when the host says shut down or goes away).
#[pyfunction]
pub fn serve_worker_on(py: Python<'_>, loop_runtime: &Bound<'_, LoopRuntime>, runtime: Py<PyAny>) -> PyResult<u64> {
    let handler: Rc<dyn Handler> = Rc::new(PyHandler::new(py, runtime)?);
    let (endpoint, secret) = Endpoint::from_env().map_err(errors::to_py)?;
    let inner = loop_runtime.get().inner()?;
    let token = inner.token();
    inner.begin_local(
        token,
        Box::pin(async move { agent::connect_and_serve(endpoint, &secret, handler).await.map(|_| Out::Unit) }),
    );
    Ok(token)
}


