//! The one async helper of this bridge: how a core future reaches Python.
//! An operation (spawn, call, ...) is a core future started under a token; its
//! result reaches Python as `(token, ok, value)` and the Python side resolves
//! the awaiting future. Dropping an operation (`cancel`) cancels it in the
//! engine, and so a call in the worker. Two drivers run the core engine:
//!
//! - [`LoopRuntime`] (the default): the engine runs on the event loop's own
//!   thread. `titan_pm._loop` wraps the loop's selector, whose `select` calls
//!   [`LoopRuntime::wait`]: the engine runs, with the GIL released, until one
//!   of the loop's own descriptors is ready, its timeout passes, or a result is
//!   ready for Python. No thread hop per call; the engine progresses whenever
//!   the loop is not running Python code.
//! - [`ThreadDriver`]: the engine runs on a thread of its own (any event loop,
//!   and supervision while the loop is busy); results wake a socket the loop
//!   watches, and `drain` hands them over in batches. No engine thread takes the GIL.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;
use std::time::Duration;

use futures::future::{AbortHandle, Abortable, BoxFuture};
use futures::FutureExt;
use pyo3::prelude::*;
use pyo3::types::PyList;
use titan_pm::pool::{PoolEvent, PoolMetrics};
use titan_pm::{Error, Event, HealthReport, ProcessMetrics, Value};
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, Notify};

use crate::{convert, errors, reports, SameThread};

/// What an operation ends with, converted to Python when it is handed over.
pub enum Out {
    Value(Value),
    Id(u64),
    Unit,
    Health(HealthReport),
    Metrics(ProcessMetrics),
    /// An event, and the receiver to listen on for the next one (same token).
    Event(Event, broadcast::Receiver<Event>),
    PoolEvent(PoolEvent, broadcast::Receiver<PoolEvent>),
    PoolMetrics(PoolMetrics),
}

pub(crate) type Op = BoxFuture<'static, Result<Out, Error>>;
pub(crate) type Done = Vec<(u64, Result<Out, Error>)>;

pub(crate) fn events_op(mut rx: broadcast::Receiver<Event>) -> Op {
    async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Ok(Out::Event(e, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(Out::Unit),
            }
        }
    }
    .boxed()
}

pub(crate) fn pool_events_op(mut rx: broadcast::Receiver<PoolEvent>) -> Op {
    async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Ok(Out::PoolEvent(e, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(Out::Unit),
            }
        }
    }
    .boxed()
}

/// Converts finished operations to `(token, ok, value)`; an event stream is re-armed under its token.
pub(crate) fn hand_over<'py>(py: Python<'py>, done: Done, rearm: impl Fn(u64, Op)) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for (token, result) in done {
        let (ok, value) = match result {
            Ok(Out::Event(e, rx)) => {
                rearm(token, events_op(rx));
                (true, reports::to_py(py, &e)?.into_any())
            }
            Ok(Out::PoolEvent(e, rx)) => {
                rearm(token, pool_events_op(rx));
                (true, reports::to_py(py, &e)?.into_any())
            }
            Ok(out) => (true, to_python(py, out)?),
            Err(e) => (false, errors::to_py(e).into_value(py).into_bound(py).into_any()),
        };
        out.append((token, ok, value))?;
    }
    Ok(out)
}

pub(crate) fn to_python(py: Python<'_>, out: Out) -> PyResult<Bound<'_, PyAny>> {
    Ok(match out {
        Out::Value(v) => convert::to_py(py, &v)?,
        Out::Id(id) => id.into_pyobject(py)?.into_any(),
        Out::Unit => py.None().into_bound(py),
        Out::Health(h) => reports::to_py(py, &h)?.into_any(),
        Out::Metrics(m) => reports::to_py(py, &m)?.into_any(),
        Out::Event(e, _) => reports::to_py(py, &e)?.into_any(),
        Out::PoolEvent(e, _) => reports::to_py(py, &e)?.into_any(),
        Out::PoolMetrics(m) => reports::to_py(py, &m)?.into_any(),
    })
}

// ---- the loop driver ----

/// The core engine's runtime on an event loop's thread (one per loop, shared by its managers).
#[pyclass(frozen, module = "titan_pm._native")]
pub struct LoopRuntime {
    owner: ThreadId,
    inner: ManuallyDrop<LoopInner>,
}

pub(crate) struct LoopInner {
    done: Rc<RefCell<Done>>,
    notify: Rc<Notify>,
    tasks: RefCell<HashMap<u64, AbortHandle>>,
    next: Cell<u64>,
    watched: RefCell<Option<(RawFd, Rc<AsyncFd<Fd>>)>>,
    local: tokio::task::LocalSet,
    rt: tokio::runtime::Runtime,
}

/// A descriptor the loop owns; watched, never closed, here.
pub(crate) struct Fd(RawFd);
impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

// SAFETY: the runtime is only touched on its owner thread: `inner()` checks,
// and a drop on another thread (a garbage collection there) leaks it instead.
unsafe impl Send for LoopRuntime {}
unsafe impl Sync for LoopRuntime {}

impl Drop for LoopRuntime {
    fn drop(&mut self) {
        if std::thread::current().id() == self.owner {
            // SAFETY: taken once, here.
            let LoopInner { done, tasks, watched, local, rt, .. } = unsafe { ManuallyDrop::take(&mut self.inner) };
            drop((done, tasks, watched, local));
            // A garbage collection may drop us inside another runtime (a handler's code).
            rt.shutdown_background();
        }
    }
}

impl LoopRuntime {
    pub(crate) fn inner(&self) -> PyResult<&LoopInner> {
        if std::thread::current().id() != self.owner {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a titan_pm.ProcessManager must be used from its event loop's thread",
            ));
        }
        Ok(&self.inner)
    }
}

impl LoopInner {
    pub(crate) fn begin(&self, token: u64, op: Op) {
        self.begin_local(token, op)
    }

    /// Runs `op` on the loop's thread; its result is handed over under `token`.
    pub(crate) fn begin_local(&self, token: u64, op: futures::future::LocalBoxFuture<'static, Result<Out, Error>>) {
        let (abort, registration) = AbortHandle::new_pair();
        let (done, notify) = (self.done.clone(), self.notify.clone());
        self.local.spawn_local(async move {
            if let Ok(r) = Abortable::new(op, registration).await {
                done.borrow_mut().push((token, r));
                notify.notify_one();
            }
        });
        self.tasks.borrow_mut().insert(token, abort);
    }

    pub(crate) fn token(&self) -> u64 {
        let t = self.next.get() + 1;
        self.next.set(t);
        t
    }

    /// Runs `fut` to completion on the engine (the GIL released).
    pub(crate) fn block_on<T: Send>(&self, py: Python<'_>, fut: impl Future<Output = T>) -> T {
        let job = SameThread((self, fut));
        py.detach(move || {
            let (me, fut) = job.into_inner();
            me.local.block_on(&me.rt, fut)
        })
    }

    fn watched(&self, fd: RawFd) -> Result<Rc<AsyncFd<Fd>>, String> {
        if let Some((f, w)) = self.watched.borrow().as_ref() {
            if *f == fd {
                return Ok(w.clone());
            }
        }
        let _rt = self.rt.enter();
        // SAFETY: the loop's selector keeps `fd` open until it closes, and it calls
        // `release` (dropping this registration) before it does.
        let w = unsafe { AsyncFd::register_with_interest(Fd(fd), tokio::io::Interest::READABLE) };
        let w = Rc::new(w.map_err(|e| e.to_string())?);
        *self.watched.borrow_mut() = Some((fd, w.clone()));
        Ok(w)
    }
}

pub(crate) fn readable_now(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no timeout.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

#[pymethods]
impl LoopRuntime {
    #[new]
    fn new() -> PyResult<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| errors::to_py(Error::Config(format!("cannot start a runtime: {e}"))))?;
        let inner = LoopInner {
            done: Rc::default(),
            notify: Rc::default(),
            tasks: RefCell::default(),
            next: Cell::new(0),
            watched: RefCell::default(),
            local: tokio::task::LocalSet::new(),
            rt,
        };
        Ok(LoopRuntime { owner: std::thread::current().id(), inner: ManuallyDrop::new(inner) })
    }

    /// The selector's wait: runs the engine until `fd` (the loop's own selector)
    /// is readable, `timeout` seconds pass (None: no limit), or results are ready.
    #[pyo3(signature = (fd, timeout=None))]
    fn wait(&self, py: Python<'_>, fd: RawFd, timeout: Option<f64>) -> PyResult<()> {
        // A signal (Ctrl-C) is raised from here, as from the selector's own wait.
        let inner = self.inner()?;
        let at_once = timeout == Some(0.0) || !inner.done.borrow().is_empty() || readable_now(fd);
        let watched = if at_once { None } else { Some(inner.watched(fd).map_err(|e| errors::to_py(Error::Config(format!("cannot watch the loop: {e}"))))?) };
        let (done, notify) = (inner.done.clone(), inner.notify.clone());
        inner.block_on(py, SameThread(async move {
            // One turn of the engine: ready tasks run and I/O is polled without blocking.
            tokio::task::yield_now().await;
            let Some(watched) = watched else { return Ok(()) };
            if !done.borrow().is_empty() {
                return Ok(());
            }
            let limit = async {
                match timeout {
                    Some(t) => tokio::time::sleep(Duration::from_secs_f64(t.max(0.0))).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = watched.readable() => if let Ok(mut g) = r { g.clear_ready() },
                _ = notify.notified() => {}
                _ = limit => {}
                e = crate::host::blocking::interrupted() => return Err(e),
            }
            Ok(())
        }))
    }

    /// Finished operations as `(token, ok, value_or_exception)`.
    fn take_done<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let inner = self.inner()?;
        let done = std::mem::take(&mut *inner.done.borrow_mut());
        {
            let mut tasks = inner.tasks.borrow_mut();
            for (token, _) in &done {
                tasks.remove(token);
            }
        }
        hand_over(py, done, |token, op| inner.begin(token, op))
    }

    /// Ends the current (or next) `wait` early: Python code run from inside it
    /// scheduled work on the loop (a task, a callback).
    fn kick(&self) -> PyResult<()> {
        self.inner()?.notify.notify_one();
        Ok(())
    }

    /// Stops watching the loop's descriptor (the selector is about to close it).
    fn release(&self) -> PyResult<()> {
        self.inner()?.watched.borrow_mut().take();
        Ok(())
    }

    pub(crate) fn cancel(&self, token: u64) -> PyResult<()> {
        if let Some(abort) = self.inner()?.tasks.borrow_mut().remove(&token) {
            abort.abort();
        }
        Ok(())
    }
}

/// `SameThread` for a future: lets a `!Send` future cross `detach`, which runs on this thread.
impl<F: Future> Future for SameThread<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of the only field.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

// ---- the thread driver ----

pub(crate) struct Wakeup {
    ready: Mutex<Vec<u64>>,
    signalled: AtomicBool,
    tx: UnixStream,
}

impl Wakeup {
    /// Makes the loop's descriptor readable, once until the next `drain`.
    fn signal(&self) {
        if !self.signalled.swap(true, Ordering::AcqRel) {
            let _ = (&self.tx).write(&[1]);
        }
    }
}

pub(crate) struct TokenWaker {
    token: u64,
    wakeup: Arc<Wakeup>,
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

/// Operations polled on the Python thread with wakers that name them; the engine runs on its own thread.
pub(crate) struct ThreadDriver {
    pub(crate) wakeup: Arc<Wakeup>,
    pub(crate) rx: UnixStream,
    pub(crate) ops: Mutex<HashMap<u64, Op>>,
    pub(crate) done: Mutex<Done>,
    pub(crate) next: AtomicU64,
}

impl ThreadDriver {
    pub(crate) fn new() -> PyResult<Self> {
        let (rx, tx) = UnixStream::pair().map_err(|e| errors::to_py(Error::Config(format!("socketpair: {e}"))))?;
        rx.set_nonblocking(true).ok();
        tx.set_nonblocking(true).ok();
        let wakeup = Arc::new(Wakeup { ready: Mutex::default(), signalled: AtomicBool::new(false), tx });
        Ok(ThreadDriver { wakeup, rx, ops: Mutex::default(), done: Mutex::default(), next: AtomicU64::new(1) })
    }

    /// Polls `op` once (the first poll sends the job to the engine) and keeps it.
    pub(crate) fn begin(&self, token: u64, op: Op) {
        self.ops.lock().unwrap().insert(token, op);
        self.wakeup.ready.lock().unwrap().push(token);
        self.poll_ready();
        if !self.done.lock().unwrap().is_empty() {
            self.wakeup.signal();
        }
    }

    pub(crate) fn poll_ready(&self) {
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

    pub(crate) fn take(&self) -> Done {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
        self.wakeup.signalled.store(false, Ordering::Release);
        self.poll_ready();
        std::mem::take(&mut *self.done.lock().unwrap())
    }
}

