//! `titan_pm.ProcessManager`'s engine: the core runs on an engine thread of
//! its own (so it supervises while the event loop does other work), and results
//! come back to the asyncio loop without the GIL: a finished operation wakes a
//! socket the loop watches (`loop.add_reader`), and `drain` hands the results
//! over on the loop's thread, many at a time.
//!
//! Each operation is a core future polled here with a waker that names it;
//! dropping it (`cancel`) cancels the operation in the engine, and so the call
//! in the worker.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures::future::BoxFuture;
use futures::FutureExt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use titan_pm::pool::{PoolEvent, PoolHandle, PoolMetrics};
use titan_pm::{Error, Event, HealthReport, ProcessManager, ProcessMetrics, Value};
use tokio::sync::broadcast;

use crate::{config, convert, errors, reports};

/// What an operation ends with, converted to Python in `drain`.
enum Out {
    Value(Value),
    Id(u64),
    Unit,
    Health(HealthReport),
    Metrics(ProcessMetrics),
    /// An event, and the receiver to listen on for the next one.
    Event(Event, broadcast::Receiver<Event>),
    PoolEvent(PoolEvent, broadcast::Receiver<PoolEvent>),
    PoolMetrics(PoolMetrics),
}

type Op = BoxFuture<'static, Result<Out, Error>>;

/// The token of the events stream; operation tokens count up from 1.
const EVENTS: u64 = 0;

struct Wakeup {
    ready: Mutex<Vec<u64>>,
    signalled: AtomicBool,
    tx: UnixStream,
}

struct TokenWaker {
    token: u64,
    wakeup: Arc<Wakeup>,
}

impl Wakeup {
    /// Makes the loop's descriptor readable, once until the next `drain`.
    fn signal(&self) {
        if !self.signalled.swap(true, Ordering::AcqRel) {
            let _ = (&self.tx).write(&[1]);
        }
    }
}

impl Wake for TokenWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakeup.ready.lock().unwrap().push(self.token);
        self.wakeup.signal();
    }
}

#[pyclass(module = "titan_pm._native")]
pub struct AsyncManager {
    pm: ProcessManager,
    wakeup: Arc<Wakeup>,
    rx: UnixStream,
    ops: Mutex<HashMap<u64, Op>>,
    done: Mutex<Vec<(u64, Result<Out, Error>)>>,
    pools: Arc<Mutex<HashMap<u64, PoolHandle>>>,
    next: AtomicU64,
}

impl AsyncManager {
    /// Starts `op` and returns its token; its result comes out of `drain`.
    fn start(&self, op: impl Future<Output = Result<Out, Error>> + Send + 'static) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.begin(token, op.boxed());
        token
    }

    /// Polls `op` once (the first poll sends the job to the engine) and keeps it.
    fn begin(&self, token: u64, op: Op) {
        self.ops.lock().unwrap().insert(token, op);
        self.wakeup.ready.lock().unwrap().push(token);
        self.poll_ready();
        if !self.done.lock().unwrap().is_empty() {
            self.wakeup.signal();
        }
    }

    /// Polls every woken operation; finished ones wait in `done` for `drain`.
    fn poll_ready(&self) {
        let tokens = std::mem::take(&mut *self.wakeup.ready.lock().unwrap());
        let mut ops = self.ops.lock().unwrap();
        for token in tokens {
            let Some(op) = ops.get_mut(&token) else { continue };
            let waker = Waker::from(Arc::new(TokenWaker { token, wakeup: self.wakeup.clone() }));
            if let Poll::Ready(r) = Pin::new(op).poll(&mut Context::from_waker(&waker)) {
                ops.remove(&token);
                self.done.lock().unwrap().push((token, r));
            }
        }
    }

    /// Waits for the next lifecycle event on `rx` (token 0).
    fn watch_events(&self, mut rx: broadcast::Receiver<Event>) {
        let op = async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Ok(Out::Event(e, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Ok(Out::Unit),
                }
            }
        };
        self.begin(EVENTS, op.boxed());
    }

    /// Waits for the next event of a pool, under the same `token` each time.
    fn watch_pool_events(&self, token: u64, mut rx: broadcast::Receiver<PoolEvent>) {
        let op = async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Ok(Out::PoolEvent(e, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Ok(Out::Unit),
                }
            }
        };
        self.begin(token, op.boxed());
    }

    fn pools_handle(&self) -> Arc<Mutex<HashMap<u64, PoolHandle>>> {
        self.pools.clone()
    }

    fn pool_handle(&self, id: u64) -> PyResult<PoolHandle> {
        self.pools.lock().unwrap().get(&id).cloned().ok_or_else(|| errors::to_py(Error::Config(format!("no pool with id {id}"))))
    }
}

#[pymethods]
impl AsyncManager {
    #[new]
    fn new(options: &Bound<'_, PyDict>) -> PyResult<Self> {
        let cfg = config::manager(options)?;
        let (rx, tx) = UnixStream::pair().map_err(|e| errors::to_py(Error::Config(format!("socketpair: {e}"))))?;
        rx.set_nonblocking(true).ok();
        tx.set_nonblocking(true).ok();
        let wakeup = Arc::new(Wakeup { ready: Mutex::default(), signalled: AtomicBool::new(false), tx });
        let m = AsyncManager { pm: ProcessManager::new(cfg), wakeup, rx, ops: Mutex::default(), done: Mutex::default(), pools: Arc::default(), next: AtomicU64::new(1) };
        Ok(m)
    }

    /// The descriptor the event loop watches; readable when `drain` has work.
    fn wake_fd(&self) -> i32 {
        self.rx.as_raw_fd()
    }

    /// Starts delivering lifecycle events through `drain` (token 0).
    fn subscribe_events(&self) {
        self.watch_events(self.pm.events());
    }

    /// Finished operations as `(token, ok, value_or_exception)`.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
        self.wakeup.signalled.store(false, Ordering::Release);
        self.poll_ready();
        let done = std::mem::take(&mut *self.done.lock().unwrap());
        let out = PyList::empty(py);
        for (token, result) in done {
            let (ok, value) = match result {
                Ok(Out::Event(e, rx)) => {
                    self.watch_events(rx);
                    (true, reports::event(py, &e)?.into_any())
                }
                Ok(Out::PoolEvent(e, rx)) => {
                    self.watch_pool_events(token, rx);
                    (true, reports::pool_event(py, &e)?.into_any())
                }
                Ok(out) => (true, to_python(py, out)?),
                Err(e) => (false, errors::to_py(e).into_value(py).into_bound(py).into_any()),
            };
            out.append((token, ok, value))?;
        }
        Ok(out)
    }

    /// Drops an operation: a call in flight is cancelled in the worker.
    fn cancel(&self, token: u64) {
        let op = self.ops.lock().unwrap().remove(&token);
        drop(op);
    }

    fn spawn(&self, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let target = config::target(target, in_process)?;
        let options = config::spawn(options)?;
        let pm = self.pm.clone();
        Ok(self.start(async move { pm.spawn(target, options).await.map(|h| Out::Id(h.id())) }))
    }

    #[pyo3(signature = (process_id, method, args, timeout=None, key=None))]
    fn call(&self, process_id: u64, method: &str, args: &Bound<'_, PyTuple>, timeout: Option<f64>, key: Option<String>) -> PyResult<u64> {
        let args = convert::args_to_values(args).map_err(errors::to_py)?;
        let options = config::call(timeout, key)?;
        let pm = self.pm.clone();
        let method = method.to_string();
        Ok(self.start(async move { pm.call_value(process_id, &method, args, options).await.map(Out::Value) }))
    }

    fn kill(&self, process_id: u64) -> u64 {
        let pm = self.pm.clone();
        self.start(async move { pm.kill(process_id).await.map(|_| Out::Unit) })
    }

    fn get_health(&self, process_id: u64) -> u64 {
        let pm = self.pm.clone();
        self.start(async move { pm.get_health(process_id).await.map(Out::Health) })
    }

    fn get_metrics(&self, process_id: u64) -> u64 {
        let pm = self.pm.clone();
        self.start(async move { pm.get_metrics(process_id).await.map(Out::Metrics) })
    }

    fn shutdown(&self) -> u64 {
        let pm = self.pm.clone();
        self.start(async move {
            pm.shutdown().await;
            Ok(Out::Unit)
        })
    }

    /// Blocks briefly (one engine round trip) for the process table.
    fn list_processes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let pm = self.pm.clone();
        let list = py.detach(move || futures::executor::block_on(pm.list_processes()));
        reports::infos(py, &list)
    }

    fn get_process<'py>(&self, py: Python<'py>, process_id: u64) -> PyResult<Bound<'py, PyDict>> {
        let pm = self.pm.clone();
        let info = py.detach(move || futures::executor::block_on(pm.get_process(process_id))).map_err(errors::to_py)?;
        reports::info(py, &info)
    }

    // ---- pools ----

    fn pool(&self, target: &Bound<'_, PyAny>, in_process: bool, options: &Bound<'_, PyDict>) -> PyResult<u64> {
        let target = config::target(target, in_process)?;
        let options = config::pool(options)?;
        let pm = self.pm.clone();
        let pools = self.pools_handle();
        Ok(self.start(async move {
            let h = pm.pool(target, options).await?;
            let id = h.id();
            pools.lock().unwrap().insert(id, h);
            Ok(Out::Id(id))
        }))
    }

    #[pyo3(signature = (pool_id, method, args, timeout=None, key=None))]
    fn pool_call(&self, pool_id: u64, method: &str, args: &Bound<'_, PyTuple>, timeout: Option<f64>, key: Option<String>) -> PyResult<u64> {
        let args = convert::args_to_values(args).map_err(errors::to_py)?;
        let h = self.pool_handle(pool_id)?.with_options(config::call(timeout, key)?);
        let method = method.to_string();
        Ok(self.start(async move { h.call_value(&method, args).await.map(Out::Value) }))
    }

    /// Blocks briefly (one engine round trip) for the pool's size.
    fn pool_size(&self, py: Python<'_>, pool_id: u64) -> PyResult<usize> {
        let h = self.pool_handle(pool_id)?;
        py.detach(move || futures::executor::block_on(h.size())).map_err(errors::to_py)
    }

    fn pool_scale(&self, pool_id: u64, size: usize) -> PyResult<u64> {
        let h = self.pool_handle(pool_id)?;
        Ok(self.start(async move { h.scale(size).await.map(|_| Out::Unit) }))
    }

    fn pool_metrics(&self, pool_id: u64) -> PyResult<u64> {
        let h = self.pool_handle(pool_id)?;
        Ok(self.start(async move { h.metrics().await.map(Out::PoolMetrics) }))
    }

    fn pool_drain(&self, pool_id: u64) -> PyResult<u64> {
        let h = self.pool_handle(pool_id)?;
        Ok(self.start(async move { h.drain().await.map(|_| Out::Unit) }))
    }

    fn pool_destroy(&self, pool_id: u64) -> PyResult<u64> {
        let h = self.pool_handle(pool_id)?;
        Ok(self.start(async move { h.destroy().await.map(|_| Out::Unit) }))
    }

    /// Starts delivering the pool's events through `drain`, all under the returned token.
    fn pool_subscribe(&self, pool_id: u64) -> PyResult<u64> {
        let rx = self.pool_handle(pool_id)?.events();
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.watch_pool_events(token, rx);
        Ok(token)
    }
}

fn to_python(py: Python<'_>, out: Out) -> PyResult<Bound<'_, PyAny>> {
    Ok(match out {
        Out::Value(v) => convert::to_py(py, &v)?,
        Out::Id(id) => id.into_pyobject(py)?.into_any(),
        Out::Unit => py.None().into_bound(py),
        Out::Health(h) => reports::health(py, &h)?.into_any(),
        Out::Metrics(m) => reports::metrics(py, &m)?.into_any(),
        Out::Event(e, _) => reports::event(py, &e)?.into_any(),
        Out::PoolEvent(e, _) => reports::pool_event(py, &e)?.into_any(),
        Out::PoolMetrics(m) => reports::pool_metrics(py, &m)?.into_any(),
    })
}
