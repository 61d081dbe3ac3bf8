//! `@SelfHeal`: which errors are symptoms, and at most one action per cooldown.
//! Symptoms are kinds — `timeout` (the call timed out), `crash` (the worker
//! died with the call in flight), `connection_error` (a crash, or a remote
//! `ConnectionError`-like exception) — or a remote exception's type name.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use titan_pm::policy::method::{HealAction, SelfHeal};
//! use titan_pm::policy::self_heal::Healer;
//! use titan_pm::Error;
//! let h = Healer::new(SelfHeal { symptoms: vec!["timeout".into()], action: HealAction::Restart, cooldown: Duration::from_secs(5) });
//! let e = Error::CallTimeout { method: "m".into(), timeout_ms: 1 };
//! let t = Instant::now();
//! assert_eq!(h.decide(&e, t), Some(("timeout".to_string(), HealAction::Restart)));
//! assert_eq!(h.decide(&e, t + Duration::from_secs(1)), None, "within the cooldown");
//! ```

use std::cell::Cell;
use std::time::Instant;

use super::method::{HealAction, SelfHeal};
use crate::error::Error;

/// Remote exception types that count as `connection_error`.
const CONNECTION_TYPES: &[&str] =
    &["ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError"];

pub struct Healer {
    decl: SelfHeal,
    last: Cell<Option<Instant>>,
}

impl Healer {
    pub fn new(decl: SelfHeal) -> Self {
        Healer { decl, last: Cell::new(None) }
    }

    /// The symptom `e` shows, if the method declared it.
    pub fn symptom(&self, e: &Error) -> Option<String> {
        self.decl.symptoms.iter().find(|s| matches(s, e)).cloned()
    }

    /// The action to run now for `e`, if it is a symptom and the cooldown has passed.
    pub fn decide(&self, e: &Error, now: Instant) -> Option<(String, HealAction)> {
        let symptom = self.symptom(e)?;
        if self.last.get().is_some_and(|t| now.saturating_duration_since(t) < self.decl.cooldown) {
            return None;
        }
        self.last.set(Some(now));
        Some((symptom, self.decl.action))
    }
}

fn matches(symptom: &str, e: &Error) -> bool {
    match (symptom, e) {
        ("timeout", Error::CallTimeout { .. }) => true,
        ("crash", Error::ProcessCrashed { .. }) => true,
        ("connection_error" | "connectionError", Error::ProcessCrashed { .. }) => true,
        ("connection_error" | "connectionError", Error::Remote { remote_type, .. }) => CONNECTION_TYPES.contains(&remote_type.as_str()),
        (name, Error::Remote { remote_type, .. }) => name == remote_type,
        _ => false,
    }
}
