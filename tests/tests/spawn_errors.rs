//! Bad targets get a `SpawnError` that says why, with the worker's stderr tail.

use std::os::unix::fs::PermissionsExt;

use titan_pm::{Error, Isolation, ManagerConfig, ProcessManager, SpawnOptions};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

async fn spawn_error(target: &str, options: SpawnOptions) -> (String, String) {
    let pm = ProcessManager::new(ManagerConfig::default());
    let err = pm.spawn(target, options).await.err().expect("spawn should fail");
    assert!(pm.list_processes().await.is_empty(), "a failed spawn leaves no process behind");
    match err {
        Error::Spawn { reason, stderr_tail, .. } => (reason, stderr_tail),
        other => panic!("expected SpawnError, got {other}"),
    }
}

fn env(mode: &str) -> SpawnOptions {
    SpawnOptions { env: vec![("TEST_MODE".into(), mode.into())], ..Default::default() }
}

#[tokio::test]
async fn a_missing_file() {
    let (reason, _) = spawn_error("/nonexistent/worker", SpawnOptions::default()).await;
    assert!(reason.contains("cannot read /nonexistent/worker"), "{reason}");
}

#[tokio::test]
async fn a_file_that_is_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.bin");
    std::fs::write(&path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (reason, _) = spawn_error(path.to_str().unwrap(), SpawnOptions::default()).await;
    assert!(reason.contains("is not executable"), "{reason}");
}

#[tokio::test]
async fn a_typescript_file_names_the_compiled_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calc.ts");
    std::fs::write(&path, "export default class {}\n").unwrap();
    let (reason, _) = spawn_error(path.to_str().unwrap(), SpawnOptions::default()).await;
    assert!(reason.contains("calc.js"), "{reason}");
}

#[tokio::test]
async fn a_worker_that_dies_before_registering() {
    let (reason, tail) = spawn_error(WORKER, env("die-before-register")).await;
    assert!(reason.contains("exited before it was ready (exit code 3)"), "{reason}");
    assert!(tail.contains("dying before registration on purpose"), "{tail}");
}

#[tokio::test]
async fn an_executable_that_is_not_a_worker() {
    let (reason, _) = spawn_error("/bin/true", SpawnOptions::default()).await;
    assert!(reason.contains("exited before it was ready (exit code 0)"), "{reason}");
}

#[tokio::test]
async fn init_raising_is_not_retried() {
    let (reason, _) = spawn_error(WORKER, env("init-fails")).await;
    assert!(reason.contains("init raised RuntimeError: init failed on purpose"), "{reason}");
}

#[tokio::test]
async fn a_file_target_in_a_thread_says_to_use_child() {
    let options = SpawnOptions { isolation: Some(Isolation::Worker), ..Default::default() };
    let (reason, _) = spawn_error(WORKER, options).await;
    assert!(reason.contains("use isolation 'child'"), "{reason}");
}

#[tokio::test]
async fn a_python_worker_without_titan_pm_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calc.py");
    std::fs::write(&path, "x = 1\n").unwrap();
    // An interpreter that cannot import titan_pm: isolated, without site-packages.
    let python = dir.path().join("bare-python");
    std::fs::write(&python, "#!/bin/sh\nexec python3 -I -S \"$@\"\n").unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = ManagerConfig { python: python.display().to_string(), ..ManagerConfig::default() };
    let pm = ProcessManager::new(config);
    match pm.spawn(path.to_str().unwrap(), SpawnOptions::default()).await {
        Err(Error::Spawn { reason, stderr_tail, .. }) => {
            assert!(reason.contains("cannot import titan_pm"), "{reason}");
            assert!(stderr_tail.contains("No module named"), "{stderr_tail}");
        }
        other => panic!("expected SpawnError, got {:?}", other.map(|h| h.id())),
    }
}
