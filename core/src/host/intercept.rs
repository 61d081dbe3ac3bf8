//! The seam the testing module (above the host) plugs into: an [`Interceptor`]
//! set in [`ManagerConfig::interceptor`](super::ManagerConfig) sees every spawn,
//! call, kill and lifecycle event, may fail a spawn or a call before it runs,
//! and may answer `get_health`/`get_metrics` in the worker's place. Without one
//! (production), each seam is one `Option` check: nothing is recorded, nothing allocated.

use crate::error::Result;
use crate::host::metrics::ProcessMetrics;
use crate::protocol::HealthReport;
use crate::value::Value;

use super::Event;

/// What a test harness hooks into the engine. Every method runs on the engine thread; keep them short.
pub trait Interceptor: Send + Sync + 'static {
    /// Before a spawn of a process named `names` (the spawn's name, then the worker's
    /// declared name once it has described itself): an error fails the spawn with it.
    fn before_spawn(&self, names: &[&str]) -> Result<()>;
    /// A spawn succeeded.
    fn spawned(&self, process_id: u64, process_class: &str);
    /// Before a call of `method` on a process called `names` (its listed name, then the
    /// name its class declares): an error fails the call with it (the worker is not asked).
    fn before_call(&self, process_id: u64, names: &[&str], method: &str) -> Result<()>;
    /// A call reached its end (`before_call` errors included).
    fn called(&self, process_id: u64, method: &str, outcome: &Result<Value>);
    /// `kill(id)` was asked.
    fn killed(&self, process_id: u64);
    /// A pool was scaled to `size` (from `from`).
    fn scaled(&self, pool_id: u64, from: usize, size: usize);
    /// A lifecycle event (crash, restart, failed, exit ...), as it is emitted.
    fn event(&self, event: &Event);
    /// An event of a service above the host (a supervisor's `SupervisorEvent`), as it is
    /// emitted; the host cannot name its type, the harness downcasts it.
    fn service_event(&self, _service_id: u64, _event: &dyn std::any::Any) {}
    /// A health report to give in the worker's place (`get_health`, the periodic probe, pools).
    fn health(&self, process_id: u64) -> Option<HealthReport>;
    /// The metrics to report for a process, given what was measured (`real`).
    fn metrics(&self, process_id: u64, real: ProcessMetrics) -> ProcessMetrics;
}
