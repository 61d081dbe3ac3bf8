//! Policies: pure decisions with no I/O, one file per family, shared by every
//! part of the host that needs them.
//!
//! - [`backoff`]: how long to wait before the n-th retry or restart (`linear`, `exponential`).
//! - [`restart`]: when a process is started again and how often ([`RestartPolicy`], its budget).
//! - [`breaker`]: the circuit breaker state machine (pools today, method breakers next).
//!
//! A new policy family is a new file here; the host and pools call it, the
//! bridges never re-implement it.

pub mod backoff;
pub mod breaker;
pub mod restart;

pub use backoff::Backoff;
pub use breaker::{Breaker, BreakerOptions, BreakerState};
pub use restart::{ChildRestart, RestartBudget, RestartPolicy};
