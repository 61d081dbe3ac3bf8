//! The clock every timer in core reads: restart backoff and restart windows,
//! breaker timeouts, rate-limit refill, cache and idempotency TTLs, self-heal
//! cooldowns, health and autoscale intervals, pool replacement, supervisor and
//! workflow retry backoff. [`Clock::Real`] (the default) is `Instant::now` and
//! `tokio::time::sleep`, behind one `match`; [`Clock::manual`] is a clock a test
//! moves with [`ManualClock::advance`] (the testing module's `advance_time`).
//! Call deadlines, spawn and shutdown timeouts always stay on real time: a test
//! that moves the clock cannot make a call time out, nor wait forever.
//!
//! While a manual clock is in control, its time stands still between advances;
//! a sleep registers a waiter that an advance past its due time wakes, earliest
//! first. [`ManualClock::release`] hands back to real time: pending sleeps then
//! wait out what is left of them in real time.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use titan_pm::clock::Clock;
//! let clock = Clock::manual();
//! let t0 = clock.now();
//! let manual = clock.as_manual().unwrap().clone();
//! let sleeper = tokio::spawn({ let clock = clock.clone(); async move { clock.sleep(Duration::from_secs(60)).await } });
//! tokio::task::yield_now().await;
//! manual.advance(Duration::from_secs(60)).await;
//! tokio::time::timeout(Duration::from_secs(5), sleeper).await.unwrap().unwrap();
//! assert_eq!(clock.now() - t0, Duration::from_secs(60));
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

/// Where core reads the time from.
#[derive(Clone, Default)]
pub enum Clock {
    /// `Instant::now()` and tokio's timers.
    #[default]
    Real,
    /// A clock a test moves (see [`ManualClock`]).
    Manual(Arc<ManualClock>),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::Real => "Clock::Real",
            Clock::Manual(_) => "Clock::Manual",
        })
    }
}

impl Clock {
    /// A manual clock, in control from now, standing at the current time.
    pub fn manual() -> Clock {
        Clock::Manual(Arc::new(ManualClock::new()))
    }

    pub fn as_manual(&self) -> Option<&Arc<ManualClock>> {
        match self {
            Clock::Manual(m) => Some(m),
            Clock::Real => None,
        }
    }

    /// The current instant.
    #[inline]
    pub fn now(&self) -> Instant {
        match self {
            Clock::Real => Instant::now(),
            Clock::Manual(m) => m.now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::Real => epoch_ms(),
            Clock::Manual(m) => m.now_ms(),
        }
    }

    /// Waits `d` on this clock.
    pub async fn sleep(&self, d: Duration) {
        match self {
            Clock::Real => tokio::time::sleep(d).await,
            Clock::Manual(m) => m.sleep(d).await,
        }
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How a manual sleep ends.
enum Wake {
    /// Its due time was reached by an advance.
    Due,
    /// The clock went back to real time with this much of the sleep left.
    Released(Duration),
}

/// A clock that stands still until [`advance`](Self::advance)d.
pub struct ManualClock {
    inner: Mutex<Inner>,
}

/// How often an advance yields after waking a sleep, so that what it woke runs before the clock moves on.
const YIELDS_PER_WAKE: usize = 8;

/// The most sleeps one manual clock holds at once (each is a task of the engine waiting on it).
pub const MAX_SLEEPERS: usize = 65_536;

struct Inner {
    /// `None`: released, real time again.
    controlled: bool,
    /// The real instant and epoch time at which control began.
    base: Instant,
    base_ms: u64,
    /// How far the clock has been advanced since `base`.
    offset: Duration,
    /// Pending sleeps by (due offset, sequence).
    sleepers: BTreeMap<(Duration, u64), oneshot::Sender<Wake>>,
    seq: u64,
}

impl ManualClock {
    fn new() -> Self {
        ManualClock {
            inner: Mutex::new(Inner {
                controlled: true,
                base: Instant::now(),
                base_ms: epoch_ms(),
                offset: Duration::ZERO,
                sleepers: BTreeMap::new(),
                seq: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> Instant {
        let g = self.lock();
        if g.controlled { g.base + g.offset } else { Instant::now() }
    }

    pub fn now_ms(&self) -> u64 {
        let g = self.lock();
        if g.controlled { g.base_ms + g.offset.as_millis() as u64 } else { epoch_ms() }
    }

    /// Whether this clock is in control (not released to real time).
    pub fn controlled(&self) -> bool {
        self.lock().controlled
    }

    /// Sleeps pending on this clock.
    pub fn pending(&self) -> usize {
        self.lock().sleepers.len()
    }

    async fn sleep(&self, d: Duration) {
        let rx = {
            let mut g = self.lock();
            if !g.controlled || g.sleepers.len() >= MAX_SLEEPERS {
                None
            } else if d.is_zero() {
                return;
            } else {
                let (tx, rx) = oneshot::channel();
                g.seq += 1;
                let key = (g.offset.saturating_add(d), g.seq);
                g.sleepers.insert(key, tx);
                Some(rx)
            }
        };
        let Some(rx) = rx else {
            // Released (or, past the bound, a real sleep: it still ends).
            return tokio::time::sleep(d).await;
        };
        match rx.await {
            Ok(Wake::Due) => {}
            Ok(Wake::Released(left)) => tokio::time::sleep(left).await,
            // The clock was dropped: nothing will wake it; end now rather than hang.
            Err(_) => {}
        }
    }

    /// Moves the clock forward by `d`, waking every sleep due on the way, earliest
    /// first, with the clock standing at each one's due time while what it woke
    /// runs: after each wake this yields a few times, so a task of the same thread
    /// runs until it next waits. Returns how many sleeps were woken.
    pub async fn advance(&self, d: Duration) -> usize {
        let target = {
            let g = self.lock();
            if !g.controlled {
                return 0;
            }
            g.offset.saturating_add(d)
        };
        let mut woken = 0;
        loop {
            let next = {
                let mut g = self.lock();
                match g.sleepers.first_key_value() {
                    Some((&(due, _), _)) if due <= target => {
                        let (_, tx) = g.sleepers.pop_first().expect("a first entry");
                        g.offset = g.offset.max(due);
                        Some(tx)
                    }
                    _ => {
                        g.offset = g.offset.max(target);
                        None
                    }
                }
            };
            let Some(tx) = next else { break };
            if tx.send(Wake::Due).is_ok() {
                woken += 1;
                for _ in 0..YIELDS_PER_WAKE {
                    tokio::task::yield_now().await;
                }
            }
        }
        woken
    }

    /// Hands back to real time: what pending sleeps have left, they wait in real time.
    pub fn release(&self) {
        let mut g = self.lock();
        g.controlled = false;
        let offset = g.offset;
        for ((due, _), tx) in std::mem::take(&mut g.sleepers) {
            let _ = tx.send(Wake::Released(due.saturating_sub(offset)));
        }
    }

    /// Ends every pending sleep now (a manager that shut down leaves none waiting on a clock nobody moves).
    pub fn drop_sleepers(&self) {
        self.lock().sleepers.clear();
    }

    /// Takes control again, standing at the current real time.
    pub fn take_control(&self) {
        let mut g = self.lock();
        if !g.controlled {
            g.controlled = true;
            g.base = Instant::now();
            g.base_ms = epoch_ms();
            g.offset = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_in_order_at_their_due_time() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let clock = Clock::manual();
            let t0 = clock.now();
            let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            for (i, s) in [(1, 30u64), (2, 10), (3, 20)] {
                let (clock, order) = (clock.clone(), order.clone());
                tokio::task::spawn_local(async move {
                    clock.sleep(Duration::from_secs(s)).await;
                    order.borrow_mut().push((i, (clock.now() - t0).as_secs()));
                });
            }
            tokio::task::yield_now().await;
            let m = clock.as_manual().unwrap().clone();
            assert_eq!(m.advance(Duration::from_secs(15)).await, 1);
            assert_eq!(*order.borrow(), vec![(2, 10)]);
            assert_eq!(m.advance(Duration::from_secs(15)).await, 2);
            // Each ran with the clock at its own due time.
            assert_eq!(*order.borrow(), vec![(2, 10), (3, 20), (1, 30)]);
            assert_eq!((clock.now() - t0).as_secs(), 30);
        });
    }

    #[test]
    fn release_hands_pending_sleeps_to_real_time() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let clock = Clock::manual();
            let c = clock.clone();
            let h = tokio::spawn(async move { c.sleep(Duration::from_millis(20)).await });
            tokio::task::yield_now().await;
            assert_eq!(clock.as_manual().unwrap().pending(), 1);
            clock.as_manual().unwrap().release();
            tokio::time::timeout(Duration::from_secs(5), h).await.unwrap().unwrap();
            assert!(!clock.as_manual().unwrap().controlled());
        });
    }
}
