//! Shared pieces of the CLI tests: the `titan-pm` binary, the test worker
//! (built once if missing), a test host serving the control socket, and a
//! bounded way to run the CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn titan_pm() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_titan-pm"))
}

/// The test worker executable of the `titan-pm-tests` crate, next to `titan-pm`.
pub fn test_worker() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let path = titan_pm().with_file_name("test-worker");
            // `cargo test --workspace` (and scripts/test.sh) builds it with everything else;
            // `cargo test -p titan-pm-cli` alone does not, so it is built here if missing.
            // (Not rebuilt when present: a lone build resolves features differently and would
            // recompile the core each run. After changing the test worker, build the workspace.)
            if !path.exists() {
                let status = Command::new(env!("CARGO"))
                    .args(["build", "-q", "-p", "titan-pm-tests", "--bin", "test-worker"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .status()
                    .expect("cargo build of the test worker");
                assert!(status.success(), "cannot build the test worker");
            }
            assert!(path.exists(), "no test worker at {}", path.display());
            path
        })
        .clone()
}

/// Runs `titan-pm --socket SOCKET ARGS`, failing the test if it takes over 60 s.
pub fn cli(socket: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(titan_pm())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run titan-pm");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("titan-pm {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like [`cli`], asserting success; returns stdout.
pub fn ok(socket: &Path, args: &[&str]) -> String {
    let out = cli(socket, args);
    assert!(out.status.success(), "titan-pm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(socket: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(socket, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("titan-pm {args:?} --json printed no JSON ({e}): {out}"))
}

pub fn alive(pid: i32) -> bool {
    // Zombies count as gone: only running processes are "left behind".
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls `f` until it holds, failing after `limit`.
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
