//! Load-balancing strategies: which pool worker takes the next call.
//!
//! A [`Balancer`] sees a snapshot of the workers ([`WorkerView`]) and the call's
//! routing key, and names a worker that has room, or none (the call waits in the
//! pool's queue). Hash strategies only ever name the key's own worker.
//!
//! ```
//! use titan_pm::pool::{Balancer, Strategy, WorkerView};
//! let mut b = Balancer::new(Strategy::RoundRobin);
//! let workers: Vec<WorkerView> = (1..=2).map(|id| WorkerView::idle(id, 1)).collect();
//! assert_eq!(b.pick(&workers, None), Some(0));
//! assert_eq!(b.pick(&workers, None), Some(1));
//! ```

use std::str::FromStr;

use crate::error::{Error, Result};

/// How a pool spreads calls; `LeastConnections` is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    RoundRobin,
    Random,
    /// Lowest CPU (whole percent), then memory (MiB), then calls in flight.
    LeastLoaded,
    /// Fewest calls in flight; round-robin among ties.
    #[default]
    LeastConnections,
    /// Smooth weighted round-robin over configured weights, or capacity.
    WeightedRoundRobin,
    /// Lowest moving average of recent latency; untried workers first. Alias `latency`.
    LeastResponseTime,
    /// `hash(key) mod n`.
    IpHash,
    /// A hash ring with virtual nodes: growing n -> n+1 moves about 1/(n+1) of keys.
    ConsistentHash,
    /// Random, proportional to weight (or spare capacity).
    Weighted,
    /// Lowest score = load + relative latency + error rate + cpu (see [`adaptive_score`]).
    Adaptive,
    /// Two random workers, the less loaded wins.
    PowerOfTwo,
}

impl Strategy {
    pub const ALL: [Strategy; 11] = [
        Strategy::RoundRobin,
        Strategy::Random,
        Strategy::LeastLoaded,
        Strategy::LeastConnections,
        Strategy::WeightedRoundRobin,
        Strategy::LeastResponseTime,
        Strategy::IpHash,
        Strategy::ConsistentHash,
        Strategy::Weighted,
        Strategy::Adaptive,
        Strategy::PowerOfTwo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::Random => "random",
            Strategy::LeastLoaded => "least-loaded",
            Strategy::LeastConnections => "least-connections",
            Strategy::WeightedRoundRobin => "weighted-round-robin",
            Strategy::LeastResponseTime => "least-response-time",
            Strategy::IpHash => "ip-hash",
            Strategy::ConsistentHash => "consistent-hash",
            Strategy::Weighted => "weighted",
            Strategy::Adaptive => "adaptive",
            Strategy::PowerOfTwo => "power-of-two",
        }
    }

    /// True for strategies that read CPU and memory, which the pool then samples.
    pub fn needs_load(self) -> bool {
        matches!(self, Strategy::LeastLoaded | Strategy::Adaptive)
    }
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "latency" {
            return Ok(Strategy::LeastResponseTime);
        }
        Strategy::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Strategy::ALL.iter().map(|x| x.as_str()).collect();
            Error::Config(format!("unknown pool strategy {s:?} (expected one of: {}, latency)", names.join(", ")))
        })
    }
}

/// What a balancer knows about one worker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerView {
    /// Stable for the worker's life (the process id).
    pub id: u64,
    pub in_flight: usize,
    /// How many calls it may run at once.
    pub capacity: usize,
    pub weight: u32,
    /// Moving average of recent latency in ms; `None` until it has answered.
    pub latency_ms: Option<f64>,
    /// Moving average of recent failures, 0..1.
    pub error_rate: f64,
    pub cpu: f64,
    pub memory: u64,
}

impl WorkerView {
    pub fn idle(id: u64, capacity: usize) -> Self {
        WorkerView { id, capacity, weight: 1, ..Default::default() }
    }
    fn has_room(&self) -> bool {
        self.in_flight < self.capacity
    }
}

/// The adaptive strategy's score (lower is better): load (in flight / capacity),
/// latency relative to the fastest worker minus one, error rate, CPU as a
/// fraction of one core; each term weighs the same. Untried workers score as the fastest.
pub fn adaptive_score(w: &WorkerView, fastest_ms: f64) -> f64 {
    let load = w.in_flight as f64 / w.capacity.max(1) as f64;
    let latency = w.latency_ms.map(|l| l / fastest_ms.max(1e-3) - 1.0).unwrap_or(0.0);
    load + latency + w.error_rate + w.cpu / 100.0
}

const VIRTUAL_NODES: usize = 160;

/// A strategy with its state (cursors, weights, hash ring).
pub struct Balancer {
    strategy: Strategy,
    cursor: usize,
    /// Smooth weighted round-robin: current weight per worker id.
    current: Vec<(u64, i64)>,
    /// Consistent hashing: (point, worker id), sorted; and the ids it was built for.
    ring: Vec<(u64, u64)>,
    ring_ids: Vec<u64>,
    rng: fastrand::Rng,
}

impl Balancer {
    pub fn new(strategy: Strategy) -> Self {
        Balancer { strategy, cursor: 0, current: Vec::new(), ring: Vec::new(), ring_ids: Vec::new(), rng: fastrand::Rng::new() }
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The index of the worker for the next call, or `None` if the call must wait.
    pub fn pick(&mut self, workers: &[WorkerView], key: Option<&str>) -> Option<usize> {
        if workers.is_empty() {
            return None;
        }
        match (self.strategy, key) {
            (Strategy::IpHash, Some(k)) => {
                let i = (hash(k) % workers.len() as u64) as usize;
                workers[i].has_room().then_some(i)
            }
            (Strategy::ConsistentHash, Some(k)) => {
                let id = self.ring_owner(workers, hash(k));
                workers.iter().position(|w| w.id == id).filter(|&i| workers[i].has_room())
            }
            // Without a key the hash strategies balance by connections.
            (Strategy::IpHash | Strategy::ConsistentHash | Strategy::LeastConnections, _) => {
                self.least_by(workers, |w| w.in_flight as f64)
            }
            (Strategy::RoundRobin, _) => self.round_robin(workers),
            (Strategy::Random, _) => {
                let room: Vec<usize> = (0..workers.len()).filter(|&i| workers[i].has_room()).collect();
                (!room.is_empty()).then(|| room[self.rng.usize(..room.len())])
            }
            (Strategy::LeastLoaded, _) => self.least_by(workers, |w| {
                // Lexicographic: whole CPU percent, then MiB, then in flight.
                w.cpu.round() * 1e12 + (w.memory >> 20) as f64 * 1e3 + w.in_flight as f64
            }),
            (Strategy::WeightedRoundRobin, _) => self.smooth_weighted(workers),
            (Strategy::LeastResponseTime, _) => {
                if let Some(i) = (0..workers.len()).find(|&i| workers[i].latency_ms.is_none() && workers[i].has_room()) {
                    return Some(i);
                }
                self.least_by(workers, |w| w.latency_ms.unwrap_or(0.0))
            }
            (Strategy::Weighted, _) => {
                let weight = |w: &WorkerView| -> u64 {
                    if !w.has_room() {
                        0
                    } else if w.weight > 0 {
                        w.weight as u64
                    } else {
                        (w.capacity - w.in_flight) as u64
                    }
                };
                let total: u64 = workers.iter().map(weight).sum();
                if total == 0 {
                    return None;
                }
                let mut r = self.rng.u64(..total);
                workers.iter().position(|w| {
                    let wt = weight(w);
                    if r < wt {
                        true
                    } else {
                        r -= wt;
                        false
                    }
                })
            }
            (Strategy::Adaptive, _) => {
                let fastest = workers.iter().filter_map(|w| w.latency_ms).fold(f64::INFINITY, f64::min);
                let fastest = if fastest.is_finite() { fastest } else { 1.0 };
                self.least_by(workers, |w| adaptive_score(w, fastest))
            }
            (Strategy::PowerOfTwo, _) => {
                let room: Vec<usize> = (0..workers.len()).filter(|&i| workers[i].has_room()).collect();
                match room.len() {
                    0 => None,
                    1 => Some(room[0]),
                    n => {
                        let a = self.rng.usize(..n);
                        let b = (a + 1 + self.rng.usize(..n - 1)) % n;
                        let (a, b) = (room[a], room[b]);
                        Some(if workers[b].in_flight < workers[a].in_flight { b } else { a })
                    }
                }
            }
        }
    }

    /// The next worker with room after the cursor.
    fn round_robin(&mut self, workers: &[WorkerView]) -> Option<usize> {
        let n = workers.len();
        let start = self.cursor % n;
        let i = (0..n).map(|k| (start + k) % n).find(|&i| workers[i].has_room())?;
        self.cursor = i + 1;
        Some(i)
    }

    /// The worker with room and the lowest `score`; ties go round-robin.
    fn least_by(&mut self, workers: &[WorkerView], score: impl Fn(&WorkerView) -> f64) -> Option<usize> {
        let n = workers.len();
        let start = self.cursor % n;
        let mut best: Option<(usize, f64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !workers[i].has_room() {
                continue;
            }
            let s = score(&workers[i]);
            if best.is_none_or(|(_, b)| s < b) {
                best = Some((i, s));
            }
        }
        let (i, _) = best?;
        self.cursor = i + 1;
        Some(i)
    }

    /// nginx's smooth weighted round-robin: add each weight, take the largest, subtract the total.
    fn smooth_weighted(&mut self, workers: &[WorkerView]) -> Option<usize> {
        let weight = |w: &WorkerView| if w.weight > 0 { w.weight as i64 } else { w.capacity.max(1) as i64 };
        self.current.retain(|(id, _)| workers.iter().any(|w| w.id == *id));
        let mut total = 0;
        let mut best: Option<(usize, i64)> = None;
        for (i, w) in workers.iter().enumerate() {
            if !w.has_room() {
                continue;
            }
            let slot = match self.current.iter().position(|(id, _)| *id == w.id) {
                Some(s) => s,
                None => {
                    self.current.push((w.id, 0));
                    self.current.len() - 1
                }
            };
            self.current[slot].1 += weight(w);
            total += weight(w);
            if best.is_none_or(|(_, c)| self.current[slot].1 > c) {
                best = Some((i, self.current[slot].1));
            }
        }
        let (i, _) = best?;
        let id = workers[i].id;
        if let Some(slot) = self.current.iter_mut().find(|(x, _)| *x == id) {
            slot.1 -= total;
        }
        Some(i)
    }

    fn ring_owner(&mut self, workers: &[WorkerView], point: u64) -> u64 {
        let ids: Vec<u64> = workers.iter().map(|w| w.id).collect();
        if ids != self.ring_ids {
            self.ring = ids
                .iter()
                .flat_map(|&id| (0..VIRTUAL_NODES).map(move |v| (hash(&format!("{id}#{v}")), id)))
                .collect();
            self.ring.sort_unstable();
            self.ring_ids = ids;
        }
        let i = self.ring.partition_point(|&(p, _)| p < point);
        self.ring[i % self.ring.len()].1
    }
}

/// FNV-1a, then a 64-bit finaliser so nearby keys spread over the ring.
fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: u64) -> Vec<WorkerView> {
        (1..=n).map(|id| WorkerView::idle(id, 4)).collect()
    }

    fn counts(b: &mut Balancer, workers: &[WorkerView], picks: usize) -> Vec<usize> {
        let mut c = vec![0; workers.len()];
        for _ in 0..picks {
            c[b.pick(workers, None).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>().unwrap(), s);
        }
        assert_eq!("latency".parse::<Strategy>().unwrap(), Strategy::LeastResponseTime);
        let err = "fastest".parse::<Strategy>().unwrap_err().to_string();
        assert!(err.contains("unknown pool strategy \"fastest\""), "{err}");
    }

    #[test]
    fn round_robin_cycles_and_skips_full_workers() {
        let mut b = Balancer::new(Strategy::RoundRobin);
        let mut w = pool(3);
        assert_eq!([b.pick(&w, None), b.pick(&w, None), b.pick(&w, None), b.pick(&w, None)], [Some(0), Some(1), Some(2), Some(0)]);
        w[1].in_flight = 4;
        assert_eq!([b.pick(&w, None), b.pick(&w, None)], [Some(2), Some(0)]);
        w.iter_mut().for_each(|x| x.in_flight = 4);
        assert_eq!(b.pick(&w, None), None);
    }

    #[test]
    fn least_connections_prefers_idle_workers_and_splits_ties_evenly() {
        let mut b = Balancer::new(Strategy::LeastConnections);
        let mut w = pool(3);
        w[0].in_flight = 2;
        w[2].in_flight = 1;
        assert_eq!(b.pick(&w, None), Some(1));
        assert_eq!(counts(&mut b, &pool(3), 300), [100, 100, 100]);
    }

    #[test]
    fn least_loaded_reads_cpu_then_memory_then_in_flight() {
        let mut b = Balancer::new(Strategy::LeastLoaded);
        let mut w = pool(3);
        w[0].cpu = 80.0;
        w[1].cpu = 10.0;
        w[2].cpu = 10.0;
        w[1].memory = 200 << 20;
        w[2].memory = 100 << 20;
        assert_eq!(b.pick(&w, None), Some(2));
        w[1].memory = 100 << 20;
        w[2].in_flight = 1;
        assert_eq!(b.pick(&w, None), Some(1));
    }

    #[test]
    fn smooth_weighted_round_robin_follows_weights_without_bursts() {
        let mut b = Balancer::new(Strategy::WeightedRoundRobin);
        let mut w = pool(3);
        w[0].weight = 5;
        w[1].weight = 1;
        w[2].weight = 1;
        let seq: Vec<usize> = (0..7).map(|_| b.pick(&w, None).unwrap()).collect();
        // nginx's example sequence for weights 5,1,1: a a b a c a a.
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn least_response_time_tries_untried_workers_then_prefers_the_fastest() {
        let mut b = Balancer::new(Strategy::LeastResponseTime);
        let mut w = pool(3);
        w[0].latency_ms = Some(5.0);
        w[2].latency_ms = Some(1.0);
        assert_eq!(b.pick(&w, None), Some(1), "untried first");
        w[1].latency_ms = Some(20.0);
        assert_eq!(counts(&mut b, &w, 10), [0, 0, 10]);
    }

    #[test]
    fn hash_strategies_keep_a_key_on_its_worker_and_wait_when_it_is_full() {
        for s in [Strategy::IpHash, Strategy::ConsistentHash] {
            let mut b = Balancer::new(s);
            let mut w = pool(5);
            let first = b.pick(&w, Some("user-42")).unwrap();
            for _ in 0..10 {
                assert_eq!(b.pick(&w, Some("user-42")), Some(first), "{s:?}");
            }
            w[first].in_flight = 4;
            assert_eq!(b.pick(&w, Some("user-42")), None, "{s:?}");
        }
    }

    #[test]
    fn consistent_hash_moves_about_one_in_n_plus_one_keys_when_growing() {
        for n in [3u64, 4, 8] {
            let mut b = Balancer::new(Strategy::ConsistentHash);
            let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i}")).collect();
            let before: Vec<u64> = keys.iter().map(|k| pool(n)[b.pick(&pool(n), Some(k)).unwrap()].id).collect();
            let after: Vec<u64> = keys.iter().map(|k| pool(n + 1)[b.pick(&pool(n + 1), Some(k)).unwrap()].id).collect();
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count() as f64 / keys.len() as f64;
            let ideal = 1.0 / (n + 1) as f64;
            assert!(moved <= ideal * 1.3, "n={n}: {moved:.3} moved, ideal {ideal:.3}");
            // Every moved key moved to the new worker.
            assert!(before.iter().zip(&after).all(|(a, b)| a == b || *b == n + 1));
        }
    }

    #[test]
    fn ip_hash_moves_most_keys_when_growing() {
        let mut b = Balancer::new(Strategy::IpHash);
        let moved = (0..1000)
            .filter(|i| {
                let k = format!("key-{i}");
                pool(4)[b.pick(&pool(4), Some(&k)).unwrap()].id != pool(5)[b.pick(&pool(5), Some(&k)).unwrap()].id
            })
            .count();
        assert!(moved > 500, "{moved}");
    }

    #[test]
    fn weighted_random_is_proportional_to_weight() {
        let mut b = Balancer::new(Strategy::Weighted);
        let mut w = pool(2);
        w[0].weight = 3;
        w[1].weight = 1;
        let c = counts(&mut b, &w, 8000);
        assert!((5400..6600).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn adaptive_avoids_slow_failing_busy_workers() {
        let mut b = Balancer::new(Strategy::Adaptive);
        let mut w = pool(3);
        w[0].latency_ms = Some(10.0);
        w[1].latency_ms = Some(1.0);
        w[1].error_rate = 0.9;
        w[2].latency_ms = Some(1.2);
        assert_eq!(b.pick(&w, None), Some(2));
        w[2].in_flight = 4;
        assert_eq!(b.pick(&w, None), Some(1));
    }

    #[test]
    fn power_of_two_never_picks_the_busiest_of_two() {
        let mut b = Balancer::new(Strategy::PowerOfTwo);
        let mut w = pool(2);
        w[0].in_flight = 3;
        assert_eq!(counts(&mut b, &w, 100), [0, 100]);
        let c = counts(&mut b, &pool(4), 4000);
        assert!(c.iter().all(|&x| (800..1200).contains(&x)), "{c:?}");
    }
}
