//! The four OTP strategies on real child processes: which children a crash
//! restarts (pids change) and which it leaves alone (pids unchanged), the
//! order of stops and restarts, and handles that stay valid across restarts.

use std::time::Duration;

use titan_pm::policy::Backoff;
use titan_pm::supervise::{SupervisorEvent, SupervisorHandle};
use titan_pm::{ChildSpec, ManagerConfig, ProcessManager, ProcessState, SpawnOptions, SupervisionStrategy, SupervisorSpec, Value};
use tokio::sync::broadcast;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const LIMIT: Duration = Duration::from_secs(20);

fn spec(strategy: SupervisionStrategy) -> SupervisorSpec {
    SupervisorSpec::new(strategy).name("app").backoff(Backoff::exponential(Duration::from_millis(20), Duration::from_millis(100)))
}

/// A child that logs `start NAME` / `stop NAME` to `log`.
fn logged(log: &std::path::Path, name: &str) -> ChildSpec {
    let env = vec![("TEST_LOG".into(), log.display().to_string()), ("TEST_LABEL".into(), name.into())];
    ChildSpec { spawn: SpawnOptions { env, ..SpawnOptions::default() }, ..ChildSpec::default() }
}

async fn pids(sup: &SupervisorHandle, names: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    for n in names {
        out.push(sup.child(n).await.unwrap().call::<u32>("pid", ()).await.unwrap());
    }
    out
}

/// Events until `done` holds for the list so far (fails the test after LIMIT).
async fn events_until(rx: &mut broadcast::Receiver<SupervisorEvent>, done: impl Fn(&[SupervisorEvent]) -> bool) -> Vec<SupervisorEvent> {
    let mut seen = Vec::new();
    let collect = async {
        while !done(&seen) {
            seen.push(rx.recv().await.expect("supervisor events"));
        }
    };
    tokio::time::timeout(LIMIT, collect).await.unwrap_or_else(|_| panic!("timed out; events so far: {seen:?}"));
    seen
}

fn restarted(events: &[SupervisorEvent]) -> Vec<String> {
    events.iter().filter_map(|e| match e { SupervisorEvent::ChildRestarted { name, .. } => Some(name.clone()), _ => None }).collect()
}

fn kill(pid: u32) {
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(String::from).collect()
}

#[tokio::test]
async fn one_for_one_restarts_only_the_child_that_died_and_its_handle_keeps_working() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let names = ["a", "b", "c"];
    let mut s = spec(SupervisionStrategy::OneForOne);
    for n in names {
        s = s.child(n, WORKER, ChildSpec::default());
    }
    let sup = pm.supervisor(s).await.unwrap();
    let b = sup.child("b").await.unwrap();
    let before = pids(&sup, &names).await;
    let mut rx = sup.events();
    kill(before[1]);
    // Once the supervisor has seen the exit, a call waits for the restart, through the same handle
    // (a call sent before the host noticed would fail as crashed, as it should).
    let mut events = events_until(&mut rx, |e| e.iter().any(|e| matches!(e, SupervisorEvent::ChildExited { .. }))).await;
    assert_eq!(b.call::<i64>("add", (2, 3)).await.unwrap(), 5);
    events.extend(events_until(&mut rx, |e| !restarted(e).is_empty()).await);
    assert_eq!(restarted(&events), ["b"]);
    let after = pids(&sup, &names).await;
    assert_eq!((after[0], after[2]), (before[0], before[2]), "a and c untouched");
    assert_ne!(after[1], before[1]);
    assert_eq!(sup.child("b").await.unwrap().id(), b.id(), "same process id after the restart");
    let children = sup.children().await.unwrap();
    assert_eq!(children.iter().map(|c| c.restarts).collect::<Vec<_>>(), [0, 1, 0]);
    assert!(children.iter().all(|c| c.state == ProcessState::Running));
    let listed: Vec<String> = pm.list_processes().await.into_iter().map(|p| p.name).collect();
    for n in ["app/a", "app/b", "app/c"] {
        assert!(listed.contains(&n.to_string()), "{n} not in {listed:?}");
    }
    sup.stop().await.unwrap();
    assert!(pm.list_processes().await.is_empty(), "a stopped supervisor's children leave the list");
    assert_eq!(sup.state().await.unwrap(), titan_pm::supervise::SupervisorState::Stopped);
    pm.shutdown().await;
}

#[tokio::test]
async fn one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("order.log");
    let names = ["a", "b", "c"];
    let mut s = spec(SupervisionStrategy::OneForAll);
    for n in names {
        s = s.child(n, WORKER, logged(&log, n));
    }
    let sup = pm.supervisor(s).await.unwrap();
    assert_eq!(lines(&log), ["start a", "start b", "start c"], "declaration order, each ready before the next");
    let before = pids(&sup, &names).await;
    let mut rx = sup.events();
    kill(before[1]);
    let events = events_until(&mut rx, |e| restarted(e).len() == 3).await;
    assert_eq!(restarted(&events), ["a", "b", "c"]);
    let after = pids(&sup, &names).await;
    for i in 0..3 {
        assert_ne!(after[i], before[i], "{} restarted", names[i]);
    }
    // b was killed (no hook); c then a stopped in reverse; all three started in order.
    assert_eq!(lines(&log)[3..], ["stop c", "stop a", "start a", "start b", "start c"]);
    sup.stop().await.unwrap();
    assert_eq!(lines(&log)[8..], ["stop c", "stop b", "stop a"], "stop in reverse declaration order");
    pm.shutdown().await;
}

#[tokio::test]
async fn rest_for_one_restarts_the_child_and_those_declared_after_it() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let names = ["a", "b", "c"];
    let mut s = spec(SupervisionStrategy::RestForOne);
    for n in names {
        s = s.child(n, WORKER, ChildSpec::default());
    }
    let sup = pm.supervisor(s).await.unwrap();
    let before = pids(&sup, &names).await;
    let mut rx = sup.events();
    kill(before[1]);
    let events = events_until(&mut rx, |e| restarted(e).len() == 2).await;
    assert_eq!(restarted(&events), ["b", "c"]);
    let after = pids(&sup, &names).await;
    assert_eq!(after[0], before[0], "a untouched");
    assert_ne!(after[1], before[1]);
    assert_ne!(after[2], before[2]);
    pm.shutdown().await;
}

#[tokio::test]
async fn simple_one_for_one_adds_identical_children_and_restarts_only_the_one_that_died() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let sup = pm.supervisor(spec(SupervisionStrategy::SimpleOneForOne).child("w", WORKER, ChildSpec::default())).await.unwrap();
    assert!(sup.children().await.unwrap().is_empty(), "no child before start_child");
    let mut handles = Vec::new();
    for i in 0..5 {
        let args = titan_pm::value::to_value(&serde_json::json!({ "n": i })).unwrap();
        handles.push(sup.start_child(args).await.unwrap());
    }
    let deps: serde_json::Value = handles[3].call("dependencies", ()).await.unwrap();
    assert_eq!(deps, serde_json::json!({ "n": 3 }), "start_child args reach init");
    let names: Vec<String> = sup.children().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["w-1", "w-2", "w-3", "w-4", "w-5"]);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let before = pids(&sup, &names).await;
    let mut rx = sup.events();
    kill(before[2]);
    let events = events_until(&mut rx, |e| !restarted(e).is_empty()).await;
    assert_eq!(restarted(&events), ["w-3"]);
    let after = pids(&sup, &names).await;
    for i in 0..5 {
        assert_eq!(after[i] == before[i], i != 2, "child {} changed: {}", i + 1, after[i] != before[i]);
    }
    // A supervisor that is not simple-one-for-one refuses start_child.
    let other = pm.supervisor(spec(SupervisionStrategy::OneForOne).name("other").child("x", WORKER, ChildSpec::default())).await.unwrap();
    let e = other.start_child(Value::Null).await.err().unwrap();
    assert!(e.to_string().contains("simple-one-for-one"), "{e}");
    pm.shutdown().await;
}

#[tokio::test]
async fn bad_specs_are_refused_naming_the_problem() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let two = spec(SupervisionStrategy::SimpleOneForOne).child("a", WORKER, ChildSpec::default()).child("b", WORKER, ChildSpec::default());
    let e = pm.supervisor(two).await.err().unwrap();
    assert!(e.to_string().contains("exactly one child template (found 2)"), "{e}");
    let dup = spec(SupervisionStrategy::OneForOne).child("a", WORKER, ChildSpec::default()).child("a", WORKER, ChildSpec::default());
    assert!(pm.supervisor(dup).await.err().unwrap().to_string().contains("two children named \"a\""));
    let both = ChildSpec { critical: true, optional: true, ..ChildSpec::default() };
    let e = pm.supervisor(spec(SupervisionStrategy::OneForOne).child("a", WORKER, both)).await.err().unwrap();
    assert!(e.to_string().contains("critical and optional exclude each other"), "{e}");
    // A child that cannot start fails the start, naming it, and the ones started are stopped.
    let bad = spec(SupervisionStrategy::OneForOne).child("a", WORKER, ChildSpec::default()).child("b", "/no/such/worker", ChildSpec::default());
    let e = pm.supervisor(bad).await.err().unwrap();
    assert!(e.to_string().contains("app/b"), "{e}");
    assert!(pm.list_processes().await.is_empty(), "the started child was stopped");
    pm.shutdown().await;
}
