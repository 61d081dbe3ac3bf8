//! Backoff: the wait before the n-th retry or restart (1-based), capped at `max`.
//!
//! `Linear` waits `initial × n`; `Exponential` waits `initial × multiplier^(n-1)`
//! (multiplier 2 by default). The brief's default is exponential from 100 ms to 30 s.
//!
//! ```
//! use std::time::Duration;
//! use titan_pm::policy::Backoff;
//! let ms = Duration::from_millis;
//! let lin = Backoff::linear(ms(100), ms(250));
//! assert_eq!([lin.delay(1), lin.delay(2), lin.delay(3)], [ms(100), ms(200), ms(250)]);
//! let exp = Backoff::default();
//! assert_eq!([exp.delay(1), exp.delay(2), exp.delay(3)], [ms(100), ms(200), ms(400)]);
//! assert_eq!(exp.delay(40), Duration::from_secs(30));
//! // With jitter 0.5 the wait is drawn from [delay / 2, delay]: `unit` is the draw in [0, 1).
//! assert_eq!(exp.jittered(2, 0.5, 0.0), ms(100));
//! assert_eq!(exp.jittered(2, 0.5, 0.5), ms(150));
//! ```

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum BackoffKind {
    Linear,
    /// Each wait is `multiplier` times the previous one.
    #[default]
    Exponential,
}

impl BackoffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackoffKind::Linear => "linear",
            BackoffKind::Exponential => "exponential",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub kind: BackoffKind,
    pub initial: Duration,
    pub max: Duration,
    /// Exponential only; at least 1.
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { kind: BackoffKind::Exponential, initial: Duration::from_millis(100), max: Duration::from_secs(30), multiplier: 2.0 }
    }
}

impl Backoff {
    pub fn linear(initial: Duration, max: Duration) -> Self {
        Backoff { kind: BackoffKind::Linear, initial, max, multiplier: 1.0 }
    }

    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff { kind: BackoffKind::Exponential, initial, max, multiplier: 2.0 }
    }

    /// The wait before attempt `n` (1-based; 0 is treated as 1).
    pub fn delay(&self, n: u32) -> Duration {
        let n = n.max(1);
        let factor = match self.kind {
            BackoffKind::Linear => n as f64,
            BackoffKind::Exponential => self.multiplier.max(1.0).powi((n - 1).min(64) as i32),
        };
        Duration::try_from_secs_f64(self.initial.as_secs_f64() * factor).unwrap_or(self.max).min(self.max)
    }

    /// The wait before attempt `n` with `jitter` (0 to 1) spread: uniform in
    /// `[delay × (1 − jitter), delay]`, `unit` being a draw in `[0, 1)`. Many callers
    /// retrying at once do not retry in lockstep.
    pub fn jittered(&self, n: u32, jitter: f64, unit: f64) -> Duration {
        let d = self.delay(n).as_secs_f64();
        let j = jitter.clamp(0.0, 1.0);
        Duration::from_secs_f64(d * (1.0 - j + j * unit.clamp(0.0, 1.0)))
    }
}
