//! The caller's dialect: how option and report names are spelled and which
//! unit a bare number of time is in. Names are written once, in camelCase;
//! Python's snake_case spelling is derived from it. [`Section`] reads one
//! object of named fields in a dialect (options, descriptions). A leaf module:
//! options, reports and the protocol all build on it.
//!
//! ```
//! use titan_pm::dialect::Dialect;
//! assert_eq!(Dialect::Python.name("targetCPU"), "target_cpu");
//! assert_eq!(Dialect::Python.name("halfOpenRequests"), "half_open_requests");
//! assert_eq!(Dialect::Js.name("maxQueueSize"), "maxQueueSize");
//! ```

mod section;

pub use section::{parse_bytes, parse_duration, probe, Section, Toggle};

use std::borrow::Cow;
use std::time::Duration;

/// TypeScript and Rust callers write camelCase and milliseconds; Python callers
/// write snake_case and seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// camelCase names, durations in milliseconds (TypeScript, Rust, process files).
    #[default]
    Js,
    /// snake_case names, durations in seconds (Python).
    Python,
}

impl Dialect {
    /// `camel` as this dialect spells it.
    pub fn name(self, camel: &str) -> Cow<'_, str> {
        match self {
            Dialect::Js => Cow::Borrowed(camel),
            Dialect::Python => Cow::Owned(snake_case(camel)),
        }
    }

    /// The name of the unit a bare duration is in.
    pub fn time_unit(self) -> &'static str {
        match self {
            Dialect::Js => "ms",
            Dialect::Python => "seconds",
        }
    }

    /// A bare number of this dialect's time unit.
    pub fn duration(self, n: f64) -> Option<Duration> {
        let secs = match self {
            Dialect::Js => n / 1000.0,
            Dialect::Python => n,
        };
        Duration::try_from_secs_f64(secs).ok()
    }

    /// A duration as a number of this dialect's time unit.
    pub fn number(self, d: Duration) -> f64 {
        match self {
            Dialect::Js => d.as_secs_f64() * 1000.0,
            Dialect::Python => d.as_secs_f64(),
        }
    }
}

/// `targetCPU` -> `target_cpu`, `maxRestarts` -> `max_restarts`.
fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    let mut prev_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}
