//! Supervision strategies (OTP's `strategy`): which children a supervisor
//! restarts when one of them ends and must be restarted. A pure decision.
//!
//! | strategy | child `i` of `n` ends → restarted |
//! |---|---|
//! | `OneForOne` (default) | `i` |
//! | `OneForAll` | all `0..n` (the others stopped in reverse order first) |
//! | `RestForOne` | `i..n`: it and the children declared after it |
//! | `SimpleOneForOne` | `i` (children are identical and added with `start_child`) |
//!
//! ```
//! use titan_pm::supervise::SupervisionStrategy as S;
//! assert_eq!(S::default(), S::OneForOne);
//! assert_eq!(S::OneForOne.affected(1, 3), 1..2);
//! assert_eq!(S::OneForAll.affected(1, 3), 0..3);
//! assert_eq!(S::RestForOne.affected(1, 3), 1..3);
//! assert_eq!("rest-for-one".parse::<S>().unwrap(), S::RestForOne);
//! ```

use std::ops::Range;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SupervisionStrategy {
    #[default]
    OneForOne,
    OneForAll,
    RestForOne,
    SimpleOneForOne,
}

impl SupervisionStrategy {
    /// Every strategy's name, as front ends spell it.
    pub const NAMES: &'static [&'static str] = &["one-for-one", "one-for-all", "rest-for-one", "simple-one-for-one"];

    pub fn as_str(self) -> &'static str {
        match self {
            SupervisionStrategy::OneForOne => "one-for-one",
            SupervisionStrategy::OneForAll => "one-for-all",
            SupervisionStrategy::RestForOne => "rest-for-one",
            SupervisionStrategy::SimpleOneForOne => "simple-one-for-one",
        }
    }

    /// The children (by declaration position) restarted when child `i` of `n` is.
    pub fn affected(self, i: usize, n: usize) -> Range<usize> {
        match self {
            SupervisionStrategy::OneForOne | SupervisionStrategy::SimpleOneForOne => i..i + 1,
            SupervisionStrategy::OneForAll => 0..n,
            SupervisionStrategy::RestForOne => i..n,
        }
    }
}

impl std::str::FromStr for SupervisionStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        // The enum's own spelling is accepted too (`ONE_FOR_ONE`, `one_for_one`).
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "one-for-one" => Ok(SupervisionStrategy::OneForOne),
            "one-for-all" => Ok(SupervisionStrategy::OneForAll),
            "rest-for-one" => Ok(SupervisionStrategy::RestForOne),
            "simple-one-for-one" => Ok(SupervisionStrategy::SimpleOneForOne),
            _ => Err(Error::Config(format!(
                "unknown supervision strategy {s:?} (expected {})",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

impl std::fmt::Display for SupervisionStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
