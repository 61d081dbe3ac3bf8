//! The `titan-pm` command from Python: `cli_run(argv, relaunch)` runs the CLI crate's
//! [`titan_pm_cli::run`] on the calling thread with the GIL released and returns its
//! exit code (`titan_pm._cli.main`, the package's `titan-pm` script, exits with it).

use std::ffi::OsString;

use pyo3::prelude::*;

/// Runs the command line `argv` (the first item is the program name); `relaunch`
/// is how to run this CLI again (the daemon of `start`). Returns the exit code.
/// `python` is the manager's default interpreter for `.py` workers (the caller's own).
#[pyfunction]
pub fn cli_run(py: Python<'_>, argv: Vec<String>, relaunch: Vec<String>, python: String) -> i32 {
    let launcher = titan_pm_cli::Launcher {
        relaunch: relaunch.into_iter().map(OsString::from).collect(),
        python: Some(python),
        node: None,
    };
    py.detach(move || titan_pm_cli::run(argv, &launcher))
}
