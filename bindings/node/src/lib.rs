//! The Node binding of titan-pm: a thin napi-rs bridge over the core. It
//! converts values and errors and forwards calls; every decision (restarts,
//! deadlines, crashes, shutdown) is the core's. The TypeScript package in
//! `node/` is the public API; this module is its private `binding`.
//!
//! Exports, by concept:
//! - host: `NativeManager` (spawn, call, kill, processes, health, metrics, shutdown, pools,
//!   `heapLimit` for a worker thread);
//! - options: `optionSchema(kind)`, the option paths the core accepts; `checkCallOptions`; `eventNames()`;
//!
//! Files by role (as in the Python bridge): `host` (the manager), `agent` (a JS
//! worker behind the core's `Handler`), `options` (JS object -> `Value` -> core's
//! option schema), `reports` (core's report shapes -> JS), `convert` (values),
//! `errors` (core errors -> JS), `output` (the bounded queue of output lines for
//! JS callbacks), `runtime` (the one async helper), and the napi plumbing `js` and `tsfn`.
//! - worker runtimes in a host (isolation `worker`/`none`): `newSlot`,
//!   `attach`, `attachFailed`, `portClosed`, `releaseSlot`, `outputLine` (a worker thread's lines for the log ring);
//! - a child worker process: `takeEndpoint`, `serveChild`;
//! - replies from any worker runtime: `settle`, `fail`;
//! - workflows: `NativeWorkflow`, `NativeManager.workflowLoad/Run/Runs/NextEvent` (`workflow.rs`);
//! - supervisors: `NativeManager.supervisorStart/Child/Pool/State/Children/StartChild/Stop`,
//!   `NativeSupervisorEvents` with `supervisorSubscribe/NextEvent`, and `checkOptions` for the
//!   decorators (`supervise.rs`);
//! - the `titan-pm` command: `cliRun(argv, relaunch)` (`cli.rs`), for the package's `bin`.

mod agent;
mod cli;
mod convert;
mod errors;
mod host;
mod js;
mod options;
mod output;
mod reports;
mod runtime;
mod supervise;
mod tsfn;
mod workflow;

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, Env, ValueType};
use napi_derive::napi;
use titan_pm::transport::Endpoint;

use agent::{JsHandler, Port};
use host::Host;

/// Any JS value, passed through untouched.
pub struct Raw(js::Js);

impl TypeName for Raw {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}
impl ValidateNapiValue for Raw {
    unsafe fn validate(_env: sys::napi_env, v: sys::napi_value) -> napi::Result<sys::napi_value> {
        Ok(v)
    }
}
impl FromNapiValue for Raw {
    unsafe fn from_napi_value(_env: sys::napi_env, v: sys::napi_value) -> napi::Result<Self> {
        Ok(Raw(v))
    }
}
impl ToNapiValue for Raw {
    unsafe fn to_napi_value(_env: sys::napi_env, v: Self) -> napi::Result<sys::napi_value> {
        Ok(v.0)
    }
}

impl NativeManager {
    fn tester(&self, env: &Env) -> napi::Result<Arc<titan_pm::testing::TestProcessManager>> {
        self.host.test.clone().ok_or_else(|| {
            let e = titan_pm::Error::Config("not a test manager (use titan-pm/testing)".into());
            throw(env, errors::to_js(env.raw(), &e))
        })
    }
}

fn throw(env: &Env, error: js::Js) -> napi::Error {
    unsafe { sys::napi_throw(env.raw(), error) };
    napi::Error::new(napi::Status::PendingException, "")
}

// ---- host ----

#[napi]
pub struct NativeManager {
    host: Host,
}

#[napi]
impl NativeManager {
    /// `config` as the TypeScript `ManagerConfig` (ms); `onMessage(kind, ...)` gets events,
    /// output lines and start/stop requests for worker runtimes.
    /// With `test`, the manager of `titan-pm/testing` (a test manager's options, the `test*` methods).
    #[napi(constructor, ts_args_type = "config: object, onMessage: (kind: string, ...args: any[]) => void, test?: boolean | undefined | null")]
    pub fn new(env: Env, config: Raw, on_message: Raw, test: Option<bool>) -> napi::Result<Self> {
        Host::new(env.raw(), config.0, on_message.0, test.unwrap_or(false)).map(|host| NativeManager { host }).map_err(|e| throw(&env, e))
    }

    // ---- testing (titan-pm/testing) ----

    #[napi(ts_return_type = "Promise<void>")]
    pub fn test_simulate_crash(&self, env: Env, id: f64) -> napi::Result<Raw> {
        let t = self.tester(&env)?;
        self.host.promise(env.raw(), async move { t.simulate_crash(id as u64).await }, host::unit_to_js).map(Raw)
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn test_wait_for_recovery(&self, env: Env, id: f64, timeout_ms: f64) -> napi::Result<Raw> {
        let t = self.tester(&env)?;
        let timeout = host::ms_duration("timeout", timeout_ms).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))?;
        self.host.promise(env.raw(), async move { Ok(t.wait_for_recovery(id as u64, timeout).await) }, host::bool_to_js).map(Raw)
    }

    #[napi(ts_args_type = "id: number, metrics: object")]
    pub fn test_set_metrics(&self, env: Env, id: f64, metrics: Raw) -> napi::Result<()> {
        let t = self.tester(&env)?;
        let v = options::object(env.raw(), "metrics", metrics.0).map_err(|e| throw(&env, e))?;
        t.set_metrics_value(id as u64, &v, titan_pm::options::Dialect::Js).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))
    }

    #[napi(ts_args_type = "id: number, health: unknown")]
    pub fn test_set_health(&self, env: Env, id: f64, health: Raw) -> napi::Result<()> {
        let t = self.tester(&env)?;
        let v = convert::report_from_js(env.raw(), health.0).map_err(|u| throw(&env, errors::unsupported(env.raw(), "health", &u)))?;
        t.set_health_value(id as u64, &v);
        Ok(())
    }

    #[napi]
    pub fn test_clear_metrics(&self, env: Env, id: f64) -> napi::Result<()> {
        self.tester(&env)?.clear_metrics(id as u64);
        Ok(())
    }

    #[napi]
    pub fn test_clear_health(&self, env: Env, id: f64) -> napi::Result<()> {
        self.tester(&env)?.clear_health(id as u64);
        Ok(())
    }

    #[napi]
    pub fn test_simulate_failure(&self, env: Env, point: String, type_name: String, message: String) -> napi::Result<()> {
        let failure = titan_pm::testing::Failure::new(message).of_type(type_name);
        self.tester(&env)?.simulate_failure(&point, failure).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))
    }

    #[napi]
    pub fn test_clear_failures(&self, env: Env) -> napi::Result<()> {
        self.tester(&env)?.clear_failures();
        Ok(())
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn test_advance_time(&self, env: Env, ms: f64) -> napi::Result<Raw> {
        let t = self.tester(&env)?;
        let d = host::ms_duration("ms", ms).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))?;
        self.host.promise(env.raw(), async move { t.advance_time(d).await }, host::unit_to_js).map(Raw)
    }

    /// The manager's clock, ms since the epoch.
    #[napi]
    pub fn test_current_time(&self, env: Env) -> napi::Result<f64> {
        Ok(self.tester(&env)?.current_time() as f64)
    }

    #[napi]
    pub fn test_reset_time(&self, env: Env) -> napi::Result<()> {
        self.tester(&env)?.reset_time();
        Ok(())
    }

    #[napi(ts_return_type = "object[]")]
    pub fn test_operations(&self, env: Env) -> napi::Result<Raw> {
        let ops = self.tester(&env)?.operations_report(titan_pm::options::Dialect::Js);
        host::value_to_js(env.raw(), ops).map(Raw)
    }

    #[napi]
    pub fn test_clear_operations(&self, env: Env) -> napi::Result<()> {
        self.tester(&env)?.clear_operations();
        Ok(())
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn test_cleanup(&self, env: Env) -> napi::Result<Raw> {
        let t = self.tester(&env)?;
        self.host.promise(env.raw(), async move { t.cleanup().await }, host::unit_to_js).map(Raw)
    }

    #[napi(ts_args_type = "target: string, options: unknown", ts_return_type = "Promise<number>")]
    pub fn spawn_path(&self, env: Env, target: String, options: Raw) -> napi::Result<Raw> {
        self.host.spawn_path(env.raw(), target, options.0).map(Raw)
    }

    /// Listens for remote workers (`{address, tls, token}`, read by core); resolves to the bound address.
    #[napi(ts_args_type = "options: unknown", ts_return_type = "Promise<string>")]
    pub fn listen(&self, env: Env, options: Raw) -> napi::Result<Raw> {
        self.host.listen_remote(env.raw(), options.0).map(Raw)
    }

    /// Where the HTTP gateway listens (`ip:port`), once `listen` started one.
    #[napi]
    pub fn gateway_address(&self) -> Option<String> {
        self.host.pm.gateway_address().map(|a| a.to_string())
    }

    /// One remote worker that joined as `name`, as a process.
    #[napi(ts_args_type = "name: string, options: unknown", ts_return_type = "Promise<number>")]
    pub fn attach(&self, env: Env, name: String, options: Raw) -> napi::Result<Raw> {
        self.host.attach(env.raw(), name, options.0).map(Raw)
    }

    /// Reloads process `id` onto `target` (with `slot`: the JS runtime attached to it), keeping the id.
    #[napi(ts_args_type = "id: number, slot: number | null, target: string, options: unknown", ts_return_type = "Promise<void>")]
    pub fn restart_with(&self, env: Env, id: f64, slot: Option<f64>, target: String, options: Raw) -> napi::Result<Raw> {
        self.host.restart_with(env.raw(), id as u64, slot.map(|s| s as u64), target, options.0).map(Raw)
    }

    #[napi(ts_args_type = "slot: number, target: string, options: unknown", ts_return_type = "Promise<number>")]
    pub fn spawn_slot(&self, env: Env, slot: f64, target: String, options: Raw) -> napi::Result<Raw> {
        self.host.spawn_slot(env.raw(), slot as u64, target, options.0).map(Raw)
    }

    /// `cancel`: a number naming the call for `cancelCall`.
    #[napi(
        ts_args_type = "id: number, method: string, args: unknown, timeout?: number | undefined | null, key?: string | undefined | null, cancel?: number | undefined | null, retries?: number | undefined | null",
        ts_return_type = "Promise<unknown>"
    )]
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &self,
        env: Env,
        id: f64,
        method: String,
        args: Raw,
        timeout: Option<f64>,
        key: Option<String>,
        cancel: Option<f64>,
        retries: Option<f64>,
    ) -> napi::Result<Raw> {
        let options = host::CallArgs { pool: false, timeout, key, retries, cancel: cancel.map(|c| c as u64) };
        self.host.call(env.raw(), id as u64, method, args.0, options).map(Raw)
    }

    // ---- pools ----

    /// A pool of `target`; with `slot`, of the JS runtime attached to it (and more like it).
    #[napi(ts_args_type = "slot: number | undefined | null, target: string, options: unknown", ts_return_type = "Promise<number>")]
    pub fn pool(&self, env: Env, slot: Option<f64>, target: String, options: Raw) -> napi::Result<Raw> {
        self.host.pool(env.raw(), slot.map(|s| s as u64), target, options.0).map(Raw)
    }

    #[napi(
        ts_args_type = "pool: number, method: string, args: unknown, timeout?: number | undefined | null, key?: string | undefined | null, cancel?: number | undefined | null, retries?: number | undefined | null",
        ts_return_type = "Promise<unknown>"
    )]
    #[allow(clippy::too_many_arguments)]
    pub fn pool_call(
        &self,
        env: Env,
        pool: f64,
        method: String,
        args: Raw,
        timeout: Option<f64>,
        key: Option<String>,
        cancel: Option<f64>,
        retries: Option<f64>,
    ) -> napi::Result<Raw> {
        let options = host::CallArgs { pool: true, timeout, key, retries, cancel: cancel.map(|c| c as u64) };
        self.host.call(env.raw(), pool as u64, method, args.0, options).map(Raw)
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn pool_size(&self, env: Env, pool: f64) -> napi::Result<Raw> {
        self.host.pool_size(env.raw(), pool as u64).map(Raw)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn pool_scale(&self, env: Env, pool: f64, size: f64) -> napi::Result<Raw> {
        self.host.pool_scale(env.raw(), pool as u64, size.max(0.0) as usize).map(Raw)
    }

    #[napi(ts_return_type = "Promise<object>")]
    pub fn pool_metrics(&self, env: Env, pool: f64) -> napi::Result<Raw> {
        self.host.pool_metrics(env.raw(), pool as u64).map(Raw)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn pool_drain(&self, env: Env, pool: f64) -> napi::Result<Raw> {
        self.host.pool_drain(env.raw(), pool as u64).map(Raw)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn pool_destroy(&self, env: Env, pool: f64) -> napi::Result<Raw> {
        self.host.pool_destroy(env.raw(), pool as u64).map(Raw)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn kill(&self, env: Env, id: f64) -> napi::Result<Raw> {
        self.host.kill(env.raw(), id as u64).map(Raw)
    }

    #[napi(ts_return_type = "Promise<object[]>")]
    pub fn list_processes(&self, env: Env) -> napi::Result<Raw> {
        self.host.list(env.raw()).map(Raw)
    }

    #[napi(ts_return_type = "Promise<object>")]
    pub fn get_process(&self, env: Env, id: f64) -> napi::Result<Raw> {
        self.host.get(env.raw(), id as u64).map(Raw)
    }

    #[napi(ts_return_type = "Promise<object>")]
    pub fn get_health(&self, env: Env, id: f64) -> napi::Result<Raw> {
        self.host.health(env.raw(), id as u64).map(Raw)
    }

    #[napi(ts_return_type = "Promise<object>")]
    pub fn get_metrics(&self, env: Env, id: f64) -> napi::Result<Raw> {
        self.host.metrics(env.raw(), id as u64).map(Raw)
    }

    /// The heap limit in bytes for a JS worker thread started with these `spawn` or `pool`
    /// options (`resources.maxMemory`, else the manager's); throws the core's ConfigError for bad options.
    #[napi(ts_args_type = "kind: 'spawn' | 'pool', options: object", ts_return_type = "number | null")]
    pub fn heap_limit(&self, env: Env, kind: String, options: Raw) -> napi::Result<Option<f64>> {
        self.host.heap_limit(env.raw(), &kind, options.0).map(|b| b.map(|b| b as f64)).map_err(|e| throw(&env, e))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown(&self, env: Env) -> napi::Result<Raw> {
        self.host.shutdown(env.raw()).map(Raw)
    }

    /// Serves the control socket (the `titan-pm` CLI's way in) at `path`, else core's default.
    #[napi]
    pub fn serve_control(&self, env: Env, path: Option<String>) -> napi::Result<NativeControlServer> {
        self.host.serve_control(env.raw(), path).map(|inner| NativeControlServer { inner }).map_err(|e| throw(&env, e))
    }
}

/// A running control server (core's), wrapped by the TypeScript `ControlServer`.
#[napi]
pub struct NativeControlServer {
    inner: titan_pm::control::ControlServer,
}

#[napi]
impl NativeControlServer {
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.inner.path().display().to_string()
    }

    /// Stops accepting connections and removes the socket file.
    #[napi]
    pub fn close(&self) {
        self.inner.close()
    }

    /// Whether a client ran `titan-pm stop` and the manager has shut down.
    #[napi]
    pub fn is_shutdown_requested(&self) -> bool {
        self.inner.is_shutdown_requested()
    }
}

/// Every option path of `kind` (`manager`, `spawn`, `pool`, `call`, `supervisor` or `child`) the
/// core accepts, as TypeScript spells it (`autoScale.targetCPU`): what the TS types are checked against.
#[napi(ts_args_type = "kind: 'manager' | 'spawn' | 'pool' | 'call' | 'supervisor' | 'child'")]
pub fn option_schema(kind: String) -> napi::Result<Vec<String>> {
    options::schema(&kind).map_err(|e| napi::Error::from_reason(e.to_string()))
}

/// Checks a `withOptions({...})` object (without `signal`) by the core's call-option
/// reader: a bad `retries`, `timeout` or an unknown key throws its `ConfigError` at once.
#[napi(ts_args_type = "options: object")]
pub fn check_call_options(env: Env, options: Raw) -> napi::Result<()> {
    options::call_object(env.raw(), options.0).map(|_| ()).map_err(|e| throw(&env, e))
}

/// Every process event name (`spawn`, `crash`, `memory`, ...): what the TS `EventName` type is checked against.
#[napi]
pub fn event_names() -> Vec<&'static str> {
    titan_pm::EventKind::NAMES.to_vec()
}

/// A duration string (`"250ms"`, `"30s"`, `"5m"`, `"1h"`) in ms, read by the core's one
/// parser: the worker-side parts of method policies (a `@Cache` with a key function) use it.
#[napi]
pub fn duration_ms(text: String) -> napi::Result<f64> {
    titan_pm::dialect::parse_duration(&text).map(|d| d.as_secs_f64() * 1000.0).map_err(napi::Error::from_reason)
}

/// Cancels the call started with `cancel: token` (its AbortSignal fired).
#[napi]
pub fn cancel_call(token: f64) {
    host::cancel_call(token as u64);
}

// ---- worker runtimes inside a host (isolation worker / none) ----

/// A new slot for a worker runtime to attach to.
#[napi]
pub fn new_slot() -> f64 {
    agent::new_slot() as f64
}

/// The runtime for `slot` is ready: `dispatch(kind, token, method, payload, extra)` runs requests
/// on this JS thread. `weak`: do not keep this thread's event loop alive.
#[napi(ts_args_type = "slot: number, description: object, dispatch: (kind: number, token: number, method: string | null, payload: unknown, extra: any, maxRunning: number) => void, weak: boolean")]
pub fn attach(env: Env, slot: f64, description: Raw, dispatch: Raw, weak: bool) -> napi::Result<()> {
    let slot = agent::slot(slot as u64).ok_or_else(|| napi::Error::from_reason("no such slot"))?;
    let description = agent::description_from_js(env.raw(), description.0)?;
    slot.attach(Ok(Port::new(env.raw(), description, dispatch.0, weak)?));
    Ok(())
}

/// The runtime for `slot` could not load its worker.
#[napi]
pub fn attach_failed(slot: f64, message: String) {
    if let Some(s) = agent::slot(slot as u64) {
        s.attach(Err(message));
    }
}

/// A line the worker thread of `slot` wrote on its stdout (or stderr): kept in its
/// process's log ring (`titan-pm logs`). Printing it is the caller's.
#[napi]
pub fn output_line(slot: f64, stderr: bool, line: String) {
    if let Some(s) = agent::slot(slot as u64) {
        s.output(stderr, &line);
    }
}

/// The runtime for `slot` exited (a worker thread's exit code).
#[napi]
pub fn port_closed(slot: f64, code: Option<f64>) {
    agent::drop_live(slot as u64);
    if let Some(s) = agent::slot(slot as u64) {
        s.closed(code.map(|c| c as i32));
    }
}

#[napi]
pub fn release_slot(slot: f64) {
    agent::release_slot(slot as u64);
}

// ---- a child worker process ----

static ENDPOINT: Mutex<Option<(Endpoint, String)>> = Mutex::new(None);

/// Takes a remote worker's dial flags (`--connect`, `--tls-*`, `--token`, `--name`) out of
/// `args` (core reads them into the environment); returns the rest.
#[napi]
pub fn take_worker_args(args: Vec<String>) -> napi::Result<Vec<String>> {
    titan_pm::transport::dial::DialOptions::take_args(&args).map_err(|e| napi::Error::from_reason(e.to_string()))
}

/// Reads (and removes) where to reach the host from the environment, before user code runs.
#[napi]
pub fn take_endpoint() -> napi::Result<()> {
    let e = Endpoint::from_env().map_err(|e| napi::Error::from_reason(e.to_string()))?;
    *ENDPOINT.lock().unwrap() = Some(e);
    Ok(())
}

/// Serves the loaded worker to the host on a thread of the agent's own; when the host
/// says stop (or goes away) the runtime is told to exit (`dispatch(EXIT, code)`).
#[napi(ts_args_type = "description: object, dispatch: (kind: number, token: number, method: string | null, payload: unknown, extra: any, maxRunning: number) => void")]
pub fn serve_child(env: Env, description: Raw, dispatch: Raw) -> napi::Result<()> {
    let (endpoint, secret) = ENDPOINT.lock().unwrap().take().ok_or_else(|| napi::Error::from_reason("takeEndpoint was not called"))?;
    let description = agent::description_from_js(env.raw(), description.0)?;
    let port: Arc<Port> = Port::new(env.raw(), description, dispatch.0, false)?;
    std::thread::Builder::new()
        .name("titan-pm-agent".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            let local = tokio::task::LocalSet::new();
            let handler = agent::handler_rc(JsHandler::ready(port.clone()));
            let result = local.block_on(&rt, titan_pm::agent::connect_and_serve(endpoint, &secret, handler));
            if let Err(e) = &result {
                eprintln!("titan-pm worker: {e}");
            }
            port.exit(if result.is_ok() { 0 } else { 1 });
            // If the JS thread is wedged, exit anyway.
            std::thread::sleep(std::time::Duration::from_secs(2));
            std::process::exit(if result.is_ok() { 0 } else { 1 });
        })
        .map_err(|e| napi::Error::from_reason(e.to_string()))?;
    Ok(())
}

// ---- what a worker runtime was given (processes, shared state) ----

/// Calls `method(...args)` of the process given to runtime `grant` (the INIT request's
/// last argument) as `process`; the outcome comes back to that runtime as `dispatch(REPLY, token,
/// null, valueOrError, ok)`. `timeout` in ms (null: the process's default); `trace` the current call's.
#[napi(ts_args_type = "grant: number, token: number, process: string, method: string, args: unknown[], timeout: number | null | undefined, trace: [string, string, string] | null | undefined")]
#[allow(clippy::too_many_arguments)]
pub fn grant_call(env: Env, grant: f64, token: f64, process: String, method: String, args: Raw, timeout: Option<f64>, trace: Option<Vec<String>>) -> napi::Result<()> {
    let args = convert::list_from_js(env.raw(), args.0).map_err(|u| throw(&env, errors::unsupported(env.raw(), "args", &u)))?;
    let timeout = match timeout {
        None => None,
        Some(t) => Some(host::ms_duration("timeout", t).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))?),
    };
    let trace = trace.and_then(|t| <[String; 3]>::try_from(t).ok());
    agent::grant_call(grant as u64, token as u64, &process, &method, args, timeout, trace).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))
}

/// A value handed to a shared-state operation on `property`, converted.
fn shared_value(env: &Env, property: &str, value: Raw) -> napi::Result<titan_pm::Value> {
    convert::from_js(env.raw(), value.0).map_err(|u| throw(env, errors::unsupported(env.raw(), property, &u)))
}

/// Reads a shared property of runtime `grant` (`initial` while it was never set, core's rule);
/// the value comes back as `dispatch(REPLY, token, null, valueOrError, ok)`.
#[napi(ts_args_type = "grant: number, token: number, property: string, initial: unknown")]
pub fn grant_shared_get(env: Env, grant: f64, token: f64, property: String, initial: Raw) -> napi::Result<()> {
    let v = shared_value(&env, &property, initial)?;
    agent::grant_shared_get(grant as u64, token as u64, &property, v).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))
}

/// Sets a shared property of runtime `grant`; the outcome comes back as a REPLY (as for `grantSharedGet`).
#[napi(ts_args_type = "grant: number, token: number, property: string, value: unknown")]
pub fn grant_shared_set(env: Env, grant: f64, token: f64, property: String, value: Raw) -> napi::Result<()> {
    let v = shared_value(&env, &property, value)?;
    agent::grant_shared_set(grant as u64, token as u64, &property, v).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))
}

/// Adds `delta` (atomic) to a shared property of runtime `grant`; the new value comes back as a REPLY.
#[napi(ts_args_type = "grant: number, token: number, property: string, delta: unknown")]
pub fn grant_shared_add(env: Env, grant: f64, token: f64, property: String, delta: Raw) -> napi::Result<()> {
    let v = shared_value(&env, &property, delta)?;
    agent::grant_shared_add(grant as u64, token as u64, &property, v).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))
}

/// One instance's view of a @SharedState property: core's write rule (`titan_pm::agent::SharedView`:
/// a numeric write adds its difference, anything else is a set, replies fold in the adds in flight);
/// `given.ts` only converts.
#[napi]
pub struct NativeSharedView {
    view: titan_pm::agent::SharedView,
}

#[napi]
impl NativeSharedView {
    #[napi(constructor, ts_args_type = "property: string, initial: unknown")]
    pub fn new(env: Env, property: String, initial: Raw) -> napi::Result<Self> {
        let initial = convert::from_js(env.raw(), initial.0).map_err(|u| throw(&env, errors::unsupported(env.raw(), &property, &u)))?;
        Ok(NativeSharedView { view: titan_pm::agent::SharedView::new(property, initial) })
    }

    /// The view (throws an earlier operation's failure, once).
    #[napi(ts_return_type = "unknown")]
    pub fn read(&self, env: Env) -> napi::Result<Raw> {
        let v = self.view.read().map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))?;
        convert::to_js(env.raw(), &v).map(Raw)
    }

    /// Writes `value` through runtime `grant`'s shared state.
    #[napi(ts_args_type = "grant: number, value: unknown")]
    pub fn write(&self, env: Env, grant: f64, value: Raw) -> napi::Result<()> {
        let v = convert::from_js(env.raw(), value.0).map_err(|u| throw(&env, errors::unsupported(env.raw(), self.view.property(), &u)))?;
        agent::shared_write(&self.view, grant as u64, v).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))
    }

    /// Seeds the host's value if no instance did and loads it; the view comes as REPLY `token`.
    #[napi(ts_args_type = "grant: number, token: number")]
    pub fn load(&self, env: Env, grant: f64, token: f64) -> napi::Result<()> {
        agent::shared_load(&self.view, grant as u64, token as u64).map_err(|e| throw(&env, errors::to_js(env.raw(), &e)))
    }
}

// ---- replies from a worker runtime ----

/// Answers request `token` with `value` (a value it cannot send fails the call instead).
#[napi(ts_args_type = "token: number, value: unknown")]
pub fn settle(env: Env, token: f64, value: Raw) {
    agent::settle(env.raw(), token as u64, value.0);
}

/// Answers request `token` with an error `{kind, type, message, stack, code, available}`.
#[napi(ts_args_type = "token: number, error: object")]
pub fn fail(env: Env, token: f64, error: Raw) {
    agent::fail(token as u64, agent::error_info_from_js(env.raw(), error.0));
}
