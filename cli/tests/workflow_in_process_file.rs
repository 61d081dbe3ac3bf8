//! A process file's `[[workflow]]` entries: `titan-pm start` loads them (their
//! process shows in `ls` under the entry's name), `titan-pm workflows` lists their
//! stages and the journal's runs, `titan-pm run NAME INPUT` runs one and prints
//! every stage's result (a failed saga: exit 1 with the WorkflowError), `--id`
//! returns a finished run's stored outcome, and a reload of a changed entry loads
//! the new class before the old process stops. A bad workflow option fails before
//! anything starts, named by its path.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

struct Daemon(PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn workflow_worker() -> PathBuf {
    let path = titan_pm().with_file_name("test-workflow-worker");
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "titan-pm-tests", "--bin", "test-workflow-worker"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build of the workflow worker");
        assert!(status.success());
    }
    path
}

fn write_file(path: &Path, jitter: f64) {
    std::fs::write(
        path,
        format!(
            r#"
[manager]
workflows = {{ journal = ":memory:" }}

[[workflow]]
name = "complex"
script = "{w}"
env = {{ TEST_WORKFLOW = "complex" }}
retryJitter = {jitter}

[[workflow]]
name = "orders"
script = "{w}"
env = {{ TEST_WORKFLOW = "saga" }}
retryBackoff = {{ initial = 10 }}
"#,
            w = workflow_worker().display()
        ),
    )
    .unwrap();
}

#[test]
fn workflows_from_a_process_file_run_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let socket = run.join("control.sock");
    let file = dir.path().join("titan.toml");
    write_file(&file, 0.5);
    let _guard = Daemon(run.join("titan-pm.pid"));

    let out = ok(&socket, &["start", file.to_str().unwrap()]);
    assert!(out.contains("started: complex, orders"), "{out}");
    let ls = json(&socket, &["ls"]);
    let names: Vec<&str> = ls.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["complex", "orders"], "each workflow's process, under its entry's name: {ls}");

    let listed = json(&socket, &["workflows"]);
    let complex = &listed["workflows"][0];
    assert_eq!(complex["name"], "complex");
    assert_eq!(complex["workflow"], "ComplexWorkflow");
    let stages: Vec<&str> = complex["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["A", "B", "C", "D", "E"]);
    assert_eq!(complex["stages"][4]["dependsOn"], serde_json::json!(["C", "D"]));
    assert_eq!(listed["runs"], serde_json::json!([]));

    // A run: every stage's result by name, as one JSON line.
    let result: serde_json::Value = serde_json::from_str(&ok(&socket, &["run", "complex", r#"{"n":1}"#, "--id", "r1"])).unwrap();
    assert_eq!(result["A"], serde_json::json!({ "stage": "A", "saw": { "n": 1 } }), "{result}");
    assert_eq!(result["E"]["stage"], "E");
    // The same id: the stored outcome, nothing runs again.
    let again: serde_json::Value = serde_json::from_str(&ok(&socket, &["run", "complex", "--id", "r1"])).unwrap();
    assert_eq!(again, result);

    // A failed saga: exit 1, the WorkflowError's text names the stage and the cause.
    let failed = cli(&socket, &["run", "orders", r#"{"id":7}"#, "--id", "o7"]);
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("charge-payment") && err.contains("card declined"), "{err}");

    let table = ok(&socket, &["workflows"]);
    assert!(table.contains("A B C<-A+B D<-A+B E<-C+D"), "{table}");
    assert!(table.contains("r1") && table.contains("completed") && table.contains("o7") && table.contains("failed"), "{table}");

    // Unknown workflow: a clear error naming the declared ones.
    let unknown = cli(&socket, &["run", "nope"]);
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("no workflow named \"nope\" (declared: complex, orders)"), "{err}");

    // A changed entry reloads: a new process with the class, then the old one goes.
    write_file(&file, 0.25);
    let summary = json(&socket, &["reload", "--changed-only", file.to_str().unwrap()]);
    assert_eq!(summary["reloaded"], serde_json::json!(["complex"]), "{summary}");
    assert_eq!(summary["unchanged"], serde_json::json!(["orders"]), "{summary}");
    let after = json(&socket, &["ls"]);
    let old_pid = ls[0]["pid"].as_i64().unwrap();
    let new_row = after.as_array().unwrap().iter().find(|r| r["name"] == "complex").unwrap().clone();
    assert_ne!(new_row["pid"].as_i64().unwrap(), old_pid);
    let fresh: serde_json::Value = serde_json::from_str(&ok(&socket, &["run", "complex", "2"])).unwrap();
    assert_eq!(fresh["A"]["saw"], 2);
    assert_eq!(json(&socket, &["workflows"])["workflows"][0]["processId"], new_row["processId"]);

    let pids: Vec<i32> = after.as_array().unwrap().iter().map(|r| r["pid"].as_i64().unwrap() as i32).collect();
    let daemon: i32 = std::fs::read_to_string(run.join("titan-pm.pid")).unwrap().trim().parse().unwrap();
    ok(&socket, &["stop"]);
    eventually(Duration::from_secs(20), "the daemon and the workflow processes exit", || !alive(daemon) && pids.iter().all(|p| !alive(*p)));
}

#[test]
fn a_bad_workflow_entry_fails_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run").join("control.sock");
    let file = dir.path().join("titan.toml");
    std::fs::write(&file, "[[workflow]]\nname = \"w\"\nscript = \"./w\"\nretryJitter = 2\n").unwrap();
    let out = cli(&socket, &["start", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("workflow[0] (w): retryJitter: must be between 0 and 1"), "{err}");
    std::fs::write(&file, "[[workflow]]\nname = \"w\"\nscript = \"./w\"\nstages = 3\n").unwrap();
    let err = String::from_utf8_lossy(&cli(&socket, &["start", file.to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("workflow[0] (w): stages: unknown option"), "{err}");
    assert!(!socket.exists());
}

#[test]
fn an_interrupted_run_resumes_with_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let socket = run.join("control.sock");
    let file = dir.path().join("titan.toml");
    let body = format!(
        "[manager]\nworkflows = {{ lease = 1000 }}\n\n[[workflow]]\nname = \"complex\"\nscript = \"{}\"\nenv = {{ TEST_WORKFLOW = \"complex\" }}\n",
        workflow_worker().display()
    );
    std::fs::write(&file, body).unwrap();
    let _guard = Daemon(run.join("titan-pm.pid"));
    ok(&socket, &["start", file.to_str().unwrap()]);

    // The client goes away mid-run (C and D take 300 ms after A and B's 50 ms).
    let mut client = std::process::Command::new(titan_pm())
        .args(["--socket", socket.to_str().unwrap(), "run", "complex", "1", "--id", "r"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    client.kill().unwrap();
    client.wait().unwrap();
    let runs = json(&socket, &["workflows"])["runs"].clone();
    assert_eq!(runs[0]["runId"], "r");
    assert_eq!(runs[0]["state"], "running", "stopped where it was, journaled: {runs}");

    // The same id resumes it (once its lease lapses) and finishes.
    let result: serde_json::Value = serde_json::from_str(&ok(&socket, &["run", "complex", "1", "--id", "r"])).unwrap();
    assert_eq!(result["E"]["stage"], "E");
    assert_eq!(json(&socket, &["workflows"])["runs"][0]["state"], "completed");
    ok(&socket, &["stop"]);
}
