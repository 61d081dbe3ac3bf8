//! Supervisors for Node: `NativeManager.supervisor*` forward to core's
//! supervisors (core reads the tree in the JS dialect, runs it, and shapes its
//! reports); `checkOptions` lets the TypeScript decorators have core read a
//! `@Supervisor`/`@Child` declaration when it is applied. A supervisor is named
//! by its top-level id and the child names down to it. This file converts.

use std::sync::Arc;

use napi::Env;
use napi_derive::napi;
use titan_pm::dialect::Dialect;
use titan_pm::pool::PoolEvent;
use titan_pm::reports::Report;
use titan_pm::supervise::{SupervisorEvent, SupervisorHandle};
use titan_pm::{Error, ProcessManager, Value};
use tokio::sync::broadcast;

use crate::host::{forward, id_to_js, unit_to_js, HostMsg};
use crate::{convert, errors, options, throw, NativeManager, Raw};

/// The supervisor at `path` under the top-level supervisor `id`.
async fn find(pm: &ProcessManager, id: u64, path: &[String]) -> Result<SupervisorHandle, Error> {
    let mut h = pm.supervisor_handle(id)?;
    for name in path {
        h = h.supervisor(name).await?;
    }
    Ok(h)
}

fn value_to_js(env: crate::js::Env, v: Value) -> napi::Result<crate::js::Js> {
    convert::to_js(env, &v)
}

fn text_to_js(env: crate::js::Env, s: &'static str) -> napi::Result<crate::js::Js> {
    crate::js::string(env, s)
}

/// A supervisor's `child:*`/`supervisor:*` events, empty until `supervisorSubscribe` fills it.
#[napi]
pub struct NativeSupervisorEvents {
    rx: Arc<tokio::sync::Mutex<Option<broadcast::Receiver<SupervisorEvent>>>>,
}

#[napi]
impl NativeSupervisorEvents {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NativeSupervisorEvents { rx: Default::default() }
    }
}

#[napi]
impl NativeManager {
    /// Starts the tree (`{ name, strategy, ..., children: [{ name, target, ...child options }] }`,
    /// read by core); resolves to the supervisor's id.
    #[napi(ts_args_type = "tree: object", ts_return_type = "Promise<number>")]
    pub fn supervisor_start(&self, env: Env, tree: Raw) -> napi::Result<Raw> {
        let spec = match options::supervisor_tree(env.raw(), tree.0, &self.host.callbacks()) {
            Ok(s) => s,
            Err(e) => return self.host.rejected(env.raw(), e).map(Raw),
        };
        let pm = self.host.pm.clone();
        self.host.promise(env.raw(), async move { pm.supervisor(spec).await?.id().await }, id_to_js).map(Raw)
    }

    /// The worker child's process id (a handle that survives its restarts).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn supervisor_child(&self, env: Env, id: f64, path: Vec<String>, name: String) -> napi::Result<Raw> {
        let pm = self.host.pm.clone();
        self.host.promise(env.raw(), async move { Ok(find(&pm, id as u64, &path).await?.child(&name).await?.id()) }, id_to_js).map(Raw)
    }

    /// The pool child's pool id; its pool events reach `onMessage('pool', ...)` from now on.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn supervisor_pool(&self, env: Env, id: f64, path: Vec<String>, name: String) -> napi::Result<Raw> {
        let (pm, tsfn) = (self.host.pm.clone(), self.host.tsfn.clone());
        let future = async move {
            let pool = find(&pm, id as u64, &path).await?.pool(&name).await?;
            let id = pool.id();
            forward(pool.events(), move |event| {
                let last = matches!(event, PoolEvent::Destroyed);
                tsfn.send(HostMsg::Pool { pool: id, event }) && !last
            });
            Ok(id)
        };
        self.host.promise(env.raw(), future, id_to_js).map(Raw)
    }

    /// `running`, `failed` or `stopped`.
    #[napi(ts_return_type = "Promise<'running' | 'failed' | 'stopped'>")]
    pub fn supervisor_state(&self, env: Env, id: f64, path: Vec<String>) -> napi::Result<Raw> {
        let pm = self.host.pm.clone();
        self.host.promise(env.raw(), async move { Ok(pm.supervisor_state(id as u64, path).await?.as_str()) }, text_to_js).map(Raw)
    }

    /// `[{name, kind, state, restarts, processId, processIds}]`, in declaration order.
    #[napi(ts_return_type = "Promise<object[]>")]
    pub fn supervisor_children(&self, env: Env, id: f64, path: Vec<String>) -> napi::Result<Raw> {
        let pm = self.host.pm.clone();
        let future = async move {
            let rows = find(&pm, id as u64, &path).await?.children().await?;
            Ok(Value::List(rows.iter().map(|r| r.report(Dialect::Js)).collect()))
        };
        self.host.promise(env.raw(), future, value_to_js).map(Raw)
    }

    /// Adds a simple-one-for-one child (`args` over the template's dependencies); resolves to its process id.
    #[napi(ts_args_type = "id: number, path: string[], args: unknown", ts_return_type = "Promise<number>")]
    pub fn supervisor_start_child(&self, env: Env, id: f64, path: Vec<String>, args: Raw) -> napi::Result<Raw> {
        let args = convert::from_js(env.raw(), args.0).map_err(|u| throw(&env, errors::unsupported(env.raw(), "args", &u)))?;
        let pm = self.host.pm.clone();
        self.host.promise(env.raw(), async move { Ok(find(&pm, id as u64, &path).await?.start_child(args).await?.id()) }, id_to_js).map(Raw)
    }

    /// Stops the supervisor's children in reverse declaration order.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn supervisor_stop(&self, env: Env, id: f64, path: Vec<String>) -> napi::Result<Raw> {
        let pm = self.host.pm.clone();
        self.host.promise(env.raw(), async move { find(&pm, id as u64, &path).await?.stop().await }, unit_to_js).map(Raw)
    }

    /// Starts keeping the supervisor's events in `events` (for `supervisorNextEvent`).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn supervisor_subscribe(&self, env: Env, events: &NativeSupervisorEvents, id: f64, path: Vec<String>) -> napi::Result<Raw> {
        let (pm, slot) = (self.host.pm.clone(), events.rx.clone());
        let future = async move {
            let rx = find(&pm, id as u64, &path).await?.events();
            slot.lock().await.replace(rx);
            Ok(())
        };
        self.host.promise(env.raw(), future, unit_to_js).map(Raw)
    }

    /// The next event (`{type, supervisor, ...}`), or null once there are no more or the
    /// manager is shut down. It does not keep the event loop alive.
    #[napi(ts_return_type = "Promise<object | null>")]
    pub fn supervisor_next_event(&self, env: Env, events: &NativeSupervisorEvents) -> napi::Result<Raw> {
        let rx = events.rx.clone();
        let next = |shut: crate::host::ShutDown| async move {
            let mut guard = rx.lock().await;
            let Some(rx) = guard.as_mut() else { return Ok(Value::Null) };
            Ok(shut.next(rx).await.map(|e| e.report(Dialect::Js)).unwrap_or(Value::Null))
        };
        self.host.listen(env.raw(), next, value_to_js).map(Raw)
    }
}

/// Has core read `options` as a `kind` declaration (`supervisor`: `@Supervisor`'s options,
/// `child`: `@Child`'s); throws core's ConfigError naming the option otherwise.
#[napi(ts_args_type = "kind: 'supervisor' | 'child', options: object")]
#[cfg_attr(test, allow(dead_code))] // called from JavaScript: napi registers it outside test builds
pub fn check_options(env: Env, kind: String, options: Raw) -> napi::Result<()> {
    options::check(env.raw(), &kind, options.0).map_err(|e| throw(&env, e))
}
