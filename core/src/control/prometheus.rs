//! The control interface's metrics report (`Manager.metrics`) as Prometheus
//! text exposition (version 0.0.4): one family per measure, labelled by
//! process id and name (pools by pool id and name). Latency is in seconds,
//! as Prometheus names it.
//!
//! ```
//! use titan_pm::{value::to_value, control::prometheus::render};
//! let v = to_value(&serde_json::json!({"processes": [{"processId": 1, "name": "calc",
//!     "metrics": {"cpu": 1.5, "memory": 2048, "requests": 3, "errors": 0, "inFlight": 0,
//!                 "latency": {"p50": 1.0, "p95": 2.0, "p99": 3.0}}}], "pools": []})).unwrap();
//! assert!(render(&v).contains("titan_process_requests_total{process_id=\"1\",name=\"calc\"} 3"));
//! ```

use std::fmt::Write;

use crate::value::Value;

/// (report field, family name, type, help)
type Family = (&'static str, &'static str, &'static str, &'static str);

const PROCESS: &[Family] = &[
    ("cpu", "titan_process_cpu_percent", "gauge", "CPU use, percent of one core"),
    ("memory", "titan_process_memory_bytes", "gauge", "resident memory"),
    ("requests", "titan_process_requests_total", "counter", "calls answered"),
    ("errors", "titan_process_errors_total", "counter", "calls that failed"),
    ("inFlight", "titan_process_in_flight", "gauge", "calls running now"),
];

const POOL: &[Family] = &[
    ("size", "titan_pool_size", "gauge", "serving members"),
    ("busy", "titan_pool_busy", "gauge", "members with calls running"),
    ("queueLength", "titan_pool_queue_length", "gauge", "calls waiting for a member"),
    ("requests", "titan_pool_requests_total", "counter", "calls answered"),
    ("errors", "titan_pool_errors_total", "counter", "calls that failed"),
];

fn number(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Int(n)) => *n as f64,
        Some(Value::Float(x)) => *x,
        _ => 0.0,
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn rows(v: &Value, key: &str) -> Vec<Value> {
    match v.get(key) {
        Some(Value::List(l)) => l.clone(),
        _ => vec![],
    }
}

/// Renders `{processes: [...], pools: [...]}` as Prometheus text.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let groups: [(&str, &str, &str, &[Family]); 2] =
        [("processes", "processId", "process_id", PROCESS), ("pools", "poolId", "pool_id", POOL)];
    for (key, id_key, id_label, families) in groups {
        let rows = rows(v, key);
        let labels: Vec<String> = rows
            .iter()
            .map(|r| {
                let name = match r.get("name") {
                    Some(Value::Text(t)) => escape(t),
                    _ => String::new(),
                };
                format!("{id_label}=\"{}\",name=\"{name}\"", number(r.get(id_key)) as u64)
            })
            .collect();
        let mut all = families.to_vec();
        let latency_name = if key == "processes" { "titan_process_latency_seconds" } else { "titan_pool_latency_seconds" };
        all.push(("latency", latency_name, "gauge", "call latency quantiles over recent calls"));
        for (field, family, kind, help) in all {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            for (r, l) in rows.iter().zip(&labels) {
                let metrics = r.get("metrics");
                if field == "latency" {
                    let lat = metrics.and_then(|m| m.get("latency"));
                    for q in ["p50", "p95", "p99"] {
                        let s = number(lat.and_then(|x| x.get(q))) / 1000.0;
                        let quantile = format!("0.{}", &q[1..]);
                        let _ = writeln!(out, "{family}{{{l},quantile=\"{quantile}\"}} {s}");
                    }
                } else {
                    let _ = writeln!(out, "{family}{{{l}}} {}", number(metrics.and_then(|m| m.get(field))));
                }
            }
        }
    }
    out
}
