//! The `titan-pm` command from Node: `cliRun(argv, relaunch)` runs the CLI crate's
//! [`titan_pm_cli::run`] on the calling (main) thread, blocking it, and returns the
//! exit code. Only the npm package's `bin` (`dist/cli.js`) calls it: a process that
//! is the CLI and nothing else.

use std::ffi::OsString;

use napi_derive::napi;

/// Runs the command line `argv` (the first item is the program name); `relaunch` is
/// how to run this CLI again (the daemon of `start`). Returns the exit code.
/// `node` is the manager's default runtime for `.js` workers (the caller's own).
#[napi]
#[cfg_attr(test, allow(dead_code))]
pub fn cli_run(argv: Vec<String>, relaunch: Vec<String>, node: String) -> i32 {
    let launcher = titan_pm_cli::Launcher {
        relaunch: relaunch.into_iter().map(OsString::from).collect(),
        python: None,
        node: Some(node),
    };
    titan_pm_cli::run(argv, &launcher)
}
