//! `titan-pm start FILE`: reads the process file (TOML, the API's option names:
//! camelCase, durations in ms), checks it through core's option readers before
//! anything starts, then runs a manager serving the control socket: as a
//! daemon (the CLI started again with `--no-daemon` in a new session, see
//! [`launch`]: stdin from /dev/null, stdout/stderr appended to `titan-pm.log`
//! beside the socket, `titan-pm.pid` beside it too) or in the foreground with
//! `--no-daemon`. The file is applied through the manager's
//! own control socket, so `reload` later compares against it. `titan-pm stop`,
//! SIGTERM or SIGINT stop every worker gracefully, then the manager exits.
//! The starting shell waits until every entry is up (or failed) and exits.
//! The daemon's log is rotated: past [`LOG_MAX_BYTES`] it becomes
//! `titan-pm.log.1` (replacing the previous one) and a new log starts.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use titan_pm::control::file;
use titan_pm::value::{self, Value};
use titan_pm::ProcessManager;

use crate::client::{self, json, read, rpc_err};
use crate::Launcher;

/// The daemon's log file rotates past this size (checked every [`LOG_CHECK`]).
pub const LOG_MAX_BYTES: u64 = 10 << 20;
const LOG_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Moves a log past [`LOG_MAX_BYTES`] to `.1` and points stdout/stderr at a fresh file.
fn rotate(log: &Path, max: u64) {
    if std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) < max {
        return;
    }
    let old = log.with_extension("log.1");
    if std::fs::rename(log, &old).is_err() {
        return;
    }
    let Ok(c) = std::ffi::CString::new(log.as_os_str().as_encoded_bytes()) else { return };
    // SAFETY: plain fd calls; stdout/stderr now write to the new file.
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC, 0o600);
        if fd >= 0 {
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
            libc::close(fd);
        }
    }
}

/// Reads a process file into a `Value`, scripts made absolute (relative to the file).
pub fn read_file(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let toml: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let j = serde_json::to_value(toml).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut v = value::to_value(&j).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = std::fs::canonicalize(path).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| PathBuf::from("."));
    file::resolve_scripts(&mut v, &dir);
    file::parse(&v).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(v)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf()) }
}

pub fn start(path: &Path, socket: &Path, no_daemon: bool, ready_fd: Option<i32>, launcher: &Launcher) -> Result<(), String> {
    let v = read_file(path)?;
    let mut config = file::parse(&v).map_err(|e| e.to_string())?.manager;
    // The front end's interpreters, unless the file names its own.
    let set = |key: &str| v.get("manager").and_then(|m| m.get(key)).is_some();
    if let (Some(python), false) = (&launcher.python, set("python")) {
        config.python = python.clone();
    }
    if let (Some(node), false) = (&launcher.node, set("node")) {
        config.node = node.clone();
    }
    let socket = absolute(socket);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return Err(format!(
            "a manager already serves {} (apply changes with `titan-pm reload {}`, or `titan-pm stop` it first)",
            socket.display(),
            path.display()
        ));
    }
    let dir = socket.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| format!("cannot chmod {}: {e}", dir.display()))?;
    }
    let log = dir.join("titan-pm.log");
    let pid_file = dir.join("titan-pm.pid");
    if no_daemon {
        // As the daemon `start` launched: report readiness on `ready_fd`, rotate the log.
        let daemon = match ready_fd {
            Some(fd) => Some((ready_pipe(fd)?, log)),
            None => None,
        };
        return serve(config, v, &socket, &pid_file, daemon);
    }
    launch(&launcher.relaunch, &absolute(path), &socket, &log)?;
    println!("log: {}\npid file: {}\nsocket: {}", log.display(), pid_file.display(), socket.display());
    Ok(())
}

/// The inherited readiness pipe of `--ready-fd`, made close-on-exec so no worker holds it open.
fn ready_pipe(fd: i32) -> Result<std::fs::File, String> {
    // SAFETY: fcntl on a descriptor number; the File owns it only if it is open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(format!("--ready-fd {fd}: not an open descriptor"));
    }
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Starts the daemon: `relaunch start --no-daemon --ready-fd 3 FILE` in a new
/// session (`setsid`: no controlling terminal, so closing the shell's terminal does
/// not reach it), umask 077, in `/`, stdin from /dev/null, stdout and stderr
/// appended to `log`; fd 3 is the write end of a pipe it reports on ("ok\n" and a
/// summary, or an error). A new process, not a fork: the caller may be a Python or
/// Node process with threads, where only exec is safe after fork. Returns once the
/// daemon reported (its summary printed).
fn launch(relaunch: &[OsString], file: &Path, socket: &Path, log: &Path) -> Result<(), String> {
    let (program, prefix) = relaunch.split_first().ok_or("no command to start the daemon with")?;
    let mut fds = [0i32; 2];
    // SAFETY: a plain pipe; both ends close-on-exec (the child gets a dup as fd 3).
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (mut reader, writer) = unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let w = writer.as_raw_fd();
    let mut cmd = std::process::Command::new(program);
    cmd.args(prefix)
        .arg("--socket")
        .arg(socket)
        .args(["start", "--no-daemon", "--ready-fd", "3"])
        .arg(file)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: between fork and exec only async-signal-safe calls (setsid, umask, dup2, fcntl).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::umask(0o077);
            let ok = if w == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(w, 3) };
            if ok < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the daemon ({}): {e}", Path::new(program).display()))?;
    drop(writer);
    let mut report = String::new();
    let _ = reader.read_to_string(&mut report);
    match report.strip_prefix("ok\n") {
        Some(summary) => {
            print!("{summary}");
            Ok(())
        }
        None if report.is_empty() => {
            let status = child.wait().map(|s| format!(" ({s})")).unwrap_or_default();
            Err(format!("the daemon exited before it was ready{status}; see {}", log.display()))
        }
        None => {
            let _ = child.wait();
            Err(report.trim_end().to_string())
        }
    }
}

fn serve(
    config: titan_pm::ManagerConfig,
    file: Value,
    socket: &Path,
    pid_file: &Path,
    daemon: Option<(std::fs::File, PathBuf)>,
) -> Result<(), String> {
    let (ready, log) = match daemon {
        Some((r, l)) => (Some(r), Some(l)),
        None => (None, None),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut ready = ready;
        let mut report = |text: String| match ready.take() {
            Some(mut r) => {
                let _ = r.write_all(text.as_bytes());
            }
            None => print!("{}", text.strip_prefix("ok\n").unwrap_or(&text)),
        };
        let pm = ProcessManager::new(config);
        let control = match pm.serve_control(socket) {
            Ok(c) => c,
            Err(e) => {
                report(e.to_string());
                return Err(e.to_string());
            }
        };
        let _ = std::fs::write(pid_file, format!("{}\n", std::process::id()));
        let applied = async {
            let m = client::connect(socket).await?;
            let mut req = m.apply_request();
            value::write(&file, req.get().init_file());
            let reply = req.send().promise.await.map_err(rpc_err)?;
            let summary = json(read(reply.get().map_err(rpc_err)?.get_summary())?);
            Ok::<_, String>(summary)
        }
        .await;
        let summary = match applied {
            Ok(s) => s,
            Err(e) => {
                pm.shutdown().await;
                control.close();
                let _ = std::fs::remove_file(pid_file);
                report(e.clone());
                return Err(e);
            }
        };
        let started: Vec<String> = summary["started"].as_array().cloned().unwrap_or_default().iter().filter_map(|n| n.as_str().map(String::from)).collect();
        report(format!("ok\nstarted: {} (manager pid {})\n", started.join(", "), std::process::id()));
        eprintln!("titan-pm: manager {} serving {}", std::process::id(), socket.display());
        if let Some(log) = log {
            tokio::task::spawn_local(async move {
                loop {
                    tokio::time::sleep(LOG_CHECK).await;
                    rotate(&log, LOG_MAX_BYTES);
                }
            });
        }
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (t, i),
            _ => return Err("cannot install signal handlers".into()),
        };
        tokio::select! {
            _ = control.shutdown_requested() => {}
            _ = term.recv() => pm.shutdown().await,
            _ = int.recv() => pm.shutdown().await,
        }
        control.close();
        let _ = std::fs::remove_file(pid_file);
        eprintln!("titan-pm: manager {} stopped", std::process::id());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_past_its_size_moves_to_dot_1_and_output_goes_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("titan-pm.log");
        std::fs::write(&log, "old line\n").unwrap();
        // Keep this test process's own stdout/stderr to put them back.
        let (out, err) = unsafe { (libc::dup(1), libc::dup(2)) };
        rotate(&log, 1000); // under the limit: nothing moves
        assert!(!log.with_extension("log.1").exists());
        rotate(&log, 4);
        unsafe { libc::write(1, b"new line\n".as_ptr().cast(), 9) };
        unsafe {
            libc::dup2(out, 1);
            libc::dup2(err, 2);
            libc::close(out);
            libc::close(err);
        }
        assert_eq!(std::fs::read_to_string(log.with_extension("log.1")).unwrap(), "old line\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "new line\n");
    }
}
