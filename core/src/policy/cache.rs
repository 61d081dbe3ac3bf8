//! `@Cache`: results of one method per key (all arguments, or the `key`
//! argument), kept for `ttl` in a `moka` cache of at most [`MAX_KEYS`] entries.
//! Only successes are put here; the host asks before the call and puts after it.
//! Expiry is read on the manager's clock (`now`), so a test can move past a TTL;
//! moka also drops an entry after `ttl` of real time (that bounds its memory).
//!
//! ```
//! use std::time::Duration;
//! use titan_pm::policy::{cache::ResultCache, method::Cache};
//! use titan_pm::Value;
//! let c = ResultCache::new(&Cache { ttl: Duration::from_secs(60), key: None, has_condition: false });
//! let k = ResultCache::key(&c, &[Value::Int(1)]);
//! let t = std::time::Instant::now();
//! assert!(c.get(&k, t).is_none());
//! c.put(k.clone(), Value::Int(2), t);
//! assert_eq!(c.get(&k, t), Some(Value::Int(2)));
//! assert_eq!(c.get(&k, t + Duration::from_secs(60)), None);
//! ```

use std::time::{Duration, Instant};

use moka::sync::Cache as Moka;

use super::method::{key_of, ArgKey, Cache, MAX_KEYS};
use crate::value::Value;

pub struct ResultCache {
    entries: Moka<String, (Value, Instant)>,
    key: Option<ArgKey>,
    ttl: Duration,
}

impl ResultCache {
    pub fn new(c: &Cache) -> Self {
        ResultCache { entries: Moka::builder().max_capacity(MAX_KEYS).time_to_live(c.ttl).build(), key: c.key.clone(), ttl: c.ttl }
    }
    /// The cache key of a call's arguments.
    pub fn key(&self, args: &[Value]) -> String {
        key_of(self.key.as_ref(), args)
    }
    /// The value put under `key` less than `ttl` before `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<Value> {
        let (v, at) = self.entries.get(key)?;
        if now.saturating_duration_since(at) >= self.ttl {
            self.entries.invalidate(key);
            return None;
        }
        Some(v)
    }
    pub fn put(&self, key: String, v: Value, now: Instant) {
        self.entries.insert(key, (v, now));
    }
}
