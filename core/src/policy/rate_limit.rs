//! `@RateLimit`: one limiter per method of a process or pool, one bucket per key.
//! `token-bucket` is GCRA from the `governor` crate (`burst` at once, refilled at
//! `rps`); `sliding-window` and `fixed-window` admit `burst` calls per window of
//! `burst / rps` seconds (with the default burst, `rps` calls per second). A
//! refused call gets how long to wait. At most [`MAX_KEYS`] keys are kept: when
//! full, buckets idle long enough to be full again are dropped; if none are, the
//! calls share one overflow bucket (never unbounded growth).
//!
//! ```
//! use std::time::Instant;
//! use titan_pm::policy::method::RateLimit;
//! use titan_pm::policy::rate_limit::Limiter;
//! let l = Limiter::new(&RateLimit { rps: 10.0, burst: 2, ..Default::default() });
//! let now = Instant::now();
//! assert!(l.check("", now).is_ok() && l.check("", now).is_ok());
//! assert!(l.check("", now).unwrap_err().as_millis() > 0);
//! assert!(l.check("other", now).is_ok(), "each key has its own bucket");
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::method::{RateLimit, RateStrategy, MAX_KEYS};

/// The key used for new keys once [`MAX_KEYS`] buckets are in use.
const OVERFLOW_KEY: &str = "\u{0}overflow";

pub struct Limiter {
    inner: Inner,
}

enum Inner {
    Gcra(RateLimiter<String, HashMapStateStore<String>, DefaultClock>),
    Window { sliding: bool, limit: usize, window: Duration, keys: RefCell<HashMap<String, VecDeque<Instant>>> },
}

impl Limiter {
    pub fn new(r: &RateLimit) -> Limiter {
        let burst = r.effective_burst();
        let inner = match r.strategy {
            RateStrategy::TokenBucket => {
                let period = Duration::from_secs_f64(1.0 / r.rps).max(Duration::from_nanos(1));
                let quota = Quota::with_period(period).expect("a period > 0").allow_burst(NonZeroU32::new(burst).expect("burst >= 1"));
                Inner::Gcra(RateLimiter::hashmap(quota))
            }
            s => Inner::Window {
                sliding: s == RateStrategy::SlidingWindow,
                limit: burst as usize,
                window: Duration::from_secs_f64(burst as f64 / r.rps),
                keys: RefCell::default(),
            },
        };
        Limiter { inner }
    }

    /// Admits a call for `key` (`""` when the limit has no key), or says how long to wait.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        match &self.inner {
            Inner::Gcra(l) => {
                let mut key = key;
                if l.len() as u64 >= MAX_KEYS {
                    l.retain_recent();
                    if l.len() as u64 >= MAX_KEYS {
                        key = OVERFLOW_KEY;
                    }
                }
                // The limiter's own clock, read only on a refusal (making a clock is not free).
                l.check_key(&key.to_string()).map_err(|not_until| not_until.wait_time_from(l.clock().now()).max(Duration::from_millis(1)))
            }
            Inner::Window { sliding, limit, window, keys } => {
                let mut keys = keys.borrow_mut();
                if keys.len() as u64 >= MAX_KEYS && !keys.contains_key(key) {
                    keys.retain(|_, q| q.back().is_some_and(|t| now.saturating_duration_since(*t) < *window));
                }
                let key = if keys.len() as u64 >= MAX_KEYS && !keys.contains_key(key) { OVERFLOW_KEY } else { key };
                let q = keys.entry(key.to_string()).or_default();
                if *sliding {
                    while q.front().is_some_and(|t| now.saturating_duration_since(*t) >= *window) {
                        q.pop_front();
                    }
                    if q.len() >= *limit {
                        let oldest = *q.front().expect("limit >= 1");
                        return Err((oldest + *window).saturating_duration_since(now).max(Duration::from_millis(1)));
                    }
                    q.push_back(now);
                } else {
                    // The front holds the window's start; the length counts its calls.
                    if q.front().is_none_or(|start| now.saturating_duration_since(*start) >= *window) {
                        q.clear();
                    }
                    if q.len() >= *limit {
                        let start = *q.front().expect("limit >= 1");
                        return Err((start + *window).saturating_duration_since(now).max(Duration::from_millis(1)));
                    }
                    q.push_back(q.front().copied().unwrap_or(now));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_strategy_admits_its_burst_then_refuses_with_a_wait() {
        for strategy in [RateStrategy::TokenBucket, RateStrategy::SlidingWindow, RateStrategy::FixedWindow] {
            let l = Limiter::new(&RateLimit { rps: 10.0, burst: 10, strategy, key: None });
            let now = Instant::now();
            let ok = (0..25).filter(|_| l.check("", now).is_ok()).count();
            assert_eq!(ok, 10, "{strategy:?}");
            let wait = l.check("", now).unwrap_err();
            assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{strategy:?}: {wait:?}");
            assert!(l.check("b", now).is_ok(), "{strategy:?}: keys are independent");
        }
    }

    #[test]
    fn windows_admit_again_after_the_window() {
        let l = Limiter::new(&RateLimit { rps: 10.0, burst: 5, strategy: RateStrategy::FixedWindow, key: None });
        let t = Instant::now();
        for _ in 0..5 {
            l.check("", t).unwrap();
        }
        assert!(l.check("", t + Duration::from_millis(400)).is_err());
        assert!(l.check("", t + Duration::from_millis(500)).is_ok());
    }
}
