//! Runtimes a bridge owns behind an in-process instance: a Python worker's
//! runtime threads (its call thread and asyncio loop thread), a Node worker
//! thread. The core serves those instances on its own engine, so it sees the
//! instance end but not the runtime behind it: a Python call thread still stuck
//! in `time.sleep`, a JS worker thread that has not exited. A bridge registers
//! each such runtime with [`register`] from inside the target's handler factory
//! (the core sets, on the thread that calls the factory, which manager and
//! process it launches) and holds the [`LiveRuntime`] until the runtime really
//! ended. The test manager's `cleanup` names those still registered after the
//! shutdown.
//!
//! Bounded by the instances: each entry is one runtime of one instance, and its
//! guard goes when that runtime ends. A runtime registered outside a launch (no
//! manager to answer to) is not counted.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

/// The live bridge runtimes of one manager.
#[derive(Default)]
pub(crate) struct LiveSet {
    entries: Mutex<(u64, BTreeMap<u64, Entry>)>,
}

struct Entry {
    process: u64,
    name: String,
    what: String,
}

impl LiveSet {
    /// Each runtime still registered, as `Name (process N, what)`.
    pub(crate) fn remaining(&self) -> Vec<String> {
        let entries = self.entries.lock().unwrap();
        entries.1.values().map(|e| format!("{} (process {}, {})", e.name, e.process, e.what)).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.lock().unwrap().1.is_empty()
    }
}

/// What the thread calling a handler factory launches.
struct Launching {
    set: Arc<LiveSet>,
    process: u64,
    name: String,
}

thread_local! {
    static LAUNCHING: RefCell<Option<Launching>> = const { RefCell::new(None) };
}

/// Runs `f` (a handler factory) with `set`, `process` and `name` as what this thread launches.
pub(crate) fn launching<T>(set: &Arc<LiveSet>, process: u64, name: &str, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<Launching>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            LAUNCHING.with(|l| *l.borrow_mut() = previous);
        }
    }
    let now = Launching { set: set.clone(), process, name: name.to_string() };
    let _reset = Reset(LAUNCHING.with(|l| l.borrow_mut().replace(now)));
    f()
}

/// Registers a runtime (`what`: "a python runtime thread", "a node worker thread")
/// behind the instance being launched on this thread; it counts as live until the
/// returned guard is released or dropped.
pub fn register(what: &str) -> LiveRuntime {
    LAUNCHING.with(|l| {
        let l = l.borrow();
        let Some(l) = l.as_ref() else { return LiveRuntime { slot: None } };
        let mut entries = l.set.entries.lock().unwrap();
        entries.0 += 1;
        let key = entries.0;
        entries.1.insert(key, Entry { process: l.process, name: l.name.clone(), what: what.to_string() });
        LiveRuntime { slot: Some((Arc::downgrade(&l.set), key)) }
    })
}

/// A registered runtime: live until released (or dropped). Send, so a bridge may
/// hand it to whichever thread sees the runtime end.
pub struct LiveRuntime {
    slot: Option<(Weak<LiveSet>, u64)>,
}

impl LiveRuntime {
    /// The runtime ended.
    pub fn release(mut self) {
        self.take();
    }

    /// Whether this guard counts toward a manager (it was registered during a launch).
    pub fn counted(&self) -> bool {
        self.slot.is_some()
    }

    fn take(&mut self) {
        if let Some((set, key)) = self.slot.take() {
            if let Some(set) = set.upgrade() {
                set.entries.lock().unwrap().1.remove(&key);
            }
        }
    }
}

impl Drop for LiveRuntime {
    fn drop(&mut self) {
        self.take();
    }
}

impl std::fmt::Debug for LiveRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRuntime").field("counted", &self.counted()).finish()
    }
}
