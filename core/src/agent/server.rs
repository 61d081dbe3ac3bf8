//! The `Worker` capability an agent serves: decodes calls, runs them on the
//! handler as abortable local tasks (a call with a `maxRunning` bound first
//! waits at the [`Gate`], in arrival order), and answers health and metrics itself.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use capnp::capability::Rc as CapRc;
use futures::future::{AbortHandle, Abortable};
use futures::FutureExt;
use tokio::sync::{oneshot, Notify};

use super::{CallContext, Handler};
use crate::protocol::{ErrorInfo, ErrorInfoKind, HealthReport};
use crate::titan_capnp::worker;
use crate::value;

struct Running {
    abort: AbortHandle,
    done: Rc<Notify>,
}

/// Bounds how many calls run at once for calls that carry a bound (a pool
/// member's `concurrency`, while the pool pipelines calls to it): such a call
/// waits, in arrival order, until fewer than its bound run. Calls without a
/// bound start at once but count as running.
#[derive(Default)]
struct Gate {
    active: Cell<usize>,
    /// Waiting calls, oldest first: (their bound, where the slot is handed over).
    waiting: RefCell<VecDeque<(usize, oneshot::Sender<()>)>>,
}

impl Gate {
    /// Takes a running slot: at once if `max` is 0 or there is room and nobody waits, else in turn.
    async fn enter(self: &Rc<Self>, max: usize) -> Slot {
        if max == 0 || (self.waiting.borrow().is_empty() && self.active.get() < max) {
            self.active.set(self.active.get() + 1);
            return Slot(self.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().push_back((max, tx));
        let mut wait = Waiting { gate: self.clone(), rx: Some(rx) };
        let rx = wait.rx.as_mut().expect("set above");
        // The sender lives in `waiting` until the slot is handed over (or this wait is dropped).
        if rx.await.is_err() {
            self.active.set(self.active.get() + 1); // the gate is going away: run
        }
        wait.rx = None;
        Slot(self.clone())
    }

    fn leave(&self) {
        self.active.set(self.active.get() - 1);
        self.hand_over();
    }

    /// Hands free slots to the oldest waiting calls.
    fn hand_over(&self) {
        let mut waiting = self.waiting.borrow_mut();
        loop {
            let Some((max, closed)) = waiting.front().map(|(max, tx)| (*max, tx.is_closed())) else { return };
            if !closed && self.active.get() >= max {
                return;
            }
            let (_, tx) = waiting.pop_front().expect("front exists");
            if closed {
                continue;
            }
            self.active.set(self.active.get() + 1);
            if tx.send(()).is_err() {
                self.active.set(self.active.get() - 1);
            }
        }
    }
}

/// A running slot; given back on drop.
struct Slot(Rc<Gate>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A call waiting at the gate; if it is dropped (cancelled) after its slot was
/// handed over but before it took it, the slot goes back.
struct Waiting {
    gate: Rc<Gate>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.leave();
            } else {
                self.gate.hand_over(); // our place, if first, no longer blocks the others
            }
        }
    }
}

pub(super) struct WorkerServer {
    handler: Rc<dyn Handler>,
    running: RefCell<HashMap<u64, Running>>,
    gate: Rc<Gate>,
    requests: Cell<u64>,
    errors: Cell<u64>,
    cancelled: Cell<u64>,
    /// Its own process's cpu between two `metrics` requests.
    usage: RefCell<crate::usage::CpuSampler>,
    stop: RefCell<Option<oneshot::Sender<()>>>,
    /// What init handed over; calls may add processes to it (handles passed as arguments).
    caps: RefCell<Option<super::Capabilities>>,
}

impl WorkerServer {
    pub(super) fn new(handler: Rc<dyn Handler>, stop: oneshot::Sender<()>) -> Self {
        WorkerServer {
            handler,
            running: RefCell::default(),
            gate: Rc::default(),
            requests: Cell::new(0),
            errors: Cell::new(0),
            cancelled: Cell::new(0),
            usage: RefCell::default(),
            stop: RefCell::new(Some(stop)),
            caps: RefCell::new(None),
        }
    }

    async fn run_call(&self, method: &str, args: Vec<value::Value>, ctx: CallContext) -> Result<value::Value, ErrorInfo> {
        let call_id = ctx.call_id;
        // A handler that holds calls where they run gets them at once (see `Handler::gates_calls`).
        let max_running = if self.handler.gates_calls() { 0 } else { ctx.max_running as usize };
        let (abort, registration) = AbortHandle::new_pair();
        let done = Rc::new(Notify::new());
        self.running.borrow_mut().insert(call_id, Running { abort, done: done.clone() });
        // The method runs as its call's span: calls it makes are children of it (`policy::trace::current`).
        let trace = ctx.trace();
        // The gate is entered before the handler sees the call (a fast Python method runs inside `call`).
        let gate = self.gate.clone();
        let work = async move {
            let _slot = gate.enter(max_running).await;
            let work = AssertUnwindSafe(super::middleware::Chain::for_method(method).call(&self.handler, method, args, ctx)).catch_unwind();
            crate::policy::trace::scope(trace, work).await
        };
        let outcome = Abortable::new(work, registration).await;
        self.running.borrow_mut().remove(&call_id);
        done.notify_waiters();
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(ErrorInfo::remote("panic", panic_message(&panic))),
            Err(_aborted) => Err(ErrorInfo::new(ErrorInfoKind::Cancelled, "CancelledError", "call cancelled by the host")),
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the method panicked".into())
}

impl worker::Server for WorkerServer {
    async fn describe(
        self: CapRc<Self>,
        _: worker::DescribeParams,
        mut results: worker::DescribeResults,
    ) -> Result<(), capnp::Error> {
        let mut d = self.handler.describe();
        d.pid = std::process::id();
        d.write(results.get().init_description());
        Ok(())
    }

    async fn init(self: CapRc<Self>, params: worker::InitParams, mut results: worker::InitResults) -> Result<(), capnp::Error> {
        let deps = match value::read(params.get()?.get_dependencies()?, "dependencies") {
            Ok(d) => d,
            Err(e) => {
                results.get().set_failed(true);
                ErrorInfo::serialization(e).write(results.get().init_error());
                return Ok(());
            }
        };
        let caps = super::Capabilities::new();
        caps.fill(params.get()?)?;
        *self.caps.borrow_mut() = Some(caps.clone());
        self.handler.grant(caps);
        let outcome = AssertUnwindSafe(self.handler.init(deps)).catch_unwind().await;
        let error = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(panic) => ErrorInfo::new(ErrorInfoKind::Init, "panic", panic_message(&panic)),
        };
        results.get().set_failed(true);
        error.write(results.get().init_error());
        Ok(())
    }

    async fn call(self: CapRc<Self>, params: worker::CallParams, mut results: worker::CallResults) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let method = p.get_method()?.to_str()?.to_string();
        let c = p.get_context()?;
        if c.has_grants() {
            let caps = self.caps.borrow().clone();
            let given = match caps {
                Some(caps) => caps.give(c.get_grants()?).map_err(|e| ErrorInfo::new(ErrorInfoKind::Remote, "ConfigError", e.extra)),
                None => Err(ErrorInfo::new(ErrorInfoKind::Remote, "ConfigError", "a call gave processes before init")),
            };
            if let Err(e) = given {
                self.errors.set(self.errors.get() + 1);
                e.write(results.get().init_result().init_error());
                return Ok(());
            }
        }
        let ctx = CallContext {
            call_id: c.get_call_id(),
            timeout_ms: c.get_timeout_ms(),
            trace_id: c.get_trace_id()?.to_str()?.to_string(),
            span_id: c.get_span_id()?.to_str()?.to_string(),
            parent_span_id: c.get_parent_span_id()?.to_str()?.to_string(),
            max_running: c.get_max_running(),
        };
        self.requests.set(self.requests.get() + 1);
        let outcome = match value::read_list(p.get_args()?, "args") {
            Ok(args) => self.run_call(&method, args, ctx).await,
            Err(e) => Err(ErrorInfo::serialization(e)),
        };
        // A result capnp cannot hold (too large, too deep) fails this call, not the worker.
        let outcome = outcome.and_then(|v| match value::check(&v, "result") {
            Ok(_) => Ok(v),
            Err(e) => Err(ErrorInfo::serialization(e)),
        });
        let r = results.get().init_result();
        match outcome {
            Ok(v) => value::write(&v, r.init_ok()),
            Err(e) => {
                self.errors.set(self.errors.get() + 1);
                e.write(r.init_error());
            }
        }
        Ok(())
    }

    async fn cancel(self: CapRc<Self>, params: worker::CancelParams, mut results: worker::CancelResults) -> Result<(), capnp::Error> {
        let call_id = params.get()?.get_call_id();
        let running = self.running.borrow().get(&call_id).map(|r| (r.abort.clone(), r.done.clone()));
        let Some((abort, done)) = running else {
            return Ok(());
        };
        let stopped = done.notified();
        abort.abort();
        stopped.await;
        self.cancelled.set(self.cancelled.get() + 1);
        results.get().set_found(true);
        Ok(())
    }

    async fn health(self: CapRc<Self>, _: worker::HealthParams, mut results: worker::HealthResults) -> Result<(), capnp::Error> {
        let report = match self.handler.health() {
            None => HealthReport::healthy(),
            Some(check) => match AssertUnwindSafe(check).catch_unwind().await {
                Ok(r) => r,
                Err(panic) => HealthReport::unhealthy("health_check", panic_message(&panic)),
            },
        };
        report.write(results.get().init_report());
        Ok(())
    }

    async fn metrics(self: CapRc<Self>, _: worker::MetricsParams, mut results: worker::MetricsResults) -> Result<(), capnp::Error> {
        let mut m = results.get().init_metrics();
        m.set_requests(self.requests.get());
        m.set_errors(self.errors.get());
        m.set_in_flight(self.running.borrow().len() as u32);
        m.set_cancelled(self.cancelled.get());
        let (cpu, memory) = self.usage.borrow_mut().sample(std::process::id());
        m.set_cpu(cpu);
        m.set_memory(memory);
        Ok(())
    }

    async fn shutdown(self: CapRc<Self>, _: worker::ShutdownParams, _: worker::ShutdownResults) -> Result<(), capnp::Error> {
        let _ = AssertUnwindSafe(self.handler.shutdown()).catch_unwind().await;
        if let Some(stop) = self.stop.borrow_mut().take() {
            let _ = stop.send(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn the_gate_bounds_running_calls_in_arrival_order_and_skips_cancelled_ones() {
        let gate = Rc::new(Gate::default());
        let first = gate.enter(1).now_or_never().expect("room: at once");
        let mut second = Box::pin(gate.enter(1));
        let mut third = Box::pin(gate.enter(1));
        assert!((&mut second).now_or_never().is_none(), "full: it waits");
        assert!((&mut third).now_or_never().is_none());
        let unbounded = gate.enter(0).now_or_never().expect("no bound: at once");
        assert_eq!(gate.active.get(), 2);
        drop(unbounded);
        drop(second); // cancelled while waiting
        assert_eq!(gate.active.get(), 1);
        drop(first);
        let third = (&mut third).now_or_never().expect("the slot went to the next waiting call");
        assert_eq!(gate.active.get(), 1);
        drop(third);
        assert_eq!(gate.active.get(), 0);
        assert!(gate.waiting.borrow().is_empty());
    }
}
