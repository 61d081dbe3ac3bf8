//! The process file (`titan.toml` read into a [`Value`]) and applying it.
//!
//! ```toml
//! [manager]                 # options::manager, as the API spells them
//! resources = { timeout = 5000 }
//!
//! [[process]]               # options::spawn, plus `script`
//! name = "api"
//! script = "./target/release/rust-calculator"
//!
//! [[pool]]                  # options::pool, plus `script`
//! name = "calc"
//! script = "./target/release/rust-calculator"
//! size = 3
//!
//! [[supervisor]]            # options::supervisor_tree; each child: `script` plus child options
//! name = "app"
//! strategy = "one-for-all"
//! children = [{ name = "db", script = "./db.py", critical = true }, { name = "api", script = "./api.js" }]
//!
//! [[workflow]]              # options::workflow, plus `script` (a workflow class)
//! name = "orders"
//! script = "./order_workflow.py"
//! retryBackoff = { initial = 200 }
//! ```
//!
//! Every entry goes through core's option readers, so an unknown key is an
//! error with its path (`pool[0] (calc): autoScale.targetCPUs: unknown option`).
//! A relative `script` is relative to the file's directory ([`resolve_scripts`]).
//! Names are unique across processes, pools and supervisors; `name` defaults to the
//! script's stem (a supervisor's is required). A supervisor's children are worker
//! files (nested supervisors are the API's); reloading a supervisor stops it and
//! starts it again (its children restart in order, as a restart of the supervisor
//! would: not rolling). A workflow entry loads its class as `pm.workflow` does (its
//! process is listed under the entry's name); runs go through the control socket
//! (`runWorkflow`, `titan-pm run NAME INPUT`) and are journaled where `[manager]
//! workflows` says. Reloading a workflow loads the new class, then the old process
//! drains and stops (runs already going finish there).
//!
//! [`Deployment::apply`] makes the manager match a file: new entries start,
//! changed ones are replaced rolling (a process: `restart_with` its new options,
//! a new instance ready before the old one drains and stops, the id kept; a pool: `reload_with` member by member, then
//! `scale`), removed ones stop gracefully, and with `reload_all` unchanged ones
//! are reloaded too (new code on disk). Changes to `[manager]` need a restart
//! of the manager: `apply` says so in its `warnings`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::host::{ManagerConfig, ProcessManager, SpawnOptions, Target};
use crate::options::{self, Dialect};
use crate::pool::PoolOptions;
use crate::supervise::SupervisorSpec;
use crate::value::Value;
use crate::workflow::{WorkflowHandle, WorkflowOptions};

use super::server::map;

/// One `[[process]]`, `[[pool]]`, `[[supervisor]]` or `[[workflow]]` entry, read and checked.
#[derive(Clone)]
pub struct Entry {
    pub name: String,
    pub script: String,
    pub kind: Kind,
    /// The entry as written (what a reload compares).
    pub raw: Value,
}

#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // a few per file, read once
pub enum Kind {
    Process(SpawnOptions),
    Pool(PoolOptions),
    Supervisor(SupervisorSpec),
    Workflow(WorkflowOptions),
}

impl Kind {
    fn word(&self) -> &'static str {
        match self {
            Kind::Process(_) => "process",
            Kind::Pool(_) => "pool",
            Kind::Supervisor(_) => "supervisor",
            Kind::Workflow(_) => "workflow",
        }
    }
}

/// A `[[supervisor]]` entry as `options::supervisor_tree` reads it: each child's
/// `script` becomes its `target`.
fn supervisor_tree_value(raw: &Value) -> Value {
    let Value::Map(fields) = raw else { return raw.clone() };
    let child = |c: &Value| match c {
        Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (if k == "script" { "target".to_string() } else { k.clone() }, v.clone())).collect()),
        other => other.clone(),
    };
    Value::Map(
        fields
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("children", Value::List(items)) => (k.clone(), Value::List(items.iter().map(child).collect())),
                _ => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

/// A whole file, read and checked.
pub struct ProcessFile {
    pub manager: ManagerConfig,
    /// `[manager]` as written.
    pub manager_raw: Value,
    pub entries: Vec<Entry>,
}

fn entries<'a>(v: &'a Value, key: &str) -> Result<&'a [Value]> {
    match v.get(key) {
        None => Ok(&[]),
        Some(Value::List(items)) => Ok(items),
        Some(other) => Err(Error::Config(format!("{key}: must be a list of tables ([[{key}]]), not {}", other.type_name()))),
    }
}

/// Reads a process file's `Value` (TypeScript spelling: camelCase, ms).
pub fn parse(v: &Value) -> Result<ProcessFile> {
    let Value::Map(top) = v else { return Err(Error::Config(format!("a process file must be a table, not {}", v.type_name()))) };
    if let Some((k, _)) = top.iter().find(|(k, _)| !matches!(k.as_str(), "manager" | "process" | "pool" | "supervisor" | "workflow")) {
        return Err(Error::Config(format!("{k}: unknown section (expected [manager], [[process]], [[pool]], [[supervisor]] or [[workflow]])")));
    }
    let manager_raw = v.get("manager").cloned().unwrap_or(Value::Map(vec![]));
    let manager = options::manager(&manager_raw, Dialect::Js, &|_| None).map_err(|e| Error::Config(format!("manager.{}", msg(e))))?;
    let mut out: Vec<Entry> = Vec::new();
    for key in ["process", "pool", "workflow"] {
        for (i, raw) in entries(v, key)?.iter().enumerate() {
            let at = |e: Error, name: &str| Error::Config(format!("{key}[{i}] ({name}): {}", msg(e)));
            let Value::Map(fields) = raw else { return Err(Error::Config(format!("{key}[{i}]: must be a table"))) };
            let script = match raw.get("script") {
                Some(Value::Text(s)) if !s.is_empty() => s.clone(),
                Some(_) => return Err(Error::Config(format!("{key}[{i}].script: must be a path"))),
                None => return Err(Error::Config(format!("{key}[{i}]: script is missing (the worker file to run)"))),
            };
            let mut name = match raw.get("name") {
                Some(Value::Text(n)) if !n.is_empty() => n.clone(),
                _ => crate::host::engine::default_name(&Target::Path(script.clone())),
            };
            let rest = Value::Map(fields.iter().filter(|(k, _)| k != "script").cloned().collect());
            let kind = match key {
                "process" => Kind::Process(options::spawn(&rest, Dialect::Js, &|_| None).map_err(|e| at(e, &name))?),
                "pool" => Kind::Pool(options::pool(&rest, Dialect::Js, &|_| None).map_err(|e| at(e, &name))?),
                _ => Kind::Workflow(options::workflow(&rest, Dialect::Js, &|_| None).map_err(|e| at(e, &name))?),
            };
            if out.iter().any(|e| e.name == name) {
                return Err(Error::Config(format!("{key}[{i}]: the name {name:?} is used twice (names are unique across processes, pools and supervisors)")));
            }
            // Members and processes carry the entry's name, so `ls`, `logs NAME` and `restart NAME` find them.
            let kind = match kind {
                Kind::Process(mut o) => {
                    o.name = Some(name.clone());
                    Kind::Process(o)
                }
                Kind::Pool(mut o) => {
                    o.spawn.name = Some(name.clone());
                    Kind::Pool(o)
                }
                Kind::Workflow(mut o) => {
                    o.spawn.name = Some(name.clone());
                    Kind::Workflow(o)
                }
                supervisor => supervisor,
            };
            out.push(Entry { name: std::mem::take(&mut name), script, kind, raw: raw.clone() });
        }
    }
    for (i, raw) in entries(v, "supervisor")?.iter().enumerate() {
        let name = match raw.get("name") {
            Some(Value::Text(n)) if !n.is_empty() => n.clone(),
            _ => return Err(Error::Config(format!("supervisor[{i}]: name is missing (it prefixes its children's names)"))),
        };
        let spec = options::supervisor_tree(&supervisor_tree_value(raw), Dialect::Js, &|_| None)
            .map_err(|e| Error::Config(format!("supervisor[{i}] ({name}): {}", msg(e))))?;
        if out.iter().any(|e| e.name == name) {
            return Err(Error::Config(format!("supervisor[{i}]: the name {name:?} is used twice")));
        }
        out.push(Entry { name, script: String::new(), kind: Kind::Supervisor(spec), raw: raw.clone() });
    }
    Ok(ProcessFile { manager, manager_raw, entries: out })
}

fn msg(e: Error) -> String {
    match e {
        Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// Makes every relative `script` absolute, relative to `dir` (the file's directory):
/// those of processes, pools, workflows and supervisors' children.
pub fn resolve_scripts(v: &mut Value, dir: &Path) {
    fn resolve(item: &mut Value, dir: &Path) {
        let Value::Map(fields) = item else { return };
        for (k, val) in fields.iter_mut() {
            match (k.as_str(), &mut *val) {
                ("script", Value::Text(s)) if Path::new(s.as_str()).is_relative() => *s = dir.join(&*s).display().to_string(),
                ("children", Value::List(children)) => children.iter_mut().for_each(|c| resolve(c, dir)),
                _ => {}
            }
        }
    }
    let Value::Map(top) = v else { return };
    for (key, list) in top.iter_mut() {
        if let ("process" | "pool" | "supervisor" | "workflow", Value::List(items)) = (key.as_str(), list) {
            items.iter_mut().for_each(|item| resolve(item, dir));
        }
    }
}

/// What a manager runs from process files: entry name -> (entry, process or pool id).
#[derive(Default)]
pub struct Deployment {
    running: BTreeMap<String, (Entry, u64)>,
    /// The loaded workflows of `[[workflow]]` entries, by entry name.
    workflows: BTreeMap<String, WorkflowHandle>,
    manager_raw: Option<Value>,
}

impl Deployment {
    /// Forgets entries a `kill`/`stop` of `target` ended (by name), so a later apply starts them again.
    pub(crate) fn forget_target(&mut self, target: &str) {
        self.running.remove(target);
        self.workflows.remove(target);
    }

    /// The workflow a `[[workflow]]` entry named `name` loaded.
    pub fn workflow(&self, name: &str) -> Result<WorkflowHandle> {
        self.workflows.get(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = self.workflows.keys().map(String::as_str).collect();
            let known = if names.is_empty() { "none: declare one with [[workflow]] in the process file".to_string() } else { names.join(", ") };
            Error::Config(format!("no workflow named {name:?} (declared: {known})"))
        })
    }

    /// Every loaded workflow with its entry name and process id, by name.
    pub fn workflows(&self) -> Vec<(String, u64, WorkflowHandle)> {
        self.workflows
            .iter()
            .map(|(name, h)| (name.clone(), self.running.get(name).map(|(_, id)| *id).unwrap_or(0), h.clone()))
            .collect()
    }

    /// Makes the manager match `file` (see the module guide). Nothing changes if the file has an error.
    pub async fn apply(&mut self, pm: &ProcessManager, file: &Value, reload_all: bool) -> Result<Value> {
        let parsed = parse(file)?;
        let mut warnings = Vec::new();
        match &self.manager_raw {
            None => self.manager_raw = Some(parsed.manager_raw.clone()),
            Some(old) if *old != parsed.manager_raw => warnings.push(
                "[manager] changed: manager options apply at start (titan-pm stop, then titan-pm start FILE)".to_string(),
            ),
            Some(_) => {}
        }
        let (mut started, mut reloaded, mut stopped, mut unchanged) = (vec![], vec![], vec![], vec![]);
        let live_processes: Vec<u64> = pm.list_processes().await.iter().map(|p| p.process_id).collect();
        let live_pools: Vec<u64> = pm.pools().await.iter().map(|p| p.pool_id).collect();
        let live_supervisor = |id: u64| pm.supervisor_handle(id).is_ok();
        // Removed entries first: their names may be reused.
        let wanted: Vec<&str> = parsed.entries.iter().map(|e| e.name.as_str()).collect();
        let gone: Vec<String> = self.running.keys().filter(|n| !wanted.contains(&n.as_str())).cloned().collect();
        for name in gone {
            let (entry, id) = self.running.remove(&name).expect("listed");
            self.workflows.remove(&name);
            stop(pm, &entry, id).await;
            stopped.push(name);
        }
        for entry in parsed.entries {
            let name = entry.name.clone();
            let old = self.running.get(&name).cloned();
            let alive = |id: u64| live_processes.contains(&id) || live_pools.contains(&id) || live_supervisor(id);
            match old {
                Some((old, id)) if alive(id) && old.kind.word() == entry.kind.word() => {
                    let same = old.raw == entry.raw;
                    if same && !reload_all {
                        unchanged.push(name);
                        continue;
                    }
                    let (id, workflow) = replace(pm, &old, id, &entry).await.map_err(|e| Error::Config(format!("{name}: {}", msg(e))))?;
                    if let Some(w) = workflow {
                        self.workflows.insert(name.clone(), w);
                    }
                    self.running.insert(name.clone(), (entry, id));
                    reloaded.push(name);
                }
                old => {
                    let (id, workflow) = start(pm, &entry).await.map_err(|e| Error::Config(format!("{name}: {}", msg(e))))?;
                    if let Some((old, old_id)) = old {
                        stop(pm, &old, old_id).await; // a process became a pool, or the other way round
                    }
                    match workflow {
                        Some(w) => self.workflows.insert(name.clone(), w),
                        None => self.workflows.remove(&name),
                    };
                    self.running.insert(name.clone(), (entry, id));
                    started.push(name);
                }
            }
        }
        let names = |v: Vec<String>| Value::List(v.into_iter().map(Value::Text).collect());
        Ok(map(vec![
            ("started", names(started)),
            ("reloaded", names(reloaded)),
            ("stopped", names(stopped)),
            ("unchanged", names(unchanged)),
            ("warnings", names(warnings)),
        ]))
    }
}

/// Starts an entry: its process, pool or supervisor id (a workflow's: its process's, and the loaded workflow).
async fn start(pm: &ProcessManager, entry: &Entry) -> Result<(u64, Option<WorkflowHandle>)> {
    match &entry.kind {
        Kind::Process(o) => Ok((pm.spawn(entry.script.as_str(), o.clone()).await?.id(), None)),
        Kind::Pool(o) => Ok((pm.pool(entry.script.as_str(), o.clone()).await?.id(), None)),
        Kind::Supervisor(spec) => Ok((pm.supervisor(spec.clone()).await?.id().await?, None)),
        Kind::Workflow(o) => {
            let w = pm.workflow(entry.script.as_str(), o.clone()).await?;
            let id = w.process().map(|p| p.id()).unwrap_or(0);
            Ok((id, Some(w)))
        }
    }
}

async fn stop(pm: &ProcessManager, entry: &Entry, id: u64) {
    let _ = match entry.kind {
        Kind::Process(_) | Kind::Workflow(_) => pm.stop(id).await,
        Kind::Pool(_) => match pm.pool_handle(id) {
            Ok(h) => h.destroy().await,
            Err(e) => Err(e),
        },
        Kind::Supervisor(_) => match pm.supervisor_handle(id) {
            Ok(h) => h.stop().await,
            Err(e) => Err(e),
        },
    };
}

/// The pool options that are not member spawn options, as written (what `reload_with` cannot change).
fn pool_own_options(raw: &Value) -> Value {
    let spawn_keys: Vec<String> = options::schema("spawn", Dialect::Js).expect("spawn is a schema kind").iter().map(|p| p.split('.').next().unwrap_or("").to_string()).collect();
    match raw {
        Value::Map(m) => Value::Map(m.iter().filter(|(k, _)| k != "script" && k != "size" && !spawn_keys.contains(k)).cloned().collect()),
        other => other.clone(),
    }
}

/// Replaces a running entry with its new version, rolling; returns the (maybe new)
/// id, and a workflow's newly loaded handle.
async fn replace(pm: &ProcessManager, old: &Entry, id: u64, new: &Entry) -> Result<(u64, Option<WorkflowHandle>)> {
    match &new.kind {
        Kind::Supervisor(_) => {
            // Children start in order and stop in reverse: a supervisor restarts whole.
            stop(pm, old, id).await;
            start(pm, new).await
        }
        Kind::Workflow(_) => {
            // The new class is loaded (and its stage graph checked) before the old process drains.
            let fresh = start(pm, new).await?;
            stop(pm, old, id).await;
            Ok(fresh)
        }
        _ => replace_worker(pm, old, id, new).await.map(|id| (id, None)),
    }
}

/// [`replace`] for a process or a pool.
async fn replace_worker(pm: &ProcessManager, old: &Entry, id: u64, new: &Entry) -> Result<u64> {
    match &new.kind {
        Kind::Supervisor(_) | Kind::Workflow(_) => unreachable!("replace handles them"),
        Kind::Process(o) => {
            // A graceful restart (onto the new options, if they changed): the new instance
            // is ready before the old one drains and stops; the id stays.
            if old.raw == new.raw {
                pm.restart(id).await?;
            } else {
                pm.restart_with(id, new.script.as_str(), o.clone()).await?;
            }
            Ok(id)
        }
        Kind::Pool(o) => {
            if pool_own_options(&old.raw) != pool_own_options(&new.raw) {
                // Strategy, queue, breaker...: a new pool, then the old one drains.
                let fresh = pm.pool(new.script.as_str(), o.clone()).await?;
                if let Ok(h) = pm.pool_handle(id) {
                    let _ = h.destroy().await;
                }
                return Ok(fresh.id());
            }
            let handle = pm.pool_handle(id)?;
            let size = o.size.resolve();
            let spawn_changed = {
                let strip = |v: &Value| match v {
                    Value::Map(m) => Value::Map(m.iter().filter(|(k, _)| k != "size").cloned().collect()),
                    other => other.clone(),
                };
                strip(&old.raw) != strip(&new.raw)
            };
            if spawn_changed || old.raw == new.raw {
                handle.reload_with(new.script.as_str(), o.spawn.clone()).await?;
            }
            if handle.size().await? != size {
                handle.scale(size).await?;
            }
            Ok(id)
        }
    }
}
