//! Every core error as a JS `Error` carrying its class name (`titanClass`) and
//! its fields in camelCase. The TypeScript layer (`node/src/errors.ts`) turns
//! it into the exported class; this is the only place the bridge maps errors.

use titan_pm::Error;

use crate::convert::Unsupported;
use crate::js::{self, Env, Js};

pub fn to_js(env: Env, e: &Error) -> Js {
    build(env, e).unwrap_or(std::ptr::null_mut())
}

fn build(env: Env, e: &Error) -> napi::Result<Js> {
    let err = js::error(env, &e.to_string())?;
    let set_str = |k: &str, v: &str| js::set(env, err, k, js::string(env, v)?);
    let set_num = |k: &str, v: f64| js::set(env, err, k, js::number(env, v)?);
    let set_opt = |k: &str, v: Option<i32>| match v {
        Some(x) => set_num(k, x as f64),
        None => js::set(env, err, k, js::null(env)?),
    };
    set_str("titanClass", e.class_name())?;
    match e {
        Error::Remote { remote_type, message, remote_traceback, code } => {
            set_str("remoteType", remote_type)?;
            set_str("remoteMessage", message)?;
            set_str("remoteStack", remote_traceback)?;
            if let Some(c) = code {
                set_str("code", c)?;
            }
        }
        Error::ProcessCrashed { process_id, exit_code, signal } => {
            set_num("processId", *process_id as f64)?;
            set_opt("exitCode", *exit_code)?;
            set_opt("signal", *signal)?;
        }
        Error::ProcessFailed { process_id, state } => {
            set_num("processId", *process_id as f64)?;
            set_str("state", state.as_str())?;
        }
        Error::ManagerShutDown => set_str("state", "stopped")?,
        Error::CallTimeout { method, timeout_ms } => {
            set_str("method", method)?;
            set_num("timeoutMs", *timeout_ms as f64)?;
        }
        Error::MethodNotFound { method, available } => {
            set_str("method", method)?;
            let list = js::array(env, available.len())?;
            for (i, m) in available.iter().enumerate() {
                js::set_index(env, list, i as u32, js::string(env, m)?)?;
            }
            js::set(env, err, "available", list)?;
        }
        Error::Serialization { path, .. } => set_str("path", path)?,
        Error::Spawn { target, reason, stderr_tail } => {
            set_str("target", target)?;
            set_str("reason", reason)?;
            set_str("stderrTail", stderr_tail)?;
        }
        Error::PoolBackpressure { queue_size } => set_num("queueSize", *queue_size as f64)?,
        Error::Workflow { workflow, run_id, stage, cause, compensations } => {
            set_str("workflow", workflow)?;
            set_str("runId", run_id)?;
            set_str("stage", stage)?;
            set_str("kind", titan_pm::workflow::failure_kind(cause))?;
            js::set(env, err, "cause", build(env, cause)?)?;
            let list = js::array(env, compensations.len())?;
            for (i, c) in compensations.iter().enumerate() {
                let o = crate::convert::to_js(env, &titan_pm::Value::Map(vec![
                    ("stage".into(), titan_pm::Value::Text(c.stage.clone())),
                    ("method".into(), titan_pm::Value::Text(c.method.clone())),
                    ("attempts".into(), titan_pm::Value::Int(c.attempts as i64)),
                    ("error".into(), c.error.clone().map(titan_pm::Value::Text).unwrap_or(titan_pm::Value::Null)),
                ]))?;
                js::set_index(env, list, i as u32, o)?;
            }
            js::set(env, err, "compensations", list)?;
        }
        Error::RateLimit { retry_after_ms } => set_num("retryAfter", *retry_after_ms as f64)?,
        Error::Validation { failures } => {
            let list = js::array(env, failures.len())?;
            for (i, (path, message)) in failures.iter().enumerate() {
                let f = js::object(env)?;
                js::set(env, f, "path", js::string(env, path)?)?;
                js::set(env, f, "message", js::string(env, message)?)?;
                js::set_index(env, list, i as u32, f)?;
            }
            js::set(env, err, "failures", list)?;
        }
        _ => {}
    }
    Ok(err)
}

/// A value the caller tried to send: a `SerializationError` naming where.
pub fn unsupported(env: Env, root: &str, u: &Unsupported) -> Js {
    to_js(env, &Error::Serialization { path: u.path(root), message: u.message.clone() })
}

