//! `titan_pm.sync.ProcessManager`'s engine: the core runs on the caller's own
//! thread (`ProcessManager::new_local` on a private current-thread runtime), so
//! a blocking call is one `block_on` with the GIL released and no thread hop.
//!
//! The engine runs while a method of the manager runs; between calls it waits,
//! and the next call first lets it catch up (crashes, restarts, output). The
//! manager belongs to the thread that created it. With `engine_thread` the
//! engine runs on a thread of its own instead (the same `block_on` then only
//! waits for its answers).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::thread::ThreadId;
use std::future::Future;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use tokio::sync::broadcast;
use titan_pm::pool::{PoolEvent, PoolHandle};
use std::sync::Arc;
use titan_pm::options::Dialect;
use titan_pm::testing::{Failure, TestProcessManager};
use titan_pm::{CallOptions, Event, ProcessManager};

use crate::workflow::{rows, NativeWorkflow};
use crate::{options, convert, errors, reports, SameThread};

#[pyclass(module = "titan_pm._native")]
pub struct SyncManager {
    owner: ThreadId,
    engine: ManuallyDrop<Engine>,
    /// The engine runs on a thread of its own (else only while the owner calls in).
    engine_thread: bool,
}

struct Engine {
    // Field order is drop order: the manager handle, then its engine's tasks, then the runtime.
    /// `titan_pm.testing`'s blocking test manager (it holds a handle to `pm`'s engine).
    test: Option<Arc<TestProcessManager>>,
    pm: ProcessManager,
    events: RefCell<broadcast::Receiver<Event>>,
    /// Each pool's event subscription, read by `pool_take_events` (the pools themselves are core's).
    pool_events: RefCell<HashMap<u64, broadcast::Receiver<PoolEvent>>>,
    local: tokio::task::LocalSet,
    rt: tokio::runtime::Runtime,
    last_run: Cell<Instant>,
}

// SAFETY: the engine is only touched on its owner thread: every method checks
// `owner` first, and a drop on another thread (a garbage collection there)
// leaks the engine instead of touching it.
unsafe impl Send for SyncManager {}
unsafe impl Sync for SyncManager {}

impl Drop for SyncManager {
    fn drop(&mut self) {
        if std::thread::current().id() == self.owner {
            // SAFETY: taken once, here.
            let Engine { test, pm, events, pool_events, local, rt, .. } = unsafe { ManuallyDrop::take(&mut self.engine) };
            drop((test, pm, events, pool_events, local));
            // A garbage collection may drop us inside another runtime (a handler's code).
            rt.shutdown_background();
        }
    }
}

impl SyncManager {
    fn engine(&self) -> PyResult<&Engine> {
        if std::thread::current().id() != self.owner {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a titan_pm.sync.ProcessManager must be used from the thread that created it",
            ));
        }
        Ok(&self.engine)
    }
}

impl SyncManager {
    fn tester(&self) -> PyResult<(&Engine, &TestProcessManager)> {
        let e = self.engine()?;
        match &e.test {
            Some(t) => Ok((e, t)),
            None => Err(errors::to_py(titan_pm::Error::Config("not a test manager (use titan_pm.testing)".into()))),
        }
    }
}

/// How long the engine may wait before a call lets it catch up first.
const CATCH_UP_AFTER: Duration = Duration::from_millis(2);

impl Engine {
    fn pool_handle(&self, id: u64) -> PyResult<PoolHandle> {
        self.pm.pool_handle(id).map_err(errors::to_py)
    }

    /// Runs `fut` on the engine with the GIL released; Ctrl-C (a pending signal) cancels it.
    fn run<T: Send>(&self, py: Python<'_>, fut: impl Future<Output = T>) -> PyResult<T> {
        let catch_up = self.last_run.get().elapsed() > CATCH_UP_AFTER;
        let job = SameThread((&self.rt, &self.local, fut));
        let out = py.detach(move || {
            let (rt, local, fut) = job.into_inner();
            local.block_on(rt, async move {
                if catch_up {
                    for _ in 0..8 {
                        tokio::task::yield_now().await;
                    }
                }
                tokio::select! {
                    biased;
                    r = fut => Ok(r),
                    e = interrupted() => Err(e),
                }
            })
        });
        if out.is_err() {
            self.flush(py);
        }
        self.last_run.set(Instant::now());
        out
    }

    /// Lets the engine send what an ended call left behind (a cancel, a capnp
    /// Finish) before it waits for the next call.
    fn flush(&self, py: Python<'_>) {
        let job = SameThread((&self.rt, &self.local));
        py.detach(move || {
            let (rt, local) = job.into_inner();
            local.block_on(rt, async {
                for _ in 0..16 {
                    tokio::task::yield_now().await;
                }
            })
        });
    }
}

/// Resolves with the exception of a pending signal (KeyboardInterrupt), checked every 50 ms.
pub(crate) async fn interrupted() -> PyErr {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            return e;
        }
    }
}

#[pymethods]
impl SyncManager {
    #[new]
    /// `engine_thread`: the engine runs on a thread of its own (supervising between
    /// calls, two thread hops per call) instead of on the caller's thread.
    /// With `test`, a test manager (`titan_pm.testing`): its options are read too.
    #[pyo3(signature = (options, engine_thread=false, test=false))]
    fn new(options: &Bound<'_, PyDict>, engine_thread: bool, test: bool) -> PyResult<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| errors::to_py(titan_pm::Error::Config(format!("cannot start a runtime: {e}"))))?;
        let local = tokio::task::LocalSet::new();
        let (pm, test) = if test {
            let (cfg, test_options) = options::test_manager(options)?;
            let tpm = match engine_thread {
                true => TestProcessManager::try_new(cfg, test_options).map_err(errors::to_py)?,
                false => local.block_on(&rt, async { TestProcessManager::new_local(cfg, test_options) }),
            };
            (tpm.manager().clone(), Some(Arc::new(tpm)))
        } else {
            let cfg = options::manager(options)?;
            let pm = match engine_thread {
                true => ProcessManager::try_new(cfg).map_err(errors::to_py)?,
                false => local.block_on(&rt, async { ProcessManager::new_local(cfg) }),
            };
            (pm, None)
        };
        let events = RefCell::new(pm.events());
        let engine = Engine { test, pm, events, pool_events: RefCell::default(), local, rt, last_run: Cell::new(Instant::now()) };
        Ok(SyncManager { owner: std::thread::current().id(), engine: ManuallyDrop::new(engine), engine_thread })
    }

    fn spawn(&self, py: Python<'_>, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let target = options::target(target, in_process)?;
        let options = options::spawn(options)?;
        let e = self.engine()?;
        let pm = e.pm.clone();
        let h = e.run(py, async move { pm.spawn(target, options).await })?.map_err(errors::to_py)?;
        Ok(h.id())
    }

    #[pyo3(signature = (process_id, method, args, timeout=None, key=None, retries=None))]
    #[allow(clippy::too_many_arguments)]
    fn call<'py>(
        &self,
        py: Python<'py>,
        process_id: u64,
        method: &str,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
        key: Option<String>,
        retries: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = convert::args_to_values(args).map_err(errors::to_py)?;
        let options = options::call(timeout, key, retries)?;
        let e = self.engine()?;
        let v = e.run(py, e.pm.call_value(process_id, method, args, options))?;
        if v.is_err() {
            e.flush(py);
        }
        convert::to_py(py, &v.map_err(errors::to_py)?)
    }

    /// Core's `restart_with`: a new instance from `target` and `options`, ready before the old one drains; the id stays.
    fn restart_with(&self, py: Python<'_>, process_id: u64, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<()> {
        let target = options::target(target, in_process)?;
        let options = options::spawn(options)?;
        let e = self.engine()?;
        let pm = e.pm.clone();
        e.run(py, async move { pm.restart_with(process_id, target, options).await })?.map_err(errors::to_py)
    }

    fn kill(&self, py: Python<'_>, process_id: u64) -> PyResult<()> {
        let e = self.engine()?;
        e.run(py, e.pm.kill(process_id))?.map_err(errors::to_py)
    }

    // ---- testing (titan_pm.testing.SyncTestProcessManager): the blocking twins of AsyncManager's ----

    fn test_simulate_crash(&self, py: Python<'_>, process_id: u64) -> PyResult<()> {
        let (e, t) = self.tester()?;
        e.run(py, t.simulate_crash(process_id))?.map_err(errors::to_py)
    }

    fn test_wait_for_recovery(&self, py: Python<'_>, process_id: u64, timeout: f64) -> PyResult<bool> {
        let (e, t) = self.tester()?;
        let timeout = options::seconds("timeout", timeout)?;
        e.run(py, t.wait_for_recovery(process_id, timeout))
    }

    fn test_set_metrics(&self, process_id: u64, metrics: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = convert::options_to_value(metrics, "metrics").map_err(errors::to_py)?;
        self.tester()?.1.set_metrics_value(process_id, &v, Dialect::Python).map_err(errors::to_py)
    }

    fn test_set_health(&self, process_id: u64, health: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = convert::to_value(health, "health").map_err(errors::to_py)?;
        self.tester()?.1.set_health_value(process_id, &v);
        Ok(())
    }

    fn test_clear_metrics(&self, process_id: u64) -> PyResult<()> {
        self.tester()?.1.clear_metrics(process_id);
        Ok(())
    }

    fn test_clear_health(&self, process_id: u64) -> PyResult<()> {
        self.tester()?.1.clear_health(process_id);
        Ok(())
    }

    fn test_simulate_failure(&self, point: &str, type_name: &str, message: &str) -> PyResult<()> {
        self.tester()?.1.simulate_failure(point, Failure::new(message).of_type(type_name)).map_err(errors::to_py)
    }

    fn test_clear_failures(&self) -> PyResult<()> {
        self.tester()?.1.clear_failures();
        Ok(())
    }

    fn test_advance_time(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let (e, t) = self.tester()?;
        let d = options::seconds("advance_time", seconds)?;
        e.run(py, t.advance_time(d))?.map_err(errors::to_py)
    }

    /// The manager's clock, ms since the epoch.
    fn test_current_time(&self) -> PyResult<u64> {
        Ok(self.tester()?.1.current_time())
    }

    fn test_reset_time(&self) -> PyResult<()> {
        self.tester()?.1.reset_time();
        Ok(())
    }

    fn test_operations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.tester()?.1.operations_report(Dialect::Python))
    }

    fn test_clear_operations(&self) -> PyResult<()> {
        self.tester()?.1.clear_operations();
        Ok(())
    }

    fn test_cleanup(&self, py: Python<'_>) -> PyResult<()> {
        let (e, t) = self.tester()?;
        e.run(py, t.cleanup())?.map_err(errors::to_py)
    }

    /// Serves the control socket at `path` (else core's default). Needs the engine thread:
    /// an engine on the caller's thread runs only during its calls, so the socket would
    /// not answer between them.
    /// Listens for remote workers; returns the bound address ("ip:port").
    fn listen(&self, py: Python<'_>, options: &Bound<'_, PyDict>) -> PyResult<String> {
        let options = options::listen(options)?;
        let e = self.engine()?;
        let pm = e.pm.clone();
        let addr = e.run(py, async move { pm.listen(options).await })?.map_err(errors::to_py)?;
        Ok(addr.to_string())
    }

    /// One remote worker that joined as `name`, as a process.
    fn attach(&self, py: Python<'_>, name: String, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let options = options::spawn(options)?;
        let e = self.engine()?;
        let pm = e.pm.clone();
        let h = e.run(py, async move { pm.attach(&name, options).await })?.map_err(errors::to_py)?;
        Ok(h.id())
    }

    #[pyo3(signature = (path=None))]
    fn serve_control(&self, path: Option<std::path::PathBuf>) -> PyResult<crate::control::ControlServer> {
        if !self.engine_thread {
            return Err(errors::to_py(titan_pm::Error::Config(
                "serve_control needs ProcessManager(engine=\"thread\"): an engine on the calling thread runs only during calls, so the control socket would not answer between them".into(),
            )));
        }
        crate::control::serve(&self.engine()?.pm, path)
    }

    fn list_processes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let e = self.engine()?;
        let list = e.run(py, e.pm.list_processes())?;
        reports::to_py(py, &list)
    }

    fn get_process<'py>(&self, py: Python<'py>, process_id: u64) -> PyResult<Bound<'py, PyAny>> {
        let e = self.engine()?;
        let info = e.run(py, e.pm.get_process(process_id))?.map_err(errors::to_py)?;
        reports::to_py(py, &info)
    }

    fn get_health<'py>(&self, py: Python<'py>, process_id: u64) -> PyResult<Bound<'py, PyAny>> {
        let e = self.engine()?;
        let h = e.run(py, e.pm.get_health(process_id))?.map_err(errors::to_py)?;
        reports::to_py(py, &h)
    }

    fn get_metrics<'py>(&self, py: Python<'py>, process_id: u64) -> PyResult<Bound<'py, PyAny>> {
        let e = self.engine()?;
        let m = e.run(py, e.pm.get_metrics(process_id))?.map_err(errors::to_py)?;
        reports::to_py(py, &m)
    }

    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let e = self.engine()?;
        e.run(py, e.pm.shutdown())
    }

    /// Lifecycle events since the last look (the engine produces them while it runs).
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let e = self.engine()?;
        // Let the engine catch up on anything that happened while it waited.
        e.run(py, async {
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
        })?;
        let out = PyList::empty(py);
        let mut rx = e.events.borrow_mut();
        loop {
            match rx.try_recv() {
                Ok(ev) => out.append(reports::to_py(py, &ev)?)?,
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        Ok(out)
    }

    // ---- pools ----

    fn pool(&self, py: Python<'_>, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let target = options::target(target, in_process)?;
        let options = options::pool(options)?;
        let e = self.engine()?;
        let pm = e.pm.clone();
        let h = e.run(py, async move { pm.pool(target, options).await })?.map_err(errors::to_py)?;
        let id = h.id();
        let events = h.events();
        e.pool_events.borrow_mut().insert(id, events);
        Ok(id)
    }

    #[pyo3(signature = (pool_id, method, args, timeout=None, key=None, retries=None))]
    #[allow(clippy::too_many_arguments)]
    fn pool_call<'py>(
        &self,
        py: Python<'py>,
        pool_id: u64,
        method: &str,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
        key: Option<String>,
        retries: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = convert::args_to_values(args).map_err(errors::to_py)?;
        let options: CallOptions = options::call(timeout, key, retries)?;
        let e = self.engine()?;
        let h = e.pool_handle(pool_id)?.with_options(options);
        let v = e.run(py, async move { h.call_value(method, args).await })?;
        if v.is_err() {
            e.flush(py);
        }
        convert::to_py(py, &v.map_err(errors::to_py)?)
    }

    fn pool_size(&self, py: Python<'_>, pool_id: u64) -> PyResult<usize> {
        let e = self.engine()?;
        let h = e.pool_handle(pool_id)?;
        e.run(py, async move { h.size().await })?.map_err(errors::to_py)
    }

    fn pool_scale(&self, py: Python<'_>, pool_id: u64, size: usize) -> PyResult<()> {
        let e = self.engine()?;
        let h = e.pool_handle(pool_id)?;
        e.run(py, async move { h.scale(size).await })?.map_err(errors::to_py)
    }

    fn pool_metrics<'py>(&self, py: Python<'py>, pool_id: u64) -> PyResult<Bound<'py, PyAny>> {
        let e = self.engine()?;
        let h = e.pool_handle(pool_id)?;
        let m = e.run(py, async move { h.metrics().await })?.map_err(errors::to_py)?;
        reports::to_py(py, &m)
    }

    fn pool_drain(&self, py: Python<'_>, pool_id: u64) -> PyResult<()> {
        let e = self.engine()?;
        let h = e.pool_handle(pool_id)?;
        e.run(py, async move { h.drain().await })?.map_err(errors::to_py)
    }

    fn pool_destroy(&self, py: Python<'_>, pool_id: u64) -> PyResult<()> {
        let e = self.engine()?;
        let h = e.pool_handle(pool_id)?;
        let result = e.run(py, async move { h.destroy().await })?.map_err(errors::to_py);
        e.pool_events.borrow_mut().remove(&pool_id);
        result
    }

    /// The pool's events since the last look.
    fn pool_take_events<'py>(&self, py: Python<'py>, pool_id: u64) -> PyResult<Bound<'py, PyList>> {
        let e = self.engine()?;
        e.run(py, async {
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
        })?;
        let out = PyList::empty(py);
        let mut pools = e.pool_events.borrow_mut();
        let Some(rx) = pools.get_mut(&pool_id) else { return Ok(out) };
        loop {
            match rx.try_recv() {
                Ok(ev) => out.append(reports::to_py(py, &ev)?)?,
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        Ok(out)
    }

    // ---- workflows (the engine and the journal are core's) ----

    /// Loads `target` as a workflow (spawn, read the stage graph, check it): `(process_id, workflow)`.
    fn workflow_load(&self, py: Python<'_>, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<(u64, NativeWorkflow)> {
        let target = options::target(target, in_process)?;
        let options = options::workflow(options)?;
        let e = self.engine()?;
        let pm = e.pm.clone();
        let wf = e.run(py, async move { pm.workflow(target, options).await })?.map_err(errors::to_py)?;
        let id = wf.process().map(|p| p.id()).unwrap_or(0);
        Ok((id, NativeWorkflow::loaded(wf)))
    }

    /// Runs `workflow` to its end: every stage's result by name (or its `WorkflowError`).
    #[pyo3(signature = (workflow, input, run_id=None))]
    fn workflow_run<'py>(&self, py: Python<'py>, workflow: &NativeWorkflow, input: &Bound<'py, PyAny>, run_id: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let wf = workflow.handle()?;
        let input = convert::to_value(input, "input").map_err(errors::to_py)?;
        let e = self.engine()?;
        let v = e.run(py, async move { wf.run(input, run_id.as_deref()).await })?;
        if v.is_err() {
            e.flush(py);
        }
        convert::to_py(py, &v.map_err(errors::to_py)?)
    }

    /// The newest `limit` runs of `workflow`'s journal, or with None of the manager's.
    #[pyo3(signature = (workflow, limit))]
    fn workflow_runs<'py>(&self, py: Python<'py>, workflow: Option<&NativeWorkflow>, limit: usize) -> PyResult<Bound<'py, PyAny>> {
        let e = self.engine()?;
        let runs = match workflow {
            Some(w) => {
                let wf = w.handle()?;
                e.run(py, async move { wf.runs(limit).await })?
            }
            None => e.run(py, e.pm.workflow_runs(limit))?,
        };
        convert::to_py(py, &rows(runs.map_err(errors::to_py)?))
    }

    /// The run events of `workflow` since its `subscribe`, without waiting.
    fn workflow_take_events<'py>(&self, py: Python<'py>, workflow: &NativeWorkflow) -> PyResult<Bound<'py, PyList>> {
        let e = self.engine()?;
        e.run(py, async {
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
        })?;
        let out = PyList::empty(py);
        for v in workflow.take_events() {
            out.append(convert::to_py(py, &v)?)?;
        }
        Ok(out)
    }
}
