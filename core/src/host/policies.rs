//! The host's method-policy layer: applies what a method declares (§8) around
//! one call, once, for process calls and pool calls alike. Its state is kept
//! per process or per pool (one [`PolicyLayer`] each), so every caller of a
//! process and every member of a pool share one rate limit, one cache, one
//! idempotency table and one breaker. A validation failure, a rate-limit
//! rejection, a cache or idempotency hit and an open breaker cost no round trip.
//!
//! Order around a call: JSON Schema validation, rate limit, idempotency, cache,
//! breaker (or its fallback), the call itself; then the breaker, cache,
//! idempotency table, `@Metric` stats and `@Trace` span record the outcome.
//! A method without policies never gets here: the caller checks
//! `Description::has_policies` first. Self-healing acts on one process, so it
//! runs in `Process::call_direct` (see [`PolicyLayer::heal`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::metrics::{CallStats, MethodMetrics};
use crate::error::{Error, Result};
use crate::policy::cache::ResultCache;
use crate::policy::idempotent::{Claim, Idempotency};
use crate::policy::method::{compile_schema, key_of, HealAction, MethodPolicies};
use crate::policy::rate_limit::Limiter;
use crate::policy::self_heal::Healer;
use crate::policy::trace::{self, Span, TraceContext};
use crate::clock::Clock;
use crate::policy::{Breaker, BreakerState};
use crate::protocol::{now_ms, MethodInfo};
use crate::value::Value;

/// The policy state of one process or one pool, per method, built at the method's first call.
#[derive(Default)]
pub(crate) struct PolicyLayer {
    methods: RefCell<HashMap<String, Option<Rc<MethodState>>>>,
}

pub(crate) struct MethodState {
    method: String,
    decl: MethodPolicies,
    limiter: Option<Limiter>,
    cache: Option<ResultCache>,
    schema: Option<jsonschema::Validator>,
    breaker: Option<RefCell<Breaker>>,
    idempotent: Option<Idempotency>,
    stats: Option<RefCell<CallStats>>,
    healer: Option<Healer>,
}

impl MethodState {
    fn new(info: &MethodInfo) -> Self {
        let p = &info.policies;
        MethodState {
            method: info.name.clone(),
            limiter: p.rate_limit.as_ref().map(Limiter::new),
            cache: p.cache.as_ref().map(ResultCache::new),
            // Checked when the worker described itself; a schema that fails here validates nothing.
            schema: p.validate.as_ref().and_then(|v| v.json_schema.as_ref()).and_then(|s| match compile_schema(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(target: "titan_pm", "{}: validate.schema ignored: {e}", info.name);
                    None
                }
            }),
            breaker: p.circuit_breaker.as_ref().map(|b| RefCell::new(Breaker::new(b.options.clone()))),
            idempotent: p.idempotent.as_ref().map(Idempotency::new),
            stats: p.metric.as_ref().map(|_| RefCell::default()),
            healer: p.self_heal.clone().map(Healer::new),
            decl: p.clone(),
        }
    }
}

impl PolicyLayer {
    /// The state of `info`'s method; `None` when it declares no policy.
    pub(crate) fn state(&self, info: &MethodInfo) -> Option<Rc<MethodState>> {
        if let Some(s) = self.methods.borrow().get(&info.name) {
            return s.clone();
        }
        let s = (!info.policies.is_empty()).then(|| Rc::new(MethodState::new(info)));
        // Bounded by the methods the worker describes (only described methods reach here).
        self.methods.borrow_mut().insert(info.name.clone(), s.clone());
        s
    }

    /// `@Metric` figures of every method that has them, by method name, with the metric's name.
    pub(crate) fn metrics(&self) -> Vec<MethodMetrics> {
        let mut out: Vec<MethodMetrics> = self
            .methods
            .borrow()
            .values()
            .flatten()
            .filter_map(|s| {
                let stats = s.stats.as_ref()?.borrow();
                let name = s.decl.metric.as_ref().and_then(|m| m.name.clone()).unwrap_or_else(|| s.method.clone());
                Some(MethodMetrics {
                    method: s.method.clone(),
                    metric: name,
                    requests: stats.requests,
                    errors: stats.errors,
                    latency: stats.latency(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.method.cmp(&b.method));
        out
    }

    /// `@SelfHeal`: the action to take for `error` of `info`'s method, at most once per cooldown.
    pub(crate) fn heal(&self, info: &MethodInfo, error: &Error, now: Instant) -> Option<(String, HealAction)> {
        self.state(info)?.healer.as_ref()?.decide(error, now)
    }
}

/// Runs one call of `st`'s method under its policies. `call(method, args, context)`
/// makes the actual call (on a process, or through a pool's balancer); `name`
/// (the process's or pool's) names spans.
/// `otlp`: where the span of a `@Trace` method is exported too (the manager's exporter, if any).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply<C, F>(
    st: &Rc<MethodState>,
    name: &str,
    clock: &Clock,
    args: Vec<Value>,
    parent: Option<&TraceContext>,
    otlp: Option<&crate::telemetry::otlp::Exporter>,
    call: C,
) -> Result<Value>
where
    C: Fn(String, Vec<Value>, TraceContext) -> F,
    F: Future<Output = Result<Value>>,
{
    if let Some(v) = &st.schema {
        validate(v, &args)?;
    }
    if let (Some(l), Some(r)) = (&st.limiter, &st.decl.rate_limit) {
        let key = r.key.as_ref().map(|k| key_of(Some(k), &args)).unwrap_or_default();
        l.check(&key, clock.now()).map_err(|wait| Error::RateLimit { retry_after_ms: wait.as_millis().max(1) as u64 })?;
    }
    let mut ticket = None;
    if let Some(idem) = &st.idempotent {
        if let Some(key) = idem.key(&args) {
            loop {
                match idem.claim(&key, clock.now()) {
                    Claim::Done(v) => return Ok(v),
                    Claim::Wait(mut rx) => match rx.wait_for(Option::is_some).await {
                        Ok(outcome) => return outcome.clone().expect("waited for an outcome"),
                        Err(_) => continue, // the first call was dropped: claim again
                    },
                    Claim::Run(t) => {
                        ticket = Some(t);
                        break;
                    }
                }
            }
        }
    }
    let cache_key = st.cache.as_ref().map(|c| c.key(&args));
    if let (Some(c), Some(k)) = (&st.cache, &cache_key) {
        if let Some(v) = c.get(k, clock.now()) {
            if let Some(t) = ticket {
                t.finish(&Ok(v.clone()), clock.now());
            }
            return Ok(v);
        }
    }
    let context = TraceContext::child_of(parent);
    let mut trial = None;
    if let Some(b) = &st.breaker {
        // The borrow ends here: the open branch awaits a fallback, and other calls use the breaker meanwhile.
        let admitted = b.borrow_mut().admit(clock.now());
        match admitted {
            Ok(changed) => {
                log_breaker(name, &st.method, changed);
                trial = Some(Trial { breaker: b, done: false });
            }
            Err(e) => {
                // Open: the fallback (same arguments), else CircuitOpenError; the ticket is dropped unfinished.
                return match st.decl.circuit_breaker.as_ref().and_then(|c| c.fallback.clone()) {
                    Some(fallback) => call(fallback, args, context).await,
                    None => Err(e),
                };
            }
        }
    }
    let started = Instant::now();
    let start_ms = now_ms();
    let result = call(st.method.clone(), args, context.clone()).await;
    let elapsed = started.elapsed();
    if let Some(mut t) = trial {
        t.done = true;
        let changed = t.breaker.borrow_mut().record(result.is_ok(), clock.now());
        log_breaker(name, &st.method, changed);
    }
    if let (Some(c), Some(k), Ok(v)) = (&st.cache, cache_key, &result) {
        c.put(k, v.clone(), clock.now());
    }
    if let Some(t) = ticket {
        t.finish(&result, clock.now());
    }
    if let Some(s) = &st.stats {
        s.borrow_mut().record(elapsed, result.is_ok());
    }
    if st.decl.trace {
        let span = Span {
            name: format!("{name}.{}", st.method),
            context,
            start_ms,
            duration_us: elapsed.as_micros().min(u64::MAX as u128) as u64,
            error: result.as_ref().err().map(|e| e.class_name().to_string()),
        };
        if let Some(x) = otlp {
            x.export(&span);
        }
        trace::record(span);
    }
    result
}

/// A breaker admission; dropped before its outcome (the caller gave up), it hands a half-open slot back.
struct Trial<'a> {
    breaker: &'a RefCell<Breaker>,
    done: bool,
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.borrow_mut().forget_trial();
        }
    }
}

fn log_breaker(name: &str, method: &str, changed: Option<BreakerState>) {
    if let Some(s) = changed {
        tracing::info!(target: "titan_pm", "{name}.{method}: circuit breaker {}", s.as_str());
    }
}

/// The first argument (null without one) against the method's JSON Schema.
fn validate(schema: &jsonschema::Validator, args: &[Value]) -> Result<()> {
    let first = args.first().cloned().unwrap_or(Value::Null);
    let json: serde_json::Value = crate::value::from_value(first)?;
    let failures: Vec<(String, String)> =
        schema.iter_errors(&json).map(|e| (e.instance_path.to_string(), e.to_string())).take(64).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation { failures })
    }
}

/// How long a `recycle` waits for the instance's calls to finish before replacing it.
pub(crate) const RECYCLE_DRAIN: Duration = Duration::from_secs(5);
