//! The `Worker` capability an agent serves: decodes calls, runs them on the
//! handler as abortable local tasks, and answers health and metrics itself.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
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

pub(super) struct WorkerServer {
    handler: Rc<dyn Handler>,
    running: RefCell<HashMap<u64, Running>>,
    requests: Cell<u64>,
    errors: Cell<u64>,
    cancelled: Cell<u64>,
    stop: RefCell<Option<oneshot::Sender<()>>>,
    /// What init handed over; calls may add processes to it (handles passed as arguments).
    caps: RefCell<Option<super::Capabilities>>,
}

impl WorkerServer {
    pub(super) fn new(handler: Rc<dyn Handler>, stop: oneshot::Sender<()>) -> Self {
        WorkerServer {
            handler,
            running: RefCell::default(),
            requests: Cell::new(0),
            errors: Cell::new(0),
            cancelled: Cell::new(0),
            stop: RefCell::new(Some(stop)),
            caps: RefCell::new(None),
        }
    }

    async fn run_call(&self, method: &str, args: Vec<value::Value>, ctx: CallContext) -> Result<value::Value, ErrorInfo> {
        let call_id = ctx.call_id;
        let (abort, registration) = AbortHandle::new_pair();
        let done = Rc::new(Notify::new());
        self.running.borrow_mut().insert(call_id, Running { abort, done: done.clone() });
        // The method runs as its call's span: calls it makes are children of it (`policy::trace::current`).
        let trace = ctx.trace();
        let work = AssertUnwindSafe(super::middleware::Chain::for_method(method).call(&self.handler, method, args, ctx)).catch_unwind();
        let work = crate::policy::trace::scope(trace, work);
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
