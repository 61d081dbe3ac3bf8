//! OTLP export of `@Trace` spans (`monitoring.tracing: { endpoint }`): a small
//! HTTP collector on loopback receives the span of a host -> worker call with
//! the caller's trace id and span as parent, in `http/protobuf` and in
//! `http/json`; the in-memory span store keeps the same span; the options are
//! read in core and refused by path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use prost::Message;
use titan_pm::options::Dialect;
use titan_pm::policy::trace::{self, TraceContext};
use titan_pm::{ProcessManager, SpawnOptions};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// One request the collector received: path, content type, body.
type Received = (String, String, Vec<u8>);

/// A collector on 127.0.0.1: answers 200 to every request (keep-alive), hands each to the channel.
fn collector() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (mut length, mut kind) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap_or((h, ""));
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            "content-type" => kind = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length.min(16 << 20)];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    let _ = tx.send((path, kind, body));
                }
            });
        }
    });
    (url, rx)
}

/// A span as the collector saw it.
#[derive(Debug)]
struct Seen {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    service: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode(kind: &str, body: &[u8]) -> Vec<Seen> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let mut out = Vec::new();
    if kind.contains("json") {
        let v: serde_json::Value = serde_json::from_slice(body).expect("an OTLP JSON body");
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or_default()
                .to_string();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let text = |k: &str| s[k].as_str().unwrap_or_default().to_lowercase();
                    out.push(Seen { name: text("name"), trace_id: text("traceId"), span_id: text("spanId"), parent_span_id: text("parentSpanId"), service: service.clone() });
                }
            }
        }
        return out;
    }
    assert_eq!(kind, "application/x-protobuf");
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Seen { name: s.name, trace_id: hex(&s.trace_id), span_id: hex(&s.span_id), parent_span_id: hex(&s.parent_span_id), service: service.clone() });
            }
        }
    }
    out
}

fn manager(options: serde_json::Value) -> ProcessManager {
    let v = titan_pm::value::to_value(&options).unwrap();
    let config = titan_pm::options::manager(&v, Dialect::Js, &|_| None).unwrap();
    ProcessManager::new(config)
}

async fn a_traced_call_reaches_the_collector(protocol: &str) {
    let (url, received) = collector();
    let service = format!("otlp-test-{}", protocol.replace('/', "-"));
    let pm = manager(serde_json::json!({
        "monitoring": { "tracing": { "endpoint": url, "protocol": protocol, "serviceName": service } },
    }));
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let parent = TraceContext::child_of(None);
    trace::scope(parent.clone(), h.call::<()>("traced", ())).await.unwrap();
    // The batch goes out within the export delay; a hang fails here.
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut all = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok((path, kind, body)) = received.recv_timeout(left) else { break };
            assert_eq!(path, "/v1/traces");
            all.extend(decode(&kind, &body));
            if all.iter().any(|s: &Seen| s.trace_id == parent.trace_id) {
                return (all, parent);
            }
        }
        panic!("no span of trace {} reached the collector: {all:?}", parent.trace_id);
    })
    .await
    .unwrap();
    let (all, parent) = seen;
    let span = all.iter().find(|s| s.trace_id == parent.trace_id).unwrap();
    assert_eq!(span.name, "test-worker.traced");
    assert_eq!(span.parent_span_id, parent.span_id, "parented to the caller's span");
    assert_eq!(span.service, service);
    // The in-memory store has the same span, ids and all.
    let kept = trace::spans().into_iter().find(|s| s.context.trace_id == parent.trace_id).expect("the span in the store");
    assert_eq!((kept.context.span_id.as_str(), kept.context.parent_span_id.as_str()), (span.span_id.as_str(), parent.span_id.as_str()));
    pm.shutdown().await;
}

#[tokio::test]
async fn a_traced_call_is_exported_over_otlp_http_protobuf() {
    a_traced_call_reaches_the_collector("http/protobuf").await;
}

#[tokio::test]
async fn a_traced_call_is_exported_over_otlp_http_json() {
    a_traced_call_reaches_the_collector("http/json").await;
}

#[test]
fn tracing_options_are_read_in_core_and_refused_by_path() {
    let read = |o: serde_json::Value| titan_pm::options::manager(&titan_pm::value::to_value(&o).unwrap(), Dialect::Js, &|_| None);
    let err = |o: serde_json::Value| read(o).map(|_| ()).unwrap_err().to_string();
    let c = read(serde_json::json!({ "monitoring": { "tracing": { "endpoint": "http://127.0.0.1:4318" } } })).unwrap();
    let otlp = c.monitoring.otlp.expect("an export");
    assert!(c.monitoring.tracing);
    assert_eq!(otlp.traces_url().unwrap(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(otlp.service_name, "titan-pm");
    let c = read(serde_json::json!({ "monitoring": { "tracing": true } })).unwrap();
    assert!(c.monitoring.tracing && c.monitoring.otlp.is_none());
    let c = read(serde_json::json!({ "monitoring": { "tracing": { "enabled": false, "endpoint": "http://x" } } })).unwrap();
    assert!(!c.monitoring.tracing && c.monitoring.otlp.is_none());
    let e = err(serde_json::json!({ "monitoring": { "tracing": { "endpont": "http://x" } } }));
    assert!(e.contains("monitoring.tracing.endpont"), "{e}");
    let e = err(serde_json::json!({ "monitoring": { "tracing": { "endpoint": "https://collector:4318" } } }));
    assert!(e.contains("monitoring.tracing.endpoint") && e.contains("https"), "{e}");
    let e = err(serde_json::json!({ "monitoring": { "tracing": { "endpoint": "http://x", "protocol": "grpc" } } }));
    assert!(e.contains("monitoring.tracing.protocol") && e.contains("http/protobuf"), "{e}");
    let e = err(serde_json::json!({ "monitoring": { "tracing": { "serviceName": "a" } } }));
    assert!(e.contains("monitoring.tracing.endpoint"), "{e}");
    let schema = titan_pm::options::schema("manager", Dialect::Js).unwrap();
    for p in ["monitoring.tracing.endpoint", "monitoring.tracing.protocol", "monitoring.tracing.serviceName", "monitoring.tracing.headers", "monitoring.tracing.timeout"] {
        assert!(schema.iter().any(|s| s == p), "{p} missing from {schema:?}");
    }
}
