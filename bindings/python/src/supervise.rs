//! Supervisors for Python: `Supervision` wraps an `AsyncManager` and forwards
//! to core's supervisors (core reads the tree, runs it and shapes its reports).
//! A supervisor is named by its top-level id and the child names down to it.

use pyo3::prelude::*;
use titan_pm::supervise::SupervisorHandle;
use titan_pm::{Error, ProcessManager, Value};

use crate::host::asyncio::AsyncManager;
use crate::runtime::Out;
use crate::{convert, errors, options, reports};

#[pyclass(module = "titan_pm._native")]
pub struct Supervision {
    manager: Py<AsyncManager>,
}

/// The supervisor at `path` under the top-level supervisor `id`.
async fn find(pm: &ProcessManager, id: u64, path: &[String]) -> Result<SupervisorHandle, Error> {
    let mut h = pm.supervisor_handle(id)?;
    for name in path {
        h = h.supervisor(name).await?;
    }
    Ok(h)
}

#[pymethods]
impl Supervision {
    #[new]
    fn new(manager: Py<AsyncManager>) -> Self {
        Supervision { manager }
    }

    /// Starts the tree; its token resolves to the supervisor's id.
    fn start(&self, py: Python<'_>, tree: &Bound<'_, PyAny>) -> PyResult<u64> {
        let spec = options::supervisor_tree(tree)?;
        let m = self.manager.borrow(py);
        let pm = m.pm.clone();
        m.start(py, async move { Ok(Out::Id(pm.supervisor(spec).await?.id().await?)) })
    }

    /// The worker child's process id (token).
    fn child(&self, py: Python<'_>, id: u64, path: Vec<String>, name: String) -> PyResult<u64> {
        let m = self.manager.borrow(py);
        let pm = m.pm.clone();
        m.start(py, async move { Ok(Out::Id(find(&pm, id, &path).await?.child(&name).await?.id())) })
    }

    /// The pool child's pool id (token).
    fn pool(&self, py: Python<'_>, id: u64, path: Vec<String>, name: String) -> PyResult<u64> {
        let m = self.manager.borrow(py);
        let pm = m.pm.clone();
        m.start(py, async move { Ok(Out::Id(find(&pm, id, &path).await?.pool(&name).await?.id())) })
    }

    /// `running`, `failed` or `stopped` (one engine round trip).
    fn state(&self, py: Python<'_>, id: u64, path: Vec<String>) -> PyResult<&'static str> {
        let m = self.manager.borrow(py);
        let pm = m.pm.clone();
        let state = m.block_on(py, async move { pm.supervisor_state(id, path).await })?.map_err(errors::to_py)?;
        Ok(state.as_str())
    }

    /// `[{name, kind, state, restarts, process_id, process_ids}]` (one engine round trip).
    fn children<'py>(&self, py: Python<'py>, id: u64, path: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let m = self.manager.borrow(py);
        let pm = m.pm.clone();
        let rows = m.block_on(py, async move { find(&pm, id, &path).await?.children().await })?.map_err(errors::to_py)?;
        reports::to_py(py, &rows)
    }

    /// Adds a simple-one-for-one child; its token resolves to the new process id.
    fn start_child(&self, py: Python<'_>, id: u64, path: Vec<String>, args: &Bound<'_, PyAny>) -> PyResult<u64> {
        let args: Value = convert::to_value(args, "args").map_err(errors::to_py)?;
        let m = self.manager.borrow(py);
        let pm = m.pm.clone();
        m.start(py, async move { Ok(Out::Id(find(&pm, id, &path).await?.start_child(args).await?.id())) })
    }

    /// Stops the supervisor's children in reverse order (token).
    fn stop(&self, py: Python<'_>, id: u64, path: Vec<String>) -> PyResult<u64> {
        let m = self.manager.borrow(py);
        let pm = m.pm.clone();
        m.start(py, async move { find(&pm, id, &path).await?.stop().await.map(|_| Out::Unit) })
    }
}
