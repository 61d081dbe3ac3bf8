//! The control socket from Python: a manager's `serve_control(path)` serves core's
//! control interface (the `titan-pm` CLI is its client) and returns a [`ControlServer`],
//! a thin wrapper of core's. Where the socket goes by default is core's rule.

use std::path::PathBuf;

use pyo3::prelude::*;
use titan_pm::{control, ProcessManager};

use crate::errors;

/// A running control server (`titan_pm.ControlServer` wraps it).
#[pyclass(module = "titan_pm._native", frozen)]
pub struct ControlServer {
    inner: control::ControlServer,
}

#[pymethods]
impl ControlServer {
    #[getter]
    fn path(&self) -> String {
        self.inner.path().display().to_string()
    }

    /// Stops accepting connections and removes the socket file.
    fn close(&self) {
        self.inner.close()
    }

    /// Whether a client ran `titan-pm stop` and the manager has shut down.
    fn is_shutdown_requested(&self) -> bool {
        self.inner.is_shutdown_requested()
    }
}

/// Serves `pm`'s control interface at `path` (core's default socket when `None`).
pub fn serve(pm: &ProcessManager, path: Option<PathBuf>) -> PyResult<ControlServer> {
    let path = path.unwrap_or_else(control::default_socket);
    pm.serve_control(path).map(|inner| ControlServer { inner }).map_err(errors::to_py)
}
