//! The host-side cost of each method policy per call (`cargo run --release -p
//! titan-bench --bin policies`): the same trivial method, undecorated and with
//! one policy each, served by an in-process worker thread (isolation `worker`)
//! so that the host's share is not hidden behind a process hop. Prints the
//! sequential p50 of each and its difference to the undecorated method, and a
//! cache hit against a real call. Contestants are interleaved over rounds;
//! medians of the rounds are reported.

use std::rc::Rc;
use std::time::{Duration, Instant};

use titan_pm::agent::{Handler, WorkerDef};
use titan_pm::policy::method::{ArgKey, Cache, CircuitBreaker, Idempotent, RateLimit};
use titan_pm::{Isolation, ManagerConfig, ProcessManager, SpawnOptions, Target, Value};

const CALLS: usize = 5_000;
const ROUNDS: usize = 5;

fn worker() -> WorkerDef {
    let add = |(a, b): (i64, i64)| async move { Ok(a + b) };
    let mut def = WorkerDef::new("bench", "1.0.0");
    for m in ["plain", "metric", "trace", "rate_limit", "cache_hit", "validate", "breaker", "idempotent_hit"] {
        def = def.method(m, add);
    }
    def.metric("metric", None)
        .trace("trace")
        .rate_limit("rate_limit", RateLimit { rps: 1e9, burst: 1_000_000, ..RateLimit::default() })
        .cache("cache_hit", Cache { ttl: Duration::from_secs(3600), key: None, has_condition: false })
        .validate("validate", serde_json::json!({ "type": "integer", "minimum": 0 }))
        .circuit_breaker("breaker", CircuitBreaker::default())
        .idempotent("idempotent_hit", Idempotent { key: ArgKey::Index(0), ttl: Duration::from_secs(3600) })
        .build()
        .expect("valid policies")
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pm = ProcessManager::new(ManagerConfig::default());
        let target = Target::handler("bench", || Ok(Rc::new(worker()) as Rc<dyn Handler>));
        let h = pm.spawn(target, SpawnOptions { isolation: Some(Isolation::Worker), ..Default::default() }).await.unwrap();
        let methods = ["plain", "metric", "trace", "rate_limit", "cache_hit", "validate", "breaker", "idempotent_hit"];
        let mut p50s: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
        for _ in 0..ROUNDS {
            for (i, m) in methods.iter().enumerate() {
                let mut times = Vec::with_capacity(CALLS);
                for _ in 0..CALLS {
                    let t = Instant::now();
                    h.call_value(m, vec![Value::Int(1), Value::Int(2)]).await.unwrap();
                    times.push(t.elapsed().as_nanos() as f64);
                }
                times.sort_by(|a, b| a.partial_cmp(b).unwrap());
                p50s[i].push(times[CALLS / 2]);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let plain = median(&mut p50s[0].clone());
        println!("titan-pm method policies: sequential p50 per call, worker thread, {CALLS} calls x {ROUNDS} rounds\n");
        for (i, m) in methods.iter().enumerate() {
            let p = median(&mut p50s[i]);
            println!("{m:16} p50 {:8.0} ns   vs plain {:+7.0} ns", p, p - plain);
        }
        pm.shutdown().await;
    });
}
