//! Policies: pure decisions with no I/O, one file per family, shared by every
//! part of the host that needs them.
//!
//! - [`backoff`]: how long to wait before the n-th retry or restart (`linear`, `exponential`).
//! - [`restart`]: when a process is started again and how often ([`RestartPolicy`], its budget).
//! - [`retry`]: whether a failed call is sent again (a crash, within its retries and deadline).
//! - [`breaker`]: the circuit breaker state machine (pools and method breakers).
//! - [`method`]: what a method declares (the decorators of §8), read and checked once.
//! - [`rate_limit`], [`cache`], [`idempotent`], [`self_heal`]: the state of one
//!   method policy each; `host/policies.rs` applies them around a call.
//! - [`trace`]: W3C trace context of a call and the in-process span store.
//!
//! A new policy family is a new file here; the host and pools call it, the
//! bridges never re-implement it.

pub mod backoff;
pub mod breaker;
pub mod cache;
pub mod idempotent;
pub mod method;
pub mod rate_limit;
pub mod restart;
pub mod retry;
pub mod self_heal;
pub mod trace;

pub use backoff::Backoff;
pub use breaker::{Breaker, BreakerOptions, BreakerState};
pub use restart::{ChildRestart, RestartBudget, RestartPolicy};
pub use retry::Retry;
