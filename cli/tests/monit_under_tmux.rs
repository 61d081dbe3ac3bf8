//! `titan-pm monit` as a person sees it: run under tmux against a test host,
//! the screen shows each process with its cpu, memory and request rate (the
//! loaded one above zero), and `q` quits. Needs tmux (scripts/test.sh installs
//! it); without it the test says so and is skipped.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use titan_pm::{ManagerConfig, ProcessManager, SpawnOptions};

fn tmux(server: &str, args: &[&str]) -> std::process::Output {
    Command::new("tmux").arg("-L").arg(server).args(args).output().expect("run tmux")
}

fn have_tmux() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if unsafe { libc::geteuid() } == 0 {
        let _ = Command::new("apt-get").args(["install", "-y", "-qq", "tmux"]).output();
    }
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// The number after `label` on `line`.
fn after(line: &str, label: &str) -> Option<f64> {
    line.split(label).nth(1)?.split_whitespace().next()?.trim_end_matches('%').parse().ok()
}

#[test]
fn monit_shows_each_process_and_q_quits() {
    if !have_tmux() {
        eprintln!("SKIPPED monit_shows_each_process_and_q_quits: tmux is not installed and could not be (apt-get install tmux)");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let pm = ProcessManager::new(ManagerConfig::default());
    let _control = pm.serve_control(&socket).unwrap();
    let worker = test_worker();
    let spawn = |name: &str| rt.block_on(pm.spawn(worker.as_path(), SpawnOptions { name: Some(name.into()), ..SpawnOptions::default() })).unwrap();
    let (alpha, _beta) = (spawn("alpha"), spawn("beta"));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (alpha, stop) = (alpha.clone(), stop.clone());
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = alpha.call::<u64>("slow", (1u64,)).await;
            }
        })
    };

    let server = format!("titan-pm-test-{}", std::process::id());
    let command = format!("exec {} --socket {} monit --interval 250", titan_pm().display(), socket.display());
    let out = tmux(&server, &["new-session", "-d", "-s", "monit", "-x", "160", "-y", "40", &command]);
    assert!(out.status.success(), "tmux: {}", String::from_utf8_lossy(&out.stderr));
    let mut screen = String::new();
    eventually(Duration::from_secs(20), "monit shows both processes with cpu, memory and a request rate", || {
        screen = String::from_utf8_lossy(&tmux(&server, &["capture-pane", "-p", "-t", "monit"]).stdout).into_owned();
        let lines: Vec<&str> = screen.lines().collect();
        let stats = |name: &str| {
            let i = lines.iter().position(|l| l.contains(&format!(" {name} ·")))?;
            let l = lines.get(i + 1)?;
            Some((after(l, "cpu")?, l.contains("mem"), after(l, "req/s")?))
        };
        matches!((stats("alpha"), stats("beta")), (Some((_, true, rate)), Some((_, true, _))) if rate > 0.0)
    });
    assert!(screen.contains("cpu") && screen.contains("mem"), "{screen}");
    tmux(&server, &["send-keys", "-t", "monit", "q"]);
    eventually(Duration::from_secs(10), "q quits monit", || !tmux(&server, &["has-session", "-t", "monit"]).status.success());
    let _ = tmux(&server, &["kill-server"]);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(load).unwrap();
    rt.block_on(pm.shutdown());
    eprintln!("{screen}");
}
