//! @InjectProcess and sidecars: a worker given another process calls it through
//! a capability the host serves, with the host's error kinds; the handle
//! survives the other process's restart; it can call nothing it was not given.

use std::time::Duration;

use serde_json::{json, Value as Json};
use titan_pm::pool::PoolOptions;
use titan_pm::supervise::SupervisorEvent;
use titan_pm::{ChildSpec, ManagerConfig, PoolSize, ProcessManager, SpawnOptions, SupervisionStrategy, SupervisorSpec};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn given(processes: &[(&str, u64)]) -> SpawnOptions {
    SpawnOptions { processes: processes.iter().map(|(n, id)| (n.to_string(), *id)).collect(), ..SpawnOptions::default() }
}

#[tokio::test]
async fn an_order_service_calls_its_injected_user_service_across_its_restart_and_nothing_else() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let users = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let other = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let orders = pm.spawn(WORKER, given(&[("users", users.id())])).await.unwrap();

    let r: Json = orders.call("call_given", ("users", "add", [2, 3], 0)).await.unwrap();
    assert_eq!(r, json!({ "ok": 5 }));
    assert_eq!(orders.call::<Vec<String>>("given", ()).await.unwrap(), ["users"]);
    assert!(other.call::<Vec<String>>("given", ()).await.unwrap().is_empty(), "a worker given nothing holds nothing");

    // The injected handle survives the user service's restart (same process id, new pid).
    let old_pid: u32 = users.call("pid", ()).await.unwrap();
    let mut events = pm.events();
    unsafe { libc::kill(old_pid as i32, libc::SIGKILL) };
    // Once the host has seen the crash, a call waits for the restart (one sent before would fail as crashed).
    let crashed = async {
        while !matches!(events.recv().await.unwrap(), titan_pm::Event { process_id, kind: titan_pm::EventKind::Crashed { .. } } if process_id == users.id()) {}
    };
    tokio::time::timeout(Duration::from_secs(10), crashed).await.unwrap();
    let r: Json = orders.call("call_given", ("users", "pid", Vec::<Json>::new(), 0)).await.unwrap();
    let new_pid = r["ok"].as_u64().unwrap_or_else(|| panic!("{r}"));
    assert_ne!(new_pid, old_pid as u64);

    // The host's error kinds reach the worker as they would reach a host.
    let r: Json = orders.call("call_given", ("users", "raise", ["boom"], 0)).await.unwrap();
    assert_eq!(r["error"], "RemoteError", "{r}");
    assert!(r["message"].as_str().unwrap().contains("boom"));
    let r: Json = orders.call("call_given", ("users", "nope", Vec::<Json>::new(), 0)).await.unwrap();
    assert_eq!(r["error"], "MethodNotFoundError", "{r}");
    let r: Json = orders.call("call_given", ("users", "slow", [2000], 300)).await.unwrap();
    assert_eq!(r, json!({ "error": "CallTimeoutError", "message": "call to slow timed out after 300 ms" }));

    // Only what it was given: the other process is unreachable, by name or otherwise.
    let r: Json = orders.call("call_given", ("other", "add", [1, 1], 0)).await.unwrap();
    assert_eq!(r["error"], "ConfigError", "{r}");
    assert!(r["message"].as_str().unwrap().contains("no process named \"other\" was given to this worker (given: users)"), "{r}");

    // Granting a process that does not exist is refused at spawn.
    let e = pm.spawn(WORKER, given(&[("ghost", 9999)])).await.err().unwrap();
    assert!(e.to_string().contains("processes.ghost: no process or pool with id 9999"), "{e}");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_pool_can_be_injected_and_calls_are_balanced_over_it() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let pool = pm.pool(WORKER, PoolOptions { size: PoolSize::Fixed(2), ..PoolOptions::default() }).await.unwrap();
    let client = pm.spawn(WORKER, given(&[("workers", pool.id())])).await.unwrap();
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r: Json = client.call("call_given", ("workers", "pid", Vec::<Json>::new(), 0)).await.unwrap();
        pids.insert(r["ok"].as_u64().unwrap_or_else(|| panic!("{r}")));
    }
    assert_eq!(pids.len(), 2, "both pool members served");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_supervised_child_whose_init_calls_the_injected_previous_sibling_starts() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let calls_db = ChildSpec {
        inject: vec!["db".into()],
        spawn: SpawnOptions { env: vec![("TEST_INIT_CALL".into(), "db".into())], ..SpawnOptions::default() },
        ..ChildSpec::default()
    };
    let spec = SupervisorSpec::new(SupervisionStrategy::OneForOne)
        .name("app")
        .backoff(titan_pm::policy::Backoff::exponential(Duration::from_millis(20), Duration::from_millis(100)))
        .child("db", WORKER, ChildSpec::default())
        .child("api", WORKER, calls_db);
    let sup = pm.supervisor(spec).await.unwrap();
    let api = sup.child("api").await.unwrap();
    let r: Json = api.call("call_given", ("db", "add", [20, 22], 0)).await.unwrap();
    assert_eq!(r, json!({ "ok": 42 }));
    // The sibling restarts; the api's handle to it still works.
    let mut rx = sup.events();
    let db_pid: u32 = sup.child("db").await.unwrap().call("pid", ()).await.unwrap();
    unsafe { libc::kill(db_pid as i32, libc::SIGKILL) };
    let wait = async {
        while !matches!(rx.recv().await.unwrap(), SupervisorEvent::ChildRestarted { ref name, .. } if name == "db") {}
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.unwrap();
    let r: Json = api.call("call_given", ("db", "add", [1, 2], 0)).await.unwrap();
    assert_eq!(r, json!({ "ok": 3 }));

    // Injecting a child declared later is refused.
    let bad = SupervisorSpec::new(SupervisionStrategy::OneForOne)
        .child("api", WORKER, ChildSpec { inject: vec!["db".into()], ..ChildSpec::default() })
        .child("db", WORKER, ChildSpec::default());
    let e = pm.supervisor(bad).await.err().unwrap();
    assert!(e.to_string().contains("injects \"db\", which is not a child declared before it"), "{e}");
    pm.shutdown().await;
}

#[tokio::test]
async fn a_process_handle_passed_as_a_spawn_dependency_is_given_to_the_worker() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let main = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let deps = |v: Json| titan_pm::value::to_value(&v).unwrap();
    let sidecar = SpawnOptions { dependencies: deps(json!({ "main": { "$process": main.id() }, "label": "logs" })), ..SpawnOptions::default() };
    let sidecar = pm.spawn(WORKER, sidecar).await.unwrap();
    let r: Json = sidecar.call("call_given", ("main", "add", [2, 3], 0)).await.unwrap();
    assert_eq!(r, json!({ "ok": 5 }));
    assert_eq!(sidecar.call::<Vec<String>>("given", ()).await.unwrap(), ["main"]);
    // What the worker's init received in its place: the name it was given under.
    let d: Json = sidecar.call("dependencies", ()).await.unwrap();
    assert_eq!(d, json!({ "main": { "$given": "main" }, "label": "logs" }), "{d}");

    let bad = SpawnOptions { dependencies: deps(json!({ "main": { "$process": "x" } })), ..SpawnOptions::default() };
    let e = pm.spawn(WORKER, bad).await.err().unwrap();
    assert!(e.to_string().contains("dependencies.main: $process must be a process id, not text"), "{e}");
    let both = SpawnOptions { dependencies: deps(json!({ "main": { "$process": main.id() } })), ..given(&[("main", main.id())]) };
    let e = pm.spawn(WORKER, both).await.err().unwrap();
    assert!(e.to_string().contains("dependencies.main: a process is also given under processes.main"), "{e}");
    pm.shutdown().await;
}
