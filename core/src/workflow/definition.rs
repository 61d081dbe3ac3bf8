//! A workflow's definition, checked once when the workflow is loaded: every
//! stage name unique, every `dependsOn` a stage of the workflow, no cycle, every
//! compensation for a known stage (at most one each). The checked definition
//! keeps the stages in a topological order, which is also the order of `run`'s
//! result map.
//!
//! ```
//! use titan_pm::protocol::{StageInfo, WorkflowInfo};
//! use titan_pm::workflow::WorkflowDef;
//! let stage = |name: &str, deps: &[&str]| StageInfo {
//!     name: name.into(), method: name.into(), depends_on: deps.iter().map(|d| d.to_string()).collect(), ..Default::default()
//! };
//! let ok = WorkflowInfo { stages: vec![stage("b", &["a"]), stage("a", &[])], compensations: vec![] };
//! let def = WorkflowDef::new("order", &ok).unwrap();
//! assert_eq!(def.stages().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
//! let cycle = WorkflowInfo { stages: vec![stage("a", &["b"]), stage("b", &["a"])], compensations: vec![] };
//! assert_eq!(WorkflowDef::new("order", &cycle).unwrap_err().to_string(),
//!            "invalid configuration: workflow order: stages a, b form a cycle (a -> b -> a)");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::WorkflowInfo;

/// One stage, as checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub depends_on: Vec<String>,
    /// Per attempt; `None` takes the method's or the manager's default deadline.
    pub timeout: Option<Duration>,
    /// Attempts after the first.
    pub retries: u32,
    /// `false`: the stage never runs alongside another one.
    pub parallel: bool,
    pub method: String,
    /// The method that undoes it, if any.
    pub compensation: Option<String>,
}

/// A checked workflow: stages in topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    name: String,
    stages: Vec<Stage>,
}

impl WorkflowDef {
    /// Checks `info` and orders its stages; errors name the workflow and the stages at fault.
    pub fn new(name: &str, info: &WorkflowInfo) -> Result<Self> {
        let bad = |m: String| Error::Config(format!("workflow {name}: {m}"));
        if info.stages.is_empty() {
            return Err(bad("has no stages".into()));
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, s) in info.stages.iter().enumerate() {
            if s.name.is_empty() {
                return Err(bad(format!("stage {i} has no name")));
            }
            if index.insert(s.name.as_str(), i).is_some() {
                return Err(bad(format!("duplicate stage name {:?}", s.name)));
            }
        }
        for s in &info.stages {
            for d in &s.depends_on {
                if !index.contains_key(d.as_str()) {
                    return Err(bad(format!("stage {:?} depends on unknown stage {d:?}", s.name)));
                }
            }
            if s.depends_on.iter().filter(|d| *d == &s.name).count() > 0 {
                return Err(bad(format!("stage {:?} depends on itself", s.name)));
            }
        }
        let mut compensation: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &info.compensations {
            if !index.contains_key(c.stage.as_str()) {
                return Err(bad(format!("compensation {:?} is for unknown stage {:?}", c.method, c.stage)));
            }
            if compensation.insert(c.stage.as_str(), c.method.as_str()).is_some() {
                return Err(bad(format!("stage {:?} has more than one compensation", c.stage)));
            }
        }
        let order = topological(info).map_err(|cycle| {
            let mut names = cycle.clone();
            names.sort();
            names.dedup();
            let mut path = cycle.clone();
            path.push(cycle[0].clone());
            bad(format!("stages {} form a cycle ({})", names.join(", "), path.join(" -> ")))
        })?;
        let stages = order
            .into_iter()
            .map(|i| {
                let s = &info.stages[i];
                Stage {
                    name: s.name.clone(),
                    depends_on: s.depends_on.clone(),
                    timeout: (s.timeout_ms > 0).then(|| Duration::from_millis(s.timeout_ms)),
                    retries: s.retries,
                    parallel: s.parallel,
                    method: if s.method.is_empty() { s.name.clone() } else { s.method.clone() },
                    compensation: compensation.get(s.name.as_str()).map(|m| m.to_string()),
                }
            })
            .collect();
        Ok(WorkflowDef { name: name.to_string(), stages })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stages in topological order (a stage after all it depends on).
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Kahn's order (ties kept in declaration order), or the stages of one cycle in dependency order.
fn topological(info: &WorkflowInfo) -> std::result::Result<Vec<usize>, Vec<String>> {
    let n = info.stages.len();
    let index: HashMap<&str, usize> = info.stages.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut missing: Vec<usize> = info.stages.iter().map(|s| s.depends_on.len()).collect();
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    while order.len() < n {
        let Some(next) = (0..n).find(|&i| !placed[i] && missing[i] == 0) else { break };
        placed[next] = true;
        order.push(next);
        for (i, s) in info.stages.iter().enumerate() {
            missing[i] -= s.depends_on.iter().filter(|d| index[d.as_str()] == next).count();
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk unplaced dependencies from an unplaced stage until one repeats: that loop is a cycle.
    let mut path: Vec<usize> = vec![(0..n).find(|&i| !placed[i]).unwrap_or(0)];
    loop {
        let here = *path.last().unwrap_or(&0);
        let dep = info.stages[here].depends_on.iter().map(|d| index[d.as_str()]).find(|&d| !placed[d]).unwrap_or(here);
        if let Some(at) = path.iter().position(|&p| p == dep) {
            // `path` runs from dependant to dependency; a cycle reads the same way.
            return Err(path[at..].iter().map(|&i| info.stages[i].name.clone()).collect());
        }
        path.push(dep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CompensationInfo, StageInfo};

    fn stage(name: &str, deps: &[&str]) -> StageInfo {
        StageInfo { name: name.into(), method: name.into(), depends_on: deps.iter().map(|d| d.to_string()).collect(), ..Default::default() }
    }

    fn err(stages: Vec<StageInfo>, compensations: Vec<CompensationInfo>) -> String {
        WorkflowDef::new("w", &WorkflowInfo { stages, compensations }).unwrap_err().to_string()
    }

    #[test]
    fn load_errors_name_the_stages() {
        assert!(err(vec![stage("a", &[]), stage("a", &[])], vec![]).ends_with("workflow w: duplicate stage name \"a\""));
        assert!(err(vec![stage("a", &["nope"])], vec![]).ends_with("stage \"a\" depends on unknown stage \"nope\""));
        assert!(err(vec![stage("a", &["a"])], vec![]).ends_with("stage \"a\" depends on itself"));
        let e = err(vec![stage("x", &[]), stage("a", &["c", "x"]), stage("b", &["a"]), stage("c", &["b"])], vec![]);
        assert!(e.ends_with("stages a, b, c form a cycle (a -> c -> b -> a)"), "{e}");
        let c = CompensationInfo { stage: "zzz".into(), method: "undo".into() };
        assert!(err(vec![stage("a", &[])], vec![c]).ends_with("compensation \"undo\" is for unknown stage \"zzz\""));
        assert!(err(vec![], vec![]).ends_with("has no stages"));
    }

    #[test]
    fn order_is_topological_and_keeps_declaration_order_among_equals() {
        let info = WorkflowInfo {
            stages: vec![stage("e", &["c", "d"]), stage("c", &["a", "b"]), stage("d", &["a", "b"]), stage("a", &[]), stage("b", &[])],
            compensations: vec![CompensationInfo { stage: "c".into(), method: "undo_c".into() }],
        };
        let def = WorkflowDef::new("w", &info).unwrap();
        let names: Vec<_> = def.stages().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(def.stage("c").unwrap().compensation.as_deref(), Some("undo_c"));
    }
}
