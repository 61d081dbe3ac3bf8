//! When a supervisor gives up and who is kept up: restart intensity (more than
//! `max_restarts` within `window` fails the supervisor, stops its children and
//! escalates to the parent), critical and optional children, restart types,
//! and a pool child that keeps its size through crashes.

use std::time::Duration;

use titan_pm::policy::{Backoff, ChildRestart};
use titan_pm::pool::PoolOptions;
use titan_pm::supervise::{SupervisorEvent, SupervisorHandle, SupervisorState};
use titan_pm::{ChildSpec, Error, ManagerConfig, PoolSize, ProcessManager, ProcessState, SpawnOptions, SupervisionStrategy, SupervisorSpec};
use titan_pm_tests::{alive, eventually};
use tokio::sync::broadcast;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const LIMIT: Duration = Duration::from_secs(20);

fn spec(name: &str) -> SupervisorSpec {
    SupervisorSpec::new(SupervisionStrategy::OneForOne)
        .name(name)
        .window(Duration::from_secs(60))
        .backoff(Backoff::exponential(Duration::from_millis(20), Duration::from_millis(100)))
}

fn kill(pid: u32) {
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

async fn pid(sup: &SupervisorHandle, name: &str) -> u32 {
    sup.child(name).await.unwrap().call::<u32>("pid", ()).await.unwrap()
}

async fn next_matching(rx: &mut broadcast::Receiver<SupervisorEvent>, what: impl Fn(&SupervisorEvent) -> bool) -> SupervisorEvent {
    let wait = async {
        loop {
            let e = rx.recv().await.expect("supervisor events");
            if what(&e) {
                return e;
            }
        }
    };
    tokio::time::timeout(LIMIT, wait).await.expect("the event came in time")
}

fn is_restart_of(name: &'static str) -> impl Fn(&SupervisorEvent) -> bool {
    move |e| matches!(e, SupervisorEvent::ChildRestarted { name: n, .. } if n == name)
}

/// A child whose restarts cannot start while `file` exists.
fn dies_if(file: &std::path::Path, base: ChildSpec) -> ChildSpec {
    let env = vec![("TEST_DIE_IF_EXISTS".into(), file.display().to_string())];
    ChildSpec { spawn: SpawnOptions { env, output: Some(titan_pm::Output::Ignore), ..SpawnOptions::default() }, ..base }
}

#[tokio::test]
async fn more_than_max_restarts_in_the_window_fails_the_supervisor_and_stops_every_child() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let sup = pm.supervisor(spec("app").max_restarts(3).child("a", WORKER, ChildSpec::default()).child("b", WORKER, ChildSpec::default())).await.unwrap();
    let b = sup.child("b").await.unwrap();
    let b_pid = pid(&sup, "b").await;
    let mut rx = sup.events();
    for _ in 0..3 {
        kill(pid(&sup, "a").await);
        next_matching(&mut rx, is_restart_of("a")).await;
    }
    kill(pid(&sup, "a").await);
    match next_matching(&mut rx, |e| matches!(e, SupervisorEvent::Failed { .. })).await {
        SupervisorEvent::Failed { reason } => assert!(reason.contains("more than 3 restarts"), "{reason}"),
        _ => unreachable!(),
    }
    assert_eq!(sup.state().await.unwrap(), SupervisorState::Failed);
    let children = sup.children().await.unwrap();
    assert!(children.iter().all(|c| c.state == ProcessState::Stopped), "{children:?}");
    assert!(eventually(Duration::from_secs(5), || !alive(b_pid)).await, "b was stopped");
    assert!(matches!(b.call::<i64>("add", (1, 1)).await, Err(Error::ProcessFailed { .. })));
    pm.shutdown().await;
}

#[tokio::test]
async fn a_failing_nested_supervisor_escalates_to_its_parent_which_restarts_it() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let nested = spec("ignored").max_restarts(1).child("x", WORKER, ChildSpec::default()).child("y", WORKER, ChildSpec::default());
    let top = spec("app").max_restarts(10).child("s", WORKER, ChildSpec::default()).child("nested", nested, ChildSpec::default());
    let sup = pm.supervisor(top).await.unwrap();
    let inner = sup.supervisor("nested").await.unwrap();
    let listed: Vec<String> = pm.list_processes().await.into_iter().map(|p| p.name).collect();
    assert!(listed.contains(&"app/nested/x".to_string()), "{listed:?}");
    let (x, s_pid, y_pid) = (inner.child("x").await.unwrap(), pid(&sup, "s").await, pid(&inner, "y").await);
    let (mut top_rx, mut inner_rx) = (sup.events(), inner.events());
    kill(pid(&inner, "x").await);
    next_matching(&mut inner_rx, is_restart_of("x")).await;
    kill(pid(&inner, "x").await); // the second restart within the window: more than 1
    next_matching(&mut inner_rx, |e| matches!(e, SupervisorEvent::Failed { .. })).await;
    match next_matching(&mut top_rx, |e| matches!(e, SupervisorEvent::ChildExited { .. })).await {
        SupervisorEvent::ChildExited { name, normal, .. } => assert_eq!((name.as_str(), normal), ("nested", false)),
        _ => unreachable!(),
    }
    next_matching(&mut top_rx, is_restart_of("nested")).await;
    assert_eq!(inner.state().await.unwrap(), SupervisorState::Running);
    assert_eq!(x.call::<i64>("add", (1, 2)).await.unwrap(), 3, "the handle from before works");
    assert_ne!(pid(&inner, "y").await, y_pid, "the whole subtree restarted");
    assert_eq!(pid(&sup, "s").await, s_pid, "the sibling of the nested supervisor untouched");
    let nested_row = sup.children().await.unwrap().into_iter().find(|c| c.name == "nested").unwrap();
    assert_eq!((nested_row.restarts, nested_row.process_ids.len()), (1, 2));
    pm.shutdown().await;
}

#[tokio::test]
async fn an_optional_child_that_keeps_failing_is_left_failed_while_its_siblings_serve() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let block = dir.path().join("block");
    let optional = dies_if(&block, ChildSpec { optional: true, ..ChildSpec::default() });
    let sup = pm.supervisor(spec("app").max_restarts(3).child("web", WORKER, ChildSpec::default()).child("analytics", WORKER, optional)).await.unwrap();
    let web = sup.child("web").await.unwrap();
    let web_pid = pid(&sup, "web").await;
    std::fs::write(&block, "").unwrap();
    kill(pid(&sup, "analytics").await);
    // Calls to the sibling succeed throughout, until the optional child is given up on.
    let given_up = async {
        loop {
            assert_eq!(web.call::<i64>("add", (1, 1)).await.unwrap(), 2);
            let rows = sup.children().await.unwrap();
            if rows[1].state == ProcessState::Failed {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let rows = tokio::time::timeout(LIMIT, given_up).await.expect("the optional child was given up on");
    assert_eq!(rows[0].state, ProcessState::Running);
    assert_eq!(sup.state().await.unwrap(), SupervisorState::Running);
    assert_eq!(pid(&sup, "web").await, web_pid);
    // Its failures did not spend the supervisor's budget: the sibling still restarts.
    let mut rx = sup.events();
    kill(web_pid);
    next_matching(&mut rx, is_restart_of("web")).await;
    assert_eq!(sup.state().await.unwrap(), SupervisorState::Running);
    pm.shutdown().await;
}

#[tokio::test]
async fn an_optional_child_that_cannot_start_does_not_stop_the_supervisor_from_starting() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let optional = ChildSpec { optional: true, ..ChildSpec::default() };
    let sup = pm.supervisor(spec("app").child("web", WORKER, ChildSpec::default()).child("analytics", "/no/such/worker", optional)).await.unwrap();
    let rows = sup.children().await.unwrap();
    assert_eq!((rows[0].state, rows[1].state), (ProcessState::Running, ProcessState::Failed));
    pm.shutdown().await;
}

#[tokio::test]
async fn a_critical_child_that_cannot_be_restarted_fails_the_supervisor_at_once() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let block = dir.path().join("block");
    let critical = dies_if(&block, ChildSpec { critical: true, ..ChildSpec::default() });
    let sup = pm.supervisor(spec("app").max_restarts(100).child("db", WORKER, critical).child("web", WORKER, ChildSpec::default())).await.unwrap();
    let web_pid = pid(&sup, "web").await;
    let mut rx = sup.events();
    std::fs::write(&block, "").unwrap();
    kill(pid(&sup, "db").await);
    match next_matching(&mut rx, |e| matches!(e, SupervisorEvent::Failed { .. })).await {
        SupervisorEvent::Failed { reason } => assert!(reason.contains("critical child app/db could not be restarted"), "{reason}"),
        _ => unreachable!(),
    }
    assert_eq!(sup.state().await.unwrap(), SupervisorState::Failed);
    assert!(eventually(Duration::from_secs(5), || !alive(web_pid)).await, "its siblings were stopped");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_transient_child_that_exits_normally_is_not_restarted_and_a_temporary_one_never_is() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let of = |restart| ChildSpec { restart, ..ChildSpec::default() };
    let s = spec("app")
        .child("normal", WORKER, of(ChildRestart::Transient))
        .child("abnormal", WORKER, of(ChildRestart::Transient))
        .child("temp", WORKER, of(ChildRestart::Temporary));
    let sup = pm.supervisor(s).await.unwrap();
    let mut rx = sup.events();
    let _ = sup.child("normal").await.unwrap().call::<()>("exit", (0,)).await;
    match next_matching(&mut rx, |e| matches!(e, SupervisorEvent::ChildExited { .. })).await {
        SupervisorEvent::ChildExited { name, normal, exit_code, .. } => assert_eq!((name.as_str(), normal, exit_code), ("normal", true, Some(0))),
        _ => unreachable!(),
    }
    let _ = sup.child("abnormal").await.unwrap().call::<()>("exit", (3,)).await;
    next_matching(&mut rx, is_restart_of("abnormal")).await;
    kill(pid(&sup, "temp").await);
    next_matching(&mut rx, |e| matches!(e, SupervisorEvent::ChildExited { name, .. } if name == "temp")).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // well past the 20 ms backoff
    let rows = sup.children().await.unwrap();
    let states: Vec<_> = rows.iter().map(|c| (c.name.as_str(), c.state, c.restarts)).collect();
    assert_eq!(states, [("normal", ProcessState::Stopped, 0), ("abnormal", ProcessState::Running, 1), ("temp", ProcessState::Stopped, 0)]);
    let e = sup.child("normal").await.unwrap().call::<i64>("add", (1, 1)).await.unwrap_err();
    assert!(matches!(e, Error::ProcessFailed { state: ProcessState::Stopped, .. }), "{e}");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_pool_child_keeps_its_size_through_crashes() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = ChildSpec { pool: Some(PoolOptions { size: PoolSize::Fixed(3), ..PoolOptions::default() }), ..ChildSpec::default() };
    let sup = pm.supervisor(spec("app").child("db", WORKER, ChildSpec::default()).child("workers", WORKER, pool)).await.unwrap();
    let workers = sup.pool("workers").await.unwrap();
    assert_eq!(workers.size().await.unwrap(), 3);
    let listed = pm.list_processes().await.into_iter().filter(|p| p.name == "app/workers").count();
    assert_eq!(listed, 3, "pool members are listed under the supervisor path");
    let members = sup.children().await.unwrap()[1].process_ids.clone();
    for id in &members[..2] {
        kill(pm.get_process(*id).await.unwrap().pid);
    }
    let mut back = false;
    for _ in 0..200 {
        let ids = sup.children().await.unwrap()[1].process_ids.clone();
        if ids.len() == 3 && !ids.contains(&members[0]) && !ids.contains(&members[1]) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the pool replaced both members");
    assert_eq!(workers.size().await.unwrap(), 3);
    assert_eq!(workers.call::<i64>("add", (2, 2)).await.unwrap(), 4);
    assert_eq!(sup.children().await.unwrap()[1].restarts, 0, "the pool replaced them, not the supervisor");
    assert_eq!(sup.state().await.unwrap(), SupervisorState::Running);
    pm.shutdown().await;
}
