//! One supervised child on the engine: a worker process, a pool or a nested
//! supervisor, and the four things its supervisor does to it — start it, stop
//! it for a restart (calls to it then wait), relaunch it under the same id,
//! stop it for good. Its end is reported to the supervisor as a pending exit.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use tokio::sync::broadcast;

use super::runtime::Supervisor;
use super::{ChildDef, ChildInfo, ChildKind, ChildTarget, SupervisorEvent, SupervisorState};
use crate::error::{Error, Result};
use crate::host::engine::Engine;
use crate::host::process::{ExitStatus, Process};
use crate::host::{ProcessState, RestartPolicy, SpawnOptions};
use crate::policy::RestartBudget;
use crate::pool::runtime::Pool;
use crate::pool::PoolEvent;

/// What runs for a child now.
pub(crate) enum Running {
    Process(Rc<Process>),
    Pool(Rc<Pool>),
    Supervisor(Rc<Supervisor>),
}

pub(crate) struct Child {
    pub def: ChildDef,
    /// `parent/name`: the name its processes are listed under.
    pub path: String,
    running: RefCell<Option<Running>>,
    /// The id handles use; set at the first start, kept across restarts.
    id: Cell<u64>,
    /// The state of a pool or supervisor child (a worker's is its process's).
    state: Cell<ProcessState>,
    restarts: Cell<u32>,
    /// An optional child's own restart budget.
    pub budget: RefCell<RestartBudget>,
    /// How it ended, until the supervisor acts on it (one slot: a newer end replaces it).
    pending: RefCell<Option<ExitStatus>>,
    /// A pool child's event channel, the same across the pool's restarts.
    pool_events: RefCell<Option<broadcast::Sender<PoolEvent>>>,
}

impl Child {
    pub(crate) fn new(def: ChildDef, parent: &str) -> Rc<Child> {
        Rc::new(Child {
            path: format!("{parent}/{}", def.name),
            def,
            running: RefCell::default(),
            id: Cell::new(0),
            state: Cell::new(ProcessState::Starting),
            restarts: Cell::new(0),
            budget: RefCell::default(),
            pending: RefCell::default(),
            pool_events: RefCell::default(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.def.name
    }

    pub(crate) fn id(&self) -> u64 {
        self.id.get()
    }

    pub(crate) fn restarts(&self) -> u32 {
        self.restarts.get()
    }

    pub(crate) fn kind(&self) -> ChildKind {
        match (&self.def.target, &self.def.spec.pool) {
            (ChildTarget::Supervisor(_), _) => ChildKind::Supervisor,
            (ChildTarget::Worker(_), Some(_)) => ChildKind::Pool,
            (ChildTarget::Worker(_), None) => ChildKind::Worker,
        }
    }

    pub(crate) fn state(&self) -> ProcessState {
        match &*self.running.borrow() {
            Some(Running::Process(p)) => p.state(),
            _ => self.state.get(),
        }
    }

    pub(crate) fn set_pending(&self, status: ExitStatus) {
        if matches!(self.state.get(), ProcessState::Running) {
            self.state.set(ProcessState::Restarting);
        }
        *self.pending.borrow_mut() = Some(status);
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending.borrow().is_some()
    }

    pub(crate) fn take_pending(&self) -> Option<ExitStatus> {
        self.pending.borrow_mut().take()
    }

    pub(crate) fn pool(&self) -> Option<(u64, broadcast::Sender<PoolEvent>)> {
        let events = self.pool_events.borrow().clone()?;
        Some((self.id.get(), events))
    }

    pub(crate) fn nested(&self) -> Option<Rc<Supervisor>> {
        match &*self.running.borrow() {
            Some(Running::Supervisor(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub(crate) fn info(&self) -> ChildInfo {
        let process_ids = match &*self.running.borrow() {
            Some(Running::Process(p)) => vec![p.id],
            Some(Running::Pool(p)) => p.member_ids(),
            Some(Running::Supervisor(s)) => s.children_info().into_iter().flat_map(|c| c.process_ids).collect(),
            None => Vec::new(),
        };
        ChildInfo {
            name: self.def.name.clone(),
            kind: self.kind(),
            state: self.state(),
            restarts: self.restarts.get(),
            process_id: self.id.get(),
            process_ids,
        }
    }

    /// The first start (or the start of a child that never came up): ready when it returns.
    pub(crate) async fn start(self: &Rc<Self>, sup: &Rc<Supervisor>, engine: &Rc<Engine>) -> Result<()> {
        let spec = &self.def.spec;
        match (&self.def.target, &spec.pool) {
            (ChildTarget::Worker(target), None) => {
                let mut options = SpawnOptions { restart: Some(RestartPolicy::disabled()), name: Some(self.path.clone()), ..spec.spawn.clone() };
                options.processes.extend(sup.injected(&spec.inject)?);
                let process = engine.start_process(target.clone(), options).await?;
                // No await between the start and the hook: an exit cannot slip between them.
                let (child, parent) = (Rc::downgrade(self), Rc::downgrade(sup));
                process.supervise(Rc::new(move |status| report(&child, &parent, status)));
                self.id.set(process.id);
                *self.running.borrow_mut() = Some(Running::Process(process));
            }
            (ChildTarget::Worker(_), Some(_)) => self.start_pool(sup, engine).await?,
            (ChildTarget::Supervisor(nested), _) => {
                let id = if self.id.get() == 0 { engine.new_id() } else { self.id.get() };
                let (events, _) = broadcast::channel(super::runtime::EVENT_BUFFER);
                let start = Supervisor::start(engine, id, (**nested).clone(), self.path.clone(), events, sup.gone.clone());
                let s = Box::pin(start).await?; // boxed: a tree recurses
                self.id.set(id);
                self.watch_nested(&s, sup);
                *self.running.borrow_mut() = Some(Running::Supervisor(s));
            }
        }
        self.state.set(ProcessState::Running);
        Ok(())
    }

    async fn start_pool(self: &Rc<Self>, sup: &Rc<Supervisor>, engine: &Rc<Engine>) -> Result<()> {
        let ChildTarget::Worker(target) = &self.def.target else { unreachable!("a pool child is a worker") };
        let mut options = self.def.spec.pool.clone().expect("a pool child has pool options");
        options.spawn = SpawnOptions { name: Some(self.path.clone()), ..self.def.spec.spawn.clone() };
        options.spawn.processes.extend(sup.injected(&self.def.spec.inject)?);
        let id = if self.id.get() == 0 { engine.new_id() } else { self.id.get() };
        let events = self.pool_events.borrow_mut().get_or_insert_with(|| broadcast::channel(super::runtime::EVENT_BUFFER).0).clone();
        let mut rx = events.subscribe();
        let pool = Pool::start(id, target.clone(), options, events, engine).await?;
        engine.add_owned_service(id, pool.clone());
        self.id.set(id);
        *self.running.borrow_mut() = Some(Running::Pool(pool));
        // The pool replaces its crashed members itself; the supervisor acts only when the pool fails.
        let (child, parent) = (Rc::downgrade(self), Rc::downgrade(sup));
        tokio::task::spawn_local(async move {
            loop {
                match rx.recv().await {
                    Ok(PoolEvent::Failed { reason }) => {
                        return report(&child, &parent, ExitStatus { error: Some(format!("pool failed: {reason}")), ..ExitStatus::default() });
                    }
                    Ok(PoolEvent::Destroyed) | Err(broadcast::error::RecvError::Closed) => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                }
            }
        });
        Ok(())
    }

    /// A nested supervisor that fails is, to its parent, a child that ended abnormally.
    fn watch_nested(self: &Rc<Self>, nested: &Rc<Supervisor>, sup: &Rc<Supervisor>) {
        let mut state = nested.state_receiver();
        let (child, parent) = (Rc::downgrade(self), Rc::downgrade(sup));
        tokio::task::spawn_local(async move {
            while state.changed().await.is_ok() {
                if *state.borrow_and_update() == SupervisorState::Failed {
                    if child.upgrade().is_none() {
                        return;
                    }
                    report(&child, &parent, ExitStatus { error: Some("supervisor failed".into()), ..ExitStatus::default() });
                }
            }
        });
    }

    /// Stops it so it can be relaunched: a worker is left `restarting` (calls wait).
    pub(crate) async fn stop_for_restart(&self, engine: &Rc<Engine>) {
        let running = self.current();
        match running {
            Some(Running::Process(p)) => p.stop_for_restart(engine.config.shutdown_timeout).await,
            Some(Running::Pool(p)) => {
                // Calls to it wait for the pool that replaces it (`Engine::replacement`).
                engine.begin_replacing(p.id);
                p.destroy(engine).await
            }
            Some(Running::Supervisor(s)) => Box::pin(s.stop_for_restart(engine)).await,
            None => {}
        }
        self.state.set(ProcessState::Restarting);
    }

    /// Starts it again under the same id; ready when it returns.
    pub(crate) async fn relaunch(self: &Rc<Self>, sup: &Rc<Supervisor>, engine: &Rc<Engine>) -> Result<()> {
        self.pending.borrow_mut().take();
        self.state.set(ProcessState::Restarting);
        let running = self.current();
        match running {
            Some(Running::Process(p)) => p.relaunch().await?,
            Some(Running::Pool(p)) => {
                engine.begin_replacing(p.id);
                p.destroy(engine).await;
                if let Err(e) = self.start_pool(sup, engine).await {
                    engine.end_replacing(p.id);
                    return Err(e);
                }
            }
            Some(Running::Supervisor(s)) => Box::pin(s.relaunch(engine)).await?,
            None => self.start(sup, engine).await?,
        }
        self.restarts.set(self.restarts.get() + 1);
        self.state.set(ProcessState::Running);
        Ok(())
    }

    /// Stops it for good (its supervisor stops or fails): `stopped`.
    pub(crate) async fn stop(&self, engine: &Rc<Engine>) {
        self.pending.borrow_mut().take();
        let running = self.current();
        match running {
            Some(Running::Process(p)) => p.stop(engine.config.shutdown_timeout).await,
            Some(Running::Pool(p)) => {
                p.destroy(engine).await;
                engine.remove_service(p.id);
                engine.end_replacing(p.id);
            }
            Some(Running::Supervisor(s)) => Box::pin(s.stop_children(engine, SupervisorState::Stopped, SupervisorEvent::Stopped)).await,
            None => {}
        }
        self.state.set(ProcessState::Stopped);
    }

    /// Leaves an ended child as it is, `stopped` (not to be restarted) or `failed` (it could not be kept up).
    pub(crate) async fn give_up(&self, state: ProcessState, engine: &Rc<Engine>) {
        self.pending.borrow_mut().take();
        let running = self.current();
        match running {
            Some(Running::Process(p)) => p.give_up(state),
            Some(Running::Pool(p)) => {
                p.destroy(engine).await;
                engine.end_replacing(p.id);
            }
            Some(Running::Supervisor(_)) | None => {}
        }
        self.state.set(state);
    }

    /// Marks a child that could not start at all (an optional one) as `failed`.
    pub(crate) fn mark_failed(&self) {
        self.state.set(ProcessState::Failed);
    }

    /// Takes the worker's process id out of the manager's list (its supervisor is gone).
    pub(crate) fn retire(&self, engine: &Engine) {
        match &*self.running.borrow() {
            Some(Running::Process(p)) => engine.retire(p.id, p.state()),
            Some(Running::Supervisor(s)) => s.retire(engine),
            _ => {}
        }
    }

    fn current(&self) -> Option<Running> {
        self.running.borrow().as_ref().map(|r| match r {
            Running::Process(p) => Running::Process(p.clone()),
            Running::Pool(p) => Running::Pool(p.clone()),
            Running::Supervisor(s) => Running::Supervisor(s.clone()),
        })
    }

    /// The worker's id, if this is a worker child.
    pub(crate) fn worker_id(&self) -> Result<u64> {
        match self.kind() {
            ChildKind::Worker if self.id.get() != 0 => Ok(self.id.get()),
            ChildKind::Worker => Err(Error::Config(format!("child {} never started", self.path))),
            kind => Err(Error::Config(format!("child {} is a {}, not a worker", self.path, kind.as_str()))),
        }
    }
}

/// Records how a child ended and wakes its supervisor.
fn report(child: &Weak<Child>, parent: &Weak<Supervisor>, status: ExitStatus) {
    if let (Some(c), Some(s)) = (child.upgrade(), parent.upgrade()) {
        c.set_pending(status);
        s.wake();
    }
}
