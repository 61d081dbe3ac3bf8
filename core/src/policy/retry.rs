//! Call retries: whether a failed call is sent again. One rule for a single
//! process (`retries` call option) and a pool (`retries` pool option, or the
//! call's): only a crash of the worker that ran the call (`ProcessCrashed`) is
//! retried, at most `limit` times, and only while the call's deadline has time
//! left; the deadline is never extended. A worker's own error, a timeout, a
//! refused or invalid call and a `failed` process are never retried. A retried
//! call may run more than once (at-least-once): only calls the user marked safe
//! to repeat are retried, never by default (`limit` 0).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use titan_pm::policy::Retry;
//! use titan_pm::Error;
//! let crash = Error::ProcessCrashed { process_id: 1, exit_code: None, signal: Some(6) };
//! let own = Error::Remote { remote_type: "ValueError".into(), message: "no".into(), remote_traceback: String::new(), code: None };
//! let now = Instant::now();
//! let deadline = now + Duration::from_secs(1);
//! let mut r = Retry::new(1);
//! assert!(!r.again(&own, now, deadline));          // the worker's own error: never
//! assert!(r.again(&crash, now, deadline));         // a crash: once
//! assert!(!r.again(&crash, now, deadline));        // the budget is spent
//! let mut late = Retry::new(5);
//! assert!(!late.again(&crash, deadline, deadline)); // no time left
//! ```

use std::time::Instant;

use crate::error::Error;

/// The retries of one call: how many are allowed and how many were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    limit: u32,
    made: u32,
}

impl Retry {
    pub fn new(limit: u32) -> Self {
        Retry { limit, made: 0 }
    }

    /// Whether the call that just failed with `error` at `now` is sent again
    /// (counted as one retry when it is).
    pub fn again(&mut self, error: &Error, now: Instant, deadline: Instant) -> bool {
        let retry = matches!(error, Error::ProcessCrashed { .. }) && self.made < self.limit && now < deadline;
        if retry {
            self.made += 1;
        }
        retry
    }

    /// Retries made so far.
    pub fn made(&self) -> u32 {
        self.made
    }
}
