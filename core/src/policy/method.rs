//! What a worker method declares about itself (the decorators of §8), as data:
//! read once from a front end's description (`from_section`, in its dialect),
//! checked once (`check`, naming the option), carried on the wire in
//! `MethodInfo.policies`. Enforcement lives in the sibling files
//! ([`super::rate_limit`], [`super::cache`], [`super::idempotent`],
//! [`super::self_heal`], [`super::breaker`]) and in `host/policies.rs`.
//!
//! ```
//! use titan_pm::policy::method::{MethodPolicies, RateLimit};
//! let mut p = MethodPolicies::default();
//! p.rate_limit = Some(RateLimit { rps: 0.0, ..RateLimit::default() });
//! assert_eq!(p.check("add").unwrap_err().to_string(),
//!            "invalid configuration: methods.add.rateLimit.rps: must be > 0, not 0");
//! ```

use std::time::Duration;

use crate::dialect::Section;
use crate::error::{Error, Result};
use crate::policy::BreakerOptions;
use crate::value::Value;

/// Every policy of one method; `None`/`false`: not declared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodPolicies {
    pub rate_limit: Option<RateLimit>,
    pub cache: Option<Cache>,
    pub validate: Option<Validate>,
    pub trace: bool,
    pub metric: Option<Metric>,
    pub circuit_breaker: Option<CircuitBreaker>,
    pub idempotent: Option<Idempotent>,
    pub self_heal: Option<SelfHeal>,
}

/// Which argument a key is read from: a position, or a field of the first argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgKey {
    Index(usize),
    Field(String),
}

impl ArgKey {
    /// The wire spelling: a decimal index, or the field name.
    pub fn to_wire(&self) -> String {
        match self {
            ArgKey::Index(i) => i.to_string(),
            ArgKey::Field(f) => f.clone(),
        }
    }
    /// Empty: none.
    pub fn from_wire(s: &str) -> Option<ArgKey> {
        if s.is_empty() {
            None
        } else if let Ok(i) = s.parse() {
            Some(ArgKey::Index(i))
        } else {
            Some(ArgKey::Field(s.to_string()))
        }
    }
    /// The key's value in `args`: the argument at the index, or the field of the
    /// first argument (a map); `None` when the call does not carry it.
    pub fn pick<'a>(&self, args: &'a [Value]) -> Option<&'a Value> {
        match self {
            ArgKey::Index(i) => args.get(*i),
            ArgKey::Field(f) => args.first()?.get(f),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateStrategy {
    #[default]
    TokenBucket,
    SlidingWindow,
    FixedWindow,
}

impl RateStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            RateStrategy::TokenBucket => "token-bucket",
            RateStrategy::SlidingWindow => "sliding-window",
            RateStrategy::FixedWindow => "fixed-window",
        }
    }
}

impl std::str::FromStr for RateStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "token-bucket" | "token_bucket" => Ok(RateStrategy::TokenBucket),
            "sliding-window" | "sliding_window" => Ok(RateStrategy::SlidingWindow),
            "fixed-window" | "fixed_window" => Ok(RateStrategy::FixedWindow),
            _ => Err(Error::Config(format!("unknown strategy {s:?} (expected token-bucket, sliding-window or fixed-window)"))),
        }
    }
}

/// `@RateLimit({ rps, burst, strategy, key })`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub rps: f64,
    /// Calls admitted at once; 0 = `rps` rounded up.
    pub burst: u32,
    pub strategy: RateStrategy,
    pub key: Option<ArgKey>,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { rps: 10.0, burst: 0, strategy: RateStrategy::TokenBucket, key: None }
    }
}

impl RateLimit {
    /// The burst in effect: `burst`, or `rps` rounded up.
    pub fn effective_burst(&self) -> u32 {
        if self.burst > 0 { self.burst } else { (self.rps.ceil() as u32).max(1) }
    }
}

/// `@Cache({ ttl, key, condition })`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    pub ttl: Duration,
    pub key: Option<ArgKey>,
    /// The worker decides per result whether it may be cached.
    pub has_condition: bool,
}

/// `@Validate({ schema })`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Validate {
    /// A JSON Schema for the first argument, checked on the host.
    pub json_schema: Option<Value>,
    /// A validator object that only the worker can run.
    pub has_validator: bool,
}

/// `@Metric(name?)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metric {
    pub name: Option<String>,
}

/// `@CircuitBreaker({ threshold, timeout, halfOpenRequests, fallback })`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CircuitBreaker {
    pub options: BreakerOptions,
    pub fallback: Option<String>,
}

/// `@Idempotent({ key, ttl })`.
#[derive(Debug, Clone, PartialEq)]
pub struct Idempotent {
    pub key: ArgKey,
    pub ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealAction {
    #[default]
    Restart,
    Recycle,
    Reinit,
}

impl HealAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HealAction::Restart => "restart",
            HealAction::Recycle => "recycle",
            HealAction::Reinit => "reinit",
        }
    }
}

impl std::str::FromStr for HealAction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "restart" => Ok(HealAction::Restart),
            "recycle" => Ok(HealAction::Recycle),
            "reinit" => Ok(HealAction::Reinit),
            _ => Err(Error::Config(format!("unknown action {s:?} (expected restart, recycle or reinit)"))),
        }
    }
}

/// `@SelfHeal({ symptoms, action, cooldown })`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfHeal {
    /// `timeout`, `connection_error`, `crash`, or a remote exception type name.
    pub symptoms: Vec<String>,
    pub action: HealAction,
    pub cooldown: Duration,
}

/// The most keys one limiter, cache or idempotency table keeps.
pub const MAX_KEYS: u64 = 10_000;

impl MethodPolicies {
    pub fn is_empty(&self) -> bool {
        *self == MethodPolicies::default()
    }

    /// Refuses options that cannot work, naming them (`methods.add.rateLimit.rps: must be > 0, not 0`).
    pub fn check(&self, method: &str) -> Result<()> {
        let bad = |opt: &str, msg: String| Err(Error::Config(format!("methods.{method}.{opt}: {msg}")));
        if let Some(r) = &self.rate_limit {
            if !(r.rps.is_finite() && r.rps > 0.0) {
                return bad("rateLimit.rps", format!("must be > 0, not {}", r.rps));
            }
            if r.rps > 1e9 {
                return bad("rateLimit.rps", format!("must be at most 1e9, not {}", r.rps));
            }
        }
        if let Some(c) = &self.cache {
            if c.ttl.is_zero() {
                return bad("cache.ttl", "must be > 0".into());
            }
        }
        if let Some(v) = &self.validate {
            if let Some(schema) = &v.json_schema {
                compile_schema(schema).map_err(|m| Error::Config(format!("methods.{method}.validate.schema: {m}")))?;
            } else if !v.has_validator {
                return bad("validate.schema", "is required".into());
            }
        }
        if let Some(m) = &self.metric {
            if let Some(n) = &m.name {
                if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    return bad("metric.name", format!("must be letters, digits, _ or : (a Prometheus name), not {n:?}"));
                }
            }
        }
        if let Some(b) = &self.circuit_breaker {
            if b.options.threshold == 0 {
                return bad("circuitBreaker.threshold", "must be at least 1".into());
            }
            if b.options.half_open_requests == 0 {
                return bad("circuitBreaker.halfOpenRequests", "must be at least 1".into());
            }
            if b.fallback.as_deref() == Some(method) {
                return bad("circuitBreaker.fallback", "cannot be the method itself".into());
            }
        }
        if let Some(i) = &self.idempotent {
            if i.ttl.is_zero() {
                return bad("idempotent.ttl", "must be > 0".into());
            }
            if matches!(&i.key, ArgKey::Field(f) if f.is_empty()) {
                return bad("idempotent.key", "is required".into());
            }
        }
        if let Some(h) = &self.self_heal {
            if h.symptoms.is_empty() {
                return bad("selfHeal.symptoms", "must name at least one symptom (timeout, connection_error, crash or an error type)".into());
            }
            if let Some(s) = h.symptoms.iter().find(|s| s.is_empty()) {
                return bad("selfHeal.symptoms", format!("{s:?} is not a symptom"));
            }
        }
        Ok(())
    }

    /// The policies as a front end describes them: `{rateLimit: {rps, burst, strategy, key},
    /// cache: {ttl, key, condition: bool}, validate: {schema, validator: bool}, trace: bool,
    /// metric: bool | {name}, circuitBreaker: {threshold, timeout, halfOpenRequests, fallback},
    /// idempotent: {key, ttl}, selfHeal: {symptoms, action, cooldown}}` in the dialect
    /// (`rate_limit`, durations in seconds for Python). Keys are an argument index or a field name.
    pub fn from_section(mut s: Section<'_>, method: &str) -> Result<Self> {
        let mut p = MethodPolicies::default();
        if let Some(mut r) = s.section("rateLimit")? {
            let rps = r.number("rps")?.ok_or_else(|| r.error("rps", "is required"))?;
            let burst = r.count("burst")?.unwrap_or(0);
            let strategy = r.parse("strategy")?.unwrap_or_default();
            let key = arg_key(&mut r, "key")?;
            r.finish()?;
            p.rate_limit = Some(RateLimit { rps, burst: burst.min(u32::MAX as u64) as u32, strategy, key });
        }
        if let Some(mut c) = s.section("cache")? {
            let ttl = c.duration("ttl")?.ok_or_else(|| c.error("ttl", "is required"))?;
            let key = arg_key(&mut c, "key")?;
            let has_condition = c.bool("condition")?.unwrap_or(false);
            c.finish()?;
            p.cache = Some(Cache { ttl, key, has_condition });
        }
        if let Some(mut v) = s.section("validate")? {
            let json_schema = v.get("schema").cloned();
            let has_validator = v.bool("validator")?.unwrap_or(false);
            v.finish()?;
            p.validate = Some(Validate { json_schema, has_validator });
        }
        p.trace = s.bool("trace")?.unwrap_or(false);
        match s.get("metric") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => p.metric = Some(Metric::default()),
            Some(Value::Text(n)) => p.metric = Some(Metric { name: Some(n.clone()) }),
            Some(Value::Map(_)) => {
                let mut m = s.section("metric")?.expect("a map");
                let name = m.text("name")?.map(String::from);
                m.finish()?;
                p.metric = Some(Metric { name });
            }
            Some(other) => return Err(s.error("metric", format!("must be true, a name or {{name}}, not {}", other.type_name()))),
        }
        if let Some(mut b) = s.section("circuitBreaker")? {
            let d = BreakerOptions::default();
            let threshold = b.count("threshold")?.map(|n| n.min(u32::MAX as u64) as u32).unwrap_or(d.threshold);
            let timeout = b.duration("timeout")?.unwrap_or(d.timeout);
            let half = b.count("halfOpenRequests")?.map(|n| n.min(u32::MAX as u64) as u32).unwrap_or(d.half_open_requests);
            let fallback = b.text("fallback")?.filter(|f| !f.is_empty()).map(String::from);
            b.finish()?;
            p.circuit_breaker =
                Some(CircuitBreaker { options: BreakerOptions { threshold, timeout, half_open_requests: half }, fallback });
        }
        if let Some(mut i) = s.section("idempotent")? {
            let key = arg_key(&mut i, "key")?.ok_or_else(|| i.error("key", "is required"))?;
            let ttl = i.duration("ttl")?.unwrap_or(Duration::from_secs(3600));
            i.finish()?;
            p.idempotent = Some(Idempotent { key, ttl });
        }
        if let Some(mut h) = s.section("selfHeal")? {
            let symptoms = h.texts("symptoms")?.unwrap_or_default();
            let action = h.parse("action")?.unwrap_or_default();
            let cooldown = h.duration("cooldown")?.unwrap_or(Duration::from_secs(60));
            h.finish()?;
            p.self_heal = Some(SelfHeal { symptoms, action, cooldown });
        }
        s.finish()?;
        p.check(method)?;
        Ok(p)
    }
}

fn arg_key(s: &mut Section<'_>, name: &'static str) -> Result<Option<ArgKey>> {
    match s.get(name) {
        None => Ok(None),
        Some(Value::Int(i)) if *i >= 0 => Ok(Some(ArgKey::Index(*i as usize))),
        Some(Value::Text(t)) if !t.is_empty() => Ok(ArgKey::from_wire(t)),
        Some(other) => Err(s.error(name, format!("must be an argument index or a field name, not {}", other.type_name()))),
    }
}

/// A JSON Schema, compiled (draft detected from `$schema`, else 2020-12).
pub fn compile_schema(schema: &Value) -> std::result::Result<jsonschema::Validator, String> {
    let json: serde_json::Value = crate::value::from_value(schema.clone()).map_err(|e| format!("not a JSON value: {e}"))?;
    jsonschema::validator_for(&json).map_err(|e| format!("not a valid JSON Schema: {e}"))
}

/// A call's key as text: the `key` argument's value, or all arguments.
pub fn key_of(key: Option<&ArgKey>, args: &[Value]) -> String {
    match key.and_then(|k| k.pick(args)) {
        Some(Value::Text(s)) => s.clone(),
        Some(v) => format!("{v:?}"),
        None => format!("{args:?}"),
    }
}
