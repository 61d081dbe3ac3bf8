//! titan-pm: a process manager and worker orchestration layer over Cap'n Proto RPC.
//!
//! - [`host`]: the manager side ([`ProcessManager`]): spawn, call, restart,
//!   health, metrics, shutdown.
//! - [`agent`]: the worker side: serves a [`agent::Handler`] (a Rust
//!   [`agent::WorkerDef`], or a Python or JS object through a binding).
//! - [`pool`]: pools of workers with balancing, queueing, scaling and a breaker.
//! - [`value`], [`protocol`], [`transport`]: what crosses the wire and how.
//! - [`workflow`]: DAG workflows with retries, saga compensation and a journal
//!   that lets a run outlive its host.
//! - [`error`]: the one error type, with the brief's error kinds.
//!
//! The wire protocol is `schema/titan.capnp`; `generated` is compiled from it.

pub mod agent;
pub mod error;
pub mod generated;
pub mod host;
pub mod options;
pub mod policy;
pub mod pool;
pub mod protocol;
pub mod reports;
pub mod state;
pub mod transport;
pub mod value;
pub mod workflow;

pub use error::{Error, ErrorKind, Result};
pub use generated::titan_capnp;
pub use host::{
    CallOptions, Event, EventKind, Isolation, ManagerConfig, Output, ProcessHandle, ProcessInfo, ProcessManager,
    ProcessMetrics, RestartPolicy, SpawnOptions, Target,
};
pub use pool::{PoolHandle, PoolOptions, PoolSize, Strategy};
pub use protocol::{HealthReport, HealthStatus};
pub use state::ProcessState;
pub use transport::Transport;
pub use value::Value;
pub use workflow::{StageContext, StageOptions, WorkflowHandle, WorkflowOptions};
