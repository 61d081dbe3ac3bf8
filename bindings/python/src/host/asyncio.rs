//! `titan_pm.ProcessManager`, the asyncio host: each operation is a core
//! future started through [`crate::runtime`] under a token.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use futures::FutureExt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use titan_pm::pool::PoolHandle;
use std::sync::Arc;

use titan_pm::options::Dialect;
use titan_pm::testing::{Failure, TestProcessManager};
use titan_pm::{Error, ProcessManager, Value};

use crate::runtime::{events_op, hand_over, pool_events_op, LoopRuntime, Op, Out, ThreadDriver};
use crate::{options, convert, errors, reports, SameThread};

// ---- the manager ----

enum Driver {
    Loop(Py<LoopRuntime>),
    Thread(ThreadDriver),
}

#[pyclass(module = "titan_pm._native")]
pub struct AsyncManager {
    pub(crate) pm: ProcessManager,
    driver: Driver,
    /// Set for `titan_pm.testing`'s manager: the same engine, with the testing utilities.
    test: Option<Arc<TestProcessManager>>,
}

impl AsyncManager {
    /// Starts `op` and returns its token.
    pub(crate) fn start(&self, py: Python<'_>, op: impl Future<Output = Result<Out, Error>> + Send + 'static) -> PyResult<u64> {
        self.start_op(py, op.boxed())
    }

    pub(crate) fn start_op(&self, py: Python<'_>, op: Op) -> PyResult<u64> {
        match &self.driver {
            Driver::Loop(rt) => {
                let rt = rt.bind(py).get();
                let inner = rt.inner()?;
                let token = inner.token();
                inner.begin(token, op);
                Ok(token)
            }
            Driver::Thread(d) => {
                let token = d.next.fetch_add(1, Ordering::Relaxed);
                d.begin(token, op);
                Ok(token)
            }
        }
    }

    /// Runs `fut` to completion now.
    pub(crate) fn block_on<T: Send>(&self, py: Python<'_>, fut: impl Future<Output = T> + Send) -> PyResult<T> {
        match &self.driver {
            Driver::Loop(rt) => Ok(rt.bind(py).get().inner()?.block_on(py, fut)),
            Driver::Thread(_) => Ok(py.detach(move || futures::executor::block_on(fut))),
        }
    }

    pub(crate) fn manager(&self) -> &ProcessManager {
        &self.pm
    }

    fn tester(&self) -> PyResult<Arc<TestProcessManager>> {
        self.test.clone().ok_or_else(|| errors::to_py(Error::Config("not a test manager (use titan_pm.testing)".into())))
    }

    fn pool_handle(&self, id: u64) -> PyResult<PoolHandle> {
        self.pm.pool_handle(id).map_err(errors::to_py)
    }
}

#[pymethods]
impl AsyncManager {
    /// With a `LoopRuntime`, the engine runs on that loop's thread; without, on a thread of its own.
    #[new]
    #[pyo3(signature = (options, runtime=None, test=false))]
    fn new(py: Python<'_>, options: &Bound<'_, PyDict>, runtime: Option<Py<LoopRuntime>>, test: bool) -> PyResult<Self> {
        if test {
            let (cfg, test_options) = options::test_manager(options)?;
            let (tpm, driver) = match runtime {
                Some(rt) => {
                    let tpm = {
                        let inner = rt.bind(py).get().inner()?;
                        inner.block_on(py, SameThread(async { TestProcessManager::new_local(cfg, test_options) }))
                    };
                    (tpm, Driver::Loop(rt))
                }
                None => (TestProcessManager::try_new(cfg, test_options).map_err(errors::to_py)?, Driver::Thread(ThreadDriver::new()?)),
            };
            return Ok(AsyncManager { pm: tpm.manager().clone(), driver, test: Some(Arc::new(tpm)) });
        }
        let cfg = options::manager(options)?;
        let (pm, driver) = match runtime {
            Some(rt) => {
                let pm = {
                    let inner = rt.bind(py).get().inner()?;
                    inner.block_on(py, SameThread(async { ProcessManager::new_local(cfg) }))
                };
                (pm, Driver::Loop(rt))
            }
            None => (ProcessManager::try_new(cfg).map_err(errors::to_py)?, Driver::Thread(ThreadDriver::new()?)),
        };
        Ok(AsyncManager { pm, driver, test: None })
    }

    /// The thread driver's descriptor the event loop watches (readable when `drain` has work); None for the loop driver.
    fn wake_fd(&self) -> Option<i32> {
        match &self.driver {
            Driver::Thread(d) => Some(d.rx.as_raw_fd()),
            Driver::Loop(_) => None,
        }
    }

    /// The thread driver's finished operations as `(token, ok, value_or_exception)`.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        match &self.driver {
            Driver::Thread(d) => hand_over(py, d.take(), |token, op| d.begin(token, op)),
            Driver::Loop(_) => Ok(PyList::empty(py)),
        }
    }

    /// Drops an operation: a call in flight is cancelled in the worker.
    fn cancel(&self, py: Python<'_>, token: u64) -> PyResult<()> {
        match &self.driver {
            Driver::Loop(rt) => rt.bind(py).get().cancel(token),
            Driver::Thread(d) => {
                let op = d.ops.lock().unwrap().remove(&token);
                drop(op);
                Ok(())
            }
        }
    }

    /// Delivers lifecycle events, each under the returned token.
    fn subscribe_events(&self, py: Python<'_>) -> PyResult<u64> {
        self.start_op(py, events_op(self.pm.events()))
    }

    fn spawn(&self, py: Python<'_>, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let target = options::target(target, in_process)?;
        let options = options::spawn(options)?;
        let pm = self.pm.clone();
        self.start(py, async move { pm.spawn(target, options).await.map(|h| Out::Id(h.id())) })
    }

    #[pyo3(signature = (process_id, method, args, timeout=None, key=None, retries=None))]
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        py: Python<'_>,
        process_id: u64,
        method: &str,
        args: &Bound<'_, PyTuple>,
        timeout: Option<f64>,
        key: Option<String>,
        retries: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let args = convert::args_to_values(args).map_err(errors::to_py)?;
        let options = options::call(timeout, key, retries)?;
        let pm = self.pm.clone();
        let method = method.to_string();
        self.start(py, async move { pm.call_value(process_id, &method, args, options).await.map(Out::Value) })
    }

    /// Core's `restart_with`: a new instance from `target` and `options`, ready before the old one drains; the id stays.
    fn restart_with(&self, py: Python<'_>, process_id: u64, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let target = options::target(target, in_process)?;
        let options = options::spawn(options)?;
        let pm = self.pm.clone();
        self.start(py, async move { pm.restart_with(process_id, target, options).await.map(|_| Out::Unit) })
    }

    fn kill(&self, py: Python<'_>, process_id: u64) -> PyResult<u64> {
        let pm = self.pm.clone();
        self.start(py, async move { pm.kill(process_id).await.map(|_| Out::Unit) })
    }

    fn get_health(&self, py: Python<'_>, process_id: u64) -> PyResult<u64> {
        let pm = self.pm.clone();
        self.start(py, async move { pm.get_health(process_id).await.map(Out::Health) })
    }

    fn get_metrics(&self, py: Python<'_>, process_id: u64) -> PyResult<u64> {
        let pm = self.pm.clone();
        self.start(py, async move { pm.get_metrics(process_id).await.map(Out::Metrics) })
    }

    fn shutdown(&self, py: Python<'_>) -> PyResult<u64> {
        let pm = self.pm.clone();
        self.start(py, async move {
            pm.shutdown().await;
            Ok(Out::Unit)
        })
    }

    /// Serves the control socket (the `titan-pm` CLI's way in) at `path`, else core's default.
    #[pyo3(signature = (path=None))]
    fn serve_control(&self, path: Option<std::path::PathBuf>) -> PyResult<crate::control::ControlServer> {
        crate::control::serve(&self.pm, path)
    }

    /// Blocks briefly (one engine round trip) for the process table.
    fn list_processes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pm = self.pm.clone();
        let list = self.block_on(py, async move { pm.list_processes().await })?;
        reports::to_py(py, &list)
    }

    fn get_process<'py>(&self, py: Python<'py>, process_id: u64) -> PyResult<Bound<'py, PyAny>> {
        let pm = self.pm.clone();
        let info = self.block_on(py, async move { pm.get_process(process_id).await })?.map_err(errors::to_py)?;
        reports::to_py(py, &info)
    }

    // ---- testing (titan_pm.testing) ----

    fn test_simulate_crash(&self, py: Python<'_>, process_id: u64) -> PyResult<u64> {
        let t = self.tester()?;
        self.start(py, async move { t.simulate_crash(process_id).await.map(|_| Out::Unit) })
    }

    fn test_wait_for_recovery(&self, py: Python<'_>, process_id: u64, timeout: f64) -> PyResult<u64> {
        let t = self.tester()?;
        let timeout = options::seconds("timeout", timeout)?;
        self.start(py, async move { Ok(Out::Value(Value::Bool(t.wait_for_recovery(process_id, timeout).await))) })
    }

    fn test_set_metrics(&self, process_id: u64, metrics: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = convert::options_to_value(metrics, "metrics").map_err(errors::to_py)?;
        self.tester()?.set_metrics_value(process_id, &v, Dialect::Python).map_err(errors::to_py)
    }

    fn test_set_health(&self, process_id: u64, health: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = convert::to_value(health, "health").map_err(errors::to_py)?;
        self.tester()?.set_health_value(process_id, &v);
        Ok(())
    }

    fn test_clear_metrics(&self, process_id: u64) -> PyResult<()> {
        self.tester()?.clear_metrics(process_id);
        Ok(())
    }

    fn test_clear_health(&self, process_id: u64) -> PyResult<()> {
        self.tester()?.clear_health(process_id);
        Ok(())
    }

    fn test_simulate_failure(&self, point: &str, type_name: &str, message: &str) -> PyResult<()> {
        self.tester()?.simulate_failure(point, Failure::new(message).of_type(type_name)).map_err(errors::to_py)
    }

    fn test_clear_failures(&self) -> PyResult<()> {
        self.tester()?.clear_failures();
        Ok(())
    }

    fn test_advance_time(&self, py: Python<'_>, seconds: f64) -> PyResult<u64> {
        let t = self.tester()?;
        let d = options::seconds("advance_time", seconds)?;
        self.start(py, async move { t.advance_time(d).await.map(|_| Out::Unit) })
    }

    /// The manager's clock, ms since the epoch.
    fn test_current_time(&self) -> PyResult<u64> {
        Ok(self.tester()?.current_time())
    }

    fn test_reset_time(&self) -> PyResult<()> {
        self.tester()?.reset_time();
        Ok(())
    }

    fn test_operations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.tester()?.operations_report(Dialect::Python))
    }

    fn test_clear_operations(&self) -> PyResult<()> {
        self.tester()?.clear_operations();
        Ok(())
    }

    fn test_cleanup(&self, py: Python<'_>) -> PyResult<u64> {
        let t = self.tester()?;
        self.start(py, async move { t.cleanup().await.map(|_| Out::Unit) })
    }

    // ---- remote workers ----

    /// Listens for remote workers (`address`, `tls`, `token`, read by core); the result is the bound address.
    fn listen(&self, py: Python<'_>, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let options = options::listen(options)?;
        let pm = self.pm.clone();
        self.start(py, async move { pm.listen(options).await.map(|a| Out::Value(titan_pm::Value::Text(a.to_string()))) })
    }

    /// One remote worker that joined as `name`, as a process.
    fn attach(&self, py: Python<'_>, name: String, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let options = options::spawn(options)?;
        let pm = self.pm.clone();
        self.start(py, async move { pm.attach(&name, options).await.map(|h| Out::Id(h.id())) })
    }

    // ---- pools ----

    fn pool(&self, py: Python<'_>, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let target = options::target(target, in_process)?;
        let options = options::pool(options)?;
        let pm = self.pm.clone();
        self.start(py, async move { Ok(Out::Id(pm.pool(target, options).await?.id())) })
    }

    #[pyo3(signature = (pool_id, method, args, timeout=None, key=None, retries=None))]
    #[allow(clippy::too_many_arguments)]
    fn pool_call(
        &self,
        py: Python<'_>,
        pool_id: u64,
        method: &str,
        args: &Bound<'_, PyTuple>,
        timeout: Option<f64>,
        key: Option<String>,
        retries: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let args = convert::args_to_values(args).map_err(errors::to_py)?;
        let h = self.pool_handle(pool_id)?.with_options(options::call(timeout, key, retries)?);
        let method = method.to_string();
        self.start(py, async move { h.call_value(&method, args).await.map(Out::Value) })
    }

    /// Blocks briefly (one engine round trip) for the pool's size.
    fn pool_size(&self, py: Python<'_>, pool_id: u64) -> PyResult<usize> {
        let h = self.pool_handle(pool_id)?;
        self.block_on(py, async move { h.size().await })?.map_err(errors::to_py)
    }

    fn pool_scale(&self, py: Python<'_>, pool_id: u64, size: usize) -> PyResult<u64> {
        let h = self.pool_handle(pool_id)?;
        self.start(py, async move { h.scale(size).await.map(|_| Out::Unit) })
    }

    fn pool_metrics(&self, py: Python<'_>, pool_id: u64) -> PyResult<u64> {
        let h = self.pool_handle(pool_id)?;
        self.start(py, async move { h.metrics().await.map(Out::PoolMetrics) })
    }

    fn pool_drain(&self, py: Python<'_>, pool_id: u64) -> PyResult<u64> {
        let h = self.pool_handle(pool_id)?;
        self.start(py, async move { h.drain().await.map(|_| Out::Unit) })
    }

    fn pool_destroy(&self, py: Python<'_>, pool_id: u64) -> PyResult<u64> {
        let h = self.pool_handle(pool_id)?;
        self.start(py, async move { h.destroy().await.map(|_| Out::Unit) })
    }

    /// Delivers the pool's events, each under the returned token.
    fn pool_subscribe(&self, py: Python<'_>, pool_id: u64) -> PyResult<u64> {
        let rx = self.pool_handle(pool_id)?.events();
        self.start_op(py, pool_events_op(rx))
    }
}
