//! Testing utilities on real workers (the seed's `TestProcessManager`): a real
//! [`ProcessManager`] (default isolation `none`, so it is fast) with crash and
//! failure injection, health and metrics overrides, a clock the test moves,
//! and a record of what happened. Python's `titan_pm.testing` and TS's
//! `titan-pm/testing` are thin conversions of this module.
//!
//! - [`TestProcessManager::simulate_crash`] crashes the real worker (a child gets
//!   SIGKILL; a thread or in-engine worker is torn down and reported as SIGKILL)
//!   and the real restart path follows; [`wait_for_recovery`](TestProcessManager::wait_for_recovery)
//!   waits until it runs and answers again.
//! - [`set_health`](TestProcessManager::set_health) / [`set_metrics`](TestProcessManager::set_metrics):
//!   what `get_health`/`get_metrics` report, and what the periodic health probe
//!   (health-based restarts) and pools (load sampling, pool health) see, until cleared.
//! - [`simulate_failure`](TestProcessManager::simulate_failure) (`spawn:Name`,
//!   `call:method`, `call:Name.method`) fails the next such operation.
//! - With `control_time`, [`advance_time`](TestProcessManager::advance_time) moves
//!   the [`Clock`] every timer in core reads (restart backoff and window, breaker
//!   timeouts, rate-limit refill, cache and idempotency TTLs, self-heal cooldowns,
//!   health and autoscale intervals, pool replacement and supervisor backoff,
//!   workflow stage-retry and compensation backoff). Some stay on real time, because
//!   they bound real work or are shared with other hosts, and a clock nobody moves
//!   must not turn them into hangs: call deadlines and spawn and shutdown timeouts
//!   (a worker that hangs while it starts, answers or stops still fails the test in
//!   time, and moving the clock for a 60 s breaker does not time out a spawn in
//!   flight); workflow lease renewal and the lease expiry it races (the journal
//!   stores the lease as wall-clock time that other hosts read, so a heartbeat on a
//!   stopped clock would lose the lease to them).
//! - [`operations`](TestProcessManager::operations): `spawn`, `kill`, `crash`,
//!   `restart`, `failed`, `exit`, `recycle`, `call` (with its outcome), `scale`,
//!   `supervisor:child:started|exited|restarted`, `supervisor:failed|stopped`,
//!   `workflow:started`, `workflow:stage:started|completed|failed|retrying`,
//!   `workflow:compensation:started|completed`, `workflow:completed|failed` (the
//!   run's events with their fields, and the workflow's process id).
//!   A call is recorded where it reaches a worker: one answered by a cache or an
//!   idempotency hit, or refused by an open breaker or a rate limit, is not.
//! - [`cleanup`](TestProcessManager::cleanup) shuts down and fails, naming them,
//!   if a worker outlived the shutdown (a child still alive, a worker thread still running,
//!   or a runtime a bridge owns behind an in-process worker: a Python worker's call or loop
//!   thread, a JS worker thread; see [`host::live`](crate::host::live)).
//!
//! The engine sees these through one [`Interceptor`](crate::host::Interceptor):
//! a manager without one (production) pays an `Option` check per call and per spawn.
//!
//! ```no_run
//! # async fn demo() -> titan_pm::Result<()> {
//! use std::time::Duration;
//! use titan_pm::testing::{TestOptions, TestProcessManager};
//! use titan_pm::agent::WorkerDef;
//! use titan_pm::{SpawnOptions, Target};
//! let pm = TestProcessManager::new(TestProcessManager::config(), TestOptions::default());
//! let target = Target::handler("calculator", || Ok(std::rc::Rc::new(
//!     WorkerDef::new("calculator", "1.0.0").method("add", |(a, b): (i64, i64)| async move { Ok(a + b) }))));
//! let calc = pm.spawn(target, SpawnOptions::default()).await?;
//! pm.simulate_crash(calc.id()).await?;
//! assert!(pm.wait_for_recovery(calc.id(), Duration::from_secs(5)).await);
//! assert!(pm.verify_operation("restart", |op| op.process_id() == calc.id()));
//! pm.cleanup().await?;
//! # Ok(()) }
//! ```

mod record;

use std::sync::Arc;
use std::time::Duration;

pub use crate::options::TestOptions;
pub use record::{CallOutcome, Failure, FailurePoint, Operation, Recorded, MAX_FAILURES, MAX_OPERATIONS};

use crate::clock::Clock;
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::options;
use crate::value::Value;
use crate::host::{Isolation, ManagerConfig, ProcessManager, ProcessMetrics, ProcessState};
use crate::protocol::HealthReport;
use record::{Hooks, MetricsOverride};

/// A real manager with the testing utilities. It derefs to its [`ProcessManager`].
pub struct TestProcessManager {
    pm: ProcessManager,
    hooks: Arc<Hooks>,
    clock: Clock,
}

impl std::ops::Deref for TestProcessManager {
    type Target = ProcessManager;
    fn deref(&self) -> &ProcessManager {
        &self.pm
    }
}

impl TestProcessManager {
    /// The default configuration of a test manager: a manager's, with isolation `none`.
    pub fn config() -> ManagerConfig {
        ManagerConfig { isolation: Isolation::None, ..ManagerConfig::default() }
    }

    /// A test manager running its engine on a thread of its own. `config`'s clock and
    /// interceptor are replaced by the test manager's.
    pub fn new(config: ManagerConfig, options: TestOptions) -> Self {
        Self::try_new(config, options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), with the OS refusing the engine's thread as an error (see [`ProcessManager::try_new`]).
    pub fn try_new(config: ManagerConfig, options: TestOptions) -> Result<Self> {
        let (config, hooks, clock) = Self::prepare(config, &options);
        Ok(TestProcessManager { pm: ProcessManager::try_new(config)?, hooks, clock })
    }

    /// Like [`new`](Self::new), with the engine on the caller's `LocalSet` (see [`ProcessManager::new_local`]).
    pub fn new_local(config: ManagerConfig, options: TestOptions) -> Self {
        let (config, hooks, clock) = Self::prepare(config, &options);
        TestProcessManager { pm: ProcessManager::new_local(config), hooks, clock }
    }

    fn prepare(mut config: ManagerConfig, options: &TestOptions) -> (ManagerConfig, Arc<Hooks>, Clock) {
        let clock = Clock::manual();
        if !options.control_time {
            clock.as_manual().expect("a manual clock").release();
        }
        let hooks = Arc::new(Hooks::new(options.record_operations, clock.clone()));
        config.clock = clock.clone();
        config.interceptor = Some(hooks.clone());
        (config, hooks, clock)
    }

    /// The manager itself (a test manager also derefs to it).
    pub fn manager(&self) -> &ProcessManager {
        &self.pm
    }

    // ---- crashes ----

    /// Crashes process `id`'s worker for real; returns once the manager has taken
    /// the crash in (the process is `restarting`, or `failed` when its budget is spent).
    pub async fn simulate_crash(&self, id: u64) -> Result<()> {
        self.pm.exec(move |engine| async move { engine.process(id)?.crash().await }).await
    }

    /// True once process `id` is running and its worker answers again; false if it
    /// is failed or stopped, or `timeout` passes first (real time).
    pub async fn wait_for_recovery(&self, id: u64, timeout: Duration) -> bool {
        // On the engine (its timers work whatever runtime, or none, the caller awaits from).
        self.pm
            .exec(move |engine| async move {
                let deadline = tokio::time::Instant::now() + timeout;
                loop {
                    let Ok(p) = engine.process(id) else { return Ok(false) };
                    match p.state() {
                        ProcessState::Failed | ProcessState::Stopped | ProcessState::Stopping => return Ok(false),
                        ProcessState::Running if tokio::time::timeout_at(deadline, p.answers()).await.unwrap_or(false) => return Ok(true),
                        _ => {}
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(false);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap_or(false)
    }

    // ---- overrides ----

    /// What `get_metrics(id)` (and a pool's load sampling) reports until [`clear_metrics`](Self::clear_metrics).
    pub fn set_metrics(&self, id: u64, metrics: ProcessMetrics) {
        self.hooks.set_metrics(id, Some(MetricsOverride::Whole(metrics)));
    }

    pub fn clear_metrics(&self, id: u64) {
        self.hooks.set_metrics(id, None);
    }

    /// What `get_health(id)`, the periodic health probe and a pool's health check
    /// see until [`clear_health`](Self::clear_health).
    pub fn set_health(&self, id: u64, report: HealthReport) {
        self.hooks.set_health(id, Some(report));
    }

    pub fn clear_health(&self, id: u64) {
        self.hooks.set_health(id, None);
    }

    /// [`set_metrics`](Self::set_metrics) from a front end's object: the fields it gives
    /// (`cpu`, `memory`, `requests`, `errors`, `inFlight`, `latency`, read by
    /// [`options::metrics_override`]) are laid over the measured ones until cleared.
    pub fn set_metrics_value(&self, id: u64, v: &Value, dialect: Dialect) -> Result<()> {
        options::metrics_override(v, dialect, ProcessMetrics::default())?;
        self.hooks.set_metrics(id, Some(MetricsOverride::Fields(v.clone(), dialect)));
        Ok(())
    }

    /// [`set_health`](Self::set_health) from a front end's object (`{status, checks}`, a
    /// status or a bool: read as a worker's health check result is).
    pub fn set_health_value(&self, id: u64, v: &Value) {
        self.set_health(id, HealthReport::from_value(v));
    }

    // ---- failures ----

    /// Fails the next operation `point` names (`spawn:Name`, `call:method`,
    /// `call:Name.method`) with `failure`: a spawn with `SpawnError`, a call with
    /// `RemoteError` (the worker is not asked). Each failure is used once.
    pub fn simulate_failure(&self, point: &str, failure: Failure) -> Result<()> {
        self.hooks.add_failure(point.parse()?, failure)
    }

    pub fn clear_failures(&self) {
        self.hooks.clear_failures();
    }

    // ---- time ----

    /// Moves the manager's clock forward by `d`, firing every timer due on the way,
    /// earliest first, each with the clock at its due time, and letting what it
    /// woke run until it next waits. An error unless the manager controls time.
    pub async fn advance_time(&self, d: Duration) -> Result<()> {
        let manual = self.controlled()?.clone();
        self.pm
            .exec(move |_engine| async move {
                // On the engine thread, where the timers' tasks run: each runs at its due time.
                manual.advance(d).await;
                Ok(())
            })
            .await
    }

    fn controlled(&self) -> Result<&Arc<crate::clock::ManualClock>> {
        match self.clock.as_manual() {
            Some(m) if m.controlled() => Ok(m),
            _ => Err(Error::Config("time is not controlled: create the test manager with controlTime (control_time) true".into())),
        }
    }

    /// The manager's time, ms since the epoch.
    pub fn current_time(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Back to real time: pending timers wait out what is left of them in real time.
    pub fn reset_time(&self) {
        if let Some(m) = self.clock.as_manual() {
            m.release();
        }
    }

    /// Takes control of time again (as `controlTime: true` does at creation), from the current real time.
    pub fn control_time(&self) {
        if let Some(m) = self.clock.as_manual() {
            m.take_control();
        }
    }

    // ---- the record ----

    /// Every recorded operation, oldest first (at most [`MAX_OPERATIONS`]).
    pub fn operations(&self) -> Vec<Recorded> {
        self.hooks.operations()
    }

    /// Whether an operation of type `kind` (`spawn`, `restart`, `call` ...) matching `predicate` was recorded.
    pub fn verify_operation(&self, kind: &str, predicate: impl Fn(&Operation) -> bool) -> bool {
        self.hooks.operations().iter().any(|r| r.operation.kind() == kind && predicate(&r.operation))
    }

    /// Every recorded operation as front ends return it (a list of `{type, ...}` in `dialect`).
    pub fn operations_report(&self, dialect: Dialect) -> Value {
        Value::List(self.hooks.operations().iter().map(|r| r.report(dialect)).collect())
    }

    pub fn clear_operations(&self) {
        self.hooks.clear_operations();
    }

    /// Operations dropped because the record was full.
    pub fn dropped_operations(&self) -> u64 {
        self.hooks.dropped()
    }

    // ---- the end ----

    /// Shuts the manager down (gracefully, as `shutdown`), then checks that no worker
    /// outlived it: an error naming each process whose child is still alive or whose
    /// worker thread still runs. Pending timers on a controlled clock are dropped.
    pub async fn cleanup(&self) -> Result<()> {
        self.pm.shutdown().await;
        let leaks = self
            .pm
            .exec(|engine| async move {
                let processes = engine.all_processes();
                // A child killed at the deadline may need a moment to be reaped.
                futures::future::join_all(processes.iter().map(|p| p.instance_ended(Duration::from_secs(1)))).await;
                // A runtime a bridge owns (a Python worker's threads, a JS worker thread) ends after
                // its instance: give it a moment too (see `host::live`).
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while !engine.live.is_empty() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let mut leaks: Vec<String> = processes
                    .iter()
                    .filter_map(|p| {
                        let pid = p.live_instance()?;
                        let info = p.info();
                        let what = match info.isolation {
                            Isolation::Child => format!("child pid {pid}"),
                            Isolation::Worker => "a worker thread".to_string(),
                            Isolation::None => "an in-process worker".to_string(),
                        };
                        Some(format!("{} (process {}, {what})", info.name, info.process_id))
                    })
                    .collect();
                leaks.extend(engine.live.remaining());
                Ok(leaks)
            })
            .await
            .unwrap_or_default();
        if let Some(m) = self.clock.as_manual() {
            m.drop_sleepers();
        }
        if leaks.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(format!("cleanup: still running after shutdown: {}", leaks.join(", "))))
        }
    }
}
