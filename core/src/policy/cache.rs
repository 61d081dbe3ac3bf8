//! `@Cache`: results of one method per key (all arguments, or the `key`
//! argument), kept for `ttl` in a `moka` cache of at most [`MAX_KEYS`] entries.
//! Only successes are put here; the host asks before the call and puts after it.
//!
//! ```
//! use std::time::Duration;
//! use titan_pm::policy::{cache::ResultCache, method::Cache};
//! use titan_pm::Value;
//! let c = ResultCache::new(&Cache { ttl: Duration::from_secs(60), key: None, has_condition: false });
//! let k = ResultCache::key(&c, &[Value::Int(1)]);
//! assert!(c.get(&k).is_none());
//! c.put(k.clone(), Value::Int(2));
//! assert_eq!(c.get(&k), Some(Value::Int(2)));
//! ```

use moka::sync::Cache as Moka;

use super::method::{key_of, ArgKey, Cache, MAX_KEYS};
use crate::value::Value;

pub struct ResultCache {
    entries: Moka<String, Value>,
    key: Option<ArgKey>,
}

impl ResultCache {
    pub fn new(c: &Cache) -> Self {
        ResultCache { entries: Moka::builder().max_capacity(MAX_KEYS).time_to_live(c.ttl).build(), key: c.key.clone() }
    }
    /// The cache key of a call's arguments.
    pub fn key(&self, args: &[Value]) -> String {
        key_of(self.key.as_ref(), args)
    }
    pub fn get(&self, key: &str) -> Option<Value> {
        self.entries.get(key)
    }
    pub fn put(&self, key: String, v: Value) {
        self.entries.insert(key, v);
    }
}
