//! A remote worker's life: dial the listening host, join under its name, serve
//! until the connection ends, and dial again with a bounded exponential backoff
//! (from [`FIRST_RETRY`], doubling to [`MAX_RETRY`]; reset once a connection
//! has joined). On `SIGTERM` (or `SIGINT`) it stops dialling, lets the calls in
//! flight finish (at most [`DRAIN_LIMIT`]), runs the shutdown hooks and returns.
//! The agent owns those two signals: a handler the runtime hosting it put there
//! first is set aside ([`take_stop_signals`]; Node's resets the terminal and
//! re-raises the signal, which would end the worker mid-call).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use tokio::sync::Notify;

use super::{Capabilities, CallContext, Handler};
use crate::error::{Error, Result};
use crate::protocol::{Description, ErrorInfo, HealthReport};
use crate::transport::dial::DialOptions;
use crate::value::Value;

pub const FIRST_RETRY: Duration = Duration::from_millis(100);
pub const MAX_RETRY: Duration = Duration::from_secs(5);
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How long one dial (TCP connect and TLS handshake) may take.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// Dials, serves and re-dials until told to stop.
pub(crate) async fn serve_remote(options: &DialOptions, secret: &str, handler: Rc<dyn Handler>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let config = options.client_config()?;
    let inner = handler.clone();
    let counted = Rc::new(Counted { inner: handler, in_flight: Rc::new(Cell::new(0)), idle: Rc::new(Notify::new()) });
    let (in_flight, idle) = (counted.in_flight.clone(), counted.idle.clone());
    let handler: Rc<dyn Handler> = counted;
    let io = |e: std::io::Error| Error::Config(format!("cannot listen for signals: {e}"));
    take_stop_signals();
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let stopping = Rc::new(Notify::new());
    let stop_requested = Rc::new(Cell::new(false));
    {
        let (stopping, stop_requested) = (stopping.clone(), stop_requested.clone());
        tokio::task::spawn_local(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            stop_requested.set(true);
            stopping.notify_waiters();
            stopping.notify_one();
        });
    }
    // Resolves once a stop was asked for and the calls in flight are done (or the drain limit passed).
    let drained = {
        let (stopping, stop_requested) = (stopping.clone(), stop_requested.clone());
        move || {
            let (stopping, stop_requested, in_flight, idle) = (stopping.clone(), stop_requested.clone(), in_flight.clone(), idle.clone());
            async move {
                if !stop_requested.get() {
                    stopping.notified().await;
                }
                let wait = async {
                    while in_flight.get() > 0 {
                        idle.notified().await;
                    }
                };
                if tokio::time::timeout(DRAIN_LIMIT, wait).await.is_err() {
                    eprintln!("titan-pm worker: {} calls still running after {DRAIN_LIMIT:?}; leaving", in_flight.get());
                }
            }
        }
    };
    let mut delay = FIRST_RETRY;
    loop {
        let attempt = async {
            let unreachable = |e: String| Error::Refused(format!("cannot reach {}: {e}", options.connect));
            let stream = tokio::time::timeout(CONNECT_LIMIT, options.connect(config.as_ref()))
                .await
                .map_err(|_| unreachable(format!("no answer within {CONNECT_LIMIT:?}")))?
                .map_err(|e| unreachable(e.to_string()))?;
            super::serve_until(stream, secret, handler.clone(), drained()).await
        };
        let result = attempt.await;
        if stop_requested.get() {
            break;
        }
        match result {
            Ok(Session::Stopped) => break,
            Ok(Session::Ended { joined }) => {
                if joined {
                    delay = FIRST_RETRY;
                }
                eprintln!("titan-pm worker: the connection to {} ended; dialling again in {} ms", options.connect, delay.as_millis());
            }
            Err(e) => eprintln!("titan-pm worker: {e}; dialling again in {} ms", delay.as_millis()),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopping.notified() => break,
        }
        if stop_requested.get() {
            break;
        }
        delay = (delay * 2).min(MAX_RETRY);
    }
    inner.shutdown().await;
    Ok(())
}

/// Puts `SIGTERM` and `SIGINT` back to their default action, once per process and
/// before tokio's handler is installed: tokio's handler also calls the one it
/// found (unless that is the default), so a runtime's own handler that exits at
/// once (Node's) would end the worker before the drain.
fn take_stop_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: SIG_DFL is always a valid disposition; no handler of ours is replaced (tokio's comes after).
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    });
}

/// How one connection ended.
pub(crate) enum Session {
    /// It ended (the host went away or said stop); `joined`: it had registered.
    Ended { joined: bool },
    /// The worker was told to stop and drained.
    Stopped,
}

/// The worker's handler, counting calls in flight (for the drain).
struct Counted {
    inner: Rc<dyn Handler>,
    in_flight: Rc<Cell<usize>>,
    idle: Rc<Notify>,
}

struct InFlight(Rc<Cell<usize>>, Rc<Notify>);
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
        self.1.notify_waiters();
    }
}

impl Handler for Counted {
    fn describe(&self) -> Description {
        self.inner.describe()
    }
    fn grant(&self, capabilities: Capabilities) {
        self.inner.grant(capabilities)
    }
    fn init(&self, dependencies: Value) -> LocalBoxFuture<'static, Result<(), ErrorInfo>> {
        self.inner.init(dependencies)
    }
    fn call(&self, method: &str, args: Vec<Value>, ctx: CallContext) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>> {
        self.in_flight.set(self.in_flight.get() + 1);
        let guard = InFlight(self.in_flight.clone(), self.idle.clone());
        let call = self.inner.call(method, args, ctx);
        Box::pin(async move {
            let r = call.await;
            drop(guard);
            r
        })
    }
    fn health(&self) -> Option<LocalBoxFuture<'static, HealthReport>> {
        self.inner.health()
    }
    fn shutdown(&self) -> LocalBoxFuture<'static, ()> {
        // Between connections the worker lives on: its hooks run once, when it stops for good.
        Box::pin(async {})
    }
    fn terminated(&self) -> Option<LocalBoxFuture<'static, Option<i32>>> {
        self.inner.terminated()
    }
}
