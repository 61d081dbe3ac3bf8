//! What the gateway's requests mean: bearer auth (constant-time), the routes, the
//! call's deadline (`Titan-Timeout-Ms`) and trace (`traceparent`), and every
//! answer's status and JSON shape, errors included (`{"error": {"kind", "message"}}`).
//!
//! | route | answer |
//! |---|---|
//! | `POST /processes/{target}/{method}`, body a JSON array of arguments | 200 and the result as JSON |
//! | `GET /health` | 200 (503 when a process is unhealthy): `{status, processes: [{processId, name, state, health}]}` |
//! | `GET /metrics` | 200, Prometheus text ([`crate::exposition`]) |
//!
//! `target` is what the control socket's targets name ([`crate::pool::targets`]): a
//! process or pool id, a pool name (`remote:api` too), or a process name that names one
//! process (several: 409, use an id or a pool).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use subtle::ConstantTimeEq;

use crate::pool::targets::{self, CallFailure};
use crate::dialect::Dialect;
use crate::error::Error;
use crate::host::{CallOptions, ProcessManager};
use crate::policy::trace::{self, TraceContext};
use crate::protocol::HealthStatus;
use crate::reports::Report;
use crate::value::{self, Value};

use super::{BODY_TIMEOUT, MAX_BODY_BYTES};

/// The header that sets a call's deadline in milliseconds (at most the manager's default).
pub const TIMEOUT_HEADER: &str = "titan-timeout-ms";

/// What every request handler reads.
pub struct Gateway {
    pub pm: ProcessManager,
    pub token: String,
    /// The manager's default call deadline: the longest a gateway call may take.
    pub default_timeout: Duration,
}

type Answer = Response<Full<Bytes>>;

/// A refusal or failure: its status and `{"error": {kind, message, ...}}`.
struct Failure {
    status: StatusCode,
    kind: String,
    message: String,
    extra: Vec<(&'static str, serde_json::Value)>,
}

fn fail(status: StatusCode, kind: &str, message: impl Into<String>) -> Failure {
    Failure { status, kind: kind.to_string(), message: message.into(), extra: Vec::new() }
}

/// A call's error: its status, and its kind as the front ends name its class (without `Error`).
fn from_error(e: &Error) -> Failure {
    let status = match e {
        Error::CallTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::MethodNotFound { .. } | Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Serialization { .. } | Error::Validation { .. } | Error::Config(_) => StatusCode::BAD_REQUEST,
        Error::RateLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::PoolBackpressure { .. } | Error::CircuitOpen | Error::ProcessFailed { .. } | Error::ManagerShutDown => StatusCode::SERVICE_UNAVAILABLE,
        Error::ProcessCrashed { .. } | Error::Spawn { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let kind = e.class_name().trim_end_matches("Error");
    let mut f = fail(status, if kind.is_empty() { "Failed" } else { kind }, e.to_string());
    match e {
        Error::Remote { remote_type, message, code, .. } => {
            f.message = message.clone();
            f.extra.push(("remoteType", remote_type.as_str().into()));
            if let Some(c) = code {
                f.extra.push(("code", c.as_str().into()));
            }
        }
        Error::RateLimit { retry_after_ms } => f.extra.push(("retryAfterMs", (*retry_after_ms).into())),
        _ => {}
    }
    f
}

fn json(status: StatusCode, body: &serde_json::Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

impl Failure {
    fn answer(self) -> Answer {
        let mut error = serde_json::Map::new();
        error.insert("kind".into(), self.kind.into());
        error.insert("message".into(), self.message.into());
        for (k, v) in self.extra {
            error.insert(k.into(), v);
        }
        let mut r = json(self.status, &serde_json::json!({ "error": error }));
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Answers one request (never an `Err`: every failure is a JSON error).
pub async fn handle<B>(g: &Gateway, req: Request<B>) -> Answer
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match route(g, req).await {
        Ok(r) => r,
        Err(f) => f.answer(),
    }
}

fn authorized(g: &Gateway, req: &Request<impl Sized>) -> bool {
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    // Constant time in the token's content (a wrong length is refused all the same).
    given.is_some_and(|t| bool::from(t.ct_eq(g.token.as_bytes())))
}

async fn route<B>(g: &Gateway, req: Request<B>) -> Result<Answer, Failure>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !authorized(g, &req) {
        return Err(fail(StatusCode::UNAUTHORIZED, "Unauthorized", "missing or wrong bearer token (Authorization: Bearer TOKEN)"));
    }
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let allow = |m: &Method, allowed: &Method| {
        if m == allowed {
            Ok(())
        } else {
            Err(fail(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{path} takes {allowed}, not {m}")))
        }
    };
    match parts.as_slice() {
        ["health"] => {
            allow(req.method(), &Method::GET)?;
            Ok(health(g).await)
        }
        ["metrics"] => {
            allow(req.method(), &Method::GET)?;
            let text = g.pm.metrics_text().await.map_err(|e| from_error(&e))?;
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            Ok(r)
        }
        ["processes", target, method] if !target.is_empty() && !method.is_empty() => {
            allow(req.method(), &Method::POST)?;
            let (target, method) = (decode(target)?, decode(method)?);
            call(g, req, &target, &method).await
        }
        _ => Err(fail(StatusCode::NOT_FOUND, "NotFound", format!("no route {path} (POST /processes/{{name|id}}/{{method}}, GET /health, GET /metrics)"))),
    }
}

/// A path segment, percent-decoded.
fn decode(segment: &str) -> Result<String, Failure> {
    let bad = || fail(StatusCode::BAD_REQUEST, "BadRequest", format!("bad percent-encoding in {segment:?}"));
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The deadline the request asks for, bounded by the manager's default.
fn deadline(g: &Gateway, req: &Request<impl Sized>) -> Result<Duration, Failure> {
    let Some(v) = req.headers().get(TIMEOUT_HEADER) else { return Ok(g.default_timeout) };
    let ms = v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).filter(|&ms| ms > 0);
    let ms = ms.ok_or_else(|| fail(StatusCode::BAD_REQUEST, "BadRequest", format!("{TIMEOUT_HEADER} must be a positive whole number of milliseconds")))?;
    Ok(Duration::from_millis(ms).min(g.default_timeout))
}

async fn call<B>(g: &Gateway, req: Request<B>, target: &str, method: &str) -> Result<Answer, Failure>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let timeout = deadline(g, &req)?;
    // An invalid traceparent starts a new trace, as W3C Trace Context says.
    let parent = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(TraceContext::from_traceparent);
    let too_large = || fail(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", format!("the body is larger than {MAX_BODY_BYTES} bytes"));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|s| s.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), MAX_BODY_BYTES).collect()).await {
        Err(_) => return Err(fail(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", format!("the body did not arrive within {} s", BODY_TIMEOUT.as_secs()))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => return Err(fail(StatusCode::BAD_REQUEST, "BadRequest", format!("cannot read the body: {e}"))),
        Ok(Ok(b)) => b.to_bytes(),
    };
    let args = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(other) => {
            let what = match other {
                serde_json::Value::Object(_) => "an object",
                serde_json::Value::Null => "null",
                _ => "a single value",
            };
            return Err(fail(StatusCode::BAD_REQUEST, "BadRequest", format!("the body must be a JSON array of arguments, not {what}")));
        }
        Err(e) => return Err(fail(StatusCode::BAD_REQUEST, "BadRequest", format!("the body is not JSON: {e}"))),
    };
    let args = args.iter().map(value::to_value).collect::<Result<Vec<Value>, _>>().map_err(|e| from_error(&e))?;
    let options = CallOptions { timeout: Some(timeout), ..CallOptions::default() };
    // Resolved and called in one engine job (targets::call_value).
    let work = targets::call_value(&g.pm, target, method, args, options);
    let result = match parent {
        Some(ctx) => trace::scope(ctx, work).await,
        None => work.await,
    };
    match result {
        Ok(v) => {
            let out: serde_json::Value = value::from_value(v).map_err(|e| from_error(&e))?;
            Ok(json(StatusCode::OK, &out))
        }
        Err(CallFailure::Unresolved(e)) => Err(fail(StatusCode::NOT_FOUND, "NotFound", e.to_string())),
        Err(CallFailure::Several(n)) => {
            Err(fail(StatusCode::CONFLICT, "Conflict", format!("{target:?} names {n} processes: call one by id, or make them a pool")))
        }
        Err(CallFailure::Call(e)) => Err(from_error(&e)),
    }
}

async fn health(g: &Gateway) -> Answer {
    let processes = g.pm.list_processes().await;
    let reports = futures::future::join_all(processes.iter().map(|p| g.pm.get_health(p.process_id))).await;
    let mut worst = HealthStatus::Healthy;
    let mut rows = Vec::new();
    for (info, report) in processes.iter().zip(reports) {
        let mut row = info.report(Dialect::Js);
        let health = match report {
            Ok(h) => {
                worst = worse(worst, h.status);
                h.report(Dialect::Js)
            }
            Err(e) => {
                // Gone between the list and the probe: reported as it is.
                worst = HealthStatus::Unhealthy;
                Value::Map(vec![("status".into(), Value::Text("unhealthy".into())), ("error".into(), Value::Text(e.to_string()))])
            }
        };
        if let Value::Map(entries) = &mut row {
            entries.push(("health".into(), health));
        }
        rows.push(row);
    }
    let body = Value::Map(vec![("status".into(), Value::Text(worst.as_str().into())), ("processes".into(), Value::List(rows))]);
    let status = if worst == HealthStatus::Unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    match value::from_value::<serde_json::Value>(body) {
        Ok(b) => json(status, &b),
        Err(e) => from_error(&e).answer(),
    }
}

fn worse(a: HealthStatus, b: HealthStatus) -> HealthStatus {
    let rank = |s: HealthStatus| match s {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unhealthy => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// A connection's idle clock: [`Idle::expired`] resolves once no request has run for the bound.
pub struct Idle {
    bound: Duration,
    state: Mutex<(usize, Instant)>,
}

/// A request in progress on the connection (the idle clock restarts when it ends).
pub struct Busy<'a>(&'a Idle);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 -= 1;
        s.1 = Instant::now();
    }
}

impl Idle {
    pub fn new(bound: Duration) -> Self {
        Idle { bound, state: Mutex::new((0, Instant::now())) }
    }

    pub fn busy(&self) -> Busy<'_> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        Busy(self)
    }

    pub async fn expired(&self) {
        loop {
            let wait = {
                let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.0 > 0 { self.bound } else { self.bound.saturating_sub(s.1.elapsed()) }
            };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("remote%3Aapi").ok(), Some("remote:api".to_string()));
        assert!(decode("%zz").is_err());
        assert!(decode("%4").is_err());
    }

    #[test]
    fn error_status_and_kind() {
        let f = from_error(&Error::CallTimeout { method: "m".into(), timeout_ms: 5 });
        assert_eq!((f.status, f.kind.as_str()), (StatusCode::GATEWAY_TIMEOUT, "CallTimeout"));
        let f = from_error(&Error::MethodNotFound { method: "m".into(), available: vec![] });
        assert_eq!((f.status, f.kind.as_str()), (StatusCode::NOT_FOUND, "MethodNotFound"));
        let f = from_error(&Error::Remote { remote_type: "ValueError".into(), message: "no".into(), remote_traceback: "tb".into(), code: None });
        assert_eq!((f.status, f.kind.as_str(), f.message.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "Remote", "no"));
        let f = from_error(&Error::ProcessCrashed { process_id: 1, exit_code: None, signal: Some(9) });
        assert_eq!((f.status, f.kind.as_str()), (StatusCode::BAD_GATEWAY, "ProcessCrashed"));
    }
}
