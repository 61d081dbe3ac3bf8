//! The cost of the pool's balancer per call, for each strategy with 16 workers:
//! the strategy's pick alone, and with the per-call snapshot of the workers the
//! pool builds before it (`cargo run --release -p titan-bench --bin balancer`).

use std::hint::black_box;
use std::time::Instant;

use titan_pm::pool::{Balancer, Strategy, WorkerView};

const WORKERS: u64 = 16;
const PICKS: usize = 1_000_000;

fn workers() -> Vec<WorkerView> {
    (0..WORKERS)
        .map(|i| WorkerView {
            id: i + 1,
            in_flight: (i % 3) as usize,
            capacity: 4,
            weight: 1 + (i % 4) as u32,
            latency_ms: Some(1.0 + (i % 5) as f64),
            error_rate: 0.01 * (i % 2) as f64,
            cpu: (i * 5) as f64,
            memory: (50 + i) << 20,
        })
        .collect()
}

fn main() {
    let keys: Vec<String> = (0..1024).map(|i| format!("user-{i}")).collect();
    let base = workers();
    println!("balancer cost per call, {WORKERS} workers, {PICKS} picks each\n");
    println!("{:22} {:>14} {:>22}", "strategy", "pick (ns)", "snapshot + pick (ns)");
    for strategy in Strategy::ALL {
        let keyed = matches!(strategy, Strategy::IpHash | Strategy::ConsistentHash);
        let key = |i: usize| keyed.then(|| keys[i % keys.len()].as_str());
        let mut b = Balancer::new(strategy);
        let t = Instant::now();
        for i in 0..PICKS {
            black_box(b.pick(black_box(&base), key(i)));
        }
        let pick_ns = t.elapsed().as_nanos() as f64 / PICKS as f64;
        let t = Instant::now();
        for i in 0..PICKS {
            let snapshot: Vec<WorkerView> = base.iter().cloned().collect();
            black_box(b.pick(black_box(&snapshot), key(i)));
        }
        let full_ns = t.elapsed().as_nanos() as f64 / PICKS as f64;
        println!("{:22} {:>14.0} {:>22.0}", strategy.as_str(), pick_ns, full_ns);
    }
}
