//! Writing a worker in Rust: [`WorkerDef`] collects typed async methods, an
//! optional init, health check and shutdown hooks, and is the [`Handler`] the
//! agent serves. Arguments arrive as the method's tuple type through serde.
//!
//! ```
//! use titan_pm::agent::{WorkerDef, WorkerError};
//! let def = WorkerDef::new("calculator", "1.0.0")
//!     .method("add", |(a, b): (i64, i64)| async move { Ok(a + b) })
//!     .method("div", |(a, b): (i64, i64)| async move {
//!         if b == 0 { return Err(WorkerError::new("ZeroDivisionError", "division by zero")); }
//!         Ok(a / b)
//!     });
//! assert_eq!(def.method_names(), vec!["add", "div"]);
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CallContext, Handler};
use crate::error::{Error, Result as TitanResult};
use crate::policy::method::{Cache, CircuitBreaker, Idempotent, MethodPolicies, Metric, RateLimit, SelfHeal, Validate};
use crate::protocol::{
    CompensationInfo, Description, ErrorInfo, ErrorInfoKind, HealthReport, MethodInfo, StageContext, StageInfo, StageOptions, WorkflowInfo,
};
use crate::value::{self, Value};

/// An error a Rust worker method raises: a type name (as the caller sees it) and a message.
#[derive(Debug, Clone)]
pub struct WorkerError {
    pub type_name: String,
    pub message: String,
}

impl WorkerError {
    pub fn new(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        WorkerError { type_name: type_name.into(), message: message.into() }
    }
}

impl From<String> for WorkerError {
    fn from(message: String) -> Self {
        WorkerError::new("Error", message)
    }
}

/// A titan-pm error inside a worker (a call to a process it was given failed,
/// say) raised on to its caller under the error's class name (`CallTimeoutError`, ...).
impl From<crate::error::Error> for WorkerError {
    fn from(e: crate::error::Error) -> Self {
        WorkerError::new(e.class_name(), e.to_string())
    }
}

impl From<&str> for WorkerError {
    fn from(message: &str) -> Self {
        WorkerError::new("Error", message)
    }
}

type MethodFn = Rc<dyn Fn(Vec<Value>) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>>>;
type InitFn = Rc<dyn Fn(Value) -> LocalBoxFuture<'static, Result<(), WorkerError>>>;
type HealthFn = Rc<dyn Fn() -> LocalBoxFuture<'static, HealthReport>>;
type HookFn = Rc<dyn Fn() -> LocalBoxFuture<'static, ()>>;

/// A Rust worker: name, version and its public methods.
#[derive(Clone)]
pub struct WorkerDef {
    name: String,
    version: String,
    methods: BTreeMap<String, MethodFn>,
    init: Option<InitFn>,
    health: Option<HealthFn>,
    shutdown: Vec<HookFn>,
    /// Set once a stage is declared: the worker is a workflow class.
    workflow: Option<WorkflowInfo>,
    capabilities: super::Capabilities,
    policies: BTreeMap<String, MethodPolicies>,
}

impl WorkerDef {
    pub fn new(name: &str, version: &str) -> Self {
        WorkerDef {
            name: name.into(),
            version: version.into(),
            methods: BTreeMap::new(),
            init: None,
            health: None,
            shutdown: Vec::new(),
            workflow: None,
            capabilities: super::Capabilities::new(),
            policies: BTreeMap::new(),
        }
    }

    /// A workflow stage: a public method named `name` that gets `(input, context)`:
    /// the run's input for a stage without dependencies, else the results so far by
    /// stage name (a map), and the run's [`StageContext`] (its `idempotency_key` is
    /// `runId/stage`). Declaring a stage makes the worker a workflow class.
    ///
    /// ```
    /// use titan_pm::agent::WorkerDef;
    /// use titan_pm::workflow::StageOptions;
    /// use serde_json::{json, Value};
    /// let def = WorkerDef::new("order", "1.0.0")
    ///     .stage("reserve", &[], StageOptions::default(), |order: Value, _ctx| async move { Ok(json!({"held": order})) })
    ///     .stage("charge", &["reserve"], StageOptions { retries: 3, ..Default::default() },
    ///            |done: Value, _ctx| async move { Ok(done["reserve"].clone()) })
    ///     .compensate("reserve", |_result, _error, _ctx| async move { Ok(()) });
    /// assert_eq!(def.method_names(), ["charge", "reserve", "reserve:compensate"]);
    /// ```
    pub fn stage<I, R, F, Fut>(mut self, name: &str, depends_on: &[&str], options: StageOptions, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: Fn(I, StageContext) -> Fut + 'static,
        Fut: Future<Output = Result<R, WorkerError>> + 'static,
    {
        let info = StageInfo {
            name: name.to_string(),
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
            timeout_ms: options.timeout.map(|t| t.as_millis().max(1) as u64).unwrap_or(0),
            retries: options.retries,
            parallel: options.parallel,
            method: name.to_string(),
        };
        self.workflow.get_or_insert_with(WorkflowInfo::default).stages.push(info);
        self.method(name, move |(input, ctx): (I, StageContext)| f(input, ctx))
    }

    /// The compensation of `stage`, a public method `"{stage}:compensate"` that gets
    /// `(result, error, context)`: the stage's result (null for the stage that failed
    /// and for stages cancelled mid-flight) and its error (null for a completed stage).
    pub fn compensate<F, Fut>(mut self, stage: &str, f: F) -> Self
    where
        F: Fn(serde_json::Value, Option<serde_json::Value>, StageContext) -> Fut + 'static,
        Fut: Future<Output = Result<(), WorkerError>> + 'static,
    {
        let method = format!("{stage}:compensate");
        let info = CompensationInfo { stage: stage.to_string(), method: method.clone() };
        self.workflow.get_or_insert_with(WorkflowInfo::default).compensations.push(info);
        self.method(&method, move |(result, error, ctx): (serde_json::Value, Option<serde_json::Value>, StageContext)| f(result, error, ctx))
    }

    /// Every policy of `method` at once (replaces what it had); checked by [`build`](Self::build).
    pub fn policies(mut self, method: &str, p: MethodPolicies) -> Self {
        self.policies.insert(method.to_string(), p);
        self
    }

    fn policy(mut self, method: &str, f: impl FnOnce(&mut MethodPolicies)) -> Self {
        f(self.policies.entry(method.to_string()).or_default());
        self
    }

    /// `@RateLimit` on `method`.
    pub fn rate_limit(self, method: &str, r: RateLimit) -> Self {
        self.policy(method, |p| p.rate_limit = Some(r))
    }
    /// `@Cache` on `method`.
    pub fn cache(self, method: &str, c: Cache) -> Self {
        self.policy(method, |p| p.cache = Some(c))
    }
    /// `@Validate` on `method`: a JSON Schema for its first argument, checked on the host.
    pub fn validate(self, method: &str, json_schema: serde_json::Value) -> Self {
        let schema = value::to_value(&json_schema).unwrap_or(Value::Null);
        self.policy(method, |p| p.validate = Some(Validate { json_schema: Some(schema), has_validator: false }))
    }
    /// `@Trace` on `method`.
    pub fn trace(self, method: &str) -> Self {
        self.policy(method, |p| p.trace = true)
    }
    /// `@Metric(name)` on `method` (`None`: the method's name).
    pub fn metric(self, method: &str, name: Option<&str>) -> Self {
        self.policy(method, |p| p.metric = Some(Metric { name: name.map(String::from) }))
    }
    /// `@CircuitBreaker` on `method`.
    pub fn circuit_breaker(self, method: &str, b: CircuitBreaker) -> Self {
        self.policy(method, |p| p.circuit_breaker = Some(b))
    }
    /// `@Idempotent` on `method`.
    pub fn idempotent(self, method: &str, i: Idempotent) -> Self {
        self.policy(method, |p| p.idempotent = Some(i))
    }
    /// `@SelfHeal` on `method`.
    pub fn self_heal(self, method: &str, h: SelfHeal) -> Self {
        self.policy(method, |p| p.self_heal = Some(h))
    }

    /// Checks the declared policies: each names a method of this worker and has valid
    /// options; the error names the option (`methods.add.rateLimit.rps: must be > 0, not 0`).
    pub fn build(self) -> TitanResult<Self> {
        for (method, p) in &self.policies {
            if !self.methods.contains_key(method) {
                return Err(Error::Config(format!("methods.{method}: policies for a method this worker does not have")));
            }
            p.check(method)?;
            if let Some(f) = p.circuit_breaker.as_ref().and_then(|b| b.fallback.as_ref()) {
                if !self.methods.contains_key(f) {
                    return Err(Error::Config(format!("methods.{method}.circuitBreaker.fallback: no method {f:?} in this worker")));
                }
            }
        }
        Ok(self)
    }

    /// A public method. `A` is the argument tuple (`()`, `(T,)`, `(T, U)`, ...).
    pub fn method<A, R, F, Fut>(mut self, name: &str, f: F) -> Self
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: Fn(A) -> Fut + 'static,
        Fut: Future<Output = Result<R, WorkerError>> + 'static,
    {
        let f = Rc::new(f);
        let method: MethodFn = Rc::new(move |args: Vec<Value>| {
            let f = f.clone();
            Box::pin(async move {
                let args = if args.is_empty() { Value::Null } else { Value::List(args) };
                let args: A = value::from_value(args)
                    .map_err(|e| ErrorInfo::remote("TypeError", format!("bad arguments: {e}")))?;
                let result = f(args).await.map_err(|e| ErrorInfo::remote(e.type_name, e.message))?;
                value::to_value(&result)
                    .map_err(|e| ErrorInfo::new(ErrorInfoKind::Serialization, "result", e.to_string()))
            })
        });
        self.methods.insert(name.to_string(), method);
        self
    }

    /// Runs with the spawn dependencies (a map) before the first call; an error fails the spawn.
    pub fn on_init<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Value) -> Fut + 'static,
        Fut: Future<Output = Result<(), WorkerError>> + 'static,
    {
        self.init = Some(Rc::new(move |deps| Box::pin(f(deps))));
        self
    }

    pub fn health_check<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = HealthReport> + 'static,
    {
        self.health = Some(Rc::new(move || Box::pin(f())));
        self
    }

    pub fn on_shutdown<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.shutdown.push(Rc::new(move || Box::pin(f())));
        self
    }

    /// What the host gives this worker at init (processes it may call, its shared
    /// state): clone it into methods; it is filled before `init` runs.
    pub fn capabilities(&self) -> super::Capabilities {
        self.capabilities.clone()
    }

    pub fn method_names(&self) -> Vec<&str> {
        self.methods.keys().map(|k| k.as_str()).collect()
    }

    /// Serves this worker as an executable target started by a titan-pm host
    /// (after [`build`](Self::build): invalid policies end it with the error).
    pub fn run(self) -> ! {
        let def = match self.build() {
            Ok(def) => def,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        };
        super::run_executable(move || Rc::new(def))
    }
}

impl Handler for WorkerDef {
    fn describe(&self) -> Description {
        Description {
            name: self.name.clone(),
            version: self.version.clone(),
            methods: self
                .methods
                .keys()
                .map(|name| MethodInfo { policies: self.policies.get(name).cloned().unwrap_or_default(), ..MethodInfo::new(name.clone()) })
                .collect(),
            pid: std::process::id(),
            runtime: "rust".into(),
            has_health_check: self.health.is_some(),
            health_interval_ms: 0,
            workflow: self.workflow.clone(),
        }
    }

    fn grant(&self, capabilities: super::Capabilities) {
        self.capabilities.replace(capabilities);
    }

    fn init(&self, dependencies: Value) -> LocalBoxFuture<'static, Result<(), ErrorInfo>> {
        let init = self.init.clone();
        Box::pin(async move {
            match init {
                Some(f) => f(dependencies).await.map_err(|e| ErrorInfo::new(ErrorInfoKind::Init, e.type_name, e.message)),
                None => Ok(()),
            }
        })
    }

    fn call(&self, method: &str, args: Vec<Value>, _ctx: CallContext) -> LocalBoxFuture<'static, Result<Value, ErrorInfo>> {
        match self.methods.get(method) {
            Some(f) => f(args),
            None => {
                let available = self.methods.keys().cloned().collect();
                let e = ErrorInfo::method_not_found(method, available);
                Box::pin(async move { Err(e) })
            }
        }
    }

    fn health(&self) -> Option<LocalBoxFuture<'static, HealthReport>> {
        self.health.as_ref().map(|f| f())
    }

    fn shutdown(&self) -> LocalBoxFuture<'static, ()> {
        let hooks = self.shutdown.clone();
        Box::pin(async move {
            for hook in hooks {
                hook().await;
            }
        })
    }
}
