//! The Postgres journal (`workflows.journal = 'postgres://…'`), on a private
//! server the test starts: the journal's lease rule (busy, resume, fencing), a
//! run that survives its host killed mid-stage, and two hosts given the same run
//! id at once (one runs it, the other waits and returns its result).

use std::process::{Command, Stdio};
use std::time::Duration;

use titan_pm::workflow::journal::{Claim, Entry, Journal, PostgresJournal, RunState};
use titan_pm::Value;
use titan_pm_tests::postgres::PgServer;

const HOST: &str = env!("CARGO_BIN_EXE_test-workflow-host");

fn lines(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(String::from).collect()
}

fn result_of(out: std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "host failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    serde_json::from_str(stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).expect("no RESULT line")).unwrap()
}

#[tokio::test]
async fn the_postgres_journal_keeps_the_lease_rule() {
    let server = PgServer::start();
    let j = PostgresJournal::new(&server.database("lease_rule").await).unwrap();
    let lease = Duration::from_millis(300);
    let input = Value::Map(vec![("order".into(), Value::Data(vec![1, 2, 3].into()))]);
    assert_eq!(j.claim("r", "w", &input, "a", lease).await.unwrap(), Claim::Started);
    j.append("r", "a", Entry::StageStarted { stage: "s1".into(), attempt: 1 }).await.unwrap();
    j.append("r", "a", Entry::StageCompleted { stage: "s1".into(), attempt: 1, result: Value::Float(1.5) }).await.unwrap();
    assert!(matches!(j.claim("r", "w", &input, "b", lease).await.unwrap(), Claim::Busy { owner, .. } if owner == "a"));
    let e = j.claim("r", "other", &input, "b", lease).await.unwrap_err().to_string();
    assert!(e.contains("belongs to workflow w"), "{e}");
    j.renew("r", "a", lease).await.unwrap();
    assert_eq!(j.runs(10).await.unwrap()[0].lease_owner.as_deref(), Some("a"));

    tokio::time::sleep(Duration::from_millis(400)).await; // a's lease lapses
    let Claim::Resumed(run) = j.claim("r", "w", &input, "b", lease).await.unwrap() else { panic!("not resumed") };
    assert_eq!(run.input, input);
    assert_eq!(run.entries[1], Entry::StageCompleted { stage: "s1".into(), attempt: 1, result: Value::Float(1.5) });
    // The old owner is fenced off, for every write.
    assert!(j.append("r", "a", Entry::StageStarted { stage: "s2".into(), attempt: 1 }).await.is_err());
    assert!(j.renew("r", "a", lease).await.is_err());
    assert!(j.finish("r", "a", RunState::Completed, Value::Null).await.is_err());
    j.append("r", "b", Entry::Compensating { stage: "s2".into(), error: Value::Null }).await.unwrap();
    assert_eq!(j.runs(10).await.unwrap()[0].state, RunState::Compensating);
    j.finish("r", "b", RunState::Failed, Value::Text("boom".into())).await.unwrap();
    let Claim::Finished(run) = j.claim("r", "w", &input, "c", lease).await.unwrap() else { panic!("not finished") };
    assert_eq!((run.state, run.outcome), (RunState::Failed, Value::Text("boom".into())));
    assert_eq!(run.entries.len(), 3);
}

#[tokio::test]
async fn a_run_resumes_on_a_new_host_after_the_first_is_killed_mid_stage() {
    let server = PgServer::start();
    let journal = server.database("durability").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stages.log");
    let host = || {
        let mut c = Command::new(HOST);
        c.args([journal.as_str(), "order-7", file.to_str().unwrap()]);
        c
    };
    let mut first = host().arg("hang").stdout(Stdio::null()).spawn().unwrap();
    let in_stage_3 = titan_pm_tests::eventually(Duration::from_secs(30), || lines(&file).len() == 3).await;
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    first.wait().unwrap();
    assert!(in_stage_3, "the first host never reached stage 3: {:?}", lines(&file));

    let result = result_of(host().output().unwrap());
    assert_eq!(lines(&file), ["s1 order-7/s1", "s2 order-7/s2", "s3 order-7/s3", "s3 order-7/s3", "s4 order-7/s4"]);
    assert_eq!(result, serde_json::json!({ "s1": "s1 done", "s2": "s2 done", "s3": "s3 done", "s4": "s4 done" }));
    assert_eq!(result_of(host().output().unwrap()), result, "the stored result");
    assert_eq!(lines(&file).len(), 5, "nothing ran again");
}

#[tokio::test]
async fn two_hosts_given_one_run_id_run_it_once() {
    let server = PgServer::start();
    let journal = server.database("two_hosts").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stages.log");
    let start = || Command::new(HOST).args([journal.as_str(), "order-9", file.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
    let (a, b) = (start(), start());
    let (a, b) = (result_of(a.wait_with_output().unwrap()), result_of(b.wait_with_output().unwrap()));
    assert_eq!(a, b);
    assert_eq!(lines(&file), ["s1 order-9/s1", "s2 order-9/s2", "s3 order-9/s3", "s4 order-9/s4"], "each stage ran once");
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_naming_it_without_its_password() {
    let j = PostgresJournal::new("postgresql://app:s3cret@localhost/runs?host=/nonexistent-titan-dir").unwrap();
    let e = j.runs(1).await.unwrap_err().to_string();
    assert!(e.contains("workflow journal postgresql://app@localhost/runs"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
}
