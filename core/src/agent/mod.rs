//! The agent: the worker runtime. It connects to a host, registers with the
//! per-spawn secret and serves the `Worker` interface for a [`Handler`] that a
//! front end supplies (a Rust [`WorkerDef`], a Python object, a JS object).
//!
//! Calls run concurrently as local tasks; `cancel` aborts one; `health` and
//! `metrics` are answered by the agent itself, never queued behind calls. When
//! the host goes away the agent stops, so a worker never outlives its host.
//!
//! A Rust worker executable is a `main` that builds a [`WorkerDef`] and runs it:
//!
//! ```no_run
//! use titan_pm::agent::WorkerDef;
//! fn main() {
//!     WorkerDef::new("calculator", "1.0.0")
//!         .method("add", |(a, b): (i64, i64)| async move { Ok(a + b) })
//!         .run();
//! }
//! ```

mod capabilities;
pub mod dial;
pub mod middleware;
mod shared_view;
mod rust_worker;
mod server;

use std::rc::Rc;

use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::RpcSystem;
use futures::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

pub use capabilities::{Capabilities, ProcessRef, Remote, Reply, SharedRef, MAX_REMOTE_IN_FLIGHT};
pub use rust_worker::{WorkerDef, WorkerError};
pub use shared_view::SharedView;

use crate::error::{Error, Result};
use crate::protocol::{Description, ErrorInfo, HealthReport};
use crate::titan_capnp::{registry, worker};
use crate::transport::{ipc, tcp, unix, vat_network, Endpoint};
use crate::value::Value;

/// What a call knows about itself.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub call_id: u64,
    /// Time left when the host sent the call, in ms; 0 means no deadline.
    pub timeout_ms: u64,
    pub trace_id: String,
    pub span_id: String,
    /// The caller's span (empty for a root span).
    pub parent_span_id: String,
    /// The call may start only while fewer than this many calls run in the worker (a
    /// pool member's `concurrency` while the pool pipelines calls to it); 0: no bound.
    /// The agent enforces it unless the handler [gates calls itself](Handler::gates_calls).
    pub max_running: u32,
}

impl CallContext {
    /// The call's W3C trace context (what `get_trace_context()` returns in a worker).
    pub fn trace(&self) -> crate::policy::trace::TraceContext {
        crate::policy::trace::TraceContext {
            trace_id: self.trace_id.clone(),
            span_id: self.span_id.clone(),
            parent_span_id: self.parent_span_id.clone(),
        }
    }
}

/// A worker implementation, as a front end supplies it. Futures are local: the
/// agent runs on one thread. Dropping a call's future cancels the call.
pub trait Handler: 'static {
    fn describe(&self) -> Description;
    /// Receives, just before `init`, what the host handed over: the processes
    /// this worker may call and its class's shared state. The default drops them.
    fn grant(&self, _capabilities: Capabilities) {}
    /// Runs once, with the spawn dependencies (a map), before any call.
    fn init(&self, _dependencies: Value) -> LocalBoxFuture<'static, Result<(), ErrorInfo>> {
        Box::pin(async { Ok(()) })
    }
    fn call(&self, method: &str, args: Vec<Value>, ctx: CallContext) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>>;
    /// `true`: the runtime behind the handler holds calls itself, in arrival order, until
    /// fewer than `ctx.max_running` run there, so the agent hands each call over at once.
    /// For a runtime on another thread (a Node worker thread or a child's JS thread) that
    /// saves a thread round trip per pipelined call: the next call is already waiting
    /// where it runs. `false` (the default): the agent's gate holds them.
    fn gates_calls(&self) -> bool {
        false
    }
    /// The worker's own health check; `None` (the default) is always healthy.
    fn health(&self) -> Option<LocalBoxFuture<'static, HealthReport>> {
        None
    }
    /// Shutdown hooks, run before the worker stops.
    fn shutdown(&self) -> LocalBoxFuture<'static, ()> {
        Box::pin(async {})
    }
    /// Resolves, with an exit code if there is one, when the runtime behind the
    /// handler ends on its own (a JS worker thread that exited, say). The agent
    /// then stops serving and the host sees the instance crash. `None` (the
    /// default): the handler lives as long as the agent.
    fn terminated(&self) -> Option<LocalBoxFuture<'static, Option<i32>>> {
        None
    }
    /// The lines the runtime behind the handler writes on a stdout/stderr of its
    /// own, as `(is_stderr, line)`, when they can be told apart from the host's (a
    /// Node worker thread's): a host running the handler in-process keeps them in
    /// the process's log ring (`titan-pm logs`); printing them stays the front
    /// end's. Taken once. `None` (the default): it has no output of its own (an
    /// in-process worker writes to the host's stdout, which is no one worker's).
    fn output_lines(&self) -> Option<tokio::sync::mpsc::Receiver<(bool, String)>> {
        None
    }
}

/// Serves `handler` on `stream` until the host says shut down or goes away.
/// Must run inside a `tokio::task::LocalSet`.
pub async fn serve<S>(stream: S, secret: &str, handler: Rc<dyn Handler>) -> Result<()>
where
    S: AsyncRead + AsyncWrite + 'static,
{
    serve_until(stream, secret, handler, futures::future::pending()).await.map(|_| ())
}

/// [`serve`], that also ends (as [`dial::Session::Stopped`]) when `stop` resolves.
pub(crate) async fn serve_until<S>(stream: S, secret: &str, handler: Rc<dyn Handler>, stop: impl std::future::Future<Output = ()>) -> Result<dial::Session>
where
    S: AsyncRead + AsyncWrite + 'static,
{
    let terminated = handler.terminated();
    let mut rpc = RpcSystem::new(Box::new(vat_network(stream, Side::Client)), None);
    let registry: registry::Client = rpc.bootstrap(Side::Server);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let worker: worker::Client = capnp_rpc::new_client(server::WorkerServer::new(handler, stop_tx));
    let mut connection = tokio::task::spawn_local(rpc);

    let mut req = registry.register_request();
    req.get().set_secret(secret);
    req.get().set_worker(worker);
    req.get().set_pid(std::process::id());
    tokio::select! {
        r = req.send().promise => {
            r.map_err(|e| Error::Refused(format!("the host refused this worker: {}", e.extra)))?;
        }
        _ = &mut connection => return Err(Error::Refused("the host closed the connection before registration".into())),
    }
    let terminated = async move {
        match terminated {
            Some(f) => f.await,
            None => futures::future::pending().await,
        }
    };
    tokio::select! {
        _ = connection => {}                // the host went away
        exit_code = terminated => return Err(Error::ProcessCrashed { process_id: 0, exit_code, signal: None }),
        _ = stop_rx => {
            // Let the shutdown reply reach the host before the connection drops.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        _ = stop => return Ok(dial::Session::Stopped),
    }
    Ok(dial::Session::Ended { joined: true })
}

/// Serves `handler` to a host on the same thread, without a connection: the
/// `Worker` capability is a local client (values still cross the codec). The
/// future resolves when the agent stops: `Ok` after `shutdown`, or
/// `Err(ProcessCrashed)` when the handler's runtime ended (`Handler::terminated`).
pub(crate) fn serve_local(handler: Rc<dyn Handler>) -> (worker::Client, LocalBoxFuture<'static, Result<()>>) {
    let terminated = handler.terminated();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let worker: worker::Client = capnp_rpc::new_client(server::WorkerServer::new(handler, stop_tx));
    let done = async move {
        let terminated = async move {
            match terminated {
                Some(f) => f.await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop_rx => Ok(()),
            exit_code = terminated => Err(Error::ProcessCrashed { process_id: 0, exit_code, signal: None }),
        }
    };
    (worker, Box::pin(done))
}

/// Connects to `endpoint` and serves `handler` there.
pub async fn connect_and_serve(endpoint: Endpoint, secret: &str, handler: Rc<dyn Handler>) -> Result<()> {
    crate::telemetry::init();
    match endpoint {
        Endpoint::Fd(fd) => serve(ipc::from_fd(fd).map_err(io_err)?, secret, handler).await,
        Endpoint::Unix(path) => serve(unix::connect(&path).await.map_err(io_err)?, secret, handler).await,
        Endpoint::Tcp(addr) => serve(tcp::connect(&addr).await.map_err(io_err)?, secret, handler).await,
        Endpoint::Ws(url) => {
            let (_, authority) = crate::transport::ws::split_url(&url).ok_or_else(|| Error::Config(format!("{url:?} is not a ws:// URL")))?;
            let tcp = tcp::connect(authority).await.map_err(io_err)?;
            serve(crate::transport::ws::connect(tcp, &url).await.map_err(io_err)?, secret, handler).await
        }
        Endpoint::Remote(options) => dial::serve_remote(&options, secret, handler).await,
    }
}

/// Runs a worker executable: reads the endpoint and secret from the environment,
/// serves until told to stop, then exits the process. Never returns.
pub fn run_executable(make_handler: impl FnOnce() -> Rc<dyn Handler>) -> ! {
    // Not started by a host: the dial flags (`--connect`, ...) say where to go.
    let child = std::env::var_os(crate::transport::ENV_IPC_FD).is_some() || std::env::var_os(crate::transport::ENV_CONNECT).is_some();
    if !child {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Err(e) = crate::transport::dial::DialOptions::take_args(&args) {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    let (endpoint, secret) = match Endpoint::from_env() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, connect_and_serve(endpoint, &secret, make_handler()));
    drop(local);
    drop(rt);
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("titan-pm worker: {e}");
            std::process::exit(1);
        }
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::Refused(format!("cannot reach the host: {e}"))
}
