//! Reports to JS: every report (process info, health, metrics, events, pool
//! metrics, pool events) is the core's one shape (`titan_pm::reports`) in the
//! JS dialect, converted to plain JS objects. The bridge builds none of its own.

use titan_pm::options::Dialect;
use titan_pm::reports::Report;

use crate::convert;
use crate::js::{Env, Js};

/// `r` as the JS object users see.
pub fn to_js<R: Report>(env: Env, r: R) -> napi::Result<Js> {
    convert::to_js(env, &r.report(Dialect::Js))
}
