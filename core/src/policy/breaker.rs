//! The pool's circuit breaker: closed -> open after `threshold` consecutive
//! failures; open refuses calls until `timeout` has passed; then half-open lets
//! `half_open_requests` trial calls through: all succeed -> closed, any fails -> open.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use titan_pm::pool::{Breaker, BreakerOptions, BreakerState};
//! let opts = BreakerOptions { threshold: 2, timeout: Duration::from_secs(1), half_open_requests: 1 };
//! let mut b = Breaker::new(opts);
//! let t = Instant::now();
//! b.record(false, t);
//! assert_eq!(b.record(false, t), Some(BreakerState::Open));
//! assert!(b.admit(t).is_err());
//! ```

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerOptions {
    pub threshold: u32,
    pub timeout: Duration,
    pub half_open_requests: u32,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        BreakerOptions { threshold: 5, timeout: Duration::from_secs(30), half_open_requests: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The state as reports name it: `closed`, `open`, `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// The event name: `circuitbreaker:open|halfopen|close`.
    pub fn event(self) -> &'static str {
        match self {
            BreakerState::Closed => "circuitbreaker:close",
            BreakerState::Open => "circuitbreaker:open",
            BreakerState::HalfOpen => "circuitbreaker:halfopen",
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    options: BreakerOptions,
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    trials_started: u32,
    trials_passed: u32,
}

impl Breaker {
    pub fn new(options: BreakerOptions) -> Self {
        Breaker { options, state: BreakerState::Closed, failures: 0, opened_at: None, trials_started: 0, trials_passed: 0 }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Lets a call through or refuses it; may move open -> half-open (returned as the second value).
    pub fn admit(&mut self, now: Instant) -> Result<Option<BreakerState>> {
        let mut changed = None;
        if self.state == BreakerState::Open && self.opened_at.is_some_and(|t| now.duration_since(t) >= self.options.timeout) {
            self.state = BreakerState::HalfOpen;
            self.trials_started = 0;
            self.trials_passed = 0;
            changed = Some(BreakerState::HalfOpen);
        }
        match self.state {
            BreakerState::Closed => Ok(changed),
            BreakerState::Open => Err(Error::CircuitOpen),
            BreakerState::HalfOpen if self.trials_started < self.options.half_open_requests.max(1) => {
                self.trials_started += 1;
                Ok(changed)
            }
            BreakerState::HalfOpen => Err(Error::CircuitOpen),
        }
    }

    /// Records a finished call; returns the new state if it changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<BreakerState> {
        match (self.state, ok) {
            (BreakerState::Closed, true) => {
                self.failures = 0;
                None
            }
            (BreakerState::Closed, false) => {
                self.failures += 1;
                (self.failures >= self.options.threshold.max(1)).then(|| self.open(now))
            }
            (BreakerState::HalfOpen, false) => Some(self.open(now)),
            (BreakerState::HalfOpen, true) => {
                self.trials_passed += 1;
                (self.trials_passed >= self.options.half_open_requests.max(1)).then(|| {
                    self.state = BreakerState::Closed;
                    self.failures = 0;
                    BreakerState::Closed
                })
            }
            // A call admitted before the breaker opened: it changes nothing.
            (BreakerState::Open, _) => None,
        }
    }

    /// An admitted call that will never report (its caller dropped it): a half-open
    /// trial slot is handed back.
    pub fn forget_trial(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.trials_started = self.trials_started.saturating_sub(1);
        }
    }

    fn open(&mut self, now: Instant) -> BreakerState {
        self.state = BreakerState::Open;
        self.opened_at = Some(now);
        self.failures = 0;
        BreakerState::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_open_half_open_closed_and_open_again() {
        let opts = BreakerOptions { threshold: 3, timeout: Duration::from_millis(100), half_open_requests: 2 };
        let mut b = Breaker::new(opts);
        let t0 = Instant::now();
        assert_eq!(b.record(false, t0), None);
        assert_eq!(b.record(true, t0), None, "a success resets the count");
        b.record(false, t0);
        b.record(false, t0);
        assert_eq!(b.record(false, t0), Some(BreakerState::Open));
        assert!(matches!(b.admit(t0 + Duration::from_millis(50)), Err(Error::CircuitOpen)));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.admit(t1).unwrap(), Some(BreakerState::HalfOpen));
        assert_eq!(b.admit(t1).unwrap(), None);
        assert!(b.admit(t1).is_err(), "only two trial calls");
        assert_eq!(b.record(true, t1), None);
        assert_eq!(b.record(true, t1), Some(BreakerState::Closed));
        for _ in 0..3 {
            b.record(false, t1);
        }
        assert_eq!(b.state(), BreakerState::Open);
        let t2 = t1 + Duration::from_millis(100);
        b.admit(t2).unwrap();
        assert_eq!(b.record(false, t2), Some(BreakerState::Open), "a failed trial opens it again");
    }

    #[test]
    fn a_trial_whose_caller_gave_up_hands_its_slot_back() {
        let opts = BreakerOptions { threshold: 1, timeout: Duration::ZERO, half_open_requests: 1 };
        let mut b = Breaker::new(opts);
        let t = Instant::now();
        b.record(false, t);
        b.admit(t).unwrap();
        assert!(b.admit(t).is_err());
        b.forget_trial();
        b.admit(t).unwrap();
        assert_eq!(b.record(true, t), Some(BreakerState::Closed));
    }
}
