//! The PyO3 bridge of titan-pm (`titan_pm._native`): it converts values and
//! errors and forwards calls to the core; every decision lives in `titan-pm`.
//!
//! - [`host`]: [`host::blocking::SyncManager`] runs the core engine on the
//!   caller's thread (no thread hop per call); [`host::asyncio::AsyncManager`]
//!   hands results to the asyncio loop through [`runtime`], the one async helper.
//! - [`agent`]: [`agent::serve_worker_on`] serves a Python object through the core
//!   agent; [`agent::PyHandler`] is the core `Handler` over it.
//! - [`convert`]: Python values <-> `Value`; [`errors`]: core errors -> Python
//!   exceptions; [`options`]: keyword options -> core options (core reads them);
//!   [`reports`]: core reports -> dicts (core shapes them); [`telemetry`]: core's
//!   log messages -> `logging`; [`control`]: a manager's control socket;
//!   [`cli`]: the `titan-pm` command (the CLI crate's `run`).

use pyo3::prelude::*;

mod options;
mod agent;
mod cli;
mod control;
mod convert;
mod errors;
mod host;
mod reports;
mod runtime;
mod supervise;
mod telemetry;
mod workflow;

/// Lets a value that is only touched on the current thread cross `Python::detach`,
/// whose closure runs on this same thread.
pub(crate) struct SameThread<T>(pub T);
// SAFETY: `detach` runs its closure synchronously on the calling thread.
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    /// Takes the value out (a method, so closures capture the whole wrapper).
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    telemetry::init();
    // host
    m.add_class::<host::blocking::SyncManager>()?;
    m.add_class::<host::asyncio::AsyncManager>()?;
    m.add_class::<runtime::LoopRuntime>()?;
    m.add_class::<agent::LiveToken>()?;
    m.add_class::<supervise::Supervision>()?;
    m.add_class::<control::ControlServer>()?;
    // worker
    m.add_class::<agent::Completion>()?;
    m.add_class::<agent::Granted>()?;
    m.add_class::<agent::SharedView>()?;
    m.add_function(wrap_pyfunction!(agent::serve_worker_on, m)?)?;
    m.add_function(wrap_pyfunction!(agent::take_worker_args, m)?)?;
    // options
    m.add_function(wrap_pyfunction!(options::check_manager_options, m)?)?;
    m.add_function(wrap_pyfunction!(options::option_schema, m)?)?;
    m.add_function(wrap_pyfunction!(options::check_call_options, m)?)?;
    m.add_function(wrap_pyfunction!(options::event_names, m)?)?;
    m.add_function(wrap_pyfunction!(options::parse_duration, m)?)?;
    // workflows
    m.add_class::<workflow::NativeWorkflow>()?;
    m.add_function(wrap_pyfunction!(workflow::workflow_start, m)?)?;
    m.add_function(wrap_pyfunction!(workflow::workflow_runs, m)?)?;
    // values
    m.add_function(wrap_pyfunction!(convert::roundtrip, m)?)?;
    m.add("MAX_DEPTH", titan_pm::value::MAX_DEPTH)?;
    // the titan-pm command
    m.add_function(wrap_pyfunction!(cli::cli_run, m)?)?;
    Ok(())
}
