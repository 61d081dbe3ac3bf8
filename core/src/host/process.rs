//! One supervised process: its lifecycle state, its current instance, the call
//! path (deadline, crash, cancel), the restart loop, graceful stop, health and
//! metrics. The process id and this object survive restarts; instances do not.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::engine::Engine;
use super::launch::{self, Instance, LaunchSpec};
pub(crate) use super::launch::ExitStatus;
use super::metrics::{CallStats, CpuSampler, ProcessMetrics};
use super::output::Dropped;
use super::policies::{self, PolicyLayer};
use crate::policy::method::HealAction;
use crate::policy::trace::TraceContext;
use crate::policy::{RestartBudget, Retry};
use super::{CallOptions, EventKind, Isolation, Output, ProcessInfo, ProcessState, Resources, RestartPolicy, Target};
use crate::error::{Error, Result};
use crate::protocol::{ErrorInfo, HealthReport};
use crate::titan_capnp::worker;
use crate::transport::Transport;
use crate::value::{self, Value};

/// How often the RSS of a worker with `resources.maxMemory` is read.
const MEMORY_INTERVAL: Duration = Duration::from_millis(500);
/// Unhealthy probes in a row that restart a worker.
pub(crate) const UNHEALTHY_PROBES: u32 = 3;
/// How often a remote worker is asked for its own cpu and memory (`Worker.metrics`).
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What a process was spawned with; every restart launches the same.
pub(crate) struct Spec {
    pub target: Target,
    pub isolation: Isolation,
    pub transport: Transport,
    pub dependencies: Value,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub timeout: Duration,
    pub restart: RestartPolicy,
    pub output: Output,
    pub resources: Resources,
    /// The version the worker must declare, if the spawn asked for one.
    pub version: Option<String>,
    /// The spawn gave a `name`: the worker's declared name does not replace it.
    pub named: bool,
    /// Processes the worker may call (name → id), handed to it at every `init`.
    pub processes: Vec<(String, u64)>,
}

/// Called when a supervised process's instance ends on its own (the supervisor decides what follows).
pub(crate) type ExitHook = Rc<dyn Fn(ExitStatus)>;

pub(crate) struct Process {
    pub id: u64,
    name: Rc<RefCell<String>>,
    /// What each instance is launched from; `replace_with` swaps it once a new instance is ready.
    spec: RefCell<Rc<Spec>>,
    state: watch::Sender<ProcessState>,
    instance: RefCell<Option<Rc<Instance>>>,
    last_pid: Cell<u32>,
    restarts: Cell<u32>,
    budget: RefCell<RestartBudget>,
    stats: RefCell<CallStats>,
    cpu: RefCell<CpuSampler>,
    /// A remote worker's own last report: (cpu %, rss bytes).
    reported: Cell<(f64, u64)>,
    output_dropped: Dropped,
    /// Method policies of calls made to this process directly (a pool keeps its own).
    policies: PolicyLayer,
    engine: Weak<Engine>,
    /// Set when a supervisor owns this process's restarts.
    supervisor: RefCell<Option<ExitHook>>,
    /// The last lines its instances wrote (`titan-pm logs`); survives restarts.
    pub(crate) logs: Rc<super::logs::LogRing>,
    /// When the current instance became ready (uptime).
    started: Cell<Instant>,
    /// The manager's clock (restart backoff and window, probe intervals, policies).
    clock: crate::clock::Clock,
    /// A test harness's hooks, if the manager has one.
    intercept: Option<std::sync::Arc<dyn super::Interceptor>>,
}

impl Process {
    /// Launches the first instance; the process exists only if that succeeds.
    pub(crate) async fn start(id: u64, name: String, spec: Spec, engine: &Rc<Engine>) -> Result<Rc<Process>> {
        let process = Rc::new(Process {
            id,
            name: Rc::new(RefCell::new(name)),
            spec: RefCell::new(Rc::new(spec)),
            state: watch::channel(ProcessState::Starting).0,
            instance: RefCell::default(),
            last_pid: Cell::new(0),
            restarts: Cell::new(0),
            budget: RefCell::default(),
            stats: RefCell::default(),
            cpu: RefCell::default(),
            reported: Cell::new((0.0, 0)),
            output_dropped: Dropped::default(),
            policies: PolicyLayer::default(),
            engine: Rc::downgrade(engine),
            supervisor: RefCell::default(),
            logs: Rc::new(super::logs::LogRing::new(id, engine.log_sender())),
            started: Cell::new(Instant::now()),
            clock: engine.config.clock.clone(),
            intercept: engine.config.interceptor.clone(),
        });
        let instance = process.launch(engine).await?;
        if let Some(wanted) = &process.spec().version {
            let found = &instance.description.version;
            if wanted != found {
                instance.kill();
                let _ = tokio::time::timeout(Duration::from_secs(2), instance.exited()).await;
                let found = if found.is_empty() { "none".to_string() } else { format!("{found:?}") };
                return Err(Error::spawn(
                    &process.spec().target.describe(),
                    format!("version mismatch: the spawn asked for {wanted:?}, the worker declares {found}"),
                ));
            }
        }
        let unnamed = process.name.borrow().is_empty() || (matches!(process.spec().target, Target::Path(_)) && !process.spec().named);
        if unnamed && !instance.description.name.is_empty() {
            *process.name.borrow_mut() = instance.description.name.clone();
        }
        process.install(instance, engine);
        Ok(process)
    }

    /// The spec instances are launched from now.
    fn spec(&self) -> Rc<Spec> {
        self.spec.borrow().clone()
    }

    async fn launch(&self, engine: &Rc<Engine>) -> Result<Rc<Instance>> {
        self.launch_from(&self.spec(), engine).await
    }

    async fn launch_from(&self, spec: &Spec, engine: &Rc<Engine>) -> Result<Rc<Instance>> {
        let launch = LaunchSpec {
            target: &spec.target,
            isolation: spec.isolation,
            transport: spec.transport,
            dependencies: &spec.dependencies,
            env: &spec.env,
            args: &spec.args,
            name: self.name.clone(),
            logs: self.logs.clone(),
            output: &spec.output,
            output_dropped: self.output_dropped.clone(),
            output_tracker: &engine.output,
            config: &engine.config,
            grants: &launch::Grants { engine: Rc::downgrade(engine), processes: spec.processes.clone() },
            live: (&engine.live, self.id),
            fork_server: &engine.fork_server,
        };
        launch::launch(&launch, &engine.registry).await
    }

    fn install(self: &Rc<Self>, instance: Rc<Instance>, engine: &Engine) {
        self.last_pid.set(instance.pid);
        self.started.set(Instant::now());
        *self.instance.borrow_mut() = Some(instance.clone());
        self.state.send_replace(ProcessState::Running);
        engine.emit(self.id, EventKind::Spawned { pid: instance.pid });
        engine.emit(self.id, EventKind::Ready { pid: instance.pid });
        let me = self.clone();
        let watched = instance.clone();
        tokio::task::spawn_local(async move {
            let status = instance.exited().await;
            me.on_exit(instance, status).await;
        });
        self.watch(watched.clone(), engine);
        if super::joins::remote_name(&self.spec().target).is_some() {
            self.read_reports(watched);
        }
    }

    /// While remote `instance` runs: asks it every [`REPORT_INTERVAL`] for its own
    /// cpu and memory (its pid is another machine's), what [`Process::metrics`] shows.
    fn read_reports(self: &Rc<Self>, instance: Rc<Instance>) {
        self.reported.set((0.0, 0));
        let me = Rc::downgrade(self);
        tokio::task::spawn_local(async move {
            loop {
                let ask = instance.worker.metrics_request().send().promise;
                let reply = tokio::select! {
                    _ = instance.exited() => return,
                    r = tokio::time::timeout(REPORT_INTERVAL * 5, ask) => r,
                };
                let Some(me) = me.upgrade() else { return };
                let current = me.instance.borrow().as_ref().is_some_and(|i| Rc::ptr_eq(i, &instance));
                if !current {
                    return;
                }
                if let Ok(Ok(reply)) = reply {
                    if let Ok(m) = reply.get().and_then(|r| r.get_metrics()) {
                        me.reported.set((m.get_cpu(), m.get_memory()));
                    }
                }
                drop(me);
                tokio::select! {
                    _ = instance.exited() => return,
                    _ = tokio::time::sleep(REPORT_INTERVAL) => {}
                }
            }
        });
    }

    /// While `instance` runs: restarts it when its RSS passes `resources.maxMemory`
    /// (event `memory`) or when the periodic health probe finds it unhealthy
    /// [`UNHEALTHY_PROBES`] times in a row (event `unhealthy`).
    fn watch(self: &Rc<Self>, instance: Rc<Instance>, engine: &Engine) {
        let spec = self.spec();
        // A remote worker's pid is on another machine: no local limits, no local /proc.
        let local = super::joins::remote_name(&spec.target).is_none();
        if let (Some(cpu), Isolation::Child, true) = (spec.resources.max_cpu, spec.isolation, local) {
            if let Some(limit) = super::limits::limit_cpu(instance.pid, cpu, &self.name.borrow()) {
                tracing::debug!(target: "titan_pm", "{} limited to {cpu}% of a core in {}", self.name.borrow(), limit.dir().display());
                let instance = instance.clone();
                tokio::task::spawn_local(async move {
                    instance.exited().await;
                    drop(limit); // the cgroup goes with the worker
                });
            }
        }
        let max_memory = spec.resources.max_memory.filter(|_| spec.isolation == Isolation::Child && local);
        let own = instance.description.health_interval_ms;
        let probe = match (own, &engine.config.monitoring.health_check) {
            (ms, _) if ms > 0 => Some(Duration::from_millis(ms)),
            (_, Some(h)) => Some(h.interval),
            (_, None) => None,
        };
        if max_memory.is_none() && probe.is_none() {
            return;
        }
        let me = Rc::downgrade(self);
        tokio::task::spawn_local(async move {
            let tick = match (probe, max_memory) {
                (Some(p), Some(_)) => p.min(MEMORY_INTERVAL),
                (Some(p), None) => p,
                (None, _) => MEMORY_INTERVAL,
            };
            let clock = match me.upgrade() {
                Some(p) => p.clock.clone(),
                None => return,
            };
            let mut next_probe = clock.now() + probe.unwrap_or(Duration::MAX / 4);
            let mut unhealthy = 0;
            loop {
                tokio::select! {
                    _ = instance.exited() => return,
                    _ = clock.sleep(tick) => {}
                }
                let Some(me) = me.upgrade() else { return };
                if me.state() != ProcessState::Running || instance.has_exited() {
                    return;
                }
                let Some(engine) = me.engine.upgrade() else { return };
                if let Some(limit) = max_memory {
                    let rss = super::metrics::rss(instance.pid);
                    if rss > limit {
                        engine.emit(me.id, EventKind::MemoryExceeded { rss, limit });
                        instance.kill();
                        return;
                    }
                }
                if probe.is_some() && clock.now() >= next_probe {
                    next_probe = clock.now() + probe.unwrap_or_default();
                    let report = me.health().await;
                    unhealthy = if report.status == crate::protocol::HealthStatus::Unhealthy { unhealthy + 1 } else { 0 };
                    if unhealthy >= UNHEALTHY_PROBES && !instance.has_exited() && me.state() == ProcessState::Running {
                        engine.emit(me.id, EventKind::Unhealthy { probes: unhealthy });
                        instance.kill();
                        return;
                    }
                }
            }
        });
    }

    /// What the current instance said about itself (`None` while there is none).
    pub(crate) fn description(&self) -> Option<crate::protocol::Description> {
        self.instance.borrow().as_ref().map(|i| i.description.clone())
    }

    /// How long the current instance has been running (zero when none runs).
    pub(crate) fn uptime(&self) -> Duration {
        if self.state() == ProcessState::Running { self.started.get().elapsed() } else { Duration::ZERO }
    }

    pub(crate) fn state_receiver(&self) -> watch::Receiver<ProcessState> {
        self.state.subscribe()
    }

    pub(crate) fn state(&self) -> ProcessState {
        *self.state.borrow()
    }

    pub(crate) fn info(&self) -> ProcessInfo {
        ProcessInfo {
            process_id: self.id,
            name: self.name.borrow().clone(),
            pid: self.last_pid.get(),
            state: self.state(),
            restarts: self.restarts.get(),
            isolation: self.spec().isolation,
            transport: self.spec().transport,
        }
    }

    // ---- calls ----

    /// A call under the method's policies (this process's own policy state), else straight through.
    pub(crate) async fn call(self: &Rc<Self>, method: &str, args: &[Value], options: &CallOptions, parent: Option<&TraceContext>) -> Result<Value> {
        let state = self.with_method(method, |m| if m.policies.is_empty() { None } else { self.policies.state(m) }).flatten();
        let Some(state) = state else {
            return self.call_with_retries(method, args, options, &TraceContext::child_of(parent)).await;
        };
        let name = self.name.borrow().clone();
        let otlp = self.engine.upgrade().and_then(|e| e.otlp.clone());
        policies::apply(&state, &name, &self.clock, args.to_vec(), parent, otlp.as_deref(), |m, a, ctx| {
            let me = self.clone();
            let options = options.clone();
            async move { me.call_with_retries(&m, &a, &options, &ctx).await }
        })
        .await
    }

    /// [`call_direct`](Self::call_direct), with `options.retries`: a call whose worker
    /// crashed waits for the restart and is sent again, by the one retry rule
    /// ([`Retry`]), all within the first attempt's deadline (never extended).
    async fn call_with_retries(self: &Rc<Self>, method: &str, args: &[Value], options: &CallOptions, trace: &TraceContext) -> Result<Value> {
        let Some(limit) = options.retries.filter(|n| *n > 0) else {
            return self.call_direct(method, args, options, trace, 0).await;
        };
        let timeout = self.call_timeout(method, options);
        let deadline = Instant::now() + timeout;
        let mut retry = Retry::new(limit);
        loop {
            match self.call_until(method, args, deadline, timeout, trace, 0).await {
                Err(e) if retry.again(&e, Instant::now(), deadline) => {}
                result => return result,
            }
        }
    }

    /// A call's timeout: the call's own, else the method's, else the process's.
    fn call_timeout(&self, method: &str, options: &CallOptions) -> Duration {
        options.timeout.or_else(|| self.method_timeout(method)).unwrap_or(self.spec().timeout)
    }

    /// A call without the host-side policies (a pool applies its own around it); self-healing
    /// still watches its errors. `max_running` (0: none): the worker starts the call only
    /// when fewer than that many calls run there (a pool member's concurrency).
    pub(crate) async fn call_direct(self: &Rc<Self>, method: &str, args: &[Value], options: &CallOptions, trace: &TraceContext, max_running: u32) -> Result<Value> {
        let timeout = self.call_timeout(method, options);
        self.call_until(method, args, Instant::now() + timeout, timeout, trace, max_running).await
    }

    /// One attempt of a call, by `deadline` (`timeout` is what a `CallTimeout` reports).
    async fn call_until(self: &Rc<Self>, method: &str, args: &[Value], deadline: Instant, timeout: Duration, trace: &TraceContext, max_running: u32) -> Result<Value> {
        // Refused here, before anything is built or counted: capnp cannot hold it (and would panic).
        value::check_list(args, "args")?;
        if method.len() > MAX_METHOD_NAME {
            return Err(Error::Serialization {
                path: "method".into(),
                message: format!("a method name of {} bytes is over the limit of {MAX_METHOD_NAME}", method.len()),
            });
        }
        if let Some(hooks) = &self.intercept {
            let name = self.name.borrow().clone();
            let declared = self.description().map(|d| d.name).unwrap_or_default();
            let result = match hooks.before_call(self.id, &[&name, &declared], method) {
                Ok(()) => self.call_checked(method, args, deadline, timeout, trace, max_running).await,
                Err(e) => Err(e),
            };
            hooks.called(self.id, method, &result);
            return result;
        }
        self.call_checked(method, args, deadline, timeout, trace, max_running).await
    }

    /// One attempt past the checks: waits for a running instance, calls it, counts it.
    async fn call_checked(self: &Rc<Self>, method: &str, args: &[Value], deadline: Instant, timeout: Duration, trace: &TraceContext, max_running: u32) -> Result<Value> {
        let instance = self.instance_for_call(deadline, method, timeout).await?;
        let started = Instant::now();
        let result = self.call_instance(&instance, method, args, deadline, timeout, trace, max_running).await;
        self.stats.borrow_mut().record(started.elapsed(), result.is_ok());
        if let Err(e) = &result {
            self.maybe_heal(&instance, method, e);
        }
        result
    }

    /// `@SelfHeal`: runs the method's action on `instance` if `error` is a symptom, at most once per cooldown.
    fn maybe_heal(self: &Rc<Self>, instance: &Rc<Instance>, method: &str, error: &Error) {
        let Some((symptom, action)) = self.with_method(method, |m| self.policies.heal(m, error, self.clock.now())).flatten() else { return };
        let Some(engine) = self.engine.upgrade() else { return };
        engine.emit(self.id, EventKind::SelfHeal { method: method.to_string(), symptom, action: action.as_str() });
        let instance = instance.clone();
        let dependencies = self.spec().dependencies.clone();
        let name = self.name.borrow().clone();
        let me = self.clone();
        match action {
            // Taken out at once, so that the next call waits for the new instance.
            HealAction::Restart => me.replace_instance(&instance),
            HealAction::Recycle => {
                tokio::task::spawn_local(async move {
                    let drained = async {
                        while instance.in_flight.get() > 0 && !instance.has_exited() {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    };
                    let _ = tokio::time::timeout(policies::RECYCLE_DRAIN, drained).await;
                    me.replace_instance(&instance);
                });
            }
            HealAction::Reinit => {
                tokio::task::spawn_local(async move {
                    let mut req = instance.worker.init_request();
                    let deps = if matches!(dependencies, Value::Null) { Value::Map(Vec::new()) } else { dependencies };
                    value::write(&deps, req.get().init_dependencies());
                    let failed = match req.send().promise.await {
                        Ok(r) => r.get().map(|r| r.get_failed()).unwrap_or(true),
                        Err(_) => true,
                    };
                    if failed {
                        tracing::warn!(target: "titan_pm", "{name}: self-heal reinit failed; restarting it");
                        me.replace_instance(&instance);
                    }
                });
            }
        }
    }

    /// Kills `instance` if it is still the current one and starts a new one (a restart, not a crash).
    fn replace_instance(self: &Rc<Self>, instance: &Rc<Instance>) {
        let current = self.instance.borrow().as_ref().is_some_and(|i| Rc::ptr_eq(i, instance));
        if !current || self.state() != ProcessState::Running {
            return;
        }
        *self.instance.borrow_mut() = None;
        self.state.send_replace(ProcessState::Restarting);
        instance.kill();
        let me = self.clone();
        tokio::task::spawn_local(async move {
            if let Some(engine) = me.engine.upgrade() {
                me.restart(&engine).await;
            }
        });
    }

    /// `f` of the method's description on the current instance (`None`: no instance, or no such method).
    pub(crate) fn with_method<T>(&self, method: &str, f: impl FnOnce(&crate::protocol::MethodInfo) -> T) -> Option<T> {
        let instance = self.instance.borrow();
        let m = instance.as_ref()?.description.methods.iter().find(|m| m.name == method)?;
        Some(f(m))
    }

    /// The method's own default deadline, as the worker described it (0: none).
    fn method_timeout(&self, method: &str) -> Option<Duration> {
        let instance = self.instance.borrow();
        let m = instance.as_ref()?.description.methods.iter().find(|m| m.name == method)?;
        (m.timeout_ms > 0).then(|| Duration::from_millis(m.timeout_ms))
    }

    /// The running instance; waits (within the deadline) while the process starts or restarts.
    async fn instance_for_call(&self, deadline: Instant, method: &str, timeout: Duration) -> Result<Rc<Instance>> {
        let mut state = self.state.subscribe();
        loop {
            let now = *state.borrow_and_update();
            match now {
                ProcessState::Running => {
                    if let Some(i) = self.instance.borrow().as_ref().filter(|i| !i.has_exited() && i.is_connected()) {
                        return Ok(i.clone());
                    }
                }
                ProcessState::Starting | ProcessState::Restarting => {}
                ProcessState::Stopping | ProcessState::Stopped | ProcessState::Failed => {
                    return Err(Error::ProcessFailed { process_id: self.id, state: now });
                }
            }
            match tokio::time::timeout_at(deadline.into(), state.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::ManagerShutDown),
                Err(_) => return Err(timed_out(method, timeout)),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn call_instance(
        self: &Rc<Self>,
        instance: &Rc<Instance>,
        method: &str,
        args: &[Value],
        deadline: Instant,
        timeout: Duration,
        trace: &TraceContext,
        max_running: u32,
    ) -> Result<Value> {
        let call_id = instance.next_call_id();
        // Process handles among the arguments are given to the worker with the call (grants.rs).
        let given = super::grants::given_args(args)?;
        let args = given.as_ref().map_or(args, |(a, _)| a.as_slice());
        let mut req = instance.worker.call_request();
        {
            let mut p = req.get();
            p.set_method(method);
            value::write_list(args, p.reborrow().init_args(args.len() as u32));
            let mut c = p.init_context();
            if let Some((_, grants)) = &given {
                let mut list = c.reborrow().init_grants(grants.len() as u32);
                for (i, (name, id)) in grants.iter().enumerate() {
                    let mut g = list.reborrow().get(i as u32);
                    g.set_name(name.as_str());
                    g.set_caller(capnp_rpc::new_client(super::grants::CallerServer { engine: self.engine.clone(), process_id: *id }));
                }
            }
            c.set_call_id(call_id);
            c.set_timeout_ms(deadline.saturating_duration_since(Instant::now()).as_millis().max(1) as u64);
            c.set_trace_id(trace.trace_id.as_str());
            c.set_span_id(trace.span_id.as_str());
            c.set_parent_span_id(trace.parent_span_id.as_str());
            c.set_max_running(max_running);
        }
        let _in_flight = InFlight::enter(instance);
        let crashed = |s: ExitStatus| Error::ProcessCrashed { process_id: self.id, exit_code: s.code, signal: s.signal };
        tokio::select! {
            biased;
            reply = req.send().promise => match reply {
                Ok(reply) => read_call_result(reply),
                Err(_) => {
                    // The connection broke: the worker is dying; report how it ended.
                    let status = tokio::time::timeout(Duration::from_secs(1), instance.exited()).await;
                    Err(crashed(status.unwrap_or_default()))
                }
            },
            status = instance.exited() => Err(crashed(status)),
            _ = tokio::time::sleep_until(deadline.into()) => {
                self.cancel_or_recycle(instance.clone(), call_id);
                Err(timed_out(method, timeout))
            }
        }
    }

    /// Tells the worker to stop a timed-out call; a worker that does not confirm in time is recycled.
    fn cancel_or_recycle(&self, instance: Rc<Instance>, call_id: u64) {
        let Some(engine) = self.engine.upgrade() else { return };
        let grace = engine.config.cancel_grace;
        let name = self.name.borrow().clone();
        tokio::task::spawn_local(async move {
            let mut req = instance.worker.cancel_request();
            req.get().set_call_id(call_id);
            // An error reply means the connection broke: the instance is ending anyway.
            if tokio::time::timeout(grace, req.send().promise).await.is_err() && !instance.has_exited() {
                tracing::warn!(target: "titan_pm", "{name} did not stop a timed-out call within {} ms; recycling it", grace.as_millis());
                instance.kill();
            }
        });
    }

    // ---- lifecycle ----

    async fn on_exit(self: Rc<Self>, instance: Rc<Instance>, status: ExitStatus) {
        let current = self.instance.borrow().as_ref().is_some_and(|i| Rc::ptr_eq(i, &instance));
        let Some(engine) = self.engine.upgrade() else { return };
        if !current {
            return;
        }
        *self.instance.borrow_mut() = None;
        if self.state() != ProcessState::Running {
            engine.emit(self.id, EventKind::Exited);
            return;
        }
        let hook = self.supervisor.borrow().clone();
        if let Some(hook) = hook {
            // The supervisor decides; calls wait meanwhile, within their deadline.
            let kind = if status.normal() { EventKind::Exited } else { EventKind::Crashed { exit_code: status.code, signal: status.signal } };
            engine.emit(self.id, kind);
            self.state.send_replace(ProcessState::Restarting);
            return hook(status);
        }
        engine.emit(self.id, EventKind::Crashed { exit_code: status.code, signal: status.signal });
        self.restart(&engine).await;
    }

    // ---- supervised: the supervisor drives these ----

    /// Hands this process's restarts to a supervisor: an instance that ends on its
    /// own leaves the process `restarting` and calls `hook`, nothing more.
    pub(crate) fn supervise(&self, hook: ExitHook) {
        *self.supervisor.borrow_mut() = Some(hook);
    }

    /// Stops the instance (drain, hooks, SIGTERM, SIGKILL) and leaves the process
    /// `restarting`, so calls wait for [`relaunch`](Self::relaunch) within their deadline.
    pub(crate) async fn stop_for_restart(&self, step: Duration) {
        if matches!(self.state(), ProcessState::Stopped | ProcessState::Failed) {
            self.state.send_replace(ProcessState::Restarting);
            return;
        }
        self.state.send_replace(ProcessState::Restarting);
        self.stop_instance(Instant::now() + step).await;
    }

    /// Starts a new instance under the same id (the process must be `restarting`,
    /// else it was stopped meanwhile and nothing is launched).
    pub(crate) async fn relaunch(self: &Rc<Self>) -> Result<()> {
        let engine = self.engine.upgrade().ok_or(Error::ManagerShutDown)?;
        if self.state() != ProcessState::Restarting {
            self.state.send_replace(ProcessState::Restarting);
        }
        self.restarts.set(self.restarts.get() + 1);
        engine.emit(self.id, EventKind::Restarting { attempt: self.restarts.get(), delay: Duration::ZERO });
        let instance = self.launch(&engine).await?;
        if self.state() != ProcessState::Restarting {
            instance.kill();
            return Err(Error::ProcessFailed { process_id: self.id, state: self.state() });
        }
        self.install(instance, &engine);
        Ok(())
    }

    /// Ends a supervised process the supervisor will not restart: `stopped` or `failed`.
    pub(crate) fn give_up(&self, state: ProcessState) {
        self.state.send_replace(state);
        if state == ProcessState::Failed {
            if let Some(engine) = self.engine.upgrade() {
                engine.emit(self.id, EventKind::Failed);
            }
        }
    }

    async fn restart(self: &Rc<Self>, engine: &Rc<Engine>) {
        loop {
            let Some(delay) = self.budget.borrow_mut().next(&self.spec().restart, self.clock.now()) else {
                self.state.send_replace(ProcessState::Failed);
                engine.emit(self.id, EventKind::Failed);
                return;
            };
            self.restarts.set(self.restarts.get() + 1);
            self.state.send_replace(ProcessState::Restarting);
            engine.emit(self.id, EventKind::Restarting { attempt: self.restarts.get(), delay });
            self.clock.sleep(delay).await;
            if self.state() != ProcessState::Restarting {
                return; // killed or shut down meanwhile
            }
            match self.launch(engine).await {
                Ok(instance) if self.state() == ProcessState::Restarting => return self.install(instance, engine),
                Ok(instance) => return instance.kill(),
                Err(e) => tracing::warn!(target: "titan_pm", "restart of {} failed: {e}", self.name.borrow()),
            }
        }
    }

    /// Crashes the current instance (`simulate_crash`): SIGKILL for a child, a
    /// teardown reported as SIGKILL for a thread or in-engine worker; what follows
    /// is the real path (event `crash`, then the restart policy or the supervisor).
    /// Returns once the crash is taken in: the instance has ended and the
    /// process has left it (`restarting`, or `failed` when the budget is spent).
    pub(crate) async fn crash(&self) -> Result<()> {
        let instance = self.instance.borrow().clone();
        let Some(instance) = instance.filter(|i| !i.has_exited() && self.state() == ProcessState::Running) else {
            return Err(Error::ProcessFailed { process_id: self.id, state: self.state() });
        };
        instance.crash();
        let taken_in = async {
            instance.exited().await;
            while self.instance.borrow().as_ref().is_some_and(|i| Rc::ptr_eq(i, &instance)) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), taken_in)
            .await
            .map_err(|_| Error::Config(format!("process {} did not end within 10 s of its simulated crash", self.id)))
    }

    /// Whether the current instance is up and answers a health request (what a
    /// test waits for after a crash), whatever the report says.
    pub(crate) async fn answers(&self) -> bool {
        let instance = self.instance.borrow().clone();
        let Some(instance) = instance.filter(|i| !i.has_exited() && i.is_connected() && self.state() == ProcessState::Running) else {
            return false;
        };
        let limit = self.engine.upgrade().map(|e| e.config.health_timeout).unwrap_or(Duration::from_secs(5));
        matches!(tokio::time::timeout(limit, instance.worker.health_request().send().promise).await, Ok(Ok(_)))
    }

    /// The pid of the current instance if it has not ended (after a shutdown: a leak).
    pub(crate) fn live_instance(&self) -> Option<u32> {
        self.instance.borrow().as_ref().filter(|i| !i.has_exited()).map(|i| i.pid)
    }

    /// Waits (up to `limit`) for the current instance to end.
    pub(crate) async fn instance_ended(&self, limit: Duration) {
        let instance = self.instance.borrow().clone();
        if let Some(i) = instance {
            let _ = tokio::time::timeout(limit, i.exited()).await;
        }
    }

    /// Stops at once (SIGKILL); not a crash, so no restart. Emits `exit` once the instance is gone.
    pub(crate) async fn kill(&self) {
        self.state.send_replace(ProcessState::Stopped);
        let instance = self.instance.borrow_mut().take();
        if let Some(instance) = instance {
            instance.kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), instance.exited()).await;
        }
        if let Some(engine) = self.engine.upgrade() {
            engine.emit(self.id, EventKind::Exited);
        }
    }

    /// Stops intake, drains in-flight calls, runs the shutdown hooks, then
    /// SIGTERM, then SIGKILL: all within `total`.
    pub(crate) async fn stop(&self, total: Duration) {
        self.stop_by(Instant::now() + total).await
    }

    /// Like `stop`, done by `deadline`: drain and hooks get the first three
    /// quarters, SIGTERM the last quarter, SIGKILL comes just before the deadline.
    pub(crate) async fn stop_by(&self, deadline: Instant) {
        if matches!(self.state(), ProcessState::Stopped | ProcessState::Failed) {
            self.state.send_replace(ProcessState::Stopped);
            return;
        }
        if self.state() == ProcessState::Stopping {
            // Already being stopped (a pool member at manager shutdown): wait for that.
            let mut state = self.state.subscribe();
            let stopped = state.wait_for(|s| *s == ProcessState::Stopped);
            let _ = tokio::time::timeout_at(deadline.into(), stopped).await;
            return;
        }
        self.state.send_replace(ProcessState::Stopping);
        self.stop_instance(deadline).await;
        self.state.send_replace(ProcessState::Stopped);
    }

    /// Drains the current instance's calls, runs its shutdown hooks, then SIGTERM, then SIGKILL, by `deadline`.
    async fn stop_instance(&self, deadline: Instant) {
        let instance = self.instance.borrow().clone();
        if let Some(instance) = instance {
            stop_instance(&instance, deadline).await;
        }
    }

    /// Graceful restart (`restart(id)`, `titan-pm restart`): launches a new
    /// instance with the same spec; once it is ready, new calls go to it, while
    /// calls already on the old instance finish; then the old one is stopped
    /// (drain, shutdown hooks, SIGTERM, SIGKILL). No call fails. The process id
    /// stays, the pid changes, `restarts` counts it. A failed process starts afresh.
    /// With `spec`, the new instance (and every later one) is launched from it instead
    /// (`restart_with`: a process file's changed options, the id kept).
    pub(crate) async fn replace(self: &Rc<Self>, engine: &Rc<Engine>, spec: Option<Spec>) -> Result<()> {
        let before = self.state();
        if !matches!(before, ProcessState::Running | ProcessState::Failed) {
            return Err(Error::ProcessFailed { process_id: self.id, state: before });
        }
        let spec = spec.map(Rc::new);
        let new = self.launch_from(spec.as_deref().unwrap_or(&self.spec()), engine).await?;
        if self.state() != before {
            new.kill(); // killed or stopped while the new instance started
            return Err(Error::ProcessFailed { process_id: self.id, state: self.state() });
        }
        if let Some(spec) = spec {
            *self.spec.borrow_mut() = spec;
        }
        // Swapping the instance makes the old one's exit watcher stand down (it is not current).
        let old = self.instance.borrow_mut().take();
        self.restarts.set(self.restarts.get() + 1);
        self.install(new, engine);
        if let Some(old) = old {
            stop_instance(&old, Instant::now() + engine.config.shutdown_timeout).await;
        }
        Ok(())
    }

    // ---- health and metrics ----

    pub(crate) async fn health(&self) -> HealthReport {
        if let Some(report) = self.intercept.as_ref().and_then(|h| h.health(self.id)) {
            return report;
        }
        let Some(engine) = self.engine.upgrade() else { return HealthReport::unhealthy("process", "manager stopped") };
        let instance = self.instance.borrow().clone();
        let Some(instance) = instance.filter(|_| self.state() == ProcessState::Running) else {
            return HealthReport::unhealthy("process", format!("process is {}", self.state()));
        };
        let limit = engine.config.health_timeout;
        match tokio::time::timeout(limit, instance.worker.health_request().send().promise).await {
            Ok(Ok(reply)) => reply
                .get()
                .and_then(|r| r.get_report())
                .map_err(|e| e.to_string())
                .and_then(|r| HealthReport::read(r).map_err(|e| e.to_string()))
                .unwrap_or_else(|e| HealthReport::unhealthy("health", e)),
            Ok(Err(e)) => HealthReport::unhealthy("health", e.extra),
            Err(_) => HealthReport::unhealthy("health", format!("no answer within {} ms", limit.as_millis())),
        }
    }

    pub(crate) fn metrics(&self) -> ProcessMetrics {
        let instance = self.instance.borrow().clone();
        let (cpu, memory) = match &instance {
            // A remote worker's pid is not a local process: its own report.
            Some(_) if super::joins::remote_name(&self.spec().target).is_some() => self.reported.get(),
            Some(i) => self.cpu.borrow_mut().sample(i.pid),
            None => (0.0, 0),
        };
        let stats = self.stats.borrow();
        let real = ProcessMetrics {
            cpu,
            memory,
            requests: stats.requests,
            errors: stats.errors,
            in_flight: instance.map(|i| i.in_flight.get() as u64).unwrap_or(0),
            latency: stats.latency(),
            output_dropped: self.output_dropped.get(),
            methods: self.policies.metrics(),
        };
        match &self.intercept {
            Some(hooks) => hooks.metrics(self.id, real),
            None => real,
        }
    }
}

/// Lets `instance`'s calls finish, runs its shutdown hooks, then SIGTERM, then
/// SIGKILL, all by `deadline`: drain and hooks get the first three quarters,
/// SIGTERM the last quarter, SIGKILL comes just before the deadline.
async fn stop_instance(instance: &Rc<Instance>, deadline: Instant) {
    let now = Instant::now();
    let budget = deadline.saturating_duration_since(now);
    let kill_at = deadline - (budget / 10).min(Duration::from_millis(200));
    let term_at = kill_at - kill_at.saturating_duration_since(now) / 4;
    let drained = async {
        while instance.in_flight.get() > 0 && !instance.has_exited() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let _ = tokio::time::timeout_at(term_at.into(), drained).await;
    let _ = tokio::time::timeout_at(term_at.into(), instance.worker.shutdown_request().send().promise).await;
    if tokio::time::timeout_at(term_at.into(), instance.exited()).await.is_err() {
        instance.signal(libc::SIGTERM);
        if tokio::time::timeout_at(kill_at.into(), instance.exited()).await.is_err() {
            instance.kill();
            let _ = tokio::time::timeout_at(deadline.into(), instance.exited()).await;
        }
    }
}

/// The longest method name a call may carry.
const MAX_METHOD_NAME: usize = 64 * 1024;

fn timed_out(method: &str, timeout: Duration) -> Error {
    Error::CallTimeout { method: method.to_string(), timeout_ms: timeout.as_millis() as u64 }
}

fn read_call_result(reply: capnp::capability::Response<worker::call_results::Owned>) -> Result<Value> {
    use crate::titan_capnp::call_result::Which;
    let bad = crate::protocol::ser;
    let result = reply.get().and_then(|r| r.get_result()).map_err(bad)?;
    match result.which().map_err(|e| bad(e.into()))? {
        Which::Ok(v) => value::read(v.map_err(bad)?, "result"),
        Which::Error(e) => Err(ErrorInfo::read(e.map_err(bad)?)?.into_error()),
    }
}

/// Counts a call as in flight on its instance while it lives.
struct InFlight(Rc<Instance>);

impl InFlight {
    fn enter(instance: &Rc<Instance>) -> Self {
        instance.in_flight.set(instance.in_flight.get() + 1);
        InFlight(instance.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}
