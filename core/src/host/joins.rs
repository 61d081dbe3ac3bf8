//! Remote workers that dialled in to a listening host (see `crate::remote`) and
//! registered under a name, waiting to become an instance of a `remote:NAME`
//! process or pool member.
//!
//! A launch of target `remote:NAME` takes the oldest joined worker of that name,
//! or waits for the next one; nothing is started. A worker that joins while no
//! launch waits stands by (at most [`MAX_STANDBY`] per name; past it the join is
//! refused), and the pools of that name are asked to grow, so that every
//! worker that joined becomes a member.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

use super::registry::Registered;

/// Joined workers that no launch has taken yet, per name.
pub const MAX_STANDBY: usize = 256;
/// The longest name a remote worker may join under.
pub const MAX_NAME_BYTES: usize = 128;

/// Asked when a worker stands by: `false` once the asker is gone (it is then dropped).
pub(crate) type Grow = Box<dyn Fn() -> bool>;

#[derive(Default)]
struct Joins {
    waiting: VecDeque<oneshot::Sender<Registered>>,
    standby: VecDeque<Registered>,
    growers: Vec<Grow>,
}

#[derive(Default)]
pub(crate) struct JoinHub {
    by_name: RefCell<HashMap<String, Joins>>,
}

/// The name of a `remote:NAME` target.
pub(crate) fn remote_name(target: &super::Target) -> Option<&str> {
    match target {
        super::Target::Path(p) => p.strip_prefix("remote:"),
        _ => None,
    }
}

impl JoinHub {
    /// A worker joined under `name`: handed to a waiting launch, or kept standing by.
    /// `Err` (with the worker) when `MAX_STANDBY` already stand by.
    pub(crate) fn joined(&self, name: &str, mut worker: Registered) -> Result<(), Registered> {
        let growers = {
            let mut all = self.by_name.borrow_mut();
            let joins = all.entry(name.to_string()).or_default();
            while let Some(tx) = joins.waiting.pop_front() {
                match tx.send(worker) {
                    Ok(()) => return Ok(()),
                    Err(back) => worker = back,
                }
            }
            joins.standby.retain(|w| w.connection.closed.peek().is_none());
            if joins.standby.len() >= MAX_STANDBY {
                return Err(worker);
            }
            joins.standby.push_back(worker);
            std::mem::take(&mut joins.growers)
        };
        // Asked outside the borrow: a pool that grows launches at once (and comes back here).
        let kept: Vec<Grow> = growers.into_iter().filter(|g| g()).collect();
        self.by_name.borrow_mut().entry(name.to_string()).or_default().growers.extend(kept);
        Ok(())
    }

    /// The next worker that joins (or stands by) under `name`.
    pub(crate) fn take(&self, name: &str) -> oneshot::Receiver<Registered> {
        let (tx, rx) = oneshot::channel();
        let mut all = self.by_name.borrow_mut();
        let joins = all.entry(name.to_string()).or_default();
        while let Some(w) = joins.standby.pop_front() {
            if w.connection.closed.peek().is_none() {
                let _ = tx.send(w);
                return rx;
            }
        }
        joins.waiting.retain(|t| !t.is_closed());
        joins.waiting.push_back(tx);
        rx
    }

    /// `grow` is asked each time a worker of `name` stands by.
    pub(crate) fn on_standby(&self, name: &str, grow: Grow) {
        self.by_name.borrow_mut().entry(name.to_string()).or_default().growers.push(grow);
    }

    /// How many workers of `name` stand by now.
    pub(crate) fn standing_by(&self, name: &str) -> usize {
        self.by_name.borrow().get(name).map_or(0, |j| j.standby.iter().filter(|w| w.connection.closed.peek().is_none()).count())
    }
}

/// How a remote worker registers: its `secret` field is `join:NAME:TOKEN` (TOKEN may be empty).
pub const JOIN_PREFIX: &str = "join:";

/// What a listener's connections must present to join.
pub(crate) struct JoinRules {
    /// The join token, if the listener has one.
    pub token: Option<String>,
    /// Who dialled in (for the log).
    pub peer: String,
}

impl JoinRules {
    /// The name a registration joins under, or why it is refused.
    pub(crate) fn check(&self, secret: &str) -> Result<String, String> {
        let Some(rest) = secret.strip_prefix(JOIN_PREFIX) else {
            return Err("it did not ask to join (a spawn secret on the remote listener)".into());
        };
        let (name, token) = rest.split_once(':').unwrap_or((rest, ""));
        if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!("the worker name {:?} is not 1-{MAX_NAME_BYTES} of [A-Za-z0-9._-]", truncate(name)));
        }
        if let Some(want) = &self.token {
            if !crate::transport::secrets_match(want, token) {
                return Err(if token.is_empty() { "no join token".into() } else { "a wrong join token".into() });
            }
        }
        Ok(name.to_string())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}
