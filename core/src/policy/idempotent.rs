//! `@Idempotent`: the first call with a key runs; a repeat within `ttl` gets the
//! first call's result without running — also while the first is still running
//! (it waits for it). A failed first call is not remembered (its waiters get its
//! error; the next call runs again). Results are kept in a `moka` cache of at
//! most [`MAX_KEYS`] keys; calls in flight are bounded by the calls themselves.
//!
//! ```
//! use std::time::Duration;
//! use titan_pm::policy::idempotent::{Claim, Idempotency};
//! use titan_pm::policy::method::{ArgKey, Idempotent};
//! use titan_pm::Value;
//! let t = Idempotency::new(&Idempotent { key: ArgKey::Index(0), ttl: Duration::from_secs(60) });
//! let now = std::time::Instant::now();
//! let Claim::Run(ticket) = t.claim("tx1", now) else { panic!() };
//! assert!(matches!(t.claim("tx1", now), Claim::Wait(_)));
//! ticket.finish(&Ok(Value::Int(7)), now);
//! assert!(matches!(t.claim("tx1", now), Claim::Done(Value::Int(7))));
//! // The TTL is read on the clock the caller passes (the manager's).
//! assert!(matches!(t.claim("tx1", now + Duration::from_secs(60)), Claim::Run(_)));
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use moka::sync::Cache as Moka;
use tokio::sync::watch;

use super::method::{key_of, ArgKey, Idempotent, MAX_KEYS};
use crate::error::Result;
use crate::value::Value;

type Outcome = Option<Result<Value>>;

pub struct Idempotency {
    key: ArgKey,
    done: Moka<String, (Value, Instant)>,
    running: Rc<RefCell<HashMap<String, watch::Receiver<Outcome>>>>,
    ttl: Duration,
}

/// What a call with a key does.
pub enum Claim {
    /// A call with this key succeeded within ttl: its result.
    Done(Value),
    /// A call with this key is running: wait for its outcome (`None` on the
    /// channel's end means it was dropped: claim again).
    Wait(watch::Receiver<Outcome>),
    /// Run it, then `finish` the ticket.
    Run(Ticket),
}

/// The right to run the first call of a key; dropping it unfinished lets the next call run.
pub struct Ticket {
    key: String,
    tx: watch::Sender<Outcome>,
    done: Moka<String, (Value, Instant)>,
    running: Rc<RefCell<HashMap<String, watch::Receiver<Outcome>>>>,
}

impl Idempotency {
    pub fn new(i: &Idempotent) -> Self {
        Idempotency {
            key: i.key.clone(),
            done: Moka::builder().max_capacity(MAX_KEYS).time_to_live(i.ttl).build(),
            running: Rc::default(),
            ttl: i.ttl,
        }
    }

    /// The call's idempotency key, `None` when the call does not carry one (it just runs).
    pub fn key(&self, args: &[Value]) -> Option<String> {
        self.key.pick(args).filter(|v| !matches!(v, Value::Null)).map(|_| key_of(Some(&self.key), args))
    }

    /// What a call with `key` does at `now` (the manager's clock: the TTL is read on it).
    pub fn claim(&self, key: &str, now: Instant) -> Claim {
        if let Some((v, at)) = self.done.get(key) {
            if now.saturating_duration_since(at) < self.ttl {
                return Claim::Done(v);
            }
            self.done.invalidate(key);
        }
        if let Some(rx) = self.running.borrow().get(key) {
            return Claim::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        self.running.borrow_mut().insert(key.to_string(), rx);
        Claim::Run(Ticket { key: key.to_string(), tx, done: self.done.clone(), running: self.running.clone() })
    }
}

impl Ticket {
    pub fn finish(self, outcome: &Result<Value>, now: Instant) {
        if let Ok(v) = outcome {
            self.done.insert(self.key.clone(), (v.clone(), now));
        }
        self.tx.send_replace(Some(outcome.clone()));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.running.borrow_mut().remove(&self.key);
    }
}
