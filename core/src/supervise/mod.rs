//! Supervisors: OTP supervision trees above the host. A supervisor starts its
//! children (workers, pools, nested supervisors) in declaration order, each
//! ready before the next, stops them in reverse, and owns their restarts:
//! a child's own restart policy is off, and when a child ends the supervisor
//! applies its [`SupervisionStrategy`], the child's [`ChildRestart`] type and
//! one restart intensity for the whole supervisor (more than `max_restarts`
//! within `window` → it stops its children, fails, and its parent sees it).
//!
//! - [`strategy`]: the strategy enum and which children one crash restarts.
//! - `child`: one child on the engine (start, stop for a restart, relaunch, stop).
//! - `runtime`: the supervisor on the engine (start order, the exit loop, intensity, escalation).
//!
//! Handles survive restarts: a restarted worker keeps its process id (calls
//! made meanwhile wait within their deadline), a pool its pool id, a nested
//! supervisor its id.
//!
//! ```no_run
//! # async fn demo(pm: titan_pm::ProcessManager) -> titan_pm::Result<()> {
//! use std::time::Duration;
//! use titan_pm::supervise::{ChildSpec, SupervisionStrategy, SupervisorSpec};
//! let spec = SupervisorSpec::new(SupervisionStrategy::OneForOne)
//!     .name("app")
//!     .max_restarts(3)
//!     .window(Duration::from_secs(60))
//!     .child("database", "workers/db", ChildSpec { critical: true, ..ChildSpec::default() })
//!     .child("analytics", "workers/analytics", ChildSpec { optional: true, ..ChildSpec::default() });
//! let sup = pm.supervisor(spec).await?;
//! let db = sup.child("database").await?;          // listed as `app/database`
//! let _: i64 = db.call("add", (1, 2)).await?;
//! println!("{:?}", sup.children().await?);
//! sup.stop().await?;
//! # Ok(()) }
//! ```

mod child;
mod runtime;
pub mod strategy;

use std::time::Duration;

use tokio::sync::broadcast;

pub use crate::policy::ChildRestart;
pub use strategy::SupervisionStrategy;

use crate::error::{Error, Result};
use crate::host::{CallOptions, ProcessHandle, ProcessManager, ProcessState, SpawnOptions, Target};
use crate::policy::{Backoff, RestartPolicy};
use crate::pool::{PoolHandle, PoolOptions};
use crate::value::Value;

/// What a supervisor runs: its strategy, its restart intensity and backoff, its children.
#[derive(Clone)]
pub struct SupervisorSpec {
    /// The supervisor's name: the first part of its children's names (`app/database`).
    pub name: String,
    pub strategy: SupervisionStrategy,
    /// `max_restarts` within `window` (the intensity) and the backoff before each
    /// restart; `enabled` is ignored (a supervisor always restarts). Default:
    /// 3 in 60 s, backoff from 100 ms doubling to 30 s.
    pub policy: RestartPolicy,
    /// In declaration order; for `SimpleOneForOne`, exactly one: the template.
    pub children: Vec<ChildDef>,
}

/// One declared child.
#[derive(Clone)]
pub struct ChildDef {
    pub name: String,
    pub target: ChildTarget,
    pub spec: ChildSpec,
}

/// A worker (file or handler; a pool if [`ChildSpec::pool`] is set) or a nested supervisor.
#[derive(Clone)]
pub enum ChildTarget {
    Worker(Target),
    Supervisor(Box<SupervisorSpec>),
}

impl<T: Into<Target>> From<T> for ChildTarget {
    fn from(t: T) -> Self {
        ChildTarget::Worker(t.into())
    }
}

impl From<SupervisorSpec> for ChildTarget {
    fn from(s: SupervisorSpec) -> Self {
        ChildTarget::Supervisor(Box::new(s))
    }
}

/// How a child is supervised (`@Child({ critical, optional, restart, pool })`).
#[derive(Clone, Default)]
pub struct ChildSpec {
    /// A child that cannot be kept up fails the supervisor at once: its
    /// restart cannot start, or it ends and its restart type says not to restart it.
    pub critical: bool,
    /// A child whose failure is tolerated: it may fail to start, and its restarts
    /// are counted against a budget of its own (the supervisor's policy, per
    /// child) instead of the supervisor's; when that is spent it is left
    /// `failed` while the others keep running.
    pub optional: bool,
    pub restart: ChildRestart,
    /// Run the worker as a pool (the pool replaces crashed members itself; the
    /// supervisor restarts the pool if the pool fails).
    pub pool: Option<PoolOptions>,
    /// Siblings this worker may call (@InjectProcess), by name; each must be
    /// declared before it (so it is up when this one's `init` runs). They reach
    /// the worker as capabilities, under the sibling's name, and stay valid across
    /// the sibling's restarts.
    pub inject: Vec<String>,
    /// How the worker (or each pool member) is spawned; its `restart` is ignored
    /// (the supervisor owns restarts) and its `name` is the supervisor path.
    pub spawn: SpawnOptions,
}

impl SupervisorSpec {
    pub fn new(strategy: SupervisionStrategy) -> Self {
        SupervisorSpec { name: "supervisor".into(), strategy, policy: RestartPolicy::default(), children: Vec::new() }
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn max_restarts(mut self, n: u32) -> Self {
        self.policy.max_restarts = n;
        self
    }

    pub fn window(mut self, window: Duration) -> Self {
        self.policy.window = window;
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.policy.backoff = backoff;
        self
    }

    /// Adds a child after the ones already declared.
    pub fn child(mut self, name: impl Into<String>, target: impl Into<ChildTarget>, spec: ChildSpec) -> Self {
        self.children.push(ChildDef { name: name.into(), target: target.into(), spec });
        self
    }

    /// Refuses a spec that cannot run: no or duplicate names, a `/` in a name,
    /// critical and optional at once, a simple-one-for-one without exactly one template.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("supervisor {}: {m}", self.name)));
        if self.name.is_empty() || self.name.contains('/') {
            return bad(format!("name {:?} must be non-empty and without '/'", self.name));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.children {
            if c.name.is_empty() || c.name.contains('/') {
                return bad(format!("child name {:?} must be non-empty and without '/'", c.name));
            }
            if !seen.insert(c.name.as_str()) {
                return bad(format!("two children named {:?}", c.name));
            }
            for wanted in &c.spec.inject {
                let before = self.children.iter().take_while(|d| d.name != c.name).any(|d| &d.name == wanted);
                if !before {
                    return bad(format!("child {} injects {wanted:?}, which is not a child declared before it", c.name));
                }
            }
            if c.spec.critical && c.spec.optional {
                return bad(format!("child {}: critical and optional exclude each other", c.name));
            }
            if let ChildTarget::Supervisor(s) = &c.target {
                if c.spec.pool.is_some() {
                    return bad(format!("child {}: a supervisor cannot be a pool", c.name));
                }
                s.check()?;
            }
        }
        if self.strategy == SupervisionStrategy::SimpleOneForOne {
            if self.children.len() != 1 {
                return bad(format!("simple-one-for-one needs exactly one child template (found {})", self.children.len()));
            }
            let t = &self.children[0];
            if t.spec.pool.is_some() || matches!(t.target, ChildTarget::Supervisor(_)) {
                return bad(format!("simple-one-for-one template {} must be a worker (not a pool or a supervisor)", t.name));
            }
        }
        if self.strategy != SupervisionStrategy::SimpleOneForOne && self.children.is_empty() {
            return bad("has no children".into());
        }
        Ok(())
    }
}

/// A supervisor's lifecycle: `running`, then `failed` (it gave up) or `stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorState {
    Running,
    Failed,
    Stopped,
}

impl SupervisorState {
    pub fn as_str(self) -> &'static str {
        match self {
            SupervisorState::Running => "running",
            SupervisorState::Failed => "failed",
            SupervisorState::Stopped => "stopped",
        }
    }
}

/// What kind of thing a child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    Worker,
    Pool,
    Supervisor,
}

impl ChildKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::Worker => "worker",
            ChildKind::Pool => "pool",
            ChildKind::Supervisor => "supervisor",
        }
    }
}

/// One row of `children()`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildInfo {
    pub name: String,
    pub kind: ChildKind,
    /// `running`, `restarting`, `stopped` or `failed`.
    pub state: ProcessState,
    /// Restarts by the supervisor (a pool's own member replacements not counted).
    pub restarts: u32,
    /// The worker's process id, or the pool's or nested supervisor's id; it survives restarts.
    pub process_id: u64,
    /// The process ids serving: the worker's own, a pool's members, a nested supervisor's workers.
    pub process_ids: Vec<u64>,
}

/// Something that happened to a supervisor; `name()` is the event name front ends emit.
#[derive(Debug, Clone, PartialEq)]
pub enum SupervisorEvent {
    ChildStarted { name: String, process_id: u64 },
    /// `normal`: it ended on its own with code 0 (a transient child is then not restarted).
    ChildExited { name: String, process_id: u64, exit_code: Option<i32>, signal: Option<i32>, normal: bool },
    ChildRestarted { name: String, process_id: u64, restarts: u32 },
    Failed { reason: String },
    Stopped,
}

impl SupervisorEvent {
    pub const NAMES: &'static [&'static str] = &["child:started", "child:exited", "child:restarted", "supervisor:failed", "supervisor:stopped"];

    pub fn name(&self) -> &'static str {
        match self {
            SupervisorEvent::ChildStarted { .. } => "child:started",
            SupervisorEvent::ChildExited { .. } => "child:exited",
            SupervisorEvent::ChildRestarted { .. } => "child:restarted",
            SupervisorEvent::Failed { .. } => "supervisor:failed",
            SupervisorEvent::Stopped => "supervisor:stopped",
        }
    }
}

/// Supervisors are built on the manager's processes and pools; their operations live here, above both.
impl ProcessManager {
    /// Starts a supervisor: its children in declaration order, each ready before the
    /// next. A child that cannot start (unless `optional`) stops the ones started, in
    /// reverse, and the start fails naming it.
    pub async fn supervisor(&self, spec: SupervisorSpec) -> Result<SupervisorHandle> {
        spec.check()?;
        let (events, _) = broadcast::channel(runtime::EVENT_BUFFER);
        let sender = events.clone();
        let id = self.exec(move |engine| async move { runtime::start(&engine, spec, sender).await }).await?;
        self.register_service(id, std::sync::Arc::new(events.clone()));
        Ok(SupervisorHandle { pm: self.clone(), id, path: Vec::new(), events })
    }

    /// The state of the supervisor at `path` (child names) under the top-level
    /// supervisor `id`. A top-level supervisor the manager no longer holds was
    /// stopped (`stop()` releases it), so it reports `stopped`.
    pub async fn supervisor_state(&self, id: u64, path: Vec<String>) -> Result<SupervisorState> {
        let p = path.clone();
        match self.exec(move |engine| async move { Ok(runtime::find(&engine, id, &p)?.state()) }).await {
            Err(Error::NotFound { what: "supervisor", .. }) if path.is_empty() => Ok(SupervisorState::Stopped),
            other => other,
        }
    }

    /// A handle to a live top-level supervisor, by id.
    pub fn supervisor_handle(&self, id: u64) -> Result<SupervisorHandle> {
        let events = self.service(id).and_then(|s| s.downcast::<broadcast::Sender<SupervisorEvent>>().ok());
        let events = events.ok_or(Error::NotFound { what: "supervisor", id })?;
        Ok(SupervisorHandle { pm: self.clone(), id, path: Vec::new(), events: (*events).clone() })
    }
}

/// A supervisor (top-level, or nested: reached through its parent by name). Clone it freely.
#[derive(Clone)]
pub struct SupervisorHandle {
    pm: ProcessManager,
    /// The top-level supervisor's id.
    id: u64,
    /// Child names from the top-level supervisor down to this one (empty: the top).
    path: Vec<String>,
    events: broadcast::Sender<SupervisorEvent>,
}

impl SupervisorHandle {
    /// The supervisor's id (a nested one's own id, which survives its restarts).
    pub async fn id(&self) -> Result<u64> {
        let (top, path) = (self.id, self.path.clone());
        self.pm.exec(move |engine| async move { Ok(runtime::find(&engine, top, &path)?.id) }).await
    }

    /// `running`, `failed` or `stopped` (also after `stop()`, when it has left the manager).
    pub async fn state(&self) -> Result<SupervisorState> {
        self.pm.supervisor_state(self.id, self.path.clone()).await
    }

    /// Every child, in declaration order (dynamic ones in the order they were added).
    pub async fn children(&self) -> Result<Vec<ChildInfo>> {
        let (top, path) = (self.id, self.path.clone());
        self.pm.exec(move |engine| async move { Ok(runtime::find(&engine, top, &path)?.children_info()) }).await
    }

    /// The worker child `name`; the handle stays valid across its restarts.
    pub async fn child(&self, name: &str) -> Result<ProcessHandle> {
        let (top, path, name) = (self.id, self.path.clone(), name.to_string());
        let id = self.pm.exec(move |engine| async move { runtime::find(&engine, top, &path)?.worker_id(&name) }).await?;
        Ok(self.pm.handle(id))
    }

    /// The pool child `name`.
    pub async fn pool(&self, name: &str) -> Result<PoolHandle> {
        let (top, path, name) = (self.id, self.path.clone(), name.to_string());
        let (id, events) = self.pm.exec(move |engine| async move { runtime::find(&engine, top, &path)?.pool_of(&name) }).await?;
        Ok(PoolHandle { pm: self.pm.clone(), id, options: CallOptions::default(), events })
    }

    /// The nested supervisor child `name`.
    pub async fn supervisor(&self, name: &str) -> Result<SupervisorHandle> {
        let (top, mut path) = (self.id, self.path.clone());
        path.push(name.to_string());
        let p = path.clone();
        let events = self.pm.exec(move |engine| async move { Ok(runtime::find(&engine, top, &p)?.events.clone()) }).await?;
        Ok(SupervisorHandle { pm: self.pm.clone(), id: top, path, events })
    }

    /// Adds a child from a simple-one-for-one supervisor's template; `args` (a map)
    /// is laid over the template's `dependencies` (what the worker's `init` gets).
    pub async fn start_child(&self, args: Value) -> Result<ProcessHandle> {
        if !matches!(args, Value::Null | Value::Map(_)) {
            return Err(Error::Config(format!("start_child args must be a map, not {}", args.type_name())));
        }
        let (top, path) = (self.id, self.path.clone());
        let id = self.pm.exec(move |engine| async move { runtime::find(&engine, top, &path)?.start_child(args).await }).await?;
        Ok(self.pm.handle(id))
    }

    /// Stops every child in reverse declaration order (draining calls, running
    /// shutdown hooks); the state becomes `stopped`. A nested supervisor stopped
    /// this way is not restarted by its parent.
    pub async fn stop(&self) -> Result<()> {
        let (top, path) = (self.id, self.path.clone());
        let result = self.pm.exec(move |engine| async move { runtime::stop(&engine, top, &path).await }).await;
        if self.path.is_empty() {
            self.pm.forget_service(self.id);
        }
        result
    }

    /// `child:*` and `supervisor:*` events of this supervisor, from now on.
    pub fn events(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.events.subscribe()
    }
}
