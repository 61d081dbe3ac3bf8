//! A host for the durability test: `test-workflow-host JOURNAL RUN_ID FILE [hang]` runs a
//! 4-stage chain (s1 -> s2 -> s3 -> s4) whose stages append `name key` lines to FILE;
//! with `hang`, s3 appends and then hangs (the test SIGKILLs this host there).
//! Prints `RESULT <json>` and exits.
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value as Json};
use titan_pm::agent::{WorkerDef, WorkerError};
use titan_pm::workflow::{StageOptions, WorkflowOptions, WorkflowsConfig};
use titan_pm::{Isolation, ManagerConfig, ProcessManager, SpawnOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [journal, run_id, file, rest @ ..] = args.as_slice() else { panic!("usage: test-workflow-host JOURNAL RUN_ID FILE [hang]") };
    let hang = rest.first().map(String::as_str) == Some("hang");
    let config = ManagerConfig {
        workflows: WorkflowsConfig { journal: Some(journal.into()), lease: Duration::from_millis(1000) },
        ..ManagerConfig::default()
    };
    let pm = ProcessManager::new(config);
    let file = file.clone();
    let target = titan_pm_tests::workflows::target("Chain", move || {
        let mut def = WorkerDef::new("Chain", "1.0.0");
        for (name, deps) in [("s1", &[][..]), ("s2", &["s1"][..]), ("s3", &["s2"][..]), ("s4", &["s3"][..])] {
            let file = file.clone();
            def = def.stage(name, deps, StageOptions::default(), move |_: Json, ctx| {
                let file = file.clone();
                async move {
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&file).map_err(|e| WorkerError::from(e.to_string()))?;
                    writeln!(f, "{name} {}", ctx.idempotency_key).map_err(|e| WorkerError::from(e.to_string()))?;
                    drop(f);
                    if hang && name == "s3" {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Ok(json!(format!("{name} done")))
                }
            });
        }
        def
    });
    let options = WorkflowOptions { spawn: SpawnOptions { isolation: Some(Isolation::None), ..Default::default() }, ..Default::default() };
    let wf = pm.workflow(target, options).await.expect("workflow");
    let result = wf.run(titan_pm::value::to_value(&json!({ "order": 7 })).unwrap(), Some(run_id)).await.expect("run");
    let result: Json = titan_pm::value::from_value(result).unwrap();
    println!("RESULT {result}");
    pm.shutdown().await;
}
