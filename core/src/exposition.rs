//! `metrics_text()`: every process, pool and `@Metric` method metric in the
//! Prometheus text exposition format, encoded by the `prometheus-client` crate
//! from the same figures `get_metrics` reports. Counters end in `_total`;
//! latency quantiles (ms, measured at the host) are gauges with a `quantile`
//! label. Labels: `process_id` and `name` for processes, `pool_id` and `name`
//! for pools, and for methods `owner` (`process`/`pool`), `id`, `name`, `method`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::error::{Error, Result};
use crate::host::{Latency, MethodMetrics, ProcessManager};

type Labels = Vec<(String, String)>;
type Count = Family<Labels, Counter>;
type Level = Family<Labels, Gauge<f64, AtomicU64>>;

/// The metric families, registered once per exposition.
struct Families {
    registry: Registry,
    process_requests: Count,
    process_errors: Count,
    process_in_flight: Level,
    process_cpu: Level,
    process_memory: Level,
    process_latency: Level,
    pool_requests: Count,
    pool_errors: Count,
    pool_size: Level,
    pool_queue: Level,
    pool_latency: Level,
    method_requests: Count,
    method_errors: Count,
    method_latency: Level,
}

impl Families {
    fn new() -> Self {
        let mut registry = Registry::default();
        let mut count = |name: &str, help: &str| {
            let f = Count::default();
            registry.register(name, help, f.clone());
            f
        };
        let (process_requests, process_errors) =
            (count("titan_process_requests", "Calls made to the process"), count("titan_process_errors", "Calls to the process that failed"));
        let (pool_requests, pool_errors) =
            (count("titan_pool_requests", "Calls made through the pool"), count("titan_pool_errors", "Calls through the pool that failed"));
        let (method_requests, method_errors) =
            (count("titan_method_requests", "Calls of a @Metric method"), count("titan_method_errors", "Calls of a @Metric method that failed"));
        let mut level = |name: &str, help: &str| {
            let f = Level::default();
            registry.register(name, help, f.clone());
            f
        };
        Families {
            process_in_flight: level("titan_process_in_flight", "Calls in flight on the process"),
            process_cpu: level("titan_process_cpu_percent", "CPU use of the process, percent of one core"),
            process_memory: level("titan_process_memory_bytes", "Resident memory of the process"),
            process_latency: level("titan_process_latency_milliseconds", "Call latency quantiles at the host"),
            pool_size: level("titan_pool_size", "Members serving in the pool"),
            pool_queue: level("titan_pool_queue_length", "Calls waiting in the pool's queue"),
            pool_latency: level("titan_pool_latency_milliseconds", "Pool call latency quantiles at the host"),
            method_latency: level("titan_method_latency_milliseconds", "@Metric method latency quantiles at the host"),
            process_requests,
            process_errors,
            pool_requests,
            pool_errors,
            method_requests,
            method_errors,
            registry,
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn quantiles(f: &Level, base: &Labels, l: &Latency) {
    for (q, v) in [("0.5", l.p50), ("0.95", l.p95), ("0.99", l.p99)] {
        let mut ls = base.clone();
        ls.push(("quantile".into(), q.into()));
        f.get_or_create(&ls).set(v);
    }
}

fn methods(f: &Families, owner: &str, id: &str, name: &str, methods: &[MethodMetrics]) {
    for m in methods {
        let ls = labels(&[("owner", owner), ("id", id), ("name", name), ("method", &m.metric)]);
        f.method_requests.get_or_create(&ls).inc_by(m.requests);
        f.method_errors.get_or_create(&ls).inc_by(m.errors);
        quantiles(&f.method_latency, &ls, &m.latency);
    }
}

impl ProcessManager {
    /// Every process, pool and `@Metric` method metric as Prometheus text (see [`crate::exposition`]).
    pub async fn metrics_text(&self) -> Result<String> {
        self.exec(|engine| async move {
            let f = Families::new();
            for p in engine.all_processes() {
                let info = p.info();
                let m = p.metrics();
                let id = info.process_id.to_string();
                let ls = labels(&[("process_id", &id), ("name", &info.name)]);
                f.process_requests.get_or_create(&ls).inc_by(m.requests);
                f.process_errors.get_or_create(&ls).inc_by(m.errors);
                f.process_in_flight.get_or_create(&ls).set(m.in_flight as f64);
                f.process_cpu.get_or_create(&ls).set(m.cpu);
                f.process_memory.get_or_create(&ls).set(m.memory as f64);
                quantiles(&f.process_latency, &ls, &m.latency);
                methods(&f, "process", &id, &info.name, &m.methods);
            }
            for (id, name, m) in crate::pool::all_metrics(&engine) {
                let id = id.to_string();
                let ls = labels(&[("pool_id", &id), ("name", &name)]);
                f.pool_requests.get_or_create(&ls).inc_by(m.requests);
                f.pool_errors.get_or_create(&ls).inc_by(m.errors);
                f.pool_size.get_or_create(&ls).set(m.size as f64);
                f.pool_queue.get_or_create(&ls).set(m.queue_length as f64);
                quantiles(&f.pool_latency, &ls, &m.latency);
                methods(&f, "pool", &id, &name, &m.methods);
            }
            let mut out = String::new();
            encode(&mut out, &f.registry).map_err(|e| Error::io("metrics text", e))?;
            Ok(out)
        })
        .await
    }
}
