//! Trace context of a call (W3C: a 32-hex trace id, 16-hex span ids) and the
//! in-process span store. Every host call carries a context in `CallContext`:
//! the caller's trace (or a new one), a new span id, the caller's span as
//! parent. A Rust worker method runs inside [`scope`] with its call's context,
//! so the calls it makes are children of it ([`current`]). Methods with
//! `@Trace` leave a [`Span`] in the store (the last [`MAX_SPANS`]), which
//! tests read with [`spans`]. A manager whose `monitoring.tracing` names an
//! endpoint also exports them over OTLP ([`crate::telemetry::otlp`]).
//!
//! ```
//! use titan_pm::policy::trace::TraceContext;
//! let root = TraceContext::child_of(None);
//! let child = TraceContext::child_of(Some(&root));
//! assert_eq!(child.trace_id, root.trace_id);
//! assert_eq!(child.parent_span_id, root.span_id);
//! assert_eq!(child.traceparent(), format!("00-{}-{}-01", root.trace_id, child.span_id));
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

/// The most spans the in-process store keeps (oldest dropped first).
pub const MAX_SPANS: usize = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
}

impl TraceContext {
    /// A new span: in `parent`'s trace (a new trace without one), parented to its span.
    pub fn child_of(parent: Option<&TraceContext>) -> TraceContext {
        match parent.filter(|p| !p.trace_id.is_empty()) {
            Some(p) => TraceContext { trace_id: p.trace_id.clone(), span_id: span_id(), parent_span_id: p.span_id.clone() },
            None => TraceContext { trace_id: format!("{:032x}", fastrand::u128(1..)), span_id: span_id(), parent_span_id: String::new() },
        }
    }

    /// The caller's span a W3C `traceparent` header names (`00-{trace}-{span}-{flags}`), as a
    /// parent for [`TraceContext::child_of`]; `None` when the header is not valid (W3C: then a
    /// new trace starts).
    ///
    /// ```
    /// use titan_pm::policy::trace::TraceContext;
    /// let p = TraceContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!((p.trace_id.as_str(), p.span_id.as_str()), ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"));
    /// assert!(TraceContext::from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
    /// assert!(TraceContext::from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
    /// ```
    pub fn from_traceparent(header: &str) -> Option<TraceContext> {
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        let parts: Vec<&str> = header.trim().split('-').collect();
        let [version, trace, span, flags, rest @ ..] = parts.as_slice() else { return None };
        // Version 00 has exactly four fields; a later version may add more (read the first four).
        let ok = hex(version, 2) && *version != "ff" && (rest.is_empty() || *version != "00");
        if !ok || !hex(trace, 32) || zero(trace) || !hex(span, 16) || zero(span) || !hex(flags, 2) {
            return None;
        }
        Some(TraceContext { trace_id: trace.to_string(), span_id: span.to_string(), parent_span_id: String::new() })
    }

    /// The W3C `traceparent` header: `00-{trace}-{span}-01`.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

fn span_id() -> String {
    format!("{:016x}", fastrand::u64(1..))
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The context of the call this task serves, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| c.clone()).ok()
}

/// Runs `f` as the call `ctx`: [`current`] returns it inside.
pub async fn scope<F: Future>(ctx: TraceContext, f: F) -> F::Output {
    CURRENT.scope(ctx, f).await
}

/// One finished call of a method with `@Trace`, as seen by the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// `process.method` (the process's or pool's name).
    pub name: String,
    pub context: TraceContext,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    pub duration_us: u64,
    /// The error's class name (`RemoteError`, ...) when the call failed.
    pub error: Option<String>,
}

static SPANS: Mutex<VecDeque<Span>> = Mutex::new(VecDeque::new());

pub fn record(span: Span) {
    let mut spans = SPANS.lock().unwrap_or_else(|e| e.into_inner());
    if spans.len() >= MAX_SPANS {
        spans.pop_front();
    }
    spans.push_back(span);
}

/// Every span kept so far, oldest first.
pub fn spans() -> Vec<Span> {
    SPANS.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
}
