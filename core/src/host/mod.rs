//! The host side: the [`ProcessManager`] that spawns workers, calls them,
//! restarts them, measures them and shuts them down.
//!
//! Every operation runs on one engine thread (capnp-rpc is single-threaded); a
//! `ProcessManager` is a cheap, `Send` handle to it. [`ProcessManager::new`]
//! starts the engine on a thread of its own; [`ProcessManager::new_local`] runs
//! it on the caller's `LocalSet`, which saves two thread hops per call.
//!
//! ```no_run
//! # async fn demo() -> titan_pm::Result<()> {
//! use titan_pm::{ProcessManager, ManagerConfig, SpawnOptions};
//! let pm = ProcessManager::new(ManagerConfig::default());
//! let calc = pm.spawn("target/debug/rust-calculator", SpawnOptions::default()).await?;
//! assert_eq!(calc.call::<i64>("add", (5, 3)).await?, 8);
//! println!("{:?}", pm.get_metrics(calc.id()).await?);
//! pm.shutdown().await;
//! # Ok(()) }
//! ```

pub(crate) mod engine;
mod forkserver;
mod grants;
pub(crate) mod joins;
pub mod intercept;
mod launch;
mod limits;
pub mod live;
pub mod logs;
pub(crate) mod metrics;
mod output;
pub(crate) mod policies;
pub(crate) mod process;
pub(crate) mod registry;

use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use intercept::Interceptor;
pub use logs::LogLine;
pub use metrics::{Latency, MethodMetrics, ProcessMetrics};
pub use output::{Output, OutputStream, MAX_LINE_BYTES, OUTPUT_QUEUE_BYTES};
pub use crate::policy::RestartPolicy;
pub use crate::state::ProcessState;

use crate::agent::Handler;
use crate::error::{Error, Result};
use crate::protocol::{ErrorInfo, HealthReport};
use crate::transport::Transport;
use crate::value::{self, Value};
use engine::Engine;

/// Where a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// In the host's engine thread; values still cross the codec.
    None,
    /// A thread of the host process.
    Worker,
    /// A child OS process: the only mode that survives a crash of the worker.
    #[default]
    Child,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::None => "none",
            Isolation::Worker => "worker",
            Isolation::Child => "child",
        }
    }
}

impl std::str::FromStr for Isolation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Isolation::None),
            "worker" => Ok(Isolation::Worker),
            "child" => Ok(Isolation::Child),
            _ => Err(Error::Config(format!("unknown isolation {s:?} (expected none, worker or child)"))),
        }
    }
}

/// Builds a worker's handler inside the thread that serves it (isolation `worker` or `none`).
pub type HandlerFactory = Arc<dyn Fn() -> std::result::Result<Rc<dyn Handler>, ErrorInfo> + Send + Sync>;

/// What to run.
#[derive(Clone)]
pub enum Target {
    /// A file: `*.py` runs under Python, `*.js/*.mjs/*.cjs` under Node, anything else as an executable.
    Path(String),
    /// An in-process handler (isolation `worker` or `none`). With `own_thread`, the
    /// handler forwards to a runtime that already has a thread of its own (a Node
    /// worker thread): isolation `worker` then serves it on the engine like `none`,
    /// and the process still reports isolation `worker`.
    Handler { name: String, factory: HandlerFactory, own_thread: bool },
}

impl Target {
    pub fn handler(name: &str, factory: impl Fn() -> std::result::Result<Rc<dyn Handler>, ErrorInfo> + Send + Sync + 'static) -> Self {
        Target::Handler { name: name.to_string(), factory: Arc::new(factory), own_thread: false }
    }
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Path(p) => p.clone(),
            Target::Handler { name, .. } => name.clone(),
        }
    }
}

impl From<&str> for Target {
    fn from(p: &str) -> Self {
        Target::Path(p.to_string())
    }
}
impl From<String> for Target {
    fn from(p: String) -> Self {
        Target::Path(p)
    }
}
impl From<PathBuf> for Target {
    fn from(p: PathBuf) -> Self {
        Target::Path(p.display().to_string())
    }
}
impl From<&std::path::Path> for Target {
    fn from(p: &std::path::Path) -> Self {
        Target::Path(p.display().to_string())
    }
}

/// The manager's defaults; durations in Rust are `Duration`s.
#[derive(Clone)]
pub struct ManagerConfig {
    pub isolation: Isolation,
    pub transport: Transport,
    pub restart: RestartPolicy,
    /// The default deadline of every call (`resources.timeout`).
    pub timeout: Duration,
    /// Memory and CPU limits of every worker (`resources.maxMemory`, `resources.maxCpu`).
    pub resources: Resources,
    /// Periodic health probes and what is measured (`monitoring`).
    pub monitoring: Monitoring,
    /// How long a worker has to start, register and run `init`.
    pub spawn_timeout: Duration,
    /// A health probe that takes longer reports `unhealthy`.
    pub health_timeout: Duration,
    /// How long `shutdown` waits at each step (drain, hooks, SIGTERM) before the next.
    pub shutdown_timeout: Duration,
    /// How long a timed-out call's worker has to confirm the cancel before it is recycled.
    pub cancel_grace: Duration,
    pub output: Output,
    /// The interpreter for `*.py` targets.
    pub python: String,
    /// The runtime for `*.js` targets.
    pub node: String,
    /// The address the `tcp` transport listens on.
    pub tcp_host: String,
    /// How long the engine thread keeps polling after a job before it sleeps:
    /// spends CPU to save a thread wake-up per call. `ZERO` (the default) turns it
    /// off: measured side by side it helped nowhere on a 2-vCPU machine (the Rust
    /// bench's 64-in-flight and p50 were no better with 0.2 ms), and it hurt p99
    /// badly when the workers need the cores (see bench/README.md).
    pub spin: Duration,
    /// Start `*.py` children from a fork server: one pre-imported interpreter per
    /// manager, started with the manager (`fork_server_early`) or on the first
    /// Python child spawn, that forks each child
    /// (`forkServer`, default true; see `host/forkserver.rs` for when a spawn
    /// still starts a fresh interpreter).
    pub fork_server: bool,
    /// Start the fork server when the manager starts (in the background: the manager does not
    /// wait for it) instead of at the first `*.py` child spawn, so that spawn does not pay the
    /// server's start. The options reader sets it for a Python host whose default isolation is
    /// `child` (see `options::manager`); default false.
    pub fork_server_early: bool,
    /// Where workflow runs are journaled (`workflows`).
    pub workflows: WorkflowsConfig,
    /// What every timer reads (restart backoff, breaker, TTLs, intervals); call deadlines stay real.
    pub clock: crate::clock::Clock,
    /// A test harness's hooks (the `testing` module); `None` in production.
    pub interceptor: Option<Arc<dyn Interceptor>>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            isolation: Isolation::Child,
            transport: Transport::Ipc,
            restart: RestartPolicy::default(),
            timeout: Duration::from_secs(30),
            resources: Resources::default(),
            monitoring: Monitoring::default(),
            spawn_timeout: Duration::from_secs(10),
            health_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            cancel_grace: Duration::from_secs(2),
            output: Output::Prefix,
            python: "python3".into(),
            node: "node".into(),
            tcp_host: "127.0.0.1".into(),
            spin: Duration::ZERO,
            fork_server: true,
            fork_server_early: false,
            workflows: WorkflowsConfig::default(),
            clock: crate::clock::Clock::Real,
            interceptor: None,
        }
    }
}

/// The manager's `workflows` options (the workflow engine above the host reads them).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowsConfig {
    /// The journal: a SQLite file or a `postgres://` URL (read as text); `None` (`':memory:'`, the default) keeps runs in this process only.
    pub journal: Option<PathBuf>,
    /// How long a host's claim on a run lasts without renewal (renewed every third of it
    /// while the run goes on). A run whose host died is resumed by another after this.
    pub lease: Duration,
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        WorkflowsConfig { journal: None, lease: Duration::from_secs(30) }
    }
}

/// Limits on a worker's resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// RSS in bytes above which the worker is restarted (event `memory`); a Node
    /// worker thread also gets it as its heap limit.
    pub max_memory: Option<u64>,
    /// Percent of one core; enforced where the OS allows it (see the README).
    pub max_cpu: Option<f64>,
}

/// What the manager watches on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitoring {
    /// Periodic health probes; 3 unhealthy answers in a row restart the worker (event `unhealthy`).
    pub health_check: Option<HealthProbe>,
    pub metrics: bool,
    pub tracing: bool,
    /// Export `@Trace` spans over OTLP/HTTP (`monitoring.tracing: { endpoint, ... }`).
    pub otlp: Option<crate::telemetry::OtlpConfig>,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring { health_check: None, metrics: true, tracing: false, otlp: None }
    }
}

/// How often the manager probes each process's health (a class's `@HealthCheck({ interval })` overrides it).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthProbe {
    pub interval: Duration,
}

impl Default for HealthProbe {
    fn default() -> Self {
        HealthProbe { interval: Duration::from_secs(30) }
    }
}

/// Per-spawn options; `None` takes the manager's default.
#[derive(Clone, Default)]
pub struct SpawnOptions {
    pub isolation: Option<Isolation>,
    pub transport: Option<Transport>,
    /// Passed to the worker's `init` (a map; `Null` for none).
    pub dependencies: Value,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub name: Option<String>,
    /// The version the worker's `@Process` must declare; a mismatch is a `SpawnError`.
    pub version: Option<String>,
    pub timeout: Option<Duration>,
    pub resources: Option<Resources>,
    pub restart: Option<RestartPolicy>,
    pub output: Option<Output>,
    /// Processes (or pools) the worker may call, by the name it will use
    /// (`ctx.process("users")`): each becomes a capability handed to it at `init`.
    /// It can reach these and no other process.
    pub processes: Vec<(String, u64)>,
}

impl SpawnOptions {
    /// The limits a worker spawned with these options runs under: its own `resources`
    /// when given, else the manager's (`manager`). The one place this choice is made.
    pub fn resources_or(&self, manager: &Resources) -> Resources {
        self.resources.clone().unwrap_or_else(|| manager.clone())
    }
}

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub timeout: Option<Duration>,
    /// A routing key for a pool's hash strategies.
    pub key: Option<String>,
    /// How many times a call whose worker crashed is sent again, after the restart
    /// (a pool: to another worker) and within the same deadline; `None`: 0 for a
    /// process, the pool's `retries` for a pool. Only for calls safe to repeat
    /// (at-least-once); see [`crate::policy::retry`].
    pub retries: Option<u32>,
}

/// One row of `list_processes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessInfo {
    pub process_id: u64,
    pub name: String,
    /// The OS pid: the worker's for `child`, the host's for `none` and `worker`.
    pub pid: u32,
    pub state: ProcessState,
    pub restarts: u32,
    pub isolation: Isolation,
    pub transport: Transport,
}

/// Something that happened to a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub process_id: u64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Spawned { pid: u32 },
    Ready { pid: u32 },
    Crashed { exit_code: Option<i32>, signal: Option<i32> },
    Restarting { attempt: u32, delay: Duration },
    Failed,
    Exited,
    /// A worker connection was refused: a wrong secret, or (before registering) an
    /// upgrade refused, malformed or too large, or too many bytes.
    ConnectionRefused,
    /// The worker's RSS went above `resources.maxMemory`: it is restarted.
    MemoryExceeded { rss: u64, limit: u64 },
    /// The periodic health probe found the worker unhealthy this many times in a row: it is restarted.
    Unhealthy { probes: u32 },
    /// A method's `@SelfHeal` saw `symptom` and runs `action` (restart, recycle, reinit).
    SelfHeal { method: String, symptom: String, action: &'static str },
    /// A listening host (`ProcessManager::listen`) refused a connection: `reason` says why
    /// (no client certificate, one from another CA, a wrong token, too many pending, ...).
    Refused { reason: String },
}

impl EventKind {
    /// Every process event name, as front ends accept them for listeners.
    pub const NAMES: &'static [&'static str] = &["spawn", "ready", "crash", "restart", "failed", "exit", "refused", "memory", "unhealthy", "selfheal"];

    /// The event's name, as front ends emit it.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Spawned { .. } => "spawn",
            EventKind::Ready { .. } => "ready",
            EventKind::Crashed { .. } => "crash",
            EventKind::Restarting { .. } => "restart",
            EventKind::Failed => "failed",
            EventKind::Exited => "exit",
            EventKind::ConnectionRefused => "refused",
            EventKind::MemoryExceeded { .. } => "memory",
            EventKind::Unhealthy { .. } => "unhealthy",
            EventKind::SelfHeal { .. } => "selfheal",
            EventKind::Refused { .. } => "refused",
        }
    }
}

type Job = Box<dyn FnOnce(Rc<Engine>) -> LocalBoxFuture<'static, ()> + Send>;

pub(crate) struct Shared {
    jobs: mpsc::UnboundedSender<Job>,
    events: broadcast::Sender<Event>,
    /// The `Send` side of every live service above the host (a pool's event channel), by id.
    services: std::sync::Mutex<std::collections::HashMap<u64, Arc<dyn std::any::Any + Send + Sync>>>,
    /// What `workflows` says, and the manager's workflow journal once opened (type-erased:
    /// the `workflow` module above the host owns it).
    pub(crate) workflows: WorkflowsConfig,
    pub(crate) journal: std::sync::Mutex<Option<Arc<dyn std::any::Any + Send + Sync>>>,
    /// The manager's clock (`ManagerConfig::clock`), for what runs above the engine (workflow retries).
    clock: crate::clock::Clock,
    /// `ManagerConfig::interceptor`, for what runs above the engine (workflow runs).
    interceptor: Option<Arc<dyn Interceptor>>,
    /// Where the HTTP gateway (`crate::gateway`) is bound, once `listen` started one.
    pub(crate) gateway: std::sync::Mutex<Option<std::net::SocketAddr>>,
}

/// Spawns, calls, supervises and stops workers. Clone it freely.
#[derive(Clone)]
pub struct ProcessManager {
    pub(crate) shared: Arc<Shared>,
}

impl ProcessManager {
    /// Starts the engine on a thread of its own. Panics if the OS refuses the thread or
    /// its runtime (out of threads or memory); [`ProcessManager::try_new`] returns that instead.
    pub fn new(config: ManagerConfig) -> Self {
        Self::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`ProcessManager::new`], with the OS refusing the engine's thread or runtime as an
    /// `Error::Io` (what the Python and Node bridges use: a host program gets an error, not a panic).
    pub fn try_new(config: ManagerConfig) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the titan-pm engine's runtime", e))?;
        let (pm, run) = Self::build(config);
        std::thread::Builder::new()
            .name("titan-pm-engine".into())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, run());
            })
            .map_err(|e| Error::io("cannot start the titan-pm engine thread", e))?;
        Ok(pm)
    }

    /// Runs the engine on the current `LocalSet` (a current-thread runtime): no thread hops.
    /// Panics outside a `LocalSet`.
    pub fn new_local(config: ManagerConfig) -> Self {
        let (pm, run) = Self::build(config);
        tokio::task::spawn_local(run());
        pm
    }

    fn build(config: ManagerConfig) -> (Self, impl FnOnce() -> LocalBoxFuture<'static, ()> + Send) {
        crate::telemetry::init();
        let (jobs, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let workflows = config.workflows.clone();
        let clock = config.clock.clone();
        let interceptor = config.interceptor.clone();
        let pm = ProcessManager {
            shared: Arc::new(Shared {
                jobs,
                events: events.clone(),
                services: Default::default(),
                workflows,
                journal: Default::default(),
                clock,
                interceptor,
                gateway: Default::default(),
            }),
        };
        // Called on the engine's thread (the fork server's parent-death signal follows that thread).
        let run = move || -> LocalBoxFuture<'static, ()> {
            let fork_server = forkserver::Slot::for_manager(&config);
            Box::pin(Engine::run(config, events, rx, fork_server))
        };
        (pm, run)
    }

    /// Runs `f` on the engine and returns its result.
    pub(crate) async fn exec<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Engine>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        self.exec_with(false, f).await
    }

    /// Like `exec`; with `cancel_on_drop`, dropping the returned future also
    /// drops `f`'s future on the engine (so a dropped call is cancelled in the worker).
    pub(crate) async fn exec_with<T, F, Fut>(&self, cancel_on_drop: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Engine>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |engine| {
            Box::pin(async move {
                let mut tx = tx;
                let work = f(engine);
                if !cancel_on_drop {
                    let _ = tx.send(work.await);
                    return;
                }
                tokio::select! {
                    r = work => { let _ = tx.send(r); }
                    _ = tx.closed() => {}
                }
            })
        });
        self.shared.jobs.send(job).map_err(|_| Error::ManagerShutDown)?;
        rx.await.map_err(|_| Error::ManagerShutDown)?
    }

    /// Spawns `target` and waits until it has registered and run `init`.
    pub async fn spawn(&self, target: impl Into<Target>, options: SpawnOptions) -> Result<ProcessHandle> {
        let target = target.into();
        let id = self.exec(move |engine| async move { engine.spawn(target, options).await }).await?;
        Ok(ProcessHandle { pm: self.clone(), id, options: CallOptions::default() })
    }

    /// Keeps a service's `Send` side (a pool's event channel) under its id, for handles made later.
    pub(crate) fn register_service(&self, id: u64, handle: Arc<dyn std::any::Any + Send + Sync>) {
        self.shared.services.lock().unwrap_or_else(|e| e.into_inner()).insert(id, handle);
    }

    /// What [`register_service`](Self::register_service) kept under `id`.
    pub(crate) fn service(&self, id: u64) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.shared.services.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    pub(crate) fn forget_service(&self, id: u64) {
        self.shared.services.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// A handle to an existing process.
    pub fn handle(&self, process_id: u64) -> ProcessHandle {
        ProcessHandle { pm: self.clone(), id: process_id, options: CallOptions::default() }
    }

    /// Calls `method` on a process with already-converted arguments. Dropping
    /// the returned future cancels the call, in the worker too.
    pub async fn call_value(&self, process_id: u64, method: &str, args: Vec<Value>, options: CallOptions) -> Result<Value> {
        let method = method.to_string();
        let parent = crate::policy::trace::current();
        self.exec_with(true, move |engine| async move { engine.call(process_id, method, args, options, parent).await }).await
    }

    /// Stops a process at once (SIGKILL for a child). Not a crash: it is not restarted.
    pub async fn kill(&self, process_id: u64) -> Result<()> {
        self.exec(move |engine| async move { engine.kill(process_id).await }).await
    }

    /// Graceful restart: a new instance of the process starts; once it is ready,
    /// calls go to it while the old instance finishes its calls and stops (shutdown
    /// hooks, then SIGTERM, then SIGKILL). No call fails; the id stays, the pid changes.
    pub async fn restart(&self, process_id: u64) -> Result<()> {
        self.exec(move |engine| async move { engine.restart(process_id).await }).await
    }

    /// [`restart`](Self::restart) onto a new target and spawn options (a process
    /// file's changed entry): the new instance is launched from them and ready
    /// before the old one drains; the id stays, and later restarts use them too.
    pub async fn restart_with(&self, process_id: u64, target: impl Into<Target>, options: SpawnOptions) -> Result<()> {
        let target = target.into();
        self.exec(move |engine| async move { engine.restart_with(process_id, target, options).await }).await
    }

    /// Graceful stop, unlike [`kill`](Self::kill): new calls are refused, in-flight
    /// ones finish, the shutdown hooks run, then SIGTERM, then SIGKILL
    /// (`shutdownTimeout` per step). The process then leaves the list.
    pub async fn stop(&self, process_id: u64) -> Result<()> {
        self.exec(move |engine| async move { engine.stop(process_id).await }).await
    }

    /// The last `lines` output lines of one process (`Some(id)`) or of every process,
    /// oldest first; `0` gives every kept line (see [`logs::LOG_LINES`]).
    pub async fn logs(&self, process_id: Option<u64>, lines: usize) -> Result<Vec<LogLine>> {
        self.exec(move |engine| async move {
            let processes = match process_id {
                Some(id) => vec![engine.process(id)?],
                None => engine.processes(),
            };
            let mut all: Vec<LogLine> = processes.iter().flat_map(|p| p.logs.tail(lines)).collect();
            all.sort_by_key(|l| l.timestamp_ms); // stable: each process's own order is kept
            if lines > 0 && all.len() > lines {
                all.drain(..all.len() - lines);
            }
            Ok(all)
        })
        .await
    }

    /// Every output line written from now on, by any process (bounded: a reader more
    /// than [`logs::LOG_FOLLOW_BUFFER`] lines behind gets `Lagged` and skips).
    pub async fn follow_logs(&self) -> Result<broadcast::Receiver<LogLine>> {
        self.exec(|engine| async move { Ok(engine.log_sender().subscribe()) }).await
    }

    pub async fn list_processes(&self) -> Vec<ProcessInfo> {
        self.exec(|engine| async move { Ok(engine.list()) }).await.unwrap_or_default()
    }

    pub async fn get_process(&self, process_id: u64) -> Result<ProcessInfo> {
        self.exec(move |engine| async move { engine.process(process_id).map(|p| p.info()) }).await
    }

    /// The worker's own health check, answered out of band; `unhealthy` if it does not answer in time.
    pub async fn get_health(&self, process_id: u64) -> Result<HealthReport> {
        self.exec(move |engine| async move { Ok(engine.process(process_id)?.health().await) }).await
    }

    pub async fn get_metrics(&self, process_id: u64) -> Result<ProcessMetrics> {
        self.exec(move |engine| async move { Ok(engine.process(process_id)?.metrics()) }).await
    }

    /// The clock the manager's timers read (real time unless a test manager controls it).
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.shared.clock
    }

    /// The test harness's seam, if any (see [`Interceptor`]).
    pub(crate) fn interceptor(&self) -> Option<&Arc<dyn Interceptor>> {
        self.shared.interceptor.as_ref()
    }

    /// Lifecycle events of every process, from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The address of the manager's TCP listener (starting it if needed).
    pub async fn tcp_address(&self) -> Result<std::net::SocketAddr> {
        self.exec(|engine| async move { engine.registry.tcp_address().await }).await
    }

    /// The URL of the manager's `http` transport listener (`ws://127.0.0.1:PORT/PATH`, starting it if needed).
    pub async fn http_url(&self) -> Result<String> {
        self.exec(|engine| async move { Ok(engine.registry.endpoint(crate::transport::Transport::Http).await?.to_env_value()) }).await
    }

    /// Stops intake, drains in-flight calls, runs shutdown hooks, then SIGTERM and SIGKILL.
    pub async fn shutdown(&self) {
        let _ = self.exec(|engine| async move { engine.shutdown().await; Ok(()) }).await;
        self.shared.services.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A spawned process. Its id survives restarts.
#[derive(Clone)]
pub struct ProcessHandle {
    pm: ProcessManager,
    id: u64,
    options: CallOptions,
}

impl ProcessHandle {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn manager(&self) -> &ProcessManager {
        &self.pm
    }

    /// A view of this handle whose calls use `options`.
    pub fn with_options(&self, options: CallOptions) -> ProcessHandle {
        ProcessHandle { options, ..self.clone() }
    }

    /// Calls `method` with a tuple of arguments and decodes the result.
    pub async fn call<R: serde::de::DeserializeOwned>(&self, method: &str, args: impl serde::Serialize) -> Result<R> {
        let args = value::to_args(&args)?;
        value::from_value(self.call_value(method, args).await?)
    }

    pub async fn call_value(&self, method: &str, args: Vec<Value>) -> Result<Value> {
        self.pm.call_value(self.id, method, args, self.options.clone()).await
    }

    pub async fn info(&self) -> Result<ProcessInfo> {
        self.pm.get_process(self.id).await
    }

    /// What the worker said about itself when it started (name, version, methods, workflow).
    pub async fn describe(&self) -> Result<crate::protocol::Description> {
        let id = self.id;
        self.pm
            .exec(move |engine| async move {
                let p = engine.process(id)?;
                p.description().ok_or(Error::ProcessFailed { process_id: id, state: p.state() })
            })
            .await
    }
}
