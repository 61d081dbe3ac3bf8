//! Lifecycle states of a process: a leaf module every other one may import
//! (errors, the host, pools, supervisors) without importing each other.
//!
//! ```
//! use titan_pm::ProcessState;
//! assert_eq!(ProcessState::Restarting.to_string(), "restarting");
//! ```

use std::fmt;

/// A process's lifecycle state, as `list_processes` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    Starting,
    Running,
    Restarting,
    Stopping,
    Stopped,
    Failed,
}

impl ProcessState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Starting => "starting",
            ProcessState::Running => "running",
            ProcessState::Restarting => "restarting",
            ProcessState::Stopping => "stopping",
            ProcessState::Stopped => "stopped",
            ProcessState::Failed => "failed",
        }
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
