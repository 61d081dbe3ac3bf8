//! Workflow stages as a DAG: independent stages overlap, a stage with
//! dependencies sees the results so far, `run` returns every result by name;
//! a bad graph is an error when the workflow is loaded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as Json};
use titan_pm::agent::WorkerDef;
use titan_pm::workflow::{StageOptions, WorkflowOptions};
use titan_pm::{Isolation, ManagerConfig, ProcessManager, SpawnOptions};
use titan_pm_tests::workflows::{self, Spans};

fn in_process() -> WorkflowOptions {
    WorkflowOptions { spawn: SpawnOptions { isolation: Some(Isolation::None), ..Default::default() }, ..Default::default() }
}

#[tokio::test]
async fn complex_workflow_runs_c_and_d_together_and_e_sees_both() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let spans: Spans = Default::default();
    let s = spans.clone();
    let wf = pm.workflow(workflows::target("ComplexWorkflow", move || workflows::complex_workflow(s.clone())), in_process()).await.unwrap();
    let mut events = wf.events();
    let input = titan_pm::value::to_value(&json!({ "n": 1 })).unwrap();
    let result: Json = titan_pm::value::from_value(tokio::time::timeout(Duration::from_secs(10), wf.run(input, Some("c1"))).await.unwrap().unwrap()).unwrap();
    let names: Vec<&str> = result.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(names, ["A", "B", "C", "D", "E"], "{result}");
    // A and B got the run's input; C, D and E the results so far by stage name.
    assert_eq!(result["A"]["saw"], json!({ "n": 1 }));
    assert_eq!(result["C"]["saw"]["A"]["stage"], "A");
    assert_eq!(result["C"]["saw"]["B"]["stage"], "B");
    assert_eq!(result["E"]["saw"]["C"]["stage"], "C");
    assert_eq!(result["E"]["saw"]["D"]["stage"], "D");
    let spans = spans.lock().unwrap().clone();
    let at = |n: &str| spans.iter().find(|s| s.0 == n).unwrap().clone();
    let (c, d, e) = (at("C"), at("D"), at("E"));
    assert!(c.1 < d.2 && d.1 < c.2, "C and D did not overlap in time");
    assert!(e.1 >= c.2 && e.1 >= d.2, "E started before C and D ended");
    let mut names = Vec::new();
    while let Ok(ev) = events.try_recv() {
        names.push(format!("{}{}", ev.name(), ev.stage().map(|s| format!(" {s}")).unwrap_or_default()));
    }
    assert_eq!(names.first().map(String::as_str), Some("workflow:started"));
    assert_eq!(names.last().map(String::as_str), Some("workflow:completed"));
    assert_eq!(names.iter().filter(|n| n.starts_with("stage:completed")).count(), 5, "{names:?}");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_stage_with_parallel_false_runs_alone() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let spans: Spans = Default::default();
    let s = spans.clone();
    let make = move || {
        let mut def = WorkerDef::new("Serial", "1.0.0");
        for (name, parallel) in [("a", true), ("b", false), ("c", true)] {
            let spans = s.clone();
            def = def.stage(name, &[], StageOptions { parallel, ..Default::default() }, move |_: Json, _| {
                let spans = spans.clone();
                async move {
                    let start = std::time::Instant::now();
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    spans.lock().unwrap().push((name.to_string(), start, std::time::Instant::now(), Json::Null));
                    Ok(name)
                }
            });
        }
        def
    };
    let wf = pm.workflow(workflows::target("Serial", make), in_process()).await.unwrap();
    wf.run(titan_pm::Value::Null, None).await.unwrap();
    let spans = spans.lock().unwrap().clone();
    let b = spans.iter().find(|s| s.0 == "b").unwrap();
    for other in spans.iter().filter(|s| s.0 != "b") {
        assert!(other.2 <= b.1 || other.1 >= b.2, "{} overlapped the serial stage", other.0);
    }
    pm.shutdown().await;
}

#[tokio::test]
async fn a_cycle_or_an_unknown_dependency_is_an_error_at_load() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let stage = |def: WorkerDef, name: &'static str, deps: &[&str]| {
        def.stage(name, deps, StageOptions::default(), |_: Json, _| async move { Ok(()) })
    };
    let cycle = move || stage(stage(stage(WorkerDef::new("Loop", "1"), "x", &[]), "a", &["b", "x"]), "b", &["a"]);
    let e = pm.workflow(workflows::target("Loop", cycle), in_process()).await.err().unwrap();
    assert_eq!(e.to_string(), "invalid configuration: workflow Loop: stages a, b form a cycle (a -> b -> a)");
    let unknown = move || stage(WorkerDef::new("Dangling", "1"), "a", &["fetch-user"]);
    let e = pm.workflow(workflows::target("Dangling", unknown), in_process()).await.err().unwrap();
    assert_eq!(e.to_string(), "invalid configuration: workflow Dangling: stage \"a\" depends on unknown stage \"fetch-user\"");
    let dup = move || stage(stage(WorkerDef::new("Twice", "1"), "a", &[]), "a", &[]);
    let e = pm.workflow(workflows::target("Twice", dup), in_process()).await.err().unwrap();
    assert!(e.to_string().ends_with("duplicate stage name \"a\""), "{e}");
    let plain = || WorkerDef::new("Plain", "1").method("add", |(a, b): (i64, i64)| async move { Ok(a + b) });
    let e = pm.workflow(workflows::target("Plain", plain), in_process()).await.err().unwrap();
    assert_eq!(e.to_string(), "invalid configuration: Plain is not a workflow: it declares no stages");
    // The refused workflows' processes were stopped.
    assert!(pm.list_processes().await.is_empty());
    pm.shutdown().await;
}

#[tokio::test]
async fn the_same_run_id_returns_the_stored_result_and_lists_the_run() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let spans: Spans = Default::default();
    let s = spans.clone();
    let wf = pm.workflow(workflows::target("ComplexWorkflow", move || workflows::complex_workflow(s.clone())), in_process()).await.unwrap();
    let first = wf.run(titan_pm::Value::Int(1), Some("again")).await.unwrap();
    assert_eq!(spans.lock().unwrap().len(), 5);
    let second = wf.run(titan_pm::Value::Int(1), Some("again")).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(spans.lock().unwrap().len(), 5, "a finished run ran stages again");
    let e = wf.run(titan_pm::Value::Int(2), Some("again")).await.unwrap_err();
    assert!(e.to_string().contains("was started with a different input"), "{e}");
    let runs = pm.workflow_runs(10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].run_id.as_str(), runs[0].state.as_str(), runs[0].workflow.as_str()), ("again", "completed", "ComplexWorkflow"));
    let _ = Arc::new(Mutex::new(()));
    pm.shutdown().await;
}
