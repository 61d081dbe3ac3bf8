//! `titan-pm start FILE` runs a daemon from a process file with a process, a
//! pool and a supervisor of two children: the starting shell exits, `ls` sees them, `reload` replaces the
//! changed entry rolling and leaves the unchanged one, `stop` leaves no process
//! behind. A file with an unknown option fails before anything starts.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Kills the daemon if the test fails half-way.
struct Daemon(std::path::PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn write_file(path: &Path, pool_env: &str) {
    let worker = test_worker();
    std::fs::write(
        path,
        format!(
            r#"
[manager]
resources = {{ timeout = 10000 }}
restartPolicy = {{ maxRestarts = 3, backoff = {{ initial = 100 }} }}

[[process]]
name = "solo"
script = "{worker}"

[[pool]]
name = "workers"
script = "{worker}"
size = 2
strategy = "least-connections"
dependencies = {{ version = "{pool_env}" }}

[[supervisor]]
name = "app"
strategy = "one-for-all"
maxRestarts = 2
children = [{{ name = "db", script = "{worker}", critical = true }}, {{ name = "api", script = "{worker}" }}]
"#,
            worker = worker.display()
        ),
    )
    .unwrap();
}

fn pids(v: &serde_json::Value, name: &str) -> Vec<i32> {
    v.as_array().unwrap().iter().filter(|r| r["name"] == name).map(|r| r["pid"].as_i64().unwrap() as i32).collect()
}

#[test]
fn start_ls_reload_stop() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let socket = run.join("control.sock");
    let file = dir.path().join("titan.toml");
    write_file(&file, "1");
    let _guard = Daemon(run.join("titan-pm.pid"));

    // The shell that starts it gets its prompt back.
    let out = ok(&socket, &["start", file.to_str().unwrap()]);
    assert!(out.contains("started: solo, workers, app"), "{out}");
    let daemon: i32 = std::fs::read_to_string(run.join("titan-pm.pid")).unwrap().trim().parse().unwrap();
    assert!(alive(daemon));
    // A session of its own (no controlling terminal): closing the shell's terminal does not reach it.
    let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let session: i32 = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(session, daemon, "the daemon leads its own session");
    assert!(run.join("titan-pm.log").exists());

    let ls = json(&socket, &["ls"]);
    assert_eq!(pids(&ls, "solo").len(), 1, "{ls}");
    assert_eq!(pids(&ls, "workers").len(), 2, "{ls}");
    assert_eq!((pids(&ls, "app/db").len(), pids(&ls, "app/api").len()), (1, 1), "the supervisor's children: {ls}");
    assert!(ls.as_array().unwrap().iter().all(|r| r["state"] == "running"));
    assert_eq!(ok(&socket, &["call", "workers", "dependencies"]).trim(), r#"{"version":"1"}"#);

    // A second start on the same socket is refused with the way out.
    let again = cli(&socket, &["start", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already serves"));

    // reload --changed-only: the pool changed (its dependencies), the process did not.
    write_file(&file, "2");
    let summary = json(&socket, &["reload", "--changed-only", file.to_str().unwrap()]);
    assert_eq!(summary["reloaded"], serde_json::json!(["workers"]), "{summary}");
    assert_eq!(summary["unchanged"], serde_json::json!(["solo", "app"]), "{summary}");
    let after = json(&socket, &["ls"]);
    assert_eq!(pids(&after, "solo"), pids(&ls, "solo"), "the unchanged process kept running");
    let (old, new) = (pids(&ls, "workers"), pids(&after, "workers"));
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|p| !old.contains(p)), "every member replaced: {old:?} -> {new:?}");
    for _ in 0..4 {
        assert_eq!(ok(&socket, &["call", "workers", "dependencies"]).trim(), r#"{"version":"2"}"#);
    }
    // reload (every entry): the process restarts too, keeping its id.
    let summary = json(&socket, &["reload", file.to_str().unwrap()]);
    assert_eq!(summary["reloaded"], serde_json::json!(["solo", "workers", "app"]), "{summary}");
    let again = json(&socket, &["ls"]);
    assert_ne!(pids(&again, "solo"), pids(&ls, "solo"));
    assert_eq!(pids(&again, "app/db").len(), 1, "the supervisor restarted whole: {again}");
    assert_ne!(pids(&again, "app/db"), pids(&ls, "app/db"));

    // stop: graceful; nothing is left behind, the socket and pid file go away.
    let workers: Vec<i32> = again.as_array().unwrap().iter().map(|r| r["pid"].as_i64().unwrap() as i32).collect();
    let out = ok(&socket, &["stop"]);
    assert!(out.contains("manager stopped"), "{out}");
    eventually(Duration::from_secs(20), "every worker and the daemon exit", || {
        !alive(daemon) && workers.iter().all(|p| !alive(*p))
    });
    assert!(!socket.exists() && !run.join("titan-pm.pid").exists());
    let log = std::fs::read_to_string(run.join("titan-pm.log")).unwrap();
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn a_bad_process_file_fails_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run").join("control.sock");
    let file = dir.path().join("titan.toml");
    std::fs::write(&file, "[[pool]]\nname = \"w\"\nscript = \"./w\"\nautoScale = { targetCPUs = 3 }\n").unwrap();
    let out = cli(&socket, &["start", "--no-daemon", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pool[0] (w): autoScale.targetCPUs: unknown option"), "{err}");
    assert!(!socket.exists());

    std::fs::write(&file, "[[process]]\nname = \"w\"\n").unwrap();
    let err = String::from_utf8_lossy(&cli(&socket, &["start", file.to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("process[0]: script is missing"), "{err}");

    std::fs::write(&file, "[[supervisor]]\nname = \"app\"\nstrategy = \"one-for-most\"\nchildren = [{ name = \"a\", script = \"./w\" }]\n").unwrap();
    let err = String::from_utf8_lossy(&cli(&socket, &["start", file.to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("supervisor[0] (app): strategy: unknown supervision strategy"), "{err}");
    std::fs::write(&file, "[[supervisor]]\nname = \"app\"\nchildren = [{ name = \"a\", script = \"./w\", restart = \"sometimes\" }]\n").unwrap();
    let err = String::from_utf8_lossy(&cli(&socket, &["start", file.to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("supervisor[0] (app): children[0].restart"), "{err}");
}

#[test]
fn a_changed_process_reloads_onto_its_new_options_keeping_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let socket = run.join("control.sock");
    let file = dir.path().join("titan.toml");
    let write = |version: &str| {
        let entry = format!("[[process]]\nname = \"solo\"\nscript = \"{}\"\ndependencies = {{ version = \"{version}\" }}\n", test_worker().display());
        std::fs::write(&file, entry).unwrap();
    };
    write("1");
    let _guard = Daemon(run.join("titan-pm.pid"));
    ok(&socket, &["start", file.to_str().unwrap()]);
    let before = json(&socket, &["ls"]);
    assert_eq!(ok(&socket, &["call", "solo", "dependencies"]).trim(), r#"{"version":"1"}"#);

    write("2");
    let summary = json(&socket, &["reload", "--changed-only", file.to_str().unwrap()]);
    assert_eq!(summary["reloaded"], serde_json::json!(["solo"]), "{summary}");
    let after = json(&socket, &["ls"]);
    assert_eq!(after.as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after[0]["processId"], before[0]["processId"], "the id stays: {before} -> {after}");
    assert_ne!(after[0]["pid"], before[0]["pid"], "a new instance");
    assert_eq!(after[0]["restarts"], 1);
    assert_eq!(ok(&socket, &["call", "solo", "dependencies"]).trim(), r#"{"version":"2"}"#, "the new options");
    // A later restart keeps the new options.
    ok(&socket, &["restart", "solo"]);
    assert_eq!(ok(&socket, &["call", "solo", "dependencies"]).trim(), r#"{"version":"2"}"#);
    ok(&socket, &["stop"]);
}
