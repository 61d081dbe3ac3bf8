//! Workflows from Python: `workflow_start` loads a workflow class through core
//! (`ProcessManager::workflow`: spawn, read the stage graph, check it) and
//! fills a [`NativeWorkflow`]; `NativeWorkflow.run` starts a run. Every
//! decision (scheduling, retries, compensation, the journal) is core's; this
//! file converts.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use titan_pm::dialect::Dialect;
use titan_pm::reports::Report;
use titan_pm::workflow::{WorkflowEvent, WorkflowHandle};
use tokio::sync::broadcast;
use titan_pm::{Error, Value};

use crate::host::asyncio::AsyncManager;
use crate::runtime::Out;
use crate::{convert, errors, options};

/// A loaded workflow (empty until its `workflow_start` operation has finished).
#[pyclass(frozen, module = "titan_pm._native")]
pub struct NativeWorkflow {
    handle: Arc<Mutex<Option<WorkflowHandle>>>,
    /// The run events since `subscribe`, bounded by core's event channel.
    events: Arc<tokio::sync::Mutex<Option<broadcast::Receiver<WorkflowEvent>>>>,
}

impl NativeWorkflow {
    /// A workflow loaded already (by the blocking manager).
    pub(crate) fn loaded(wf: WorkflowHandle) -> Self {
        NativeWorkflow { handle: Arc::new(Mutex::new(Some(wf))), events: Default::default() }
    }

    /// The run events kept since `subscribe`, without waiting (the blocking manager's poll).
    pub(crate) fn take_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let Ok(mut guard) = self.events.try_lock() else { return out };
        let Some(rx) = guard.as_mut() else { return out };
        loop {
            match rx.try_recv() {
                Ok(e) => out.push(e.report(Dialect::Python)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return out,
            }
        }
    }

    pub(crate) fn handle(&self) -> PyResult<WorkflowHandle> {
        let h = self.handle.lock().unwrap_or_else(|e| e.into_inner()).clone();
        h.ok_or_else(|| errors::to_py(Error::Config("the workflow is not loaded yet".into())))
    }
}

/// Starts loading `target` as a workflow; the operation's value is the workflow's process id.
#[pyfunction]
pub fn workflow_start(
    py: Python<'_>,
    manager: &Bound<'_, AsyncManager>,
    target: &Bound<'_, PyAny>,
    in_process: bool,
    options: &Bound<'_, PyDict>,
) -> PyResult<(u64, NativeWorkflow)> {
    let target = options::target(target, in_process)?;
    let options = options::workflow(options)?;
    let manager = manager.borrow();
    let pm = manager.manager().clone();
    let slot: Arc<Mutex<Option<WorkflowHandle>>> = Default::default();
    let fill = slot.clone();
    let token = manager.start_op(
        py,
        Box::pin(async move {
            let wf = pm.workflow(target, options).await?;
            let id = wf.process().map(|p| p.id()).unwrap_or(0);
            *fill.lock().unwrap_or_else(|e| e.into_inner()) = Some(wf);
            Ok(Out::Id(id))
        }),
    )?;
    Ok((token, NativeWorkflow { handle: slot, events: Default::default() }))
}

/// The newest `limit` runs of the manager's journal (an operation; rows as `NativeWorkflow.runs`).
#[pyfunction]
pub fn workflow_runs(py: Python<'_>, manager: &Bound<'_, AsyncManager>, limit: usize) -> PyResult<u64> {
    let pm = manager.borrow().manager().clone();
    manager.borrow().start_op(py, Box::pin(async move { Ok(Out::Value(rows(pm.workflow_runs(limit).await?))) }))
}

pub(crate) fn rows(runs: Vec<titan_pm::workflow::RunSummary>) -> Value {
    use titan_pm::reports::Report;
    runs.report(titan_pm::options::Dialect::Python)
}

#[pymethods]
impl NativeWorkflow {
    /// Starts a run; the operation's value is every stage's result by name.
    #[pyo3(signature = (manager, input, run_id=None))]
    fn run(&self, py: Python<'_>, manager: &Bound<'_, AsyncManager>, input: &Bound<'_, PyAny>, run_id: Option<String>) -> PyResult<u64> {
        let wf = self.handle()?;
        let input = convert::to_value(input, "input").map_err(errors::to_py)?;
        manager.borrow().start_op(py, Box::pin(async move { wf.run(input, run_id.as_deref()).await.map(Out::Value) }))
    }

    /// The newest `limit` runs of the journal: `[{"run_id", "workflow", "state", ...}]`.
    fn runs(&self, py: Python<'_>, manager: &Bound<'_, AsyncManager>, limit: usize) -> PyResult<u64> {
        let wf = self.handle()?;
        manager.borrow().start_op(
            py,
            Box::pin(async move {
                Ok(Out::Value(rows(wf.runs(limit).await?)))
            }),
        )
    }

    /// Starts keeping run events for `next_event`.
    fn subscribe(&self) -> PyResult<()> {
        let rx = self.handle()?.events();
        self.events.try_lock().map_err(|_| errors::to_py(Error::Config("already listening".into())))?.replace(rx);
        Ok(())
    }

    /// The next run event (`{"type", "workflow", "run_id", ...}`) as an operation; call again for the one after.
    fn next_event(&self, py: Python<'_>, manager: &Bound<'_, AsyncManager>) -> PyResult<u64> {
        let events = self.events.clone();
        manager.borrow().start_op(
            py,
            Box::pin(async move {
                let mut guard = events.lock().await;
                let Some(rx) = guard.as_mut() else { return Ok(Out::Unit) };
                loop {
                    match rx.recv().await {
                        Ok(e) => return Ok(Out::Value(e.report(Dialect::Python))),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return Ok(Out::Unit),
                    }
                }
            }),
        )
    }

    /// The stage names in the order `run` reports them.
    fn stages(&self) -> PyResult<Vec<String>> {
        Ok(self.handle()?.definition().stages().iter().map(|s| s.name.clone()).collect())
    }
}
