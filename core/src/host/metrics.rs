//! Per-process measurements: call latency in an HDR histogram (measured at the
//! host), request and error counts, and CPU and RSS read from `/proc` (by
//! [`crate::usage`]; a remote worker's are its own report).

use std::time::Duration;

use hdrhistogram::Histogram;

pub(crate) use crate::usage::{rss, CpuSampler};

/// `{cpu, memory, requests, errors, latency}`: cpu in percent of one core over
/// the last interval, memory RSS bytes, latency in ms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessMetrics {
    pub cpu: f64,
    pub memory: u64,
    pub requests: u64,
    pub errors: u64,
    pub in_flight: u64,
    pub latency: Latency,
    /// Output lines of the worker dropped because the host's output (or the
    /// output callback) did not keep up; counted across restarts.
    pub output_dropped: u64,
    /// `@Metric` methods, by method name.
    pub methods: Vec<MethodMetrics>,
}

/// One `@Metric` method's figures: `{requests, errors, latency}` (latency ms, at the host).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodMetrics {
    pub method: String,
    /// The metric's name (`@Metric(name)`), else the method's.
    pub metric: String,
    pub requests: u64,
    pub errors: u64,
    pub latency: Latency,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// The machine's memory in bytes (`MemTotal`), read once; at least 1.
pub(crate) fn machine_memory() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        use procfs::Current;
        procfs::Meminfo::current().map(|m| m.mem_total).unwrap_or(1).max(1)
    })
}

/// What the host counts about the calls of one process (across restarts).
pub(crate) struct CallStats {
    latency_us: Histogram<u64>,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            requests: 0,
            errors: 0,
        }
    }
}

impl CallStats {
    pub(crate) fn record(&mut self, elapsed: Duration, ok: bool) {
        self.requests += 1;
        if !ok {
            self.errors += 1;
        }
        self.latency_us.saturating_record(elapsed.as_micros().max(1) as u64);
    }

    pub(crate) fn latency(&self) -> Latency {
        let q = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1000.0;
        if self.latency_us.is_empty() {
            return Latency::default();
        }
        Latency { p50: q(0.50), p95: q(0.95), p99: q(0.99) }
    }
}
