//! Self-healing, per-method metrics (and their Prometheus text), and trace
//! context on every call with spans for `@Trace` methods.

use std::time::Duration;

use titan_pm::policy::trace::{self, TraceContext};
use titan_pm::{EventKind, ManagerConfig, ProcessManager, SpawnOptions};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test]
async fn a_connection_error_twice_within_cooldown_restarts_the_worker_once() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let mut events = pm.events();
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    for _ in 0..2 {
        let e = h.call::<()>("lose_connection", ()).await.unwrap_err();
        assert!(e.to_string().starts_with("ConnectionError"), "{e}");
    }
    // Give a second (wrong) restart time to happen, then count.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (mut heals, mut restarts) = (0, 0);
    while let Ok(ev) = events.try_recv() {
        match ev.kind {
            EventKind::SelfHeal { ref method, ref symptom, action } => {
                assert_eq!((method.as_str(), symptom.as_str(), action), ("lose_connection", "ConnectionError", "restart"));
                heals += 1;
            }
            EventKind::Restarting { .. } => restarts += 1,
            _ => {}
        }
    }
    assert_eq!((heals, restarts), (1, 1));
    let after = h.info().await.unwrap();
    assert_ne!(after.pid, pid, "a new instance");
    assert_eq!(h.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    pm.shutdown().await;
}

#[tokio::test]
async fn metric_methods_count_requests_errors_and_latency() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    for i in 0..5 {
        h.call::<i64>("add", (i, 1)).await.unwrap();
    }
    let _ = h.call::<()>("raise", ("x",)).await;
    let m = pm.get_metrics(h.id()).await.unwrap();
    let add = m.methods.iter().find(|x| x.method == "add").expect("add has @Metric");
    assert_eq!((add.requests, add.errors), (5, 0));
    assert!(add.latency.p50 > 0.0 && add.latency.p99 >= add.latency.p50);
    let raise = m.methods.iter().find(|x| x.method == "raise").unwrap();
    assert_eq!((raise.requests, raise.errors, raise.metric.as_str()), (1, 1, "raise_calls"));
    assert!(m.methods.iter().all(|x| x.method != "increment"), "only @Metric methods");
    use titan_pm::reports::Report;
    let report = m.report(titan_pm::dialect::Dialect::Js);
    let requests = report.get("methods").and_then(|x| x.get("add")).and_then(|x| x.get("requests"));
    assert_eq!(requests, Some(&titan_pm::Value::Int(5)), "methods.add.requests");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_traced_call_is_a_span_parented_to_the_callers_span() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let parent = TraceContext::child_of(None);
    trace::scope(parent.clone(), h.call::<()>("traced", ())).await.unwrap();
    h.call::<()>("traced", ()).await.unwrap();
    h.call::<i64>("add", (1, 1)).await.unwrap();
    let spans: Vec<_> = trace::spans().into_iter().filter(|s| s.name == "test-worker.traced").collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(spans[0].context.trace_id, parent.trace_id);
    assert_eq!(spans[0].context.parent_span_id, parent.span_id);
    assert_eq!(spans[1].context.trace_id.len(), 32, "a new trace without a caller's span");
    assert_ne!(spans[1].context.trace_id, parent.trace_id);
    assert!(spans[1].context.parent_span_id.is_empty());
    assert!(trace::spans().iter().all(|s| !s.name.ends_with(".add")), "no span without @Trace");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_call_a_worker_makes_to_a_process_it_was_given_joins_the_workers_trace() {
    use serde_json::Value as Json;
    let pm = ProcessManager::new(ManagerConfig::default());
    let leaf = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let given = SpawnOptions { processes: [("leaf".to_string(), leaf.id())].into_iter().collect(), ..SpawnOptions::default() };
    let middle = pm.spawn(WORKER, given).await.unwrap();
    let root = TraceContext::child_of(None);
    let r: Json = trace::scope(root.clone(), middle.call("trace_via", ("leaf", "trace_context"))).await.unwrap();
    let (mine, theirs) = (&r["mine"], &r["theirs"]);
    assert_eq!(mine["traceId"], root.trace_id.as_str(), "{r}");
    assert_eq!(mine["parentSpanId"], root.span_id.as_str(), "{r}");
    assert_eq!(theirs["traceId"], root.trace_id.as_str(), "the injected call stays in the trace: {r}");
    assert_eq!(theirs["parentSpanId"], mine["spanId"], "parented to the calling worker's span: {r}");
    assert_ne!(theirs["spanId"], mine["spanId"]);
    // Outside any host span, the worker's call still chains to the worker's own span.
    let r: Json = middle.call("trace_via", ("leaf", "trace_context")).await.unwrap();
    assert_eq!(r["theirs"]["traceId"], r["mine"]["traceId"], "{r}");
    assert_eq!(r["theirs"]["parentSpanId"], r["mine"]["spanId"], "{r}");
    pm.shutdown().await;
}

#[tokio::test]
async fn prometheus_text_parses_and_carries_process_pool_and_method_labels() {
    use titan_pm::pool::{PoolOptions, PoolSize};
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(2), ..PoolOptions::default() }).await.unwrap();
    for i in 0..3 {
        h.call::<i64>("add", (i, 1)).await.unwrap();
        pool.call::<i64>("add", (i, 2)).await.unwrap();
    }
    pool.call::<i64>("add", (0, 0)).await.unwrap();
    let text = pm.metrics_text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid exposition");
    let find = |name: &str, owner: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("owner") == Some(owner) && s.labels.get("method") == Some("add"))
            .map(|s| number(&s.value))
    };
    // (The parser types `x_total` samples of a `x` counter family as untyped; the TYPE lines are checked below.)
    assert_eq!(find("titan_method_requests_total", "process"), Some(3.0), "{text}");
    assert_eq!(find("titan_method_requests_total", "pool"), Some(4.0), "{text}");
    let p = h.id().to_string();
    let own = scrape.samples.iter().find(|s| s.metric == "titan_process_requests_total" && s.labels.get("process_id") == Some(p.as_str()));
    assert_eq!(own.map(|s| number(&s.value)), Some(3.0), "{text}");
    assert!(scrape.samples.iter().any(|s| s.metric == "titan_pool_requests_total"), "{text}");
    assert!(
        scrape.samples.iter().any(|s| s.metric == "titan_method_latency_milliseconds" && s.labels.get("quantile") == Some("0.99")),
        "{text}"
    );
    for family in ["titan_method_requests counter", "titan_process_requests counter", "titan_pool_requests counter", "titan_method_latency_milliseconds gauge"] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "{family}: {text}");
    }
    pm.shutdown().await;
}

fn number(v: &prometheus_parse::Value) -> f64 {
    match v {
        prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Gauge(n) | prometheus_parse::Value::Untyped(n) => *n,
        other => panic!("not a number: {other:?}"),
    }
}
