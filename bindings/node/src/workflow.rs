//! Workflows from Node: `NativeWorkflow` holds a core `WorkflowHandle` loaded
//! from a spawned process (`workflowLoad`: core reads the stage graph and
//! checks it); `workflowRun` starts a run. Every decision (scheduling, retries,
//! compensation, the journal) is core's; this file converts.

use std::sync::{Arc, Mutex};

use napi::Env;
use napi_derive::napi;
use titan_pm::dialect::Dialect;
use titan_pm::reports::Report;
use titan_pm::workflow::{WorkflowEvent, WorkflowHandle};
use titan_pm::{Error, Value};
use tokio::sync::broadcast;

use crate::{convert, errors, throw, NativeManager, Raw};

/// A workflow, empty until `workflowLoad` fills it.
#[napi]
pub struct NativeWorkflow {
    slot: Arc<Mutex<Option<WorkflowHandle>>>,
    events: Arc<tokio::sync::Mutex<Option<broadcast::Receiver<WorkflowEvent>>>>,
}

impl NativeWorkflow {
    fn handle(&self) -> Result<WorkflowHandle, Error> {
        let h = self.slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        h.ok_or_else(|| Error::Config("the workflow is not loaded yet".into()))
    }
}

#[napi]
impl NativeWorkflow {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NativeWorkflow { slot: Default::default(), events: Default::default() }
    }

    /// The stage names, in the order `run` reports them.
    #[napi]
    pub fn stages(&self) -> napi::Result<Vec<String>> {
        let h = self.handle().map_err(|e| napi::Error::from_reason(e.to_string()))?;
        Ok(h.definition().stages().iter().map(|s| s.name.clone()).collect())
    }

    /// Starts keeping run events for `workflowNextEvent`.
    #[napi]
    pub fn subscribe(&self) -> napi::Result<()> {
        let rx = self.handle().map_err(|e| napi::Error::from_reason(e.to_string()))?.events();
        self.events.try_lock().map_err(|_| napi::Error::from_reason("already listening"))?.replace(rx);
        Ok(())
    }
}

fn value_to_js(env: crate::js::Env, v: Value) -> napi::Result<crate::js::Js> {
    convert::to_js(env, &v)
}

fn rows(runs: Vec<titan_pm::workflow::RunSummary>) -> Value {
    use titan_pm::reports::Report;
    runs.report(titan_pm::options::Dialect::Js)
}

#[napi]
impl NativeManager {
    /// Reads the stage graph of process `processId` (a spawned workflow class), checks it and fills `workflow`.
    #[napi(ts_args_type = "workflow: NativeWorkflow, processId: number, options: object", ts_return_type = "Promise<void>")]
    pub fn workflow_load(&self, env: Env, workflow: &NativeWorkflow, process_id: f64, options: Raw) -> napi::Result<Raw> {
        let options = convert::from_js(env.raw(), options.0).map_err(|u| throw(&env, errors::unsupported(env.raw(), "options", &u)))?;
        let options = titan_pm::options::workflow(&options, Dialect::Js, &|_| None).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))?;
        let (pm, slot) = (self.host.pm.clone(), workflow.slot.clone());
        let future = async move {
            let wf = pm.workflow_on(Arc::new(pm.handle(process_id as u64)), options).await?;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(wf);
            Ok(())
        };
        self.host.promise(env.raw(), future, crate::host::unit_to_js).map(Raw)
    }

    /// Runs the workflow: every stage's result by name.
    #[napi(ts_args_type = "workflow: NativeWorkflow, input: unknown, runId?: string | undefined | null", ts_return_type = "Promise<Record<string, unknown>>")]
    pub fn workflow_run(&self, env: Env, workflow: &NativeWorkflow, input: Raw, run_id: Option<String>) -> napi::Result<Raw> {
        let input = convert::from_js(env.raw(), input.0).map_err(|u| throw(&env, errors::unsupported(env.raw(), "input", &u)))?;
        let wf = workflow.handle().map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))?;
        self.host.promise(env.raw(), async move { wf.run(input, run_id.as_deref()).await }, value_to_js).map(Raw)
    }

    /// The newest `limit` runs of the journal: `[{runId, workflow, state, created, updated, leaseOwner}]`.
    #[napi(ts_return_type = "Promise<object[]>")]
    pub fn workflow_runs(&self, env: Env, workflow: &NativeWorkflow, limit: f64) -> napi::Result<Raw> {
        let wf = workflow.handle().map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))?;
        let future = async move { Ok(rows(wf.runs(limit.max(0.0) as usize).await?)) };
        self.host.promise(env.raw(), future, value_to_js).map(Raw)
    }

    /// The newest `limit` runs of the manager's journal.
    #[napi(ts_return_type = "Promise<object[]>")]
    pub fn workflow_manager_runs(&self, env: Env, limit: f64) -> napi::Result<Raw> {
        let pm = self.host.pm.clone();
        let future = async move { Ok(rows(pm.workflow_runs(limit.max(0.0) as usize).await?)) };
        self.host.promise(env.raw(), future, value_to_js).map(Raw)
    }

    /// The next run event since `subscribe` (`{type, workflow, runId, ...}`), or null once there are
    /// no more or the manager is shut down. It does not keep the event loop alive.
    #[napi(ts_return_type = "Promise<object | null>")]
    pub fn workflow_next_event(&self, env: Env, workflow: &NativeWorkflow) -> napi::Result<Raw> {
        let events = workflow.events.clone();
        let next = |shut: crate::host::ShutDown| async move {
            let mut guard = events.lock().await;
            let Some(rx) = guard.as_mut() else { return Ok(Value::Null) };
            Ok(shut.next(rx).await.map(|e| e.report(Dialect::Js)).unwrap_or(Value::Null))
        };
        self.host.listen(env.raw(), next, value_to_js).map(Raw)
    }
}
