//! A run survives its host: SIGKILL the host during stage 3, start a new host
//! on the same journal with the same run id: stages 1-2 are not run again, 3-4
//! are, the result is complete; the same id once more runs nothing.

use std::process::{Command, Stdio};
use std::time::Duration;

const HOST: &str = env!("CARGO_BIN_EXE_test-workflow-host");

fn lines(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(String::from).collect()
}

fn run_host(journal: &std::path::Path, file: &std::path::Path) -> String {
    let out = Command::new(HOST).args([journal.to_str().unwrap(), "order-7", file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "host failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).expect("no RESULT line").to_string()
}

#[tokio::test]
async fn a_run_resumes_on_a_new_host_after_the_first_is_killed_mid_stage() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("runs.db");
    let file = dir.path().join("stages.log");
    let mut host = Command::new(HOST)
        .args([journal.to_str().unwrap(), "order-7", file.to_str().unwrap(), "hang"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let in_stage_3 = titan_pm_tests::eventually(Duration::from_secs(20), || lines(&file).len() == 3).await;
    assert!(in_stage_3, "the first host never reached stage 3: {:?}", lines(&file));
    unsafe { libc::kill(host.id() as i32, libc::SIGKILL) };
    host.wait().unwrap();
    assert_eq!(lines(&file), ["s1 order-7/s1", "s2 order-7/s2", "s3 order-7/s3"]);

    // A new host, the same journal and run id: waits out the dead host's lease, then resumes.
    let result = run_host(&journal, &file);
    assert_eq!(
        lines(&file),
        ["s1 order-7/s1", "s2 order-7/s2", "s3 order-7/s3", "s3 order-7/s3", "s4 order-7/s4"],
        "stages 1-2 must not run again; 3 runs again (at least once), then 4"
    );
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result, serde_json::json!({ "s1": "s1 done", "s2": "s2 done", "s3": "s3 done", "s4": "s4 done" }));

    // Once more: the stored result, nothing executed.
    let again: serde_json::Value = serde_json::from_str(&run_host(&journal, &file)).unwrap();
    assert_eq!(again, result);
    assert_eq!(lines(&file).len(), 5);
}
