//! Graceful shutdown runs the worker's hook and stops it; a host killed with
//! SIGKILL leaves no worker behind; worker output reaches the host prefixed.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use titan_pm::{ManagerConfig, Output, ProcessManager, ProcessState, SpawnOptions};
use titan_pm_tests::{alive, eventually};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const HOST: &str = env!("CARGO_BIN_EXE_test-host");

#[tokio::test]
async fn shutdown_drains_calls_and_runs_the_shutdown_hook() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("shutdown.txt");
    let pm = ProcessManager::new(ManagerConfig::default());
    let options = SpawnOptions {
        env: vec![("TEST_SHUTDOWN_FILE".into(), marker.display().to_string())],
        ..Default::default()
    };
    let h = pm.spawn(WORKER, options).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    // A call in flight when shutdown starts still completes.
    let in_flight = tokio::spawn({
        let h = h.clone();
        async move { h.call::<u64>("slow", (300,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    pm.shutdown().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), 300);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "shutdown hook ran");
    assert!(eventually(Duration::from_secs(2), || !alive(pid)).await);
    // After shutdown the manager refuses new work.
    assert!(pm.spawn(WORKER, SpawnOptions::default()).await.is_err());
}

#[tokio::test]
async fn calls_after_stop_intake_fail_fast() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let slow = tokio::spawn({
        let h = h.clone();
        async move { h.call::<u64>("slow", (300,)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = tokio::spawn({
        let pm = pm.clone();
        async move { pm.shutdown().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = h.call::<i64>("add", (1, 2)).await.unwrap_err();
    assert!(
        matches!(err, titan_pm::Error::ProcessFailed { state: ProcessState::Stopping, .. } | titan_pm::Error::ManagerShutDown),
        "{err}"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 300);
    stopping.await.unwrap();
}

#[test]
fn a_host_killed_with_sigkill_leaves_no_worker_behind() {
    let mut host = std::process::Command::new(HOST)
        .arg(WORKER)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(host.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let pid: u32 = line.trim().strip_prefix("worker ").unwrap().parse().unwrap();
    assert!(alive(pid));
    let killed = std::time::Instant::now();
    host.kill().unwrap();
    host.wait().unwrap();
    while alive(pid) && killed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(pid), "worker {pid} outlived its host");
    assert!(killed.elapsed() < Duration::from_secs(1), "the worker took {:?} to exit", killed.elapsed());
}

#[tokio::test]
async fn worker_output_reaches_the_host_line_by_line() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let output = Output::Callback(Arc::new(move |stream, name: &str, pid, line: &str| {
        sink.lock().unwrap().push(format!("{stream:?} [{name}:{pid}] {line}"));
    }));
    let pm = ProcessManager::new(ManagerConfig { output, ..ManagerConfig::default() });
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let pid = h.info().await.unwrap().pid;
    h.call::<()>("print", ("hello",)).await.unwrap();
    let expected = [format!("Stdout [test-worker:{pid}] hello"), format!("Stderr [test-worker:{pid}] err: hello")];
    assert!(
        eventually(Duration::from_secs(2), || {
            let got = lines.lock().unwrap();
            expected.iter().all(|e| got.contains(e))
        })
        .await,
        "{:?}",
        lines.lock().unwrap()
    );
    pm.shutdown().await;
}

#[tokio::test]
async fn the_prefix_output_shows_name_and_pid() {
    // Output::Prefix writes to the host's own stdout; run a host whose stdout we read.
    let out = std::process::Command::new(HOST).arg("--print-demo").arg(WORKER).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("[test-worker:") && l.ends_with("] hello from the worker")), "{text}");
}
