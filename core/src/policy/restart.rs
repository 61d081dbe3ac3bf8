//! Restart policy: whether a crashed process is started again, how often
//! (at most `max_restarts` within `window`: OTP's intensity), and how long to
//! wait before each attempt ([`Backoff`]). Processes, pool replacement and
//! supervisors (one budget per supervisor) use it; [`ChildRestart`] is a
//! supervised child's restart type.
//!
//! ```
//! use std::time::Duration;
//! use titan_pm::RestartPolicy;
//! let p = RestartPolicy::default();
//! assert_eq!((p.max_restarts, p.window), (3, Duration::from_secs(60)));
//! assert_eq!(p.backoff.delay(1), Duration::from_millis(100));
//! assert_eq!(p.backoff.delay(3), Duration::from_millis(400));
//! assert_eq!(p.backoff.delay(30), Duration::from_secs(30));
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Backoff;

/// The defaults are the brief's: on, 3 restarts in 60 s, backoff from 100 ms doubling to 30 s.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub enabled: bool,
    pub max_restarts: u32,
    pub window: Duration,
    pub backoff: Backoff,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            enabled: true,
            max_restarts: 3,
            window: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}

impl RestartPolicy {
    pub fn disabled() -> Self {
        RestartPolicy { enabled: false, ..Self::default() }
    }
}

/// A supervised child's restart type (OTP's `restart`): whether the supervisor
/// starts it again after it ends.
///
/// | type | abnormal exit (crash, signal, code != 0) | normal exit (code 0) |
/// |---|---|---|
/// | `Permanent` (default) | restarted | restarted |
/// | `Transient` | restarted | left stopped |
/// | `Temporary` | left stopped | left stopped |
///
/// ```
/// use titan_pm::policy::ChildRestart;
/// assert!(ChildRestart::default().restarts_after(true));
/// assert!(!ChildRestart::Transient.restarts_after(true));
/// assert!(ChildRestart::Transient.restarts_after(false));
/// assert!(!ChildRestart::Temporary.restarts_after(false));
/// assert_eq!("transient".parse::<ChildRestart>().unwrap(), ChildRestart::Transient);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChildRestart {
    #[default]
    Permanent,
    Transient,
    Temporary,
}

impl ChildRestart {
    /// Whether a child that ended (`normal`: on its own with code 0) is started again.
    pub fn restarts_after(self, normal: bool) -> bool {
        match self {
            ChildRestart::Permanent => true,
            ChildRestart::Transient => !normal,
            ChildRestart::Temporary => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChildRestart::Permanent => "permanent",
            ChildRestart::Transient => "transient",
            ChildRestart::Temporary => "temporary",
        }
    }
}

impl std::str::FromStr for ChildRestart {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "permanent" => Ok(ChildRestart::Permanent),
            "transient" => Ok(ChildRestart::Transient),
            "temporary" => Ok(ChildRestart::Temporary),
            _ => Err(crate::error::Error::Config(format!("unknown restart type {s:?} (expected permanent, transient or temporary)"))),
        }
    }
}

/// Restarts of one process within the policy's window.
#[derive(Debug, Default)]
pub struct RestartBudget {
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    /// The backoff before the next restart, or `None` when the budget is spent.
    pub fn next(&mut self, policy: &RestartPolicy, now: Instant) -> Option<Duration> {
        if !policy.enabled {
            return None;
        }
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > policy.window) {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= policy.max_restarts {
            return None;
        }
        let delay = policy.backoff.delay(self.recent.len() as u32 + 1);
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
    fn a_linear_backoff_grows_by_its_initial_step() {
        let p = RestartPolicy { backoff: Backoff::linear(Duration::from_millis(50), Duration::from_secs(1)), ..RestartPolicy::default() };
        let mut b = RestartBudget::default();
        let t = Instant::now();
        let delays: Vec<_> = (0..3).map(|_| b.next(&p, t).unwrap().as_millis()).collect();
        assert_eq!(delays, [50, 100, 150]);
    }

    #[test]
    fn a_disabled_policy_never_restarts() {
        assert_eq!(RestartBudget::default().next(&RestartPolicy::disabled(), Instant::now()), None);
    }
}
