//! Stages run where the workflow class lives: here in a child worker whose
//! stage calls a pool; and a workflow whose stages run on a pool's members.

use std::time::Duration;

use serde_json::Value as Json;
use titan_pm::workflow::WorkflowOptions;
use titan_pm::{ManagerConfig, PoolOptions, PoolSize, ProcessManager, SpawnOptions};

const WORKFLOW_WORKER: &str = env!("CARGO_BIN_EXE_test-workflow-worker");
const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn env(workflow: &str) -> Vec<(String, String)> {
    vec![("TEST_WORKFLOW".into(), workflow.into()), ("TEST_WORKER_BIN".into(), WORKER.into())]
}

#[tokio::test]
async fn stages_in_a_child_worker_call_a_pool() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = WorkflowOptions { spawn: SpawnOptions { env: env("pool"), ..Default::default() }, ..Default::default() };
    let wf = pm.workflow(WORKFLOW_WORKER, options).await.unwrap();
    let child_pid = wf.process().unwrap().info().await.unwrap().pid;
    let input = titan_pm::value::to_value(&(20, 1)).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), wf.run(input, None)).await.unwrap().unwrap();
    let result: Json = titan_pm::value::from_value(result).unwrap();
    assert_eq!(result["sum"]["sum"], 21);
    assert_eq!(result["sum"]["poolPids"], 2, "the pool's two workers served the calls");
    assert_eq!(result["sum"]["workflowPid"], child_pid, "the stage ran in the child worker");
    assert_ne!(child_pid, std::process::id());
    assert_eq!(result["double"], 42);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_workflow_on_a_pool_runs_each_stage_on_a_member() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm
        .pool(WORKFLOW_WORKER, PoolOptions { size: PoolSize::Fixed(2), spawn: SpawnOptions { env: env("complex"), ..Default::default() }, ..Default::default() })
        .await
        .unwrap();
    let wf = pm.workflow_on(std::sync::Arc::new(pool.clone()), WorkflowOptions::default()).await.unwrap();
    let result: Json = titan_pm::value::from_value(wf.run(titan_pm::Value::Int(5), None).await.unwrap()).unwrap();
    assert_eq!(result["E"]["saw"]["C"]["saw"]["A"]["saw"], 5);
    assert_eq!(pool.metrics().await.unwrap().requests, 5);
    pm.shutdown().await;
}
