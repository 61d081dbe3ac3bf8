//! Pools: several workers of one target behind one handle, with load balancing,
//! a bounded queue, replacement of dead workers, health-based and scheduled
//! recycling, auto-scaling and a circuit breaker. All of it runs on the engine
//! thread, so every front end gets the same behaviour.
//!
//! ```no_run
//! # async fn demo(pm: titan_pm::ProcessManager) -> titan_pm::Result<()> {
//! use titan_pm::pool::{PoolOptions, PoolSize, Strategy};
//! let pool = pm.pool("target/release/rust-calculator", PoolOptions {
//!     size: PoolSize::Fixed(4),
//!     strategy: Strategy::LeastConnections,
//!     ..PoolOptions::default()
//! }).await?;
//! assert_eq!(pool.call::<i64>("add", (1, 2)).await?, 3);
//! pool.scale(8).await?;
//! pool.destroy().await;
//! # Ok(()) }
//! ```

mod autoscale;
pub(crate) mod runtime;
pub(crate) use runtime::all_metrics;
mod strategy;
pub mod targets;

use std::time::Duration;

use tokio::sync::broadcast;

pub use autoscale::{scale_decision, AutoScale, Load};
pub use crate::policy::breaker::{Breaker, BreakerOptions, BreakerState};
pub use strategy::{adaptive_score, Balancer, Strategy, WorkerView};

use crate::error::Result;
use crate::host::{CallOptions, Latency, ProcessManager, SpawnOptions, Target};
use crate::value::{self, Value};

/// Calls pipelined to each busy member by default (see [`PoolOptions::pipeline`]).
pub const DEFAULT_PIPELINE: usize = 8;

/// How many workers: a number, or `Auto` (the CPU count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolSize {
    Fixed(usize),
    Auto,
}

impl PoolSize {
    pub fn resolve(self) -> usize {
        match self {
            PoolSize::Fixed(n) => n,
            PoolSize::Auto => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// Health probing of pool members.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolHealth {
    pub interval: Duration,
    /// A worker with this many failed probes in a row is replaced (after draining).
    pub unhealthy_threshold: u32,
}

impl Default for PoolHealth {
    fn default() -> Self {
        PoolHealth { interval: Duration::from_secs(10), unhealthy_threshold: 3 }
    }
}

/// When a worker is replaced (after draining, never mid-call).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recycle {
    pub max_requests: Option<u64>,
    pub max_lifetime: Option<Duration>,
    /// RSS in bytes.
    pub max_memory: Option<u64>,
}

#[derive(Clone)]
pub struct PoolOptions {
    pub size: PoolSize,
    pub strategy: Strategy,
    /// Calls one worker runs at once.
    pub concurrency: usize,
    /// Calls sent ahead to a busy worker beyond its `concurrency`, which wait in the
    /// worker (in order; it still runs at most `concurrency` at once) instead of in
    /// the pool's queue, so that it does not idle through a round trip; they count
    /// as queued for `max_queue_size`. A call goes to a member with a free running
    /// slot first, and is sent ahead only to a member whose calls take 2 ms or less
    /// on average (its latency divided by the call's turn in the member's line; for
    /// longer calls a round trip matters little, and a queued call then waits for
    /// the first member that frees up). 0: no pipelining.
    pub pipeline: usize,
    /// Calls that may wait for a free worker; beyond it `PoolBackpressure`.
    pub max_queue_size: usize,
    /// The default deadline of a pool call (else the manager's).
    pub request_timeout: Option<Duration>,
    /// A call whose worker crashed is retried on another worker up to this many times.
    pub retries: u32,
    /// Per-worker weights for the weighted strategies, by position; missing ones are 1.
    pub weights: Vec<u32>,
    pub auto_scale: Option<AutoScale>,
    pub circuit_breaker: Option<BreakerOptions>,
    pub health: Option<PoolHealth>,
    pub recycle: Recycle,
    /// How each worker is spawned (isolation, transport, dependencies, env, ...).
    pub spawn: SpawnOptions,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            size: PoolSize::Fixed(2),
            strategy: Strategy::default(),
            concurrency: 1,
            pipeline: DEFAULT_PIPELINE,
            max_queue_size: 100,
            request_timeout: None,
            retries: 0,
            weights: Vec::new(),
            auto_scale: None,
            circuit_breaker: None,
            health: None,
            recycle: Recycle::default(),
            spawn: SpawnOptions::default(),
        }
    }
}

/// Something that happened to a pool; `name()` is the event name front ends emit.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolEvent {
    Initialized { size: usize },
    Scaled { from: usize, to: usize },
    Drained,
    Destroyed,
    Failed { reason: String },
    WorkerSpawned { process_id: u64 },
    WorkerCrashed { process_id: u64 },
    WorkerReplaced { old: u64, new: u64 },
    WorkerUnhealthy { process_id: u64 },
    Breaker(BreakerState),
}

impl PoolEvent {
    pub fn name(&self) -> &'static str {
        match self {
            PoolEvent::Initialized { .. } => "pool:initialized",
            PoolEvent::Scaled { .. } => "pool:scaled",
            PoolEvent::Drained => "pool:drained",
            PoolEvent::Destroyed => "pool:destroyed",
            PoolEvent::Failed { .. } => "pool:failed",
            PoolEvent::WorkerSpawned { .. } => "worker:spawned",
            PoolEvent::WorkerCrashed { .. } => "worker:crashed",
            PoolEvent::WorkerReplaced { .. } => "worker:replaced",
            PoolEvent::WorkerUnhealthy { .. } => "worker:unhealthy",
            PoolEvent::Breaker(s) => s.event(),
        }
    }

    /// The event's fields as a map (`{from, to}`, `{processId}`, ...).
    pub fn data(&self) -> Value {
        let int = |n: u64| Value::Int(n as i64);
        let fields: Vec<(&str, Value)> = match self {
            PoolEvent::Initialized { size } => vec![("size", int(*size as u64))],
            PoolEvent::Scaled { from, to } => vec![("from", int(*from as u64)), ("to", int(*to as u64))],
            PoolEvent::Failed { reason } => vec![("reason", Value::Text(reason.clone()))],
            PoolEvent::WorkerSpawned { process_id }
            | PoolEvent::WorkerCrashed { process_id }
            | PoolEvent::WorkerUnhealthy { process_id } => vec![("processId", int(*process_id))],
            PoolEvent::WorkerReplaced { old, new } => vec![("old", int(*old)), ("new", int(*new))],
            PoolEvent::Drained | PoolEvent::Destroyed | PoolEvent::Breaker(_) => vec![],
        };
        Value::Map(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

/// A pool's numbers; latency in ms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolMetrics {
    pub size: usize,
    pub busy: usize,
    pub idle: usize,
    pub queue_length: usize,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency: Latency,
    pub state: &'static str,
    pub breaker: Option<BreakerState>,
    pub workers: Vec<PoolWorkerMetrics>,
    /// `@Metric` methods called through the pool.
    pub methods: Vec<crate::host::MethodMetrics>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolWorkerMetrics {
    pub process_id: u64,
    pub pid: u32,
    pub in_flight: usize,
    pub requests: u64,
    pub errors: u64,
    pub latency: Latency,
    pub cpu: f64,
    pub memory: u64,
}

/// One row of [`ProcessManager::pools`].
#[derive(Debug, Clone, PartialEq)]
pub struct PoolInfo {
    pub pool_id: u64,
    /// The members' `name` option, else the target's file stem.
    pub name: String,
    pub target: String,
    /// Serving members (not counting ones draining to leave).
    pub size: usize,
    /// Process ids of every member, draining ones included.
    pub members: Vec<u64>,
    pub state: &'static str,
}

/// A pool. Calls go to the worker the strategy picks; clone it freely.
/// Pools are built on the manager's processes: the manager's pool operations live here, above the host.
impl ProcessManager {
    /// Starts a pool of workers of `target` and waits until all of them are ready.
    pub async fn pool(&self, target: impl Into<Target>, options: PoolOptions) -> Result<PoolHandle> {
        let target = target.into();
        let (events, _) = broadcast::channel(1024);
        let sender = events.clone();
        let id = self.exec(move |engine| async move { runtime::start(&engine, target, options, sender).await }).await?;
        self.register_service(id, std::sync::Arc::new(events.clone()));
        Ok(PoolHandle { pm: self.clone(), id, options: CallOptions::default(), events })
    }

    /// Every live pool: id, name, size and members.
    pub async fn pools(&self) -> Vec<PoolInfo> {
        self.exec(|engine| async move { Ok(engine.services_of::<runtime::Pool>().iter().map(|p| p.info()).collect()) }).await.unwrap_or_default()
    }

    /// A handle to a live pool, by id (the manager owns its pools; bridges keep no registry of their own).
    pub fn pool_handle(&self, pool_id: u64) -> Result<PoolHandle> {
        let events = self.service(pool_id).and_then(|s| s.downcast::<broadcast::Sender<PoolEvent>>().ok());
        let events = events.ok_or(crate::Error::NotFound { what: "pool", id: pool_id })?;
        Ok(PoolHandle { pm: self.clone(), id: pool_id, options: CallOptions::default(), events: (*events).clone() })
    }
}

#[derive(Clone)]
pub struct PoolHandle {
    pub(crate) pm: ProcessManager,
    pub(crate) id: u64,
    pub(crate) options: CallOptions,
    pub(crate) events: broadcast::Sender<PoolEvent>,
}

impl PoolHandle {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A view whose calls use `options` (a deadline, a routing key for the hash strategies).
    pub fn with_options(&self, options: CallOptions) -> PoolHandle {
        PoolHandle { options, ..self.clone() }
    }

    pub async fn call<R: serde::de::DeserializeOwned>(&self, method: &str, args: impl serde::Serialize) -> Result<R> {
        let args = value::to_args(&args)?;
        value::from_value(self.call_value(method, args).await?)
    }

    pub async fn call_value(&self, method: &str, args: Vec<Value>) -> Result<Value> {
        let (id, method, options) = (self.id, method.to_string(), self.options.clone());
        // Dropping the returned future cancels the call, in the queue or in the worker.
        let parent = crate::policy::trace::current();
        self.pm.exec_with(true, move |engine| async move { runtime::pool(&engine, id)?.call(method, args, options, parent).await }).await
    }

    /// What the pool's workers say about themselves (a serving member's description).
    pub async fn describe(&self) -> Result<crate::protocol::Description> {
        let id = self.id;
        self.pm
            .exec(move |engine| async move {
                runtime::pool(&engine, id)?.description().ok_or(crate::error::Error::NotFound { what: "pool member", id })
            })
            .await
    }

    /// The number of members the pool is keeping (its target), including one being replaced
    /// or still starting; `metrics()` tells live from starting.
    pub async fn size(&self) -> Result<usize> {
        let id = self.id;
        self.pm.exec(move |engine| async move { Ok(runtime::pool(&engine, id)?.target_size()) }).await
    }

    /// Grows or shrinks to `n` workers; removed workers finish their calls first.
    pub async fn scale(&self, n: usize) -> Result<()> {
        let id = self.id;
        self.pm.exec(move |engine| async move { runtime::pool(&engine, id)?.scale(n).await }).await
    }

    pub async fn metrics(&self) -> Result<PoolMetrics> {
        let id = self.id;
        self.pm.exec(move |engine| async move { Ok(runtime::pool(&engine, id)?.metrics()) }).await
    }

    /// Rolling reload: each member in turn is replaced by a new worker (reading the
    /// target afresh, e.g. a new version of the file), which is ready before the
    /// old one leaves the rotation, finishes its calls and stops. No call fails.
    pub async fn reload(&self) -> Result<()> {
        let id = self.id;
        self.pm.exec(move |engine| async move { runtime::pool(&engine, id)?.reload(None).await }).await
    }

    /// Like [`reload`](Self::reload), with a new target and new member spawn
    /// options (the pool's own options, such as its strategy, stay).
    pub async fn reload_with(&self, target: impl Into<crate::host::Target>, spawn: SpawnOptions) -> Result<()> {
        let (id, target) = (self.id, target.into());
        self.pm.exec(move |engine| async move { runtime::pool(&engine, id)?.reload(Some((target, spawn))).await }).await
    }

    /// Finishes in-flight and queued calls and refuses new ones.
    pub async fn drain(&self) -> Result<()> {
        let id = self.id;
        self.pm.exec(move |engine| async move { runtime::pool(&engine, id)?.drain().await; Ok(()) }).await
    }

    /// Drains, then stops every worker.
    pub async fn destroy(&self) -> Result<()> {
        let id = self.id;
        let result = self.pm.exec(move |engine| async move { runtime::destroy(&engine, id).await }).await;
        self.pm.forget_service(id);
        result
    }

    pub fn events(&self) -> broadcast::Receiver<PoolEvent> {
        self.events.subscribe()
    }
}
