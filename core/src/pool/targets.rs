//! What a target text names, in one place for every control operation and the HTTP gateway:
//! `""` every process; a number: the process, or the pool, with that id (ids
//! are unique across both); `pool:ID` the pool; otherwise a name: the pool of
//! that name, else every process of that name. Unknown targets are errors
//! naming them.
//!
//! [`resolve`] reads the processes and pools in one engine job;
//! [`call_value`] resolves a target and makes the call in one engine job: the
//! name is read against the processes and pools live at that moment (nothing
//! is cached, so a process that died or a pool destroyed is never called
//! through a stale answer), and the call costs one hop to the engine.

use crate::error::{Error, Result};
use crate::host::engine::Engine;
use crate::host::{CallOptions, ProcessInfo, ProcessManager};
use crate::pool::{runtime, PoolInfo};
use crate::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Processes(Vec<u64>),
    Pool(PoolInfo),
}

/// What `target` names now (one engine job).
pub async fn resolve(pm: &ProcessManager, target: &str) -> Result<Resolved> {
    let target = target.to_string();
    pm.exec(move |engine| async move { resolve_on(&engine, &target) }).await
}

/// [`resolve_in`] against the engine's live processes and pools (on the engine's thread).
fn resolve_on(engine: &Engine, target: &str) -> Result<Resolved> {
    let pools: Vec<PoolInfo> = engine.services_of::<runtime::Pool>().iter().map(|p| p.info()).collect();
    resolve_in(target, &engine.list(), &pools)
}

pub fn resolve_in(target: &str, processes: &[ProcessInfo], pools: &[PoolInfo]) -> Result<Resolved> {
    let target = target.trim();
    if target.is_empty() {
        return Ok(Resolved::Processes(processes.iter().map(|p| p.process_id).collect()));
    }
    let pool_by_id = |id: u64| pools.iter().find(|p| p.pool_id == id).cloned();
    if let Some(id) = target.strip_prefix("pool:") {
        let id: u64 = id.parse().map_err(|_| Error::Config(format!("bad pool id {id:?} (expected pool:NUMBER)")))?;
        return pool_by_id(id).map(Resolved::Pool).ok_or(Error::NotFound { what: "pool", id });
    }
    if let Ok(id) = target.parse::<u64>() {
        if processes.iter().any(|p| p.process_id == id) {
            return Ok(Resolved::Processes(vec![id]));
        }
        return pool_by_id(id).map(Resolved::Pool).ok_or(Error::NotFound { what: "process or pool", id });
    }
    if let Some(pool) = pools.iter().find(|p| p.name == target) {
        return Ok(Resolved::Pool(pool.clone()));
    }
    let ids: Vec<u64> = processes.iter().filter(|p| p.name == target).map(|p| p.process_id).collect();
    if ids.is_empty() {
        let mut names: Vec<&str> = processes.iter().map(|p| p.name.as_str()).chain(pools.iter().map(|p| p.name.as_str())).collect();
        names.sort();
        names.dedup();
        return Err(Error::Config(format!("no process or pool named {target:?} (running: {})", names.join(", "))));
    }
    Ok(Resolved::Processes(ids))
}

/// Why a call through a target failed: the target names nothing, names several
/// processes (a call needs one, or a pool), or the call itself failed.
#[derive(Debug)]
pub enum CallFailure {
    Unresolved(Error),
    Several(usize),
    Call(Error),
}

/// Calls `method` of what `target` names (a pool, or exactly one process) with
/// `options`, resolving the target and calling in the same engine job. The
/// caller's current span (if any) becomes the call's parent. Dropping the
/// returned future cancels the call.
pub async fn call_value(pm: &ProcessManager, target: &str, method: &str, args: Vec<Value>, options: CallOptions) -> std::result::Result<Value, CallFailure> {
    let (target, method) = (target.to_string(), method.to_string());
    let parent = crate::policy::trace::current();
    let work = pm.exec_with(true, move |engine| async move {
        let resolved = match resolve_on(&engine, &target) {
            Ok(r) => r,
            Err(e) => return Ok(Err(CallFailure::Unresolved(e))),
        };
        let called = match resolved {
            Resolved::Pool(p) => match runtime::pool(&engine, p.pool_id) {
                Ok(pool) => pool.call(method, args, options, parent).await,
                Err(e) => Err(e),
            },
            Resolved::Processes(ids) if ids.len() == 1 => engine.call(ids[0], method, args, options, parent).await,
            Resolved::Processes(ids) => return Ok(Err(CallFailure::Several(ids.len()))),
        };
        Ok(called.map_err(CallFailure::Call))
    });
    work.await.unwrap_or_else(|e| Err(CallFailure::Call(e)))
}

/// The processes a target names (a pool's members for a pool).
pub async fn processes(pm: &ProcessManager, target: &str) -> Result<Vec<u64>> {
    Ok(match resolve(pm, target).await? {
        Resolved::Processes(ids) => ids,
        Resolved::Pool(p) => p.members,
    })
}

/// The pool a target names.
pub async fn pool(pm: &ProcessManager, target: &str) -> Result<PoolInfo> {
    match resolve(pm, target).await? {
        Resolved::Pool(p) => Ok(p),
        Resolved::Processes(_) => Err(Error::Config(format!("{target:?} is a process, not a pool"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Isolation;
    use crate::state::ProcessState;
    use crate::transport::Transport;

    fn process(id: u64, name: &str) -> ProcessInfo {
        ProcessInfo {
            process_id: id,
            name: name.into(),
            pid: 100 + id as u32,
            state: ProcessState::Running,
            restarts: 0,
            isolation: Isolation::Child,
            transport: Transport::Ipc,
        }
    }

    #[test]
    fn targets_name_processes_and_pools() {
        let processes = [process(1, "api"), process(3, "calc"), process(4, "calc"), process(5, "api")];
        let pool = PoolInfo { pool_id: 2, name: "calc".into(), target: "w".into(), size: 2, members: vec![3, 4], state: "running" };
        let pools = [pool.clone()];
        let r = |t: &str| resolve_in(t, &processes, &pools);
        assert_eq!(r("").unwrap(), Resolved::Processes(vec![1, 3, 4, 5]));
        assert_eq!(r("1").unwrap(), Resolved::Processes(vec![1]));
        assert_eq!(r("2").unwrap(), Resolved::Pool(pool.clone()));
        assert_eq!(r("pool:2").unwrap(), Resolved::Pool(pool.clone()));
        assert_eq!(r("calc").unwrap(), Resolved::Pool(pool));
        assert_eq!(r("api").unwrap(), Resolved::Processes(vec![1, 5]));
        assert!(r("9").unwrap_err().to_string().contains("9"));
        assert!(r("pool:x").unwrap_err().to_string().contains("bad pool id"));
        let e = r("web").unwrap_err().to_string();
        assert!(e.contains("no process or pool named \"web\" (running: api, calc)"), "{e}");
    }
}
