//! The supervisor on the engine: starts children in declaration order, then one
//! loop acts on their exits one at a time (as OTP's supervisor handles one
//! `EXIT` message at a time): restart type, then the intensity budget (the
//! supervisor's, or an optional child's own), then the strategy's children
//! stopped in reverse and relaunched in order after the backoff. Giving up
//! stops every child in reverse and leaves the supervisor `failed`, which its
//! parent sees as its child ending abnormally.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use tokio::sync::{broadcast, watch, Notify};

use super::child::Child;
use super::{ChildDef, ChildInfo, ChildRestart, SupervisionStrategy, SupervisorEvent, SupervisorSpec, SupervisorState};
use crate::error::{Error, Result};
use crate::host::engine::{Engine, Service};
use crate::host::process::ExitStatus;
use crate::host::ProcessState;
use crate::policy::{RestartBudget, RestartPolicy};
use crate::pool::PoolEvent;
use crate::value::Value;

/// Events a supervisor keeps for a slow listener (older ones are dropped for it).
pub(crate) const EVENT_BUFFER: usize = 1024;
/// Children a simple-one-for-one supervisor may add with `start_child`.
pub(crate) const MAX_DYNAMIC_CHILDREN: usize = 10_000;

pub(crate) struct Supervisor {
    pub id: u64,
    pub path: String,
    strategy: SupervisionStrategy,
    policy: RestartPolicy,
    /// The simple-one-for-one template.
    template: Option<ChildDef>,
    pub events: broadcast::Sender<SupervisorEvent>,
    state: watch::Sender<SupervisorState>,
    /// Set while its parent stops and relaunches it: exits wait until it runs again.
    halted: Cell<bool>,
    children: RefCell<Vec<Rc<Child>>>,
    budget: RefCell<RestartBudget>,
    wake: Rc<Notify>,
    /// Set when the tree's top supervisor is stopped for good: every loop in it ends.
    pub gone: Rc<Cell<bool>>,
    next_dynamic: Cell<u64>,
    engine: Weak<Engine>,
}

impl Supervisor {
    pub(crate) async fn start(
        engine: &Rc<Engine>,
        id: u64,
        spec: SupervisorSpec,
        path: String,
        events: broadcast::Sender<SupervisorEvent>,
        gone: Rc<Cell<bool>>,
    ) -> Result<Rc<Supervisor>> {
        let simple = spec.strategy == SupervisionStrategy::SimpleOneForOne;
        let sup = Rc::new(Supervisor {
            id,
            strategy: spec.strategy,
            policy: RestartPolicy { enabled: true, ..spec.policy },
            template: simple.then(|| spec.children[0].clone()),
            events,
            state: watch::channel(SupervisorState::Running).0,
            halted: Cell::new(false),
            children: RefCell::default(),
            budget: RefCell::default(),
            wake: Rc::new(Notify::new()),
            gone,
            next_dynamic: Cell::new(0),
            engine: Rc::downgrade(engine),
            path,
        });
        if !simple {
            for def in spec.children {
                let child = Child::new(def, &sup.path);
                sup.children.borrow_mut().push(child.clone());
                sup.start_child_now(&child, engine).await?;
            }
        }
        tokio::task::spawn_local(run(Rc::downgrade(&sup), sup.wake.clone(), sup.gone.clone()));
        sup.wake();
        Ok(sup)
    }

    /// Starts one child; an optional one that cannot start is left `failed`; any
    /// other stops the children started before it, in reverse, and fails the start.
    async fn start_child_now(self: &Rc<Self>, child: &Rc<Child>, engine: &Rc<Engine>) -> Result<()> {
        match child.start(self, engine).await {
            Ok(()) => {
                self.emit(SupervisorEvent::ChildStarted { name: child.name().into(), process_id: child.id() });
                Ok(())
            }
            Err(e) if child.def.spec.optional => {
                tracing::warn!(target: "titan_pm", "optional child {} did not start, left failed: {e}", child.path);
                child.mark_failed();
                Ok(())
            }
            Err(e) => {
                self.children.borrow_mut().retain(|c| !Rc::ptr_eq(c, child));
                self.stop_children(engine, SupervisorState::Stopped, SupervisorEvent::Stopped).await;
                self.retire(engine);
                Err(named(e, &child.path))
            }
        }
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn emit(&self, event: SupervisorEvent) {
        if let Some(hooks) = self.engine.upgrade().and_then(|e| e.config.interceptor.clone()) {
            hooks.service_event(self.id, &event);
        }
        let _ = self.events.send(event);
    }

    pub(crate) fn state(&self) -> SupervisorState {
        *self.state.borrow()
    }

    pub(crate) fn state_receiver(&self) -> watch::Receiver<SupervisorState> {
        self.state.subscribe()
    }

    fn acting(&self) -> bool {
        self.state() == SupervisorState::Running && !self.halted.get() && !self.gone.get()
    }

    pub(crate) fn children_info(&self) -> Vec<ChildInfo> {
        self.children.borrow().iter().map(|c| c.info()).collect()
    }

    fn child_named(&self, name: &str) -> Result<Rc<Child>> {
        let children = self.children.borrow();
        children.iter().find(|c| c.name() == name).cloned().ok_or_else(|| {
            let names: Vec<_> = children.iter().map(|c| c.name().to_string()).collect();
            Error::Config(format!("supervisor {} has no child {name:?} (children: {})", self.path, names.join(", ")))
        })
    }

    /// The ids of the siblings `names` (a worker's @InjectProcess), as grants.
    pub(crate) fn injected(&self, names: &[String]) -> Result<Vec<(String, u64)>> {
        names
            .iter()
            .map(|n| {
                let c = self.child_named(n)?;
                match c.kind() {
                    super::ChildKind::Supervisor => Err(Error::Config(format!("{} is a supervisor: it takes no calls, inject its children", c.path))),
                    _ if c.id() == 0 => Err(Error::Config(format!("{} never started, so it cannot be injected", c.path))),
                    _ => Ok((n.clone(), c.id())),
                }
            })
            .collect()
    }

    pub(crate) fn worker_id(&self, name: &str) -> Result<u64> {
        self.child_named(name)?.worker_id()
    }

    pub(crate) fn pool_of(&self, name: &str) -> Result<(u64, broadcast::Sender<PoolEvent>)> {
        let child = self.child_named(name)?;
        child.pool().ok_or_else(|| Error::Config(format!("child {} is a {}, not a pool", child.path, child.kind().as_str())))
    }

    /// Adds a child from the simple-one-for-one template, `args` laid over its dependencies.
    pub(crate) async fn start_child(self: &Rc<Self>, args: Value) -> Result<u64> {
        let engine = self.engine.upgrade().ok_or(Error::ManagerShutDown)?;
        let Some(template) = &self.template else {
            return Err(Error::Config(format!("start_child needs a simple-one-for-one supervisor ({} is {})", self.path, self.strategy)));
        };
        if self.state() != SupervisorState::Running {
            return Err(Error::Config(format!("supervisor {} is {}", self.path, self.state().as_str())));
        }
        if self.children.borrow().len() >= MAX_DYNAMIC_CHILDREN {
            return Err(Error::Config(format!("supervisor {} already has {MAX_DYNAMIC_CHILDREN} children (the limit)", self.path)));
        }
        let n = self.next_dynamic.get() + 1;
        self.next_dynamic.set(n);
        let mut def = template.clone();
        def.name = format!("{}-{n}", template.name);
        def.spec.spawn.dependencies = overlay(&def.spec.spawn.dependencies, args);
        let child = Child::new(def, &self.path);
        child.start(self, &engine).await.map_err(|e| named(e, &child.path))?;
        self.children.borrow_mut().push(child.clone());
        self.emit(SupervisorEvent::ChildStarted { name: child.name().into(), process_id: child.id() });
        Ok(child.id())
    }

    /// Acts on one child's end: OTP's `restart_child` with this supervisor's strategy.
    async fn handle_exit(self: &Rc<Self>, index: usize, status: ExitStatus, engine: &Rc<Engine>) {
        let Some(child) = self.children.borrow().get(index).cloned() else { return };
        let normal = status.normal();
        self.emit(SupervisorEvent::ChildExited {
            name: child.name().into(),
            process_id: child.id(),
            exit_code: status.code,
            signal: status.signal,
            normal,
        });
        let spec = &child.def.spec;
        if !spec.restart.restarts_after(normal) {
            child.give_up(ProcessState::Stopped, engine).await;
            if spec.critical {
                let reason = format!("critical child {} ended and is {} (not restarted)", child.path, spec.restart.as_str());
                self.fail(reason, engine).await;
            }
            return;
        }
        let now = engine.config.clock.now();
        let delay = if spec.optional { child.budget.borrow_mut().next(&self.policy, now) } else { self.budget.borrow_mut().next(&self.policy, now) };
        let Some(delay) = delay else {
            let (max, window) = (self.policy.max_restarts, self.policy.window.as_millis());
            if spec.optional {
                tracing::warn!(target: "titan_pm", "optional child {} restarted {max} times within {window} ms; left failed", child.path);
                child.give_up(ProcessState::Failed, engine).await;
                return;
            }
            let reason = format!("more than {max} restarts within {window} ms (last: {})", child.path);
            return self.fail(reason, engine).await;
        };
        let affected: Vec<Rc<Child>> = {
            let children = self.children.borrow();
            children[self.strategy.affected(index, children.len())].to_vec()
        };
        for c in affected.iter().rev().filter(|c| !Rc::ptr_eq(c, &child)) {
            c.stop_for_restart(engine).await;
        }
        engine.config.clock.sleep(delay).await;
        for c in &affected {
            if !self.acting() {
                return;
            }
            if !Rc::ptr_eq(c, &child) && c.def.spec.restart == ChildRestart::Temporary {
                c.give_up(ProcessState::Stopped, engine).await; // OTP: a temporary sibling is not restarted
                continue;
            }
            match c.relaunch(self, engine).await {
                Ok(()) => self.emit(SupervisorEvent::ChildRestarted { name: c.name().into(), process_id: c.id(), restarts: c.restarts() }),
                Err(e) if c.def.spec.critical => {
                    return self.fail(format!("critical child {} could not be restarted: {e}", c.path), engine).await;
                }
                Err(e) => {
                    // Counted as another end: the next pass charges the budget and backs off.
                    tracing::warn!(target: "titan_pm", "restart of {} failed: {e}", c.path);
                    c.set_pending(ExitStatus { error: Some(e.to_string()), ..ExitStatus::default() });
                }
            }
        }
    }

    /// Gives up: stops every child in reverse, then `failed` (its parent sees that).
    async fn fail(self: &Rc<Self>, reason: String, engine: &Rc<Engine>) {
        if self.state() != SupervisorState::Running {
            return;
        }
        tracing::warn!(target: "titan_pm", "supervisor {} failed: {reason}", self.path);
        self.stop_children(engine, SupervisorState::Failed, SupervisorEvent::Failed { reason }).await;
    }

    /// Stops every child in reverse declaration order, then enters `state` and emits `event`.
    pub(crate) async fn stop_children(&self, engine: &Rc<Engine>, state: SupervisorState, event: SupervisorEvent) {
        self.halted.set(true);
        let children: Vec<_> = self.children.borrow().clone();
        for c in children.iter().rev() {
            c.stop(engine).await;
        }
        self.halted.set(false);
        self.state.send_replace(state);
        self.emit(event);
    }

    /// Its parent restarts it: children stopped in reverse, left `restarting`.
    pub(crate) async fn stop_for_restart(&self, engine: &Rc<Engine>) {
        self.halted.set(true);
        let children: Vec<_> = self.children.borrow().clone();
        for c in children.iter().rev() {
            c.stop_for_restart(engine).await;
        }
    }

    /// Its parent restarts it: children relaunched in order, a fresh budget, `running`.
    pub(crate) async fn relaunch(self: &Rc<Self>, engine: &Rc<Engine>) -> Result<()> {
        self.halted.set(true);
        *self.budget.borrow_mut() = RestartBudget::default();
        let children: Vec<_> = self.children.borrow().clone();
        for c in &children {
            match c.relaunch(self, engine).await {
                Ok(()) => self.emit(SupervisorEvent::ChildRestarted { name: c.name().into(), process_id: c.id(), restarts: c.restarts() }),
                Err(e) if c.def.spec.optional => {
                    tracing::warn!(target: "titan_pm", "optional child {} did not restart, left failed: {e}", c.path);
                    c.give_up(ProcessState::Failed, engine).await;
                }
                Err(e) => {
                    self.stop_for_restart(engine).await;
                    return Err(named(e, &c.path));
                }
            }
        }
        self.halted.set(false);
        self.state.send_replace(SupervisorState::Running);
        self.wake();
        Ok(())
    }

    /// Takes its workers out of the manager's list (it was stopped for good).
    pub(crate) fn retire(&self, engine: &Engine) {
        for c in self.children.borrow().iter() {
            c.retire(engine);
        }
    }

    /// Stops it for good: children in reverse, `stopped`, listed no more.
    async fn stop(self: &Rc<Self>, engine: &Rc<Engine>) {
        if self.state() != SupervisorState::Stopped {
            self.stop_children(engine, SupervisorState::Stopped, SupervisorEvent::Stopped).await;
        }
        self.retire(engine);
    }
}

/// The loop that acts on exits, one at a time, while the supervisor runs.
async fn run(sup: Weak<Supervisor>, wake: Rc<Notify>, gone: Rc<Cell<bool>>) {
    loop {
        wake.notified().await;
        loop {
            if gone.get() {
                return;
            }
            let Some(s) = sup.upgrade() else { return };
            if !s.acting() {
                break;
            }
            let next = s.children.borrow().iter().position(|c| c.has_pending());
            let Some(index) = next else { break };
            let Some(status) = s.children.borrow()[index].take_pending() else { break };
            let Some(engine) = s.engine.upgrade() else { return };
            s.handle_exit(index, status, &engine).await;
        }
    }
}

/// `base` (a map or null) with `args`'s entries laid over it.
fn overlay(base: &Value, args: Value) -> Value {
    let mut entries = match base {
        Value::Map(m) => m.clone(),
        _ => Vec::new(),
    };
    if let Value::Map(extra) = args {
        for (k, v) in extra {
            match entries.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => entries.push((k, v)),
            }
        }
    }
    if entries.is_empty() && matches!(base, Value::Null) {
        Value::Null
    } else {
        Value::Map(entries)
    }
}

/// Names the child in a start error.
fn named(e: Error, path: &str) -> Error {
    match e {
        Error::Spawn { target, reason, stderr_tail } => Error::Spawn { target: format!("{path} ({target})"), reason, stderr_tail },
        Error::Config(m) => Error::Config(format!("{path}: {m}")),
        other => other,
    }
}

impl Service for Supervisor {
    fn stop(self: Rc<Self>, engine: Rc<Engine>, deadline: std::time::Instant) -> futures::future::LocalBoxFuture<'static, ()> {
        Box::pin(async move {
            self.gone.set(true);
            self.wake();
            let _ = tokio::time::timeout_at(deadline.into(), Supervisor::stop(&self, &engine)).await;
        })
    }
    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }
}

/// Starts a top-level supervisor and registers it with the engine.
pub(crate) async fn start(engine: &Rc<Engine>, spec: SupervisorSpec, events: broadcast::Sender<SupervisorEvent>) -> Result<u64> {
    if engine.is_closed() {
        return Err(Error::ManagerShutDown);
    }
    let path = spec.name.clone();
    let sup = Supervisor::start(engine, engine.new_id(), spec, path, events, Rc::new(Cell::new(false))).await?;
    if engine.is_closed() {
        Service::stop(sup, engine.clone(), std::time::Instant::now() + engine.config.shutdown_timeout).await;
        return Err(Error::ManagerShutDown);
    }
    engine.add_service(sup.id, sup.clone());
    Ok(sup.id)
}

/// The supervisor at `path` (child names) under the top-level supervisor `top`.
pub(crate) fn find(engine: &Engine, top: u64, path: &[String]) -> Result<Rc<Supervisor>> {
    let mut sup = engine.service::<Supervisor>(top).ok_or(Error::NotFound { what: "supervisor", id: top })?;
    for name in path {
        let child = sup.child_named(name)?;
        sup = child.nested().ok_or_else(|| Error::Config(format!("child {} is a {}, not a supervisor", child.path, child.kind().as_str())))?;
    }
    Ok(sup)
}

/// Stops the supervisor at `path` for good (the top-level one also leaves the engine).
pub(crate) async fn stop(engine: &Rc<Engine>, top: u64, path: &[String]) -> Result<()> {
    let sup = find(engine, top, path)?;
    if path.is_empty() {
        engine.remove_service(top);
        return {
            Service::stop(sup, engine.clone(), std::time::Instant::now() + engine.config.shutdown_timeout).await;
            Ok(())
        };
    }
    sup.stop_children(engine, SupervisorState::Stopped, SupervisorEvent::Stopped).await;
    Ok(())
}
