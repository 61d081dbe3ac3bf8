//! The engine: the single thread that owns every process and every service
//! built on processes (pools, later supervisors), runs the jobs that
//! `ProcessManager` handles send it, and shuts everything down at the end.
//! Services live above the host: the engine knows them only as [`Service`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use tokio::sync::{broadcast, mpsc};

use super::process::{Process, Spec};
use super::registry::Registry;
use super::{CallOptions, Event, EventKind, Job, ManagerConfig, ProcessInfo, ProcessState, SpawnOptions, Target};
use crate::error::{Error, Result};
use crate::policy::trace::TraceContext;
use crate::value::Value;

pub(crate) struct Engine {
    pub config: ManagerConfig,
    pub registry: Rc<Registry>,
    /// Worker output being read or queued, flushed at shutdown.
    pub output: super::output::Tracker,
    /// Every class's @SharedState values.
    pub(crate) shared: super::grants::SharedStore,
    events: broadcast::Sender<Event>,
    processes: RefCell<BTreeMap<u64, Rc<Process>>>,
    services: RefCell<BTreeMap<u64, Rc<dyn Service>>>,
    /// Services another service owns and stops (a supervisor's pools): not stopped at shutdown directly.
    owned: RefCell<std::collections::BTreeSet<u64>>,
    /// Services being replaced under the same id (a supervised pool being restarted): calls
    /// that reach the old one wait, within their deadline, for the new one ([`Engine::replacement`]).
    replacing: RefCell<std::collections::BTreeSet<u64>>,
    replaced: tokio::sync::Notify,
    /// Ids and final states of killed processes, oldest first, at most [`ENDED_HISTORY`].
    ended: RefCell<VecDeque<(u64, ProcessState)>>,
    next_id: Cell<u64>,
    closed: Cell<bool>,
    /// New worker output lines, for `titan-pm logs --follow` (bounded; laggards skip).
    logs: broadcast::Sender<super::logs::LogLine>,
    /// The runtimes bridges own behind this engine's in-process instances (see `live.rs`).
    pub(crate) live: std::sync::Arc<super::live::LiveSet>,
    /// Where `@Trace` spans are exported, when `monitoring.tracing` names an endpoint.
    pub(crate) otlp: Option<std::sync::Arc<crate::telemetry::otlp::Exporter>>,
    /// The Python fork server, started with the manager or on the first `*.py` child spawn (`forkServer`).
    pub(crate) fork_server: super::forkserver::Slot,
}

/// How many killed processes the engine remembers (id and final state only).
pub(crate) const ENDED_HISTORY: usize = 1024;

impl Engine {
    /// Runs jobs until every `ProcessManager` handle is gone, then stops all processes.
    pub(crate) async fn run(
        config: ManagerConfig,
        events: broadcast::Sender<Event>,
        mut jobs: mpsc::UnboundedReceiver<Job>,
        fork_server: super::forkserver::Slot,
    ) {
        let otlp = config.monitoring.otlp.as_ref().and_then(|c| match crate::telemetry::otlp::Exporter::new(c) {
            Ok(x) => Some(std::sync::Arc::new(x)),
            Err(e) => {
                tracing::warn!(target: "titan_pm", "spans are not exported: {e}");
                None
            }
        });
        let engine = Rc::new(Engine {
            registry: Registry::new(config.tcp_host.clone(), events.clone()),
            output: Default::default(),
            shared: Default::default(),
            config,
            events,
            processes: RefCell::default(),
            services: RefCell::default(),
            owned: RefCell::default(),
            replacing: RefCell::default(),
            replaced: tokio::sync::Notify::new(),
            ended: RefCell::default(),
            next_id: Cell::new(0),
            closed: Cell::new(false),
            logs: broadcast::channel(super::logs::LOG_FOLLOW_BUFFER).0,
            live: Default::default(),
            fork_server,
            otlp,
        });
        engine.fork_server.adopt_early();
        let awake = Rc::new(tokio::sync::Notify::new());
        let spinner = (!engine.config.spin.is_zero())
            .then(|| tokio::task::spawn_local(stay_awake(awake.clone(), engine.config.spin)));
        while let Some(job) = jobs.recv().await {
            tokio::task::spawn_local(job(engine.clone()));
            awake.notify_one();
        }
        if let Some(s) = spinner {
            s.abort();
        }
        engine.shutdown().await;
    }

    pub(crate) fn emit(&self, process_id: u64, kind: EventKind) {
        let event = Event { process_id, kind };
        if let Some(hooks) = &self.config.interceptor {
            hooks.event(&event);
        }
        let _ = self.events.send(event);
    }

    pub(crate) fn log_sender(&self) -> broadcast::Sender<super::logs::LogLine> {
        self.logs.clone()
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        id
    }

    pub(crate) async fn spawn(self: &Rc<Self>, target: Target, options: SpawnOptions) -> Result<u64> {
        Ok(self.start_process(target, options).await?.id)
    }

    /// The name and launch spec of a spawn, its options checked.
    fn spec(&self, target: Target, mut options: SpawnOptions) -> Result<(String, Spec)> {
        if !matches!(options.dependencies, Value::Null | Value::Map(_)) {
            return Err(Error::Config(format!("dependencies must be a map, not {}", options.dependencies.type_name())));
        }
        super::grants::given_dependencies(&mut options.dependencies, &mut options.processes)?;
        crate::value::check(&options.dependencies, "dependencies")?;
        for (name, id) in &options.processes {
            if self.process(*id).is_err() && !self.services.borrow().contains_key(id) {
                return Err(Error::Config(format!("processes.{name}: no process or pool with id {id}")));
            }
        }
        let name = options.name.clone().unwrap_or_else(|| default_name(&target));
        let spec = Spec {
            resources: options.resources_or(&self.config.resources),
            version: options.version,
            named: options.name.is_some(),
            processes: options.processes,
            isolation: options.isolation.unwrap_or(self.config.isolation),
            transport: options.transport.unwrap_or(self.config.transport),
            target,
            dependencies: options.dependencies,
            env: options.env,
            args: options.args,
            timeout: options.timeout.unwrap_or(self.config.timeout),
            restart: options.restart.unwrap_or_else(|| self.config.restart.clone()),
            output: options.output.unwrap_or_else(|| self.config.output.clone()),
        };
        Ok((name, spec))
    }

    /// Starts a process and lists it; it exists only if its first instance came up.
    pub(crate) async fn start_process(self: &Rc<Self>, target: Target, options: SpawnOptions) -> Result<Rc<Process>> {
        if self.closed.get() {
            return Err(Error::ManagerShutDown);
        }
        let (name, spec) = self.spec(target, options)?;
        if let Some(hooks) = &self.config.interceptor {
            hooks.before_spawn(&[&name])?;
        }
        let process = Process::start(self.next_id(), name.clone(), spec, self).await?;
        if self.closed.get() {
            process.kill().await;
            return Err(Error::ManagerShutDown);
        }
        if let Some(hooks) = &self.config.interceptor {
            // The worker's own names are known only now: the process's (a file's
            // declared name) and the name its class declares.
            let listed = process.info().name;
            let declared = process.description().map(|d| d.name).unwrap_or_default();
            let names: Vec<&str> = [listed.as_str(), declared.as_str()].into_iter().filter(|n| !n.is_empty() && *n != name).collect();
            if !names.is_empty() {
                if let Err(e) = hooks.before_spawn(&names) {
                    process.kill().await;
                    return Err(e);
                }
            }
            hooks.spawned(process.id, &listed);
        }
        self.processes.borrow_mut().insert(process.id, process.clone());
        Ok(process)
    }

    /// Drops a process from the list (a pool member that was replaced or removed).
    pub(crate) fn forget(&self, id: u64) {
        self.processes.borrow_mut().remove(&id);
    }

    /// A new id for a process or a service.
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(crate) fn add_service(&self, id: u64, service: Rc<dyn Service>) {
        self.services.borrow_mut().insert(id, service);
    }

    /// Adds a service that another one owns and stops (a supervisor's pool): shutdown leaves it to its owner.
    pub(crate) fn add_owned_service(&self, id: u64, service: Rc<dyn Service>) {
        self.owned.borrow_mut().insert(id);
        self.services.borrow_mut().insert(id, service);
        self.end_replacing(id);
    }

    /// The service under `id` is about to be replaced by a new one under the same id.
    pub(crate) fn begin_replacing(&self, id: u64) {
        self.replacing.borrow_mut().insert(id);
    }

    /// The replacement is in place, or will not come: calls waiting for it go on.
    pub(crate) fn end_replacing(&self, id: u64) {
        if self.replacing.borrow_mut().remove(&id) {
            self.replaced.notify_waiters();
        }
    }

    /// For a call that reached `old`, a service that is being replaced: waits until
    /// `deadline` for its replacement. `None`: there is none (not being replaced, the
    /// replacement failed, or the deadline passed first: `timed_out` is then true).
    pub(crate) async fn replacement<T: Service>(&self, id: u64, old: &Rc<T>, deadline: std::time::Instant) -> (Option<Rc<T>>, bool) {
        loop {
            let notified = self.replaced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(new) = self.service::<T>(id).filter(|s| !Rc::ptr_eq(s, old)) {
                return (Some(new), false);
            }
            if !self.replacing.borrow().contains(&id) {
                return (None, false);
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return (None, true);
            }
        }
    }

    /// The service under `id`, as its own type (`None` if there is none, or it is another kind).
    pub(crate) fn service<T: Service>(&self, id: u64) -> Option<Rc<T>> {
        let s = self.services.borrow().get(&id).cloned()?;
        s.into_any().downcast::<T>().ok()
    }

    /// Every service of type `T`, by id.
    pub(crate) fn services_of<T: Service>(&self) -> Vec<Rc<T>> {
        let all: Vec<_> = self.services.borrow().values().cloned().collect();
        all.into_iter().filter_map(|s| s.into_any().downcast::<T>().ok()).collect()
    }

    pub(crate) fn remove_service(&self, id: u64) {
        self.owned.borrow_mut().remove(&id);
        self.services.borrow_mut().remove(&id);
    }

    pub(crate) fn process(&self, id: u64) -> Result<Rc<Process>> {
        if let Some(p) = self.processes.borrow().get(&id) {
            return Ok(p.clone());
        }
        match self.ended.borrow().iter().find(|(e, _)| *e == id) {
            Some((_, state)) => Err(Error::ProcessFailed { process_id: id, state: *state }),
            None => Err(Error::NotFound { what: "process", id }),
        }
    }

    pub(crate) async fn call(&self, id: u64, method: String, args: Vec<Value>, options: CallOptions, parent: Option<TraceContext>) -> Result<Value> {
        self.process(id)?.call(&method, &args, &options, parent.as_ref()).await
    }

    /// Calls a process, or a service that takes calls (a pool), by id: what a worker's `Caller` does.
    pub(crate) async fn call_any(&self, id: u64, method: String, args: Vec<Value>, options: CallOptions, parent: Option<TraceContext>) -> Result<Value> {
        let service = self.services.borrow().get(&id).cloned();
        if let Some(call) = service.and_then(|s| s.call(method.clone(), args.clone(), options.clone(), parent.clone())) {
            return call.await;
        }
        self.call(id, method, args, options, parent).await
    }

    /// Kills a process and forgets it: it leaves the list after its `exit` event, and
    /// only its id and final state are kept, in a bounded history (so a later call
    /// through an old handle still gets `ProcessFailed` with the state).
    pub(crate) async fn kill(&self, id: u64) -> Result<()> {
        let process = self.process(id)?;
        if let Some(hooks) = &self.config.interceptor {
            hooks.killed(id);
        }
        process.kill().await;
        self.retire(id, process.state());
        Ok(())
    }

    /// Graceful restart: a new instance is ready before the old one drains and stops.
    pub(crate) async fn restart(self: &Rc<Self>, id: u64) -> Result<()> {
        self.process(id)?.replace(self, None).await
    }

    /// `restart` with a new target and spawn options: the id stays.
    pub(crate) async fn restart_with(self: &Rc<Self>, id: u64, target: Target, options: SpawnOptions) -> Result<()> {
        let process = self.process(id)?;
        let (_, spec) = self.spec(target, options)?;
        process.replace(self, Some(spec)).await
    }

    /// Graceful stop (drain, shutdown hooks, SIGTERM, SIGKILL), then forgets the process like `kill`.
    pub(crate) async fn stop(&self, id: u64) -> Result<()> {
        let process = self.process(id)?;
        process.stop(self.config.shutdown_timeout).await;
        self.emit(id, EventKind::Exited);
        self.retire(id, process.state());
        Ok(())
    }

    /// Every listed process (pool members included), by id.
    pub(crate) fn processes(&self) -> Vec<Rc<Process>> {
        self.processes.borrow().values().cloned().collect()
    }


    /// Drops a stopped process from the list, remembering its final state.
    pub(crate) fn retire(&self, id: u64, state: ProcessState) {
        self.processes.borrow_mut().remove(&id);
        let mut ended = self.ended.borrow_mut();
        if ended.len() >= ENDED_HISTORY {
            ended.pop_front();
        }
        ended.push_back((id, state));
    }

    pub(crate) fn all_processes(&self) -> Vec<Rc<Process>> {
        self.processes.borrow().values().cloned().collect()
    }

    /// The ids of every live service (pools), in order.
    pub(crate) fn service_ids(&self) -> Vec<u64> {
        self.services.borrow().keys().copied().collect()
    }

    pub(crate) fn list(&self) -> Vec<ProcessInfo> {
        self.processes.borrow().values().map(|p| p.info()).collect()
    }

    pub(crate) async fn shutdown(self: &Rc<Self>) {
        self.closed.set(true);
        // One deadline for everything: `shutdown_timeout` is the total, as users read it.
        let deadline = std::time::Instant::now() + self.config.shutdown_timeout;
        let owned = std::mem::take(&mut *self.owned.borrow_mut());
        let services: Vec<_> = std::mem::take(&mut *self.services.borrow_mut())
            .into_iter()
            .filter(|(id, _)| !owned.contains(id))
            .map(|(_, s)| s)
            .collect();
        let processes: Vec<_> = self.processes.borrow().values().cloned().collect();
        let services = futures::future::join_all(services.into_iter().map(|s| s.stop(self.clone(), deadline)));
        let processes = futures::future::join_all(processes.iter().map(|p| p.stop_by(deadline)));
        futures::future::join(services, processes).await;
        // What the workers printed last reaches the host's output (within the same deadline).
        self.output.flushed_by(deadline).await;
    }
}

/// Something the engine owns above single processes (a pool, a supervisor): stopped at shutdown, found by id.
pub(crate) trait Service: std::any::Any {
    /// Stops it for good (at shutdown), by `deadline`.
    fn stop(self: Rc<Self>, engine: Rc<Engine>, deadline: std::time::Instant) -> futures::future::LocalBoxFuture<'static, ()>;
    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any>;
    /// Runs a call, if this service takes calls (a pool does); `None` if not.
    /// `parent`: the caller's span, when the call comes from a worker serving a call.
    fn call(self: Rc<Self>, _method: String, _args: Vec<Value>, _options: CallOptions, _parent: Option<TraceContext>) -> Option<futures::future::LocalBoxFuture<'static, Result<Value>>> {
        None
    }
}

/// After each job, keeps the engine thread polling (yielding, which polls the
/// I/O driver without blocking) for `spin`, so that the reply to the job and the
/// caller's next job do not pay a thread wake-up each (about 40 µs on small VMs).
async fn stay_awake(awake: Rc<tokio::sync::Notify>, spin: std::time::Duration) {
    loop {
        awake.notified().await;
        let until = std::time::Instant::now() + spin;
        while std::time::Instant::now() < until {
            tokio::task::yield_now().await;
        }
    }
}

/// A process's name before its worker describes itself: the file's stem.
pub(crate) fn default_name(target: &Target) -> String {
    match target {
        Target::Path(p) => {
            let file = p.rsplit_once(':').map(|(f, _)| f).filter(|f| f.contains('.')).unwrap_or(p);
            std::path::Path::new(file).file_stem().and_then(|s| s.to_str()).unwrap_or("worker").to_string()
        }
        Target::Handler { name, .. } => name.clone(),
    }
}
