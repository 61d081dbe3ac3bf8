//! The engine-side pool: its members, the bounded FIFO queue, dispatch through
//! the balancer (a member with a free running slot first, else one with room in
//! its pipeline: see [`PoolOptions::pipeline`]), replacement of dead or retired workers (`reconcile`), and the
//! housekeeping loop (health probes, load sampling, recycling, auto-scaling).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot, Notify};

use super::{
    scale_decision, Balancer, Breaker, Load, PoolEvent, PoolMetrics, PoolOptions, PoolWorkerMetrics, WorkerView,
};
use crate::error::{Error, Result};
use crate::host::engine::{Engine, Service};
use crate::host::metrics::CallStats;
use crate::host::policies::{self, MethodState, PolicyLayer};
use crate::policy::trace::TraceContext;
use crate::policy::Retry;
use crate::host::process::Process;
use crate::host::metrics::machine_memory;
use crate::host::{CallOptions, ProcessState, RestartPolicy, SpawnOptions, Target};
use crate::protocol::HealthStatus;
use crate::value::Value;

/// Replacements that fail to start this many times in a row fail the pool.
const MAX_SPAWN_FAILURES: u32 = 5;
/// How many times one call sent ahead (pipelined) may be resent after its member crashed.
const MAX_PIPELINED_RESENDS: u32 = 3;
/// Calls are pipelined only to members whose calls take at most this long on average (ms;
/// a call's latency divided by its turn in the member's line).
const PIPELINE_BELOW_MS: f64 = 2.0;
/// Weight of the newest sample in the latency and error moving averages.
const EWMA_ALPHA: f64 = 0.3;

struct Member {
    process: Rc<Process>,
    weight: u32,
    started: Instant,
    in_flight: Cell<usize>,
    retiring: Cell<bool>,
    stats: RefCell<CallStats>,
    latency_ms: Cell<Option<f64>>,
    /// Moving average of a call's latency divided by its turn in the member's line
    /// (calls sent ahead wait for the ones before them): about one call's own time, in ms.
    pace_ms: Cell<Option<f64>>,
    error_rate: Cell<f64>,
    unhealthy_streak: Cell<u32>,
    cpu: Cell<f64>,
    memory: Cell<u64>,
}

struct Waiter {
    id: u64,
    key: Option<String>,
    tx: oneshot::Sender<Rc<Member>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PoolState {
    Running,
    Draining,
    Failed,
    Destroyed,
}

pub(crate) struct Pool {
    pub id: u64,
    target: Target,
    options: PoolOptions,
    engine: Weak<Engine>,
    events: broadcast::Sender<PoolEvent>,
    state: Cell<PoolState>,
    desired: Cell<usize>,
    members: RefCell<Vec<Rc<Member>>>,
    queue: RefCell<VecDeque<Waiter>>,
    next_waiter: Cell<u64>,
    balancer: RefCell<Balancer>,
    breaker: RefCell<Option<Breaker>>,
    stats: RefCell<CallStats>,
    spawn_failures: Cell<u32>,
    reconciling: Cell<bool>,
    drained: Cell<bool>,
    /// Pinged whenever members, queue or in-flight counts change.
    changed: Notify,
    /// Method policies of calls through the pool, shared by all members.
    policies: PolicyLayer,
    /// What new members run after `reload_with` (else `target` and `options.spawn`).
    respawn: RefCell<Option<(Target, SpawnOptions)>>,
    /// The manager's clock: breaker, policies, replacement backoff, housekeeping intervals.
    clock: crate::clock::Clock,
}

impl Pool {
    pub(crate) async fn start(
        id: u64,
        target: Target,
        options: PoolOptions,
        events: broadcast::Sender<PoolEvent>,
        engine: &Rc<Engine>,
    ) -> Result<Rc<Pool>> {
        let size = options.size.resolve();
        if size == 0 {
            return Err(Error::Config("a pool needs at least one worker".into()));
        }
        if options.concurrency == 0 {
            return Err(Error::Config("pool concurrency must be at least 1".into()));
        }
        let pool = Rc::new(Pool {
            id,
            target,
            balancer: RefCell::new(Balancer::new(options.strategy)),
            breaker: RefCell::new(options.circuit_breaker.clone().map(Breaker::new)),
            options,
            engine: Rc::downgrade(engine),
            events,
            state: Cell::new(PoolState::Running),
            desired: Cell::new(size),
            members: RefCell::default(),
            queue: RefCell::default(),
            next_waiter: Cell::new(0),
            stats: RefCell::default(),
            spawn_failures: Cell::new(0),
            reconciling: Cell::new(false),
            drained: Cell::new(false),
            changed: Notify::new(),
            policies: PolicyLayer::default(),
            respawn: RefCell::default(),
            clock: engine.config.clock.clone(),
        });
        if let Some(name) = crate::host::joins::remote_name(&pool.target) {
            // Remote members join when they dial in: the pool is ready at once and calls
            // queue (within their deadline) until enough have joined.
            pool.accept_remote(engine, name.to_string());
            pool.emit(PoolEvent::Initialized { size });
            pool.housekeeping();
            return Ok(pool);
        }
        let started = futures::future::join_all((0..size).map(|i| pool.spawn_member(engine, i))).await;
        let mut first_error = None;
        for r in started {
            match r {
                Ok(m) => pool.add(m),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if let Some(e) = first_error {
            pool.state.set(PoolState::Destroyed);
            pool.stop_members(engine, std::time::Instant::now() + engine.config.shutdown_timeout).await;
            return Err(e);
        }
        pool.emit(PoolEvent::Initialized { size });
        pool.housekeeping();
        Ok(pool)
    }

    /// A pool of `remote:NAME`: its places are filled by workers as they join, and
    /// a worker that joins while every place is taken grows the pool by one.
    fn accept_remote(self: &Rc<Self>, engine: &Rc<Engine>, name: String) {
        let me = Rc::downgrade(self);
        engine.registry.joins.on_standby(
            &name,
            Box::new(move || {
                let Some(pool) = me.upgrade() else { return false };
                if pool.state.get() != PoolState::Running {
                    return false;
                }
                let waiting = pool.desired.get().saturating_sub(pool.size());
                if waiting == 0 && !pool.reconciling.get() {
                    pool.set_desired(pool.desired.get() + 1);
                }
                true
            }),
        );
        self.reconcile(None);
        // Workers that joined before the pool existed.
        let standing = engine.registry.joins.standing_by(&name);
        if standing > self.desired.get() {
            self.set_desired(standing);
        }
    }

    fn emit(&self, event: PoolEvent) {
        let _ = self.events.send(event);
    }

    async fn spawn_member(&self, engine: &Rc<Engine>, position: usize) -> Result<Rc<Member>> {
        let (target, spawn) = match &*self.respawn.borrow() {
            Some((t, o)) => (t.clone(), o.clone()),
            None => (self.target.clone(), self.options.spawn.clone()),
        };
        let options = SpawnOptions { restart: Some(RestartPolicy::disabled()), ..spawn };
        let process = engine.start_process(target, options).await?;
        Ok(Rc::new(Member {
            process,
            weight: self.options.weights.get(position).copied().unwrap_or(1),
            started: Instant::now(),
            in_flight: Cell::new(0),
            retiring: Cell::new(false),
            stats: RefCell::default(),
            latency_ms: Cell::new(None),
            pace_ms: Cell::new(None),
            error_rate: Cell::new(0.0),
            unhealthy_streak: Cell::new(0),
            cpu: Cell::new(0.0),
            memory: Cell::new(0),
        }))
    }

    /// Adds a member and watches it: a member whose process fails (it crashed; pool
    /// members do not restart themselves) is replaced.
    fn add(self: &Rc<Self>, member: Rc<Member>) {
        self.members.borrow_mut().push(member.clone());
        self.emit(PoolEvent::WorkerSpawned { process_id: member.process.id });
        let pool = Rc::downgrade(self);
        let mut state = member.process.state_receiver();
        tokio::task::spawn_local(async move {
            loop {
                let now = *state.borrow_and_update();
                if now == ProcessState::Failed {
                    if let Some(pool) = pool.upgrade() {
                        pool.on_member_died(&member);
                    }
                    return;
                }
                if now == ProcessState::Stopped || state.changed().await.is_err() {
                    return;
                }
            }
        });
        self.changed.notify_waiters();
        self.pump();
    }

    fn on_member_died(self: &Rc<Self>, member: &Rc<Member>) {
        self.remove(member);
        self.emit(PoolEvent::WorkerCrashed { process_id: member.process.id });
        self.reconcile(Some(member.process.id));
    }

    fn remove(&self, member: &Rc<Member>) {
        self.members.borrow_mut().retain(|m| !Rc::ptr_eq(m, member));
        if let Some(engine) = self.engine.upgrade() {
            engine.forget(member.process.id);
        }
        self.changed.notify_waiters();
    }

    // ---- calls ----

    pub(crate) async fn call(self: &Rc<Self>, method: String, args: Vec<Value>, options: CallOptions, parent: Option<TraceContext>) -> Result<Value> {
        let engine = self.engine.upgrade().ok_or(Error::ManagerShutDown)?;
        let timeout = options.timeout.or(self.options.request_timeout).unwrap_or(engine.config.timeout);
        let deadline = Instant::now() + timeout;
        if self.state.get() == PoolState::Destroyed {
            // A supervised pool being restarted: the call waits for the new pool within its deadline.
            match engine.replacement(self.id, self, deadline).await {
                (Some(new), _) => {
                    let left = deadline.saturating_duration_since(Instant::now()).max(std::time::Duration::from_millis(1));
                    return Box::pin(Pool::call(&new, method, args, CallOptions { timeout: Some(left), ..options }, parent)).await;
                }
                (None, true) => return Err(Error::CallTimeout { method, timeout_ms: timeout.as_millis() as u64 }),
                (None, false) => {}
            }
        }
        self.check_open()?;
        let key = options.key.as_deref();
        let retries = options.retries.unwrap_or(self.options.retries);
        let Some(state) = self.method_state(&method) else {
            return self.call_admitted(&method, &args, key, retries, deadline, timeout, &TraceContext::child_of(parent.as_ref())).await;
        };
        // The pool's own policy state: one limit, cache, idempotency table and breaker for all members.
        let name = self.target.describe();
        let otlp = engine.otlp.clone();
        policies::apply(&state, &name, &self.clock, args, parent.as_ref(), otlp.as_deref(), |m, a, ctx| {
            let pool = self.clone();
            let key = options.key.clone();
            async move { pool.call_admitted(&m, &a, key.as_deref(), retries, deadline, timeout, &ctx).await }
        })
        .await
    }

    /// The policy state of `method` as the members describe it (`None`: no policies).
    fn method_state(&self, method: &str) -> Option<Rc<MethodState>> {
        let members = self.members.borrow();
        let member = members.iter().find(|m| m.process.state() == ProcessState::Running).or(members.first())?;
        member.process.with_method(method, |m| if m.policies.is_empty() { None } else { self.policies.state(m) }).flatten()
    }

    /// Through the pool's breaker, then to a member (with retries).
    #[allow(clippy::too_many_arguments)]
    async fn call_admitted(
        self: &Rc<Self>,
        method: &str,
        args: &[Value],
        key: Option<&str>,
        retries: u32,
        deadline: Instant,
        timeout: Duration,
        trace: &TraceContext,
    ) -> Result<Value> {
        self.admit()?;
        let mut verdict = Verdict { pool: self, given: false };
        let result = self.call_with_retries(method, args, key, retries, deadline, timeout, trace).await;
        verdict.give(&result);
        result
    }

    /// A crash is sent again to another member by the one retry rule ([`Retry`]).
    #[allow(clippy::too_many_arguments)]
    async fn call_with_retries(
        self: &Rc<Self>,
        method: &str,
        args: &[Value],
        key: Option<&str>,
        retries: u32,
        deadline: Instant,
        timeout: Duration,
        trace: &TraceContext,
    ) -> Result<Value> {
        let mut retry = Retry::new(retries);
        // Resends of pipelined calls lost with their member (see below), bounded.
        let mut resent = 0;
        // With pipelining on, the worker runs at most `concurrency` calls at once; the rest wait there.
        let max_running = if self.options.pipeline > 0 { self.options.concurrency as u32 } else { 0 };
        loop {
            let member = self.acquire(key, deadline, method, timeout).await?;
            let ahead = member.in_flight.get() > self.options.concurrency;
            let turn = member.in_flight.get().div_ceil(self.options.concurrency).max(1);
            let lease = Lease { pool: self, member, started: Instant::now(), turn, returned: false };
            let left = CallOptions { timeout: Some(deadline.saturating_duration_since(lease.started)), ..CallOptions::default() };
            let result = lease.member.process.call_direct(method, args, &left, trace, max_running).await;
            let result = match result {
                // The member's own deadline is the rest of the pool call's: report the pool's.
                Err(Error::CallTimeout { .. }) => Err(Error::CallTimeout { method: method.into(), timeout_ms: timeout.as_millis() as u64 }),
                r => r,
            };
            lease.finish(&result);
            if matches!(result, Err(Error::ProcessFailed { .. })) && Instant::now() < deadline {
                continue; // the member died before the call was sent: it never ran, send it elsewhere
            }
            // A call pipelined behind others most likely never started when its member crashed;
            // a call allowed to repeat (retries > 0, at-least-once) is resent without spending a retry.
            if ahead && retries > 0 && resent < MAX_PIPELINED_RESENDS && matches!(result, Err(Error::ProcessCrashed { .. })) && Instant::now() < deadline {
                resent += 1;
                continue;
            }
            match result {
                Err(e) if retry.again(&e, Instant::now(), deadline) => continue,
                r => return r,
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        match self.state.get() {
            PoolState::Running => Ok(()),
            PoolState::Draining => Err(Error::ProcessFailed { process_id: self.id, state: ProcessState::Stopping }),
            PoolState::Failed => Err(Error::ProcessFailed { process_id: self.id, state: ProcessState::Failed }),
            PoolState::Destroyed => Err(Error::ProcessFailed { process_id: self.id, state: ProcessState::Stopped }),
        }
    }

    fn admit(&self) -> Result<()> {
        let mut breaker = self.breaker.borrow_mut();
        let Some(b) = breaker.as_mut() else { return Ok(()) };
        let changed = b.admit(self.clock.now())?;
        drop(breaker);
        if let Some(s) = changed {
            self.emit(PoolEvent::Breaker(s));
        }
        Ok(())
    }

    
    /// A member with room now, or a place in the queue until one frees up (within the deadline).
    async fn acquire(self: &Rc<Self>, key: Option<&str>, deadline: Instant, method: &str, timeout: Duration) -> Result<Rc<Member>> {
        if self.queue.borrow().is_empty() {
            if let Some(m) = self.pick(key, 0) {
                m.in_flight.set(m.in_flight.get() + 1);
                return Ok(m);
            }
        }
        // Calls pipelined to members wait too: they count against the queue's bound.
        let queued = self.waiting();
        if queued >= self.options.max_queue_size {
            return Err(Error::PoolBackpressure { queue_size: queued });
        }
        if self.queue.borrow().is_empty() {
            if let Some(m) = self.pick(key, self.options.pipeline) {
                m.in_flight.set(m.in_flight.get() + 1);
                return Ok(m);
            }
        }
        let (tx, rx) = oneshot::channel();
        let id = self.next_waiter.get() + 1;
        self.next_waiter.set(id);
        self.queue.borrow_mut().push_back(Waiter { id, key: key.map(str::to_string), tx });
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(member)) => Ok(member),
            Ok(Err(_)) => Err(self.check_open().err().unwrap_or(Error::ManagerShutDown)),
            Err(_) => {
                self.queue.borrow_mut().retain(|w| w.id != id);
                Err(Error::CallTimeout { method: method.into(), timeout_ms: timeout.as_millis() as u64 })
            }
        }
    }

    /// Calls waiting: in the pool's queue, and pipelined to members beyond their concurrency.
    fn waiting(&self) -> usize {
        let queued = self.queue.borrow().iter().filter(|w| !w.tx.is_closed()).count();
        queued + self.pipelined()
    }

    /// Calls sent to members beyond their concurrency (waiting in the worker).
    fn pipelined(&self) -> usize {
        self.members.borrow().iter().map(|m| m.in_flight.get().saturating_sub(self.options.concurrency)).sum()
    }

    /// The balancer's choice among members that are running and not retiring and
    /// have fewer than `concurrency + ahead` calls.
    fn pick(&self, key: Option<&str>, ahead: usize) -> Option<Rc<Member>> {
        let members = self.members.borrow();
        // Calls are sent ahead only to members whose recent calls are short: there a round trip
        // is a large share of each call, and a call sent ahead waits little. A member with long
        // or not yet timed calls gets none, so a queued call waits for the first that frees up.
        let light = |m: &Rc<Member>| ahead == 0 || m.pace_ms.get().is_some_and(|l| l <= PIPELINE_BELOW_MS);
        let live: Vec<&Rc<Member>> = members
            .iter()
            .filter(|m| !m.retiring.get() && m.process.state() == ProcessState::Running && light(m))
            .collect();
        let views: Vec<WorkerView> = live
            .iter()
            .map(|m| WorkerView {
                id: m.process.id,
                in_flight: m.in_flight.get(),
                capacity: self.options.concurrency + ahead,
                weight: m.weight,
                latency_ms: m.latency_ms.get(),
                error_rate: m.error_rate.get(),
                cpu: m.cpu.get(),
                memory: m.memory.get(),
            })
            .collect();
        let i = self.balancer.borrow_mut().pick(&views, key)?;
        Some(live[i].clone())
    }

    /// A call left `member`: with its result, or `None` if the caller dropped it.
    fn release(self: &Rc<Self>, member: &Rc<Member>, result: Option<&Result<Value>>, elapsed: Duration, turn: usize) {
        member.in_flight.set(member.in_flight.get() - 1);
        let Some(result) = result else {
            self.pump();
            self.changed.notify_waiters();
            return;
        };
        let ok = result.is_ok();
        member.stats.borrow_mut().record(elapsed, ok);
        self.stats.borrow_mut().record(elapsed, ok);
        let ms = elapsed.as_secs_f64() * 1000.0;
        member.latency_ms.set(Some(member.latency_ms.get().map_or(ms, |l| l + EWMA_ALPHA * (ms - l))));
        let pace = ms / turn as f64;
        member.pace_ms.set(Some(member.pace_ms.get().map_or(pace, |l| l + EWMA_ALPHA * (pace - l))));
        let failed = if ok { 0.0 } else { 1.0 };
        member.error_rate.set(member.error_rate.get() + EWMA_ALPHA * (failed - member.error_rate.get()));
        if self.options.recycle.max_requests.is_some_and(|max| member.stats.borrow().requests >= max) {
            self.retire(member.clone());
        }
        self.pump();
        self.changed.notify_waiters();
    }

    /// Hands queued calls, oldest first, to members that have room.
    fn pump(&self) {
        let mut queue = self.queue.borrow_mut();
        let mut i = 0;
        while i < queue.len() {
            if queue[i].tx.is_closed() {
                queue.remove(i);
                continue;
            }
            let key = queue[i].key.as_deref();
            let Some(member) = self.pick(key, 0).or_else(|| self.pick(key, self.options.pipeline)) else {
                if queue[i].key.is_none() {
                    break; // no member has room at all
                }
                i += 1; // a keyed call waits for its own worker; later calls may go elsewhere
                continue;
            };
            let waiter = queue.remove(i).expect("index in range");
            member.in_flight.set(member.in_flight.get() + 1);
            if let Err(member) = waiter.tx.send(member) {
                member.in_flight.set(member.in_flight.get() - 1);
            }
        }
    }

    // ---- size ----

    /// A serving member's description (every member runs the same target).
    pub(crate) fn description(&self) -> Option<crate::protocol::Description> {
        self.members.borrow().iter().filter(|m| !m.retiring.get()).find_map(|m| m.process.description())
    }

    /// The process ids of the members serving now.
    pub(crate) fn member_ids(&self) -> Vec<u64> {
        self.members.borrow().iter().map(|m| m.process.id).collect()
    }

    /// Members serving now (not retiring).
    pub(crate) fn size(&self) -> usize {
        self.members.borrow().iter().filter(|m| !m.retiring.get()).count()
    }

    /// The number of members the pool is keeping (its target), counting one being replaced
    /// or started: what users read as `pool.size` (ARCHITECTURE §7); `metrics()` tells live from starting.
    pub(crate) fn target_size(&self) -> usize {
        self.desired.get()
    }

    pub(crate) async fn scale(self: &Rc<Self>, n: usize) -> Result<()> {
        self.check_open()?;
        if n == 0 {
            return Err(Error::Config("a pool needs at least one worker (use destroy to stop it)".into()));
        }
        self.set_desired(n);
        let engine = self.engine.upgrade().ok_or(Error::ManagerShutDown)?;
        let limit = engine.config.spawn_timeout * 2 + engine.config.shutdown_timeout * 2;
        let settled = async {
            loop {
                let notified = self.changed.notified();
                let retiring = self.members.borrow().iter().any(|m| m.retiring.get());
                if self.state.get() != PoolState::Running || (self.size() == self.desired.get() && !retiring) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, settled).await;
        self.check_open()
    }

    fn set_desired(self: &Rc<Self>, n: usize) {
        let from = self.desired.replace(n);
        if from != n {
            self.emit(PoolEvent::Scaled { from, to: n });
            if let Some(hooks) = self.engine.upgrade().and_then(|e| e.config.interceptor.clone()) {
                hooks.scaled(self.id, from, n);
            }
        }
        self.reconcile(None);
    }

    /// Brings the number of serving members to the desired size: spawns, or retires extras.
    fn reconcile(self: &Rc<Self>, replacing: Option<u64>) {
        if self.reconciling.replace(true) {
            return; // the running loop will see the new target
        }
        let pool = self.clone();
        tokio::task::spawn_local(async move {
            let mut replacing = replacing;
            while let Some(engine) = pool.engine.upgrade() {
                if pool.state.get() != PoolState::Running {
                    break;
                }
                let size = pool.size();
                let desired = pool.desired.get();
                if size > desired {
                    let extra = pool.members.borrow().iter().filter(|m| !m.retiring.get()).min_by_key(|m| m.in_flight.get()).cloned();
                    if let Some(m) = extra {
                        pool.retire(m);
                    }
                    continue;
                }
                if size == desired {
                    break;
                }
                let spawned = if crate::host::joins::remote_name(&pool.target).is_some() {
                    // Waiting for a remote worker to join: a pool that stops running ends the wait.
                    tokio::select! {
                        r = pool.spawn_member(&engine, size) => r,
                        _ = pool.left_running() => break,
                    }
                } else {
                    pool.spawn_member(&engine, size).await
                };
                match spawned {
                    Ok(m) if pool.state.get() == PoolState::Running => {
                        pool.spawn_failures.set(0);
                        let new = m.process.id;
                        pool.add(m);
                        if let Some(old) = replacing.take() {
                            pool.emit(PoolEvent::WorkerReplaced { old, new });
                        }
                    }
                    Ok(m) => m.process.kill().await,
                    Err(e) => {
                        let failures = pool.spawn_failures.get() + 1;
                        pool.spawn_failures.set(failures);
                        tracing::warn!(target: "titan_pm", "pool {} could not start a worker ({failures} in a row): {e}", pool.id);
                        if failures >= MAX_SPAWN_FAILURES {
                            pool.fail(format!("{failures} replacement workers in a row failed to start: {e}"));
                            break;
                        }
                        pool.clock.sleep(crate::policy::Backoff::default().delay(failures)).await;
                    }
                }
            }
            pool.reconciling.set(false);
            pool.changed.notify_waiters();
        });
    }

    /// Resolves once the pool is no longer running (draining, failed, destroyed).
    async fn left_running(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.state.get() != PoolState::Running {
                return;
            }
            changed.await;
        }
    }

    /// Takes a member out of rotation, lets its calls finish, stops it; `reconcile` replaces it if needed.
    fn retire(self: &Rc<Self>, member: Rc<Member>) {
        if member.retiring.replace(true) {
            return;
        }
        self.reconcile(Some(member.process.id));
        let pool = self.clone();
        tokio::task::spawn_local(async move {
            let Some(engine) = pool.engine.upgrade() else { return };
            let step = engine.config.shutdown_timeout;
            let drained = async {
                while member.in_flight.get() > 0 {
                    let notified = pool.changed.notified();
                    if member.in_flight.get() == 0 {
                        break;
                    }
                    notified.await;
                }
            };
            let _ = tokio::time::timeout(step, drained).await;
            member.process.stop(step).await; // retiring: drain, then stop within shutdown_timeout
            pool.remove(&member);
            pool.changed.notify_waiters();
        });
    }

    /// Rolling reload (`PoolHandle::reload`): for each member of now, in turn, a new
    /// member is started; once it is ready it joins and the old one retires in the
    /// same step (so the size never drops and `reconcile` sees no extra), then the
    /// old one finishes its calls and stops before the next is replaced.
    pub(crate) async fn reload(self: &Rc<Self>, respawn: Option<(Target, SpawnOptions)>) -> Result<()> {
        self.check_open()?;
        if respawn.is_some() {
            *self.respawn.borrow_mut() = respawn;
        }
        let engine = self.engine.upgrade().ok_or(Error::ManagerShutDown)?;
        let old: Vec<_> = self.members.borrow().iter().filter(|m| !m.retiring.get()).cloned().collect();
        for (position, member) in old.into_iter().enumerate() {
            if member.retiring.get() || !self.members.borrow().iter().any(|m| Rc::ptr_eq(m, &member)) {
                continue; // died or retired meanwhile: reconcile replaces it with the new spec
            }
            let new = self.spawn_member(&engine, position).await?;
            if self.state.get() != PoolState::Running {
                new.process.kill().await;
                return self.check_open();
            }
            let new_id = new.process.id;
            self.add(new);
            self.retire(member.clone());
            self.emit(PoolEvent::WorkerReplaced { old: member.process.id, new: new_id });
            let gone = async {
                loop {
                    let notified = self.changed.notified();
                    if !self.members.borrow().iter().any(|m| Rc::ptr_eq(m, &member)) {
                        return;
                    }
                    notified.await;
                }
            };
            let limit = engine.config.shutdown_timeout * 4 + Duration::from_secs(1);
            let _ = tokio::time::timeout(limit, gone).await;
        }
        self.check_open()
    }

    pub(crate) fn info(&self) -> super::PoolInfo {
        let spawn = self.respawn.borrow().as_ref().map(|(_, o)| o.name.clone()).unwrap_or_else(|| self.options.spawn.name.clone());
        let target = self.respawn.borrow().as_ref().map(|(t, _)| t.clone()).unwrap_or_else(|| self.target.clone());
        super::PoolInfo {
            pool_id: self.id,
            name: spawn.unwrap_or_else(|| crate::host::engine::default_name(&target)),
            target: target.describe(),
            size: self.size(),
            members: self.members.borrow().iter().map(|m| m.process.id).collect(),
            state: self.metrics_state(),
        }
    }

    fn metrics_state(&self) -> &'static str {
        match self.state.get() {
            PoolState::Running => "running",
            PoolState::Draining => "draining",
            PoolState::Failed => "failed",
            PoolState::Destroyed => "destroyed",
        }
    }

    fn fail(&self, reason: String) {
        self.state.set(PoolState::Failed);
        self.changed.notify_waiters();
        self.queue.borrow_mut().clear(); // waiters see their sender dropped: they fail fast
        self.emit(PoolEvent::Failed { reason });
        self.changed.notify_waiters();
    }

    // ---- drain and destroy ----

    pub(crate) async fn drain(&self) {
        if self.state.get() == PoolState::Running {
            self.state.set(PoolState::Draining);
            self.changed.notify_waiters();
        }
        loop {
            let notified = self.changed.notified();
            let busy = self.members.borrow().iter().any(|m| m.in_flight.get() > 0);
            // A remote pool with no member left cannot serve its queue: nothing to wait for
            // (a destroy fails those calls with the pool's error at once).
            let stranded = self.members.borrow().is_empty() && crate::host::joins::remote_name(&self.target).is_some();
            if !busy && (stranded || self.queue.borrow().iter().all(|w| w.tx.is_closed())) {
                break;
            }
            notified.await;
        }
        if !self.drained.replace(true) {
            self.emit(PoolEvent::Drained);
        }
    }

    pub(crate) async fn destroy(&self, engine: &Rc<Engine>) {
        self.destroy_by(engine, std::time::Instant::now() + engine.config.shutdown_timeout).await
    }

    /// Drains, then stops every member: all done by `deadline`.
    pub(crate) async fn destroy_by(&self, engine: &Rc<Engine>, deadline: std::time::Instant) {
        if self.state.get() != PoolState::Destroyed {
            // Half the time for the queue and calls to drain, the rest for the members to stop.
            let now = std::time::Instant::now();
            let drain_until = now + deadline.saturating_duration_since(now) / 2;
            let _ = tokio::time::timeout_at(drain_until.into(), self.drain()).await;
        }
        self.state.set(PoolState::Destroyed);
        self.changed.notify_waiters();
        self.queue.borrow_mut().clear();
        self.stop_members(engine, deadline).await;
        self.emit(PoolEvent::Destroyed);
    }

    async fn stop_members(&self, engine: &Rc<Engine>, deadline: std::time::Instant) {
        let members: Vec<_> = self.members.borrow_mut().drain(..).collect();
        futures::future::join_all(members.iter().map(|m| m.process.stop_by(deadline))).await;
        for m in &members {
            engine.forget(m.process.id);
        }
        self.changed.notify_waiters();
    }

    // ---- housekeeping: health, load, recycling, auto-scaling ----

    fn housekeeping(self: &Rc<Self>) {
        let opts = &self.options;
        let sample_load = opts.strategy.needs_load()
            || opts.auto_scale.as_ref().is_some_and(|a| a.enabled)
            || opts.recycle.max_memory.is_some();
        let needed = sample_load || opts.health.is_some() || opts.recycle.max_lifetime.is_some();
        if !needed {
            return;
        }
        let pool = Rc::downgrade(self);
        let tick = [
            opts.health.as_ref().map(|h| h.interval),
            opts.auto_scale.as_ref().filter(|a| a.enabled).map(|a| a.interval),
            Some(Duration::from_millis(500)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_millis(500));
        let clock = self.clock.clone();
        tokio::task::spawn_local(async move {
            let mut last_health = clock.now();
            let mut last_scale: Option<Instant> = None;
            let mut queue_lengths: VecDeque<usize> = VecDeque::new();
            loop {
                clock.sleep(tick).await;
                let Some(pool) = pool.upgrade() else { return };
                if pool.state.get() != PoolState::Running {
                    if matches!(pool.state.get(), PoolState::Failed | PoolState::Destroyed) {
                        return;
                    }
                    continue;
                }
                if sample_load {
                    pool.sample_load();
                }
                pool.recycle_old_or_large();
                if let Some(h) = pool.options.health.clone() {
                    if clock.now().saturating_duration_since(last_health) >= h.interval {
                        last_health = clock.now();
                        pool.probe_health(h.unhealthy_threshold).await;
                    }
                }
                if let Some(a) = pool.options.auto_scale.clone().filter(|a| a.enabled) {
                    queue_lengths.push_back(pool.waiting());
                    if queue_lengths.len() > 3 {
                        queue_lengths.pop_front();
                    }
                    let growing = queue_lengths.len() == 3 && queue_lengths.iter().zip(queue_lengths.iter().skip(1)).all(|(a, b)| b > a);
                    let load = Load { queue_growing: growing, ..pool.load() };
                    let size = pool.desired.get();
                    let next = scale_decision(&a, size, &load, last_scale.map(|t| clock.now().saturating_duration_since(t)));
                    if next != size {
                        last_scale = Some(clock.now());
                        pool.set_desired(next);
                    }
                }
            }
        });
    }

    fn sample_load(&self) {
        for m in self.members.borrow().iter() {
            let metrics = m.process.metrics();
            m.cpu.set(metrics.cpu);
            m.memory.set(metrics.memory);
        }
    }

    fn load(&self) -> Load {
        let members = self.members.borrow();
        let live: Vec<_> = members.iter().filter(|m| !m.retiring.get()).collect();
        let n = live.len().max(1) as f64;
        let in_flight: usize = live.iter().map(|m| m.in_flight.get()).sum();
        let capacity = (live.len() * self.options.concurrency).max(1) as f64;
        Load {
            cpu: live.iter().map(|m| m.cpu.get()).sum::<f64>() / n,
            memory: live.iter().map(|m| m.memory.get() as f64).sum::<f64>() / n / machine_memory() as f64 * 100.0,
            saturation: (in_flight + self.queue.borrow().len()) as f64 / capacity,
            queue_growing: false,
        }
    }

    fn recycle_old_or_large(self: &Rc<Self>) {
        let r = &self.options.recycle;
        let due: Vec<_> = self
            .members
            .borrow()
            .iter()
            .filter(|m| !m.retiring.get())
            .filter(|m| {
                r.max_lifetime.is_some_and(|max| m.started.elapsed() >= max) || r.max_memory.is_some_and(|max| m.memory.get() > max)
            })
            .cloned()
            .collect();
        for m in due {
            self.retire(m);
        }
    }

    async fn probe_health(self: &Rc<Self>, threshold: u32) {
        let members: Vec<_> = self.members.borrow().iter().filter(|m| !m.retiring.get()).cloned().collect();
        let reports = futures::future::join_all(members.iter().map(|m| m.process.health())).await;
        for (m, report) in members.into_iter().zip(reports) {
            if report.status == HealthStatus::Unhealthy {
                m.unhealthy_streak.set(m.unhealthy_streak.get() + 1);
                if m.unhealthy_streak.get() >= threshold.max(1) {
                    self.emit(PoolEvent::WorkerUnhealthy { process_id: m.process.id });
                    self.retire(m);
                }
            } else {
                m.unhealthy_streak.set(0);
            }
        }
    }

    // ---- observability ----

    pub(crate) fn metrics(&self) -> PoolMetrics {
        let members = self.members.borrow();
        let stats = self.stats.borrow();
        let workers: Vec<PoolWorkerMetrics> = members
            .iter()
            .map(|m| {
                let s = m.stats.borrow();
                PoolWorkerMetrics {
                    process_id: m.process.id,
                    pid: m.process.info().pid,
                    in_flight: m.in_flight.get(),
                    requests: s.requests,
                    errors: s.errors,
                    latency: s.latency(),
                    cpu: m.cpu.get(),
                    memory: m.memory.get(),
                }
            })
            .collect();
        let busy = workers.iter().filter(|w| w.in_flight > 0).count();
        PoolMetrics {
            size: members.iter().filter(|m| !m.retiring.get()).count(),
            busy,
            idle: workers.len() - busy,
            queue_length: self.waiting(),
            requests: stats.requests,
            errors: stats.errors,
            error_rate: if stats.requests == 0 { 0.0 } else { stats.errors as f64 / stats.requests as f64 },
            latency: stats.latency(),
            state: match self.state.get() {
                PoolState::Running => "running",
                PoolState::Draining => "draining",
                PoolState::Failed => "failed",
                PoolState::Destroyed => "destroyed",
            },
            breaker: self.breaker.borrow().as_ref().map(|b| b.state()),
            workers,
            methods: self.policies.metrics(),
        }
    }
}

/// A member taken for one call; given back with the result, or, if the caller
/// drops the call, given back without one.
struct Lease<'a> {
    pool: &'a Rc<Pool>,
    member: Rc<Member>,
    started: Instant,
    /// Its turn in the member's line when sent (1: it could start at once).
    turn: usize,
    returned: bool,
}

impl Lease<'_> {
    fn finish(mut self, result: &Result<Value>) {
        self.returned = true;
        self.pool.release(&self.member, Some(result), self.started.elapsed(), self.turn);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.returned {
            self.pool.release(&self.member, None, self.started.elapsed(), self.turn);
        }
    }
}

/// The breaker's verdict on one admitted call: its outcome, or, if the caller
/// dropped the call, nothing (a half-open trial slot is handed back), so the
/// breaker never waits for a trial that will not report.
struct Verdict<'a> {
    pool: &'a Rc<Pool>,
    given: bool,
}

impl Verdict<'_> {
    fn give(&mut self, result: &Result<Value>) {
        self.given = true;
        let ok = matches!(result, Ok(_) | Err(Error::MethodNotFound { .. } | Error::Serialization { .. }));
        let changed = self.pool.breaker.borrow_mut().as_mut().and_then(|b| b.record(ok, self.pool.clock.now()));
        if let Some(s) = changed {
            self.pool.emit(PoolEvent::Breaker(s));
        }
    }
}

impl Drop for Verdict<'_> {
    fn drop(&mut self) {
        if !self.given {
            if let Some(b) = self.pool.breaker.borrow_mut().as_mut() {
                b.forget_trial();
            }
        }
    }
}

impl Service for Pool {
    fn stop(self: Rc<Self>, engine: Rc<Engine>, deadline: std::time::Instant) -> futures::future::LocalBoxFuture<'static, ()> {
        Box::pin(async move { self.destroy_by(&engine, deadline).await })
    }
    fn call(self: Rc<Self>, method: String, args: Vec<Value>, options: CallOptions, parent: Option<TraceContext>) -> Option<futures::future::LocalBoxFuture<'static, Result<Value>>> {
        Some(Box::pin(async move { Pool::call(&self, method, args, options, parent).await }))
    }
    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }
}

/// Starts a pool on the engine and registers it there.
pub(crate) async fn start(
    engine: &Rc<Engine>,
    target: Target,
    options: PoolOptions,
    events: broadcast::Sender<PoolEvent>,
) -> Result<u64> {
    if engine.is_closed() {
        return Err(Error::ManagerShutDown);
    }
    let pool = Pool::start(engine.new_id(), target, options, events, engine).await?;
    engine.add_service(pool.id, pool.clone());
    Ok(pool.id)
}

/// The live pool under `id`.
pub(crate) fn pool(engine: &Engine, id: u64) -> Result<Rc<Pool>> {
    engine.service::<Pool>(id).ok_or(Error::NotFound { what: "pool", id })
}

/// Drains and stops the pool under `id`, and forgets it.
pub(crate) async fn destroy(engine: &Rc<Engine>, id: u64) -> Result<()> {
    let p = pool(engine, id)?;
    p.destroy(engine).await;
    engine.remove_service(id);
    Ok(())
}

/// `(id, name, metrics)` of every live pool (the name: its target).
pub(crate) fn all_metrics(engine: &Engine) -> Vec<(u64, String, PoolMetrics)> {
    engine.service_ids().into_iter().filter_map(|id| engine.service::<Pool>(id)).map(|p| (p.id, p.target.describe(), p.metrics())).collect()
}
