//! The HTTP gateway of a listening host (`listen({.., gateway: {address, token}})`):
//! calls to a Rust worker through HTTP (ureq for plain HTTP; tokio-rustls and a
//! hand-written request for HTTPS and for misbehaving clients): results, kind-bearing
//! JSON errors and their statuses, bearer auth, body bounds, the deadline header,
//! `traceparent`, `/metrics` as Prometheus text, `/health`, the loopback rule, TLS,
//! a slow-loris client cut off while others are served, a chunked body past the bound,
//! and names resolved against the live processes and pools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use titan_pm::gateway::{GatewayOptions, HEADER_TIMEOUT, MAX_BODY_BYTES};
use titan_pm::pool::PoolOptions;
use titan_pm::{ListenOptions, ManagerConfig, PoolSize, ProcessManager, SpawnOptions, TlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
/// Every wait in these tests ends by this (a hang fails).
const LIMIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "gw-s3cret";

/// A manager listening on loopback (no TLS) with a gateway; returns the gateway's address.
async fn host(config: ManagerConfig) -> (ProcessManager, SocketAddr) {
    let pm = ProcessManager::new(config);
    let gateway = GatewayOptions { address: "127.0.0.1:0".into(), token: TOKEN.into() };
    let options = ListenOptions { address: "127.0.0.1:0".into(), tls: None, token: Some("join".into()), gateway: Some(gateway) };
    pm.listen(options).await.unwrap();
    let addr = pm.gateway_address().expect("the gateway's address");
    (pm, addr)
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn kind(&self) -> String {
        self.json()["error"]["kind"].as_str().unwrap_or_else(|| panic!("no error.kind: {}", self.body)).to_string()
    }
}

/// One request with ureq (blocking, on a blocking thread), with its own deadline.
async fn request(method: &'static str, url: String, headers: Vec<(&'static str, String)>, body: Option<String>) -> Reply {
    let call = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(LIMIT)).build().into();
        let mut resp = match (method, body) {
            ("POST", body) => {
                let mut req = agent.post(&url);
                for (k, v) in &headers {
                    req = req.header(*k, v);
                }
                req.send(body.unwrap_or_default()).unwrap()
            }
            (_, _) => {
                let mut req = agent.get(&url);
                for (k, v) in &headers {
                    req = req.header(*k, v);
                }
                req.call().unwrap()
            }
        };
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(10 << 20).read_to_string().unwrap();
        Reply { status, body }
    });
    tokio::time::timeout(LIMIT + Duration::from_secs(5), call).await.expect("the request hung").unwrap()
}

fn auth() -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {TOKEN}"))]
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request("POST", format!("http://{addr}{path}"), auth(), Some(body.to_string())).await
}

#[tokio::test]
async fn calls_answer_json_results_and_kind_bearing_errors() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let id = h.id();
    // By id and by name.
    let r = post(addr, &format!("/processes/{id}/add"), "[2, 3]").await;
    assert_eq!((r.status, r.json()), (200, json!(5)), "{}", r.body);
    let r = post(addr, "/processes/test-worker/echo", r#"[{"a": [1, "x", null]}]"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"a": [1, "x", null]})), "{}", r.body);
    // The method raised: 500, kind Remote, the remote type.
    let r = post(addr, &format!("/processes/{id}/raise"), r#"["boom"]"#).await;
    assert_eq!((r.status, r.kind().as_str()), (500, "Remote"), "{}", r.body);
    assert_eq!(r.json()["error"]["remoteType"], "ValueError", "{}", r.body);
    assert_eq!(r.json()["error"]["message"], "boom", "{}", r.body);
    // Unknown method, unknown process, unknown route: 404.
    let r = post(addr, &format!("/processes/{id}/nope"), "[]").await;
    assert_eq!((r.status, r.kind().as_str()), (404, "MethodNotFound"), "{}", r.body);
    let r = post(addr, "/processes/nobody/add", "[1, 2]").await;
    assert_eq!((r.status, r.kind().as_str()), (404, "NotFound"), "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("nobody"), "{}", r.body);
    let r = post(addr, "/processes/999/add", "[1, 2]").await;
    assert_eq!((r.status, r.kind().as_str()), (404, "NotFound"), "{}", r.body);
    let r = post(addr, "/elsewhere", "[]").await;
    assert_eq!((r.status, r.kind().as_str()), (404, "NotFound"), "{}", r.body);
    // Wrong verb.
    let r = request("GET", format!("http://{addr}/processes/{id}/add"), auth(), None).await;
    assert_eq!((r.status, r.kind().as_str()), (405, "MethodNotAllowed"), "{}", r.body);
    // Arguments the method cannot take: the worker says so (its TypeError).
    let r = post(addr, &format!("/processes/{id}/add"), r#"["a", "b"]"#).await;
    assert_eq!((r.status, r.kind().as_str()), (500, "Remote"), "the worker refused them: {}", r.body);
    assert_eq!(r.json()["error"]["remoteType"], "TypeError", "{}", r.body);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_pool_is_called_by_its_name() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(2), ..PoolOptions::default() }).await.unwrap();
    let name = pm.pools().await.into_iter().find(|p| p.pool_id == pool.id()).unwrap().name;
    for i in 0..4 {
        let r = post(addr, &format!("/processes/{name}/add"), &format!("[{i}, 1]")).await;
        assert_eq!((r.status, r.json()), (200, json!(i + 1)), "{}", r.body);
    }
    let r = post(addr, &format!("/processes/{}/add", pool.id()), "[1, 1]").await;
    assert_eq!((r.status, r.json()), (200, json!(2)), "{}", r.body);
    pm.shutdown().await;
}

/// A name is resolved against what is live when the call is made (in the call's own
/// engine job): a process killed or a pool destroyed is never called through it.
#[tokio::test]
async fn a_name_follows_the_live_processes_and_pools() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let a = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let b = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    // Two processes of one name: 409, call one by id or make them a pool.
    let r = post(addr, "/processes/test-worker/add", "[1, 2]").await;
    assert_eq!((r.status, r.kind().as_str()), (409, "Conflict"), "{}", r.body);
    pm.kill(a.id()).await.unwrap();
    let r = post(addr, "/processes/test-worker/pid", "[]").await;
    assert_eq!(r.status, 200, "the one left: {}", r.body);
    assert_eq!(r.json(), json!(b.info().await.unwrap().pid), "{}", r.body);
    pm.kill(b.id()).await.unwrap();
    let r = post(addr, "/processes/test-worker/add", "[1, 2]").await;
    assert_eq!((r.status, r.kind().as_str()), (404, "NotFound"), "{}", r.body);
    // A pool: called by its name until it is destroyed, then 404.
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(1), ..PoolOptions::default() }).await.unwrap();
    let name = pm.pools().await.into_iter().find(|p| p.pool_id == pool.id()).unwrap().name;
    let r = post(addr, &format!("/processes/{name}/add"), "[1, 2]").await;
    assert_eq!((r.status, r.json()), (200, json!(3)), "{}", r.body);
    pool.destroy().await.unwrap();
    for path in [format!("/processes/{name}/add"), format!("/processes/{}/add", pool.id())] {
        let r = post(addr, &path, "[1, 2]").await;
        assert_eq!((r.status, r.kind().as_str()), (404, "NotFound"), "{path}: {}", r.body);
    }
    pm.shutdown().await;
}

#[tokio::test]
async fn requests_without_the_token_or_with_a_wrong_one_are_refused() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let url = |p: &str| format!("http://{addr}{p}");
    let path = format!("/processes/{}/add", h.id());
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong".to_string())],
        vec![("Authorization", format!("Bearer {TOKEN}x"))],
        vec![("Authorization", format!("Basic {TOKEN}"))],
    ] {
        let r = request("POST", url(&path), headers.clone(), Some("[1, 2]".into())).await;
        assert_eq!((r.status, r.kind().as_str()), (401, "Unauthorized"), "{headers:?}: {}", r.body);
        for p in ["/health", "/metrics"] {
            let r = request("GET", url(p), headers.clone(), None).await;
            assert_eq!(r.status, 401, "{p} {headers:?}: {}", r.body);
        }
    }
    pm.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_are_400_and_oversized_ones_413() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let path = format!("/processes/{}/echo", h.id());
    for (body, says) in [("{not json", "not JSON"), (r#"{"a": 1}"#, "JSON array"), ("7", "JSON array"), ("", "not JSON")] {
        let r = post(addr, &path, body).await;
        assert_eq!((r.status, r.kind().as_str()), (400, "BadRequest"), "{body:?}: {}", r.body);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains(says), "{body:?}: {}", r.body);
    }
    // Just under the bound passes; past it, 413.
    let fits = format!(r#"["{}"]"#, "x".repeat(MAX_BODY_BYTES - 8));
    let r = post(addr, &path, &fits).await;
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(200)]);
    // Past it, 413 before the body is read (the client announced its length and waits, as
    // curl does with `Expect: 100-continue`; a client that sends on gets its connection closed).
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: {}", MAX_BODY_BYTES + 1);
    let (status, body) = raw_head(tcp, &head).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("PayloadTooLarge"), "{body}");
    // A bad deadline header is refused too.
    let mut headers = auth();
    headers.push(("Titan-Timeout-Ms", "soon".into()));
    let r = request("POST", format!("http://{addr}{path}"), headers, Some("[1]".into())).await;
    assert_eq!((r.status, r.kind().as_str()), (400, "BadRequest"), "{}", r.body);
    pm.shutdown().await;
}

/// A chunked body (no `Content-Length` to refuse up front) past the bound: 413 once the
/// bound is passed, then the connection is closed, not read on forever; other clients are
/// served meanwhile.
#[tokio::test]
async fn a_chunked_body_past_the_bound_is_413_and_its_connection_closed() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let path = format!("/processes/{}/echo", h.id());
    let (mut rd, mut wr) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n");
    wr.write_all(head.as_bytes()).await.unwrap();
    // The client sends chunks for as long as the connection takes them.
    const CHUNK: usize = 64 * 1024;
    let sender = tokio::spawn(async move {
        let chunk = format!("{CHUNK:x}\r\n{}\r\n", "x".repeat(CHUNK));
        let mut sent = 0usize;
        while wr.write_all(chunk.as_bytes()).await.is_ok() {
            sent += CHUNK;
        }
        sent
    });
    // Another client is served meanwhile.
    let r = post(addr, &path, "[1]").await;
    assert_eq!((r.status, r.json()), (200, json!(1)), "{}", r.body);
    let mut out = Vec::new();
    let read = tokio::time::timeout(LIMIT, rd.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection was not closed after the 413 (read on?)");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("PayloadTooLarge"), "{text}");
    let sent = tokio::time::timeout(LIMIT, sender).await.expect("the host kept reading the body").unwrap();
    // What the host read is the bound plus what the sockets' buffers held, not the stream.
    assert!(sent < 64 * MAX_BODY_BYTES, "{sent} bytes were taken");
    // The gateway still serves new connections.
    let r = post(addr, &path, "[2]").await;
    assert_eq!((r.status, r.json()), (200, json!(2)), "{}", r.body);
    pm.shutdown().await;
}

#[tokio::test]
async fn the_deadline_header_times_a_call_out_and_is_bounded_by_the_managers_default() {
    let config = ManagerConfig { timeout: Duration::from_millis(1500), ..ManagerConfig::default() };
    let (pm, addr) = host(config).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let path = format!("http://{addr}/processes/{}/slow", h.id());
    let mut headers = auth();
    headers.push(("Titan-Timeout-Ms", "200".into()));
    let started = Instant::now();
    let r = request("POST", path.clone(), headers, Some("[5000]".into())).await;
    assert_eq!((r.status, r.kind().as_str()), (504, "CallTimeout"), "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("200 ms"), "{}", r.body);
    assert!(started.elapsed() < Duration::from_millis(1400), "{:?}", started.elapsed());
    // Asking for more than the manager's default gets the default.
    let mut headers = auth();
    headers.push(("Titan-Timeout-Ms", "60000".into()));
    let r = request("POST", path, headers, Some("[5000]".into())).await;
    assert_eq!((r.status, r.kind().as_str()), (504, "CallTimeout"), "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("1500 ms"), "{}", r.body);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_traceparent_makes_the_call_a_child_of_the_callers_span() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut headers = auth();
    headers.push(("traceparent", format!("00-{trace}-{parent}-01")));
    let url = format!("http://{addr}/processes/{}/trace_context", h.id());
    let r = request("POST", url.clone(), headers, Some("[]".into())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ctx = r.json();
    assert_eq!(ctx["traceId"], trace, "{ctx}");
    assert_eq!(ctx["parentSpanId"], parent, "{ctx}");
    assert_ne!(ctx["spanId"], parent, "a span of its own: {ctx}");
    // A `@Trace` method's span, recorded at the host, is in the caller's trace.
    let mut headers = auth();
    headers.push(("traceparent", format!("00-{trace}-{parent}-01")));
    let r = request("POST", format!("http://{addr}/processes/{}/traced", h.id()), headers, Some("[]".into())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let spans = titan_pm::policy::trace::spans();
    let span = spans.iter().find(|s| s.name == "test-worker.traced" && s.context.trace_id == trace);
    let span = span.unwrap_or_else(|| panic!("no span in trace {trace}: {spans:?}"));
    assert_eq!(span.context.parent_span_id, parent);
    // Without one (or with an invalid one) the call starts a trace of its own.
    let mut headers = auth();
    headers.push(("traceparent", format!("00-{}-{parent}-01", "0".repeat(32))));
    let ctx = request("POST", url, headers, Some("[]".into())).await.json();
    assert_eq!(ctx["traceId"].as_str().map(str::len), Some(32), "{ctx}");
    assert_ne!(ctx["traceId"], trace, "{ctx}");
    assert_eq!(ctx["parentSpanId"], "", "{ctx}");
    pm.shutdown().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_health_is_json() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    for i in 0..3 {
        assert_eq!(post(addr, &format!("/processes/{}/add", h.id()), &format!("[{i}, 1]")).await.status, 200);
    }
    let r = request("GET", format!("http://{addr}/metrics"), auth(), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let scrape = prometheus_parse::Scrape::parse(r.body.lines().map(|l| Ok(l.to_string()))).expect("valid exposition");
    let id = h.id().to_string();
    let requests = scrape
        .samples
        .iter()
        .find(|s| s.metric == "titan_process_requests_total" && s.labels.get("process_id") == Some(id.as_str()))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Gauge(n) | prometheus_parse::Value::Untyped(n) => n,
            _ => f64::NAN,
        });
    assert_eq!(requests, Some(3.0), "{}", r.body);
    // Every line is a comment, a sample `name{labels} number`, or the OpenMetrics end.
    for line in r.body.lines() {
        let ok = line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line == "# EOF" || {
            let (series, value) = line.rsplit_once(' ').unwrap_or(("", ""));
            !series.is_empty() && value.parse::<f64>().is_ok()
        };
        assert!(ok, "not exposition text: {line:?}");
    }
    let r = request("GET", format!("http://{addr}/health"), auth(), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let health = r.json();
    let me = &health["processes"][0];
    assert_eq!((me["processId"].as_u64(), me["state"].as_str()), (Some(h.id()), Some("running")), "{health}");
    // The test worker reports itself degraded (a `warn` check): the gateway says what it says.
    assert_eq!(me["health"]["status"], "degraded", "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    // Unhealthy: 503.
    h.call::<()>("set_unhealthy", ()).await.unwrap();
    let r = request("GET", format!("http://{addr}/health"), auth(), None).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (503, Some("unhealthy")), "{}", r.body);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_gateway_without_tls_listens_only_on_loopback_and_options_are_checked() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let listen = |gateway: GatewayOptions| ListenOptions {
        address: "127.0.0.1:0".into(),
        tls: None,
        token: Some("join".into()),
        gateway: Some(gateway),
    };
    let err = pm.listen(listen(GatewayOptions { address: "0.0.0.0:0".into(), token: "t".into() })).await.unwrap_err();
    assert!(err.to_string().contains("without tls the gateway listens only on loopback"), "{err}");
    let err = pm.listen(listen(GatewayOptions { address: "127.0.0.1:0".into(), token: "".into() })).await.unwrap_err();
    assert!(err.to_string().contains("listen.gateway.token"), "{err}");
    let err = pm.listen(listen(GatewayOptions { address: "here".into(), token: "t".into() })).await.unwrap_err();
    assert!(err.to_string().contains("listen.gateway.address"), "{err}");
    assert_eq!(pm.gateway_address(), None, "nothing was started");
    // The option object, as the front ends pass it.
    let v = titan_pm::value::to_value(&json!({"address": "127.0.0.1:0", "token": "j", "gateway": {"address": "127.0.0.1:0"}})).unwrap();
    let err = titan_pm::options::listen(&v, titan_pm::options::Dialect::Python).unwrap_err();
    assert!(err.to_string().contains("gateway.token: is required"), "{err}");
    pm.shutdown().await;
}

#[tokio::test]
async fn the_gateway_closes_when_the_manager_shuts_down() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let r = request("GET", format!("http://{addr}/health"), auth(), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    pm.shutdown().await;
    let deadline = Instant::now() + LIMIT;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the gateway still accepts after shutdown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A throwaway CA and a host certificate for localhost / 127.0.0.1.
fn pki() -> (tempfile::TempDir, TlsFiles) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "gateway test ca");
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "host");
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    let write = |name: &str, text: String| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let files = TlsFiles { cert: write("host.crt", cert.pem()), key: write("host.key", key.serialize_pem()), ca: write("ca.crt", ca.pem()) };
    (dir, files)
}

/// One HTTP/1.1 request written by hand over `stream` (`Connection: close`): the status and body.
async fn raw<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S, head: &str, body: &str) -> (u16, String) {
    let request = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut out)).await.expect("no answer").unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A request head alone (no body sent): the status and what came back.
async fn raw_head(mut stream: tokio::net::TcpStream, head: &str) -> (u16, String) {
    stream.write_all(format!("{head}\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut out)).await.expect("no answer").unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    (text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), text)
}

#[tokio::test]
async fn a_tls_gateway_serves_https_to_a_client_that_trusts_the_ca() {
    let (_dir, files) = pki();
    let pm = ProcessManager::new(ManagerConfig::default());
    let gateway = GatewayOptions { address: "127.0.0.1:0".into(), token: TOKEN.into() };
    pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: Some(files.clone()), token: None, gateway: Some(gateway) }).await.unwrap();
    let addr = pm.gateway_address().unwrap();
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    // The client trusts the CA and presents no certificate of its own (as curl --cacert).
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&files.ca).unwrap();
    for c in rustls_pemfile_certs(&ca) {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(LIMIT, connector.connect(name, tcp)).await.unwrap().expect("TLS handshake");
    let head = format!("POST /processes/{}/add HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}", h.id());
    let (status, body) = raw(tls, &head, "[20, 22]").await;
    assert_eq!((status, body.trim()), (200, "42"));
    // Plain HTTP to the TLS port gets no answer.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("POST /processes/{}/add HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}", h.id());
    let (status, _) = raw(tcp, &head, "[1, 1]").await;
    assert_eq!(status, 0, "no HTTP answer over plain TCP");
    pm.shutdown().await;
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().unwrap()
}

#[tokio::test]
async fn a_slow_loris_client_is_cut_off_and_others_are_served_meanwhile() {
    let (pm, addr) = host(ManagerConfig::default()).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    // Many clients start a request head and trickle it.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /processes/1/add HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(s);
    }
    // A client that connects and sends nothing at all.
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let r = post(addr, &format!("/processes/{}/add", h.id()), "[1, 2]").await;
    assert_eq!((r.status, r.json()), (200, json!(3)), "served while the slow ones wait");
    let trickle = async {
        let mut s = slow.pop().unwrap();
        // One header byte a second: it never finishes in time.
        for _ in 0..(HEADER_TIMEOUT.as_secs() * 3) {
            if s.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        s
    };
    let mut trickled = tokio::time::timeout(LIMIT, trickle).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(LIMIT, trickled.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the trickling connection was closed");
    assert!(started.elapsed() < HEADER_TIMEOUT * 3, "cut off within the header timeout: {:?}", started.elapsed());
    for mut s in slow {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(LIMIT, s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "every slow connection was closed");
    }
    // The silent one is closed by the idle bound.
    let mut silent = silent;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(titan_pm::gateway::IDLE_TIMEOUT + LIMIT, silent.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the silent connection was closed");
    pm.shutdown().await;
}

/// The benchmark: gateway call latency (HTTP/1.1 keep-alive, ureq, JSON) against a direct
/// call from the same process, to the same Rust worker, one call at a time.
/// `cargo test -p titan-pm-tests --test gateway -- --ignored --nocapture` (add `--release` for release figures).
#[tokio::test]
#[ignore]
async fn bench_gateway_latency_vs_a_direct_call() {
    const N: usize = 2000;
    let (pm, addr) = host(ManagerConfig::default()).await;
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let p50 = |mut v: Vec<Duration>| {
        v.sort();
        (v[v.len() / 2], v[v.len() * 99 / 100])
    };
    let mut direct = Vec::with_capacity(N);
    for i in 0..(N + 200) {
        let t = Instant::now();
        assert_eq!(h.call::<i64>("add", (i as i64, 1)).await.unwrap(), i as i64 + 1);
        if i >= 200 {
            direct.push(t.elapsed());
        }
    }
    let url = format!("http://{addr}/processes/{}/add", h.id());
    let gateway = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(LIMIT)).build().into();
        let mut out = Vec::with_capacity(N);
        for i in 0..(N + 200) {
            let t = Instant::now();
            let body = agent.post(&url).header("Authorization", format!("Bearer {TOKEN}")).send(format!("[{i}, 1]")).unwrap().into_body().read_to_string().unwrap();
            assert_eq!(body, (i + 1).to_string());
            if i >= 200 {
                out.push(t.elapsed());
            }
        }
        out
    });
    let via = tokio::time::timeout(Duration::from_secs(300), gateway).await.unwrap().unwrap();
    let ((d50, d99), (g50, g99)) = (p50(direct), p50(via));
    println!(
        "gateway bench ({} build, {N} sequential calls each): direct p50 {:.0} us p99 {:.0} us; gateway p50 {:.0} us p99 {:.0} us; p50 ratio {:.2}x",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        d50.as_secs_f64() * 1e6,
        d99.as_secs_f64() * 1e6,
        g50.as_secs_f64() * 1e6,
        g99.as_secs_f64() * 1e6,
        g50.as_secs_f64() / d50.as_secs_f64()
    );
    pm.shutdown().await;
}
