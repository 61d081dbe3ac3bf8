//! titan-pm: a process manager and worker orchestration layer over Cap'n Proto RPC.
//!
//! Where each concern lives (lower layers never import higher ones; a test in
//! `tests/tests/core_layering.rs` fails on an import circle):
//!
//! | layer | modules |
//! |---|---|
//! | leaves | [`usage`] (a process's cpu and memory from `/proc`), [`error`] (the one error type, its kinds), [`state`] (lifecycle states), [`clock`] (the time every timer reads; a test can move it), [`value`] (the dynamic value and its codec), [`dialect`] (camelCase+ms or snake_case+seconds; reading named fields) |
//! | policies | [`policy`]: pure decisions, one file per family (backoff, restart, call retries, circuit breaker) |
//! | wire | [`protocol`] (errors as data, descriptions, health reports), [`transport`], `generated` (from `schema/titan.capnp`) |
//! | worker side | [`agent`]: serves a [`agent::Handler`] (a Rust [`agent::WorkerDef`], or a Python or JS object through a bridge) |
//! | host side | [`host`]: the [`ProcessManager`] engine — spawn, call, restart, health, metrics, shutdown |
//! | above the host | [`pool`]: pools of workers with balancing, queueing, scaling, a breaker; [`supervise`]: OTP supervision trees of workers, pools and supervisors; [`workflow`]: DAG workflows with retries, saga compensation and a journal that lets a run outlive its host |
//! | testing | [`testing`]: a real manager with crash and failure injection, overrides, a movable clock and a record of operations (the front ends' `titan_pm.testing` / `titan-pm/testing`) |
//! | beyond one machine | [`remote`]: a host that listens for remote workers (mutual TLS, join token); `remote:NAME` targets and pools of the workers that joined |
//! | operating it | [`control`]: the control socket the `titan-pm` CLI talks to (`Manager` in the schema), process files |
//! | front-end seams | [`options`] (every option, read once from a `Value` in the caller's dialect), [`reports`] (every report as one `Value` shape), [`exposition`] (Prometheus text of every metric) |
//!
//! To add an option: one getter call in its object's reader in `options/mod.rs`
//! and a field in the type it fills; the bridges need nothing. A balancing
//! strategy: a variant in `pool/strategy.rs`. A transport: a file in
//! `transport/`. A policy: a file in `policy/` (and, for a method policy, a
//! layer in `agent/middleware/`). A report field: one `put` in `reports.rs`.
//!
//! The wire protocol is `schema/titan.capnp`; `generated` is compiled from it.

pub mod agent;
pub mod clock;
pub mod control;
pub mod dialect;
pub mod error;
pub mod exposition;
pub mod generated;
pub mod host;
pub mod options;
pub mod policy;
pub mod pool;
pub mod protocol;
pub mod remote;
pub mod reports;
pub mod state;
pub mod supervise;
pub mod telemetry;
pub mod testing;
pub mod transport;
pub mod value;
pub mod workflow;
pub mod usage;

pub use error::{Error, ErrorKind, Result};
pub use generated::titan_capnp;
pub use host::{
    CallOptions, Event, EventKind, Isolation, LogLine, ManagerConfig, Output, ProcessHandle, ProcessInfo, ProcessManager,
    ProcessMetrics, RestartPolicy, SpawnOptions, Target,
};
pub use pool::{PoolHandle, PoolInfo, PoolOptions, PoolSize, Strategy};
pub use protocol::{HealthReport, HealthStatus};
pub use remote::ListenOptions;
pub use transport::tls::TlsFiles;
pub use state::ProcessState;
pub use supervise::{ChildSpec, SupervisionStrategy, SupervisorHandle, SupervisorSpec};
pub use transport::Transport;
pub use value::Value;
pub use workflow::{StageContext, StageOptions, WorkflowHandle, WorkflowOptions};
