//! Restart policy: how often a crashed process is started again, and how long
//! to wait before each attempt (exponential backoff).
//!
//! ```
//! use std::time::Duration;
//! use titan_pm::RestartPolicy;
//! let p = RestartPolicy::default();
//! assert_eq!((p.max_restarts, p.window), (3, Duration::from_secs(60)));
//! assert_eq!(p.backoff(0), Duration::from_millis(100));
//! assert_eq!(p.backoff(2), Duration::from_millis(400));
//! assert_eq!(p.backoff(30), Duration::from_secs(30));
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The defaults are the brief's: on, 3 restarts in 60 s, backoff from 100 ms doubling to 30 s.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub enabled: bool,
    pub max_restarts: u32,
    pub window: Duration,
    pub initial_backoff: Duration,
    pub multiplier: f64,
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            enabled: true,
            max_restarts: 3,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RestartPolicy {
    pub fn disabled() -> Self {
        RestartPolicy { enabled: false, ..Self::default() }
    }

    /// The wait before restart number `attempt` (0-based) within the window.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(attempt.min(64) as i32);
        self.initial_backoff.mul_f64(factor).min(self.max_backoff)
    }
}

/// Restarts of one process within the policy's window.
#[derive(Debug, Default)]
pub(crate) struct RestartBudget {
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    /// The backoff before the next restart, or `None` when the budget is spent.
    pub(crate) fn next(&mut self, policy: &RestartPolicy, now: Instant) -> Option<Duration> {
        if !policy.enabled {
            return None;
        }
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > policy.window) {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= policy.max_restarts {
            return None;
        }
        let delay = policy.backoff(self.recent.len() as u32);
        self.recent.push_back(now);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_spent_after_max_restarts_within_the_window() {
        let p = RestartPolicy::default();
        let mut b = RestartBudget::default();
        let t = Instant::now();
        assert_eq!(b.next(&p, t), Some(Duration::from_millis(100)));
        assert_eq!(b.next(&p, t), Some(Duration::from_millis(200)));
        assert_eq!(b.next(&p, t), Some(Duration::from_millis(400)));
        assert_eq!(b.next(&p, t), None);
        // Once the window has passed, restarts are allowed again.
        assert_eq!(b.next(&p, t + Duration::from_secs(61)), Some(Duration::from_millis(100)));
    }

    #[test]
    fn a_disabled_policy_never_restarts() {
        assert_eq!(RestartBudget::default().next(&RestartPolicy::disabled(), Instant::now()), None);
    }
}
