//! Starting one instance of a process: choose the runtime for the target, start
//! a child process, a thread or an in-engine task, wait for the worker to
//! register with the spawn's secret, describe it and run its `init`.
//!
//! Anything that goes wrong on the way is a `SpawnError` that says why, with
//! the worker's stderr tail, and leaves nothing running.

use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;

use super::output::{self, Dropped, Output, OutputStream, StderrTail};
use super::registry::{Connection, Registered, Registry};
use super::{live, HandlerFactory, Isolation, ManagerConfig, Target};
use crate::agent;
use crate::error::{describe_exit, Error, Result};
use crate::protocol::{Description, ErrorInfo};
use crate::titan_capnp::worker;
use crate::transport::{self, Endpoint, Transport};
use crate::value::{self, Value};

/// How an instance ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// For a thread worker that could not start: why.
    pub error: Option<String>,
}

impl ExitStatus {
    /// Ended on its own with code 0 (OTP's `normal`): a `transient` child is not restarted.
    pub(crate) fn normal(&self) -> bool {
        self.code == Some(0) && self.signal.is_none() && self.error.is_none()
    }
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(s: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus { code: s.code(), signal: s.signal(), error: None }
    }
}

/// Everything a launch needs to know.
pub(crate) struct LaunchSpec<'a> {
    pub target: &'a Target,
    pub isolation: Isolation,
    pub transport: Transport,
    pub dependencies: &'a Value,
    pub env: &'a [(String, String)],
    pub args: &'a [String],
    /// The process's name, shared so output prefixes follow a rename after `describe`.
    pub name: Rc<RefCell<String>>,
    /// The process's log ring (`titan-pm logs`).
    pub logs: Rc<super::logs::LogRing>,
    pub output: &'a Output,
    /// Counts the output lines that could not be queued.
    pub output_dropped: Dropped,
    pub output_tracker: &'a output::Tracker,
    pub config: &'a ManagerConfig,
    /// What the worker gets at `init` beside its dependencies: the processes it may call, its class's shared state.
    pub grants: &'a Grants,
    /// Where a bridge registers the runtimes behind this instance, and the process's id (see `live.rs`).
    pub live: (&'a std::sync::Arc<super::live::LiveSet>, u64),
    /// The manager's Python fork server (see `forkserver.rs`).
    pub fork_server: &'a super::forkserver::Slot,
}

/// The capabilities a worker is handed at `init` (see `grants.rs`).
pub(crate) struct Grants {
    pub engine: std::rc::Weak<super::engine::Engine>,
    /// Name → process (or pool) id.
    pub processes: Vec<(String, u64)>,
}

/// One running incarnation of a process.
pub(crate) struct Instance {
    pub worker: worker::Client,
    pub description: Description,
    /// The OS pid: the child's, or the host's for `worker` and `none`.
    pub pid: u32,
    /// Set for a child process, which can be signalled.
    child_pid: Option<u32>,
    connection: Connection,
    exit: watch::Receiver<Option<ExitStatus>>,
    next_call_id: Cell<u64>,
    pub in_flight: Cell<usize>,
    /// How a thread or in-engine instance ended when it was crashed on purpose (`crash`).
    crashed: RefCell<Option<ExitStatus>>,
}

impl Instance {
    pub(crate) fn next_call_id(&self) -> u64 {
        let id = self.next_call_id.get() + 1;
        self.next_call_id.set(id);
        id
    }

    /// Resolves when the instance has ended, with how.
    pub(crate) async fn exited(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        loop {
            if let Some(s) = rx.borrow_and_update().clone() {
                return self.crashed.borrow().clone().unwrap_or(s);
            }
            if rx.changed().await.is_err() {
                return ExitStatus::default();
            }
        }
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// False once the worker's connection has closed: from then on it gets no
    /// calls, even while its process lingers (it is killed shortly after).
    pub(crate) fn is_connected(&self) -> bool {
        self.connection.closed.peek().is_none()
    }

    /// Sends `signal` to a child process and its process group; a thread worker
    /// has its connection closed instead.
    pub(crate) fn signal(&self, signal: i32) {
        match self.child_pid {
            Some(pid) if !self.has_exited() => signal_child(pid, signal),
            Some(_) => {}
            None => self.connection.close(),
        }
    }

    /// Crashes the instance, as a test asks (`simulate_crash`): a child gets SIGKILL
    /// (its real exit status is reported); a thread or in-engine worker is torn
    /// down and reported as ended by SIGKILL, like a worker thread that was terminated.
    pub(crate) fn crash(&self) {
        if self.child_pid.is_none() && !self.has_exited() {
            *self.crashed.borrow_mut() = Some(ExitStatus { code: None, signal: Some(libc::SIGKILL), error: None });
        }
        self.kill();
    }

    /// Ends the instance now.
    pub(crate) fn kill(&self) {
        self.signal(libc::SIGKILL);
        self.connection.close();
    }
}

/// Starts one instance and waits until it is ready for calls.
pub(crate) async fn launch(spec: &LaunchSpec<'_>, registry: &Rc<Registry>) -> Result<Rc<Instance>> {
    let target_name = spec.target.describe();
    if let Some(name) = super::joins::remote_name(spec.target) {
        return launch_remote(spec, registry, name).await;
    }
    let secret = transport::new_secret().map_err(|e| Error::spawn(&target_name, e.to_string()))?;
    let registration = registry.expect(&secret);
    let started = start(spec, registry, &secret).await;
    let (exit, child_pid, tail, ipc_connection) = match started {
        Ok(x) => x,
        Err(e) => {
            registry.forget(&secret);
            return Err(e);
        }
    };
    let failed = |reason: String, tail: &StderrTail| Error::Spawn {
        target: target_name.clone(),
        reason,
        stderr_tail: tail.text(),
    };
    let kill = |conn: Option<&Connection>| {
        match child_pid {
            Some(pid) if exit.borrow().is_none() => signal_child(pid, libc::SIGKILL),
            Some(pid) => signal_group(pid, libc::SIGKILL),
            None => {}
        }
        if let Some(c) = conn {
            c.close();
        }
    };

    let mut exit_rx = exit.clone();
    let timeout = spec.config.spawn_timeout;
    let registered: Registered = tokio::select! {
        r = registration => match r {
            Ok(r) => r,
            Err(_) => return Err(failed("the host stopped while the worker was starting".into(), &tail)),
        },
        status = wait_exit(&mut exit_rx) => {
            registry.forget(&secret);
            if let Some(c) = &ipc_connection { c.close(); }
            // Give the output readers a moment to collect the last stderr lines.
            tokio::time::sleep(Duration::from_millis(30)).await;
            return Err(failed(exited_before_ready(&status, &tail), &tail));
        }
        _ = tokio::time::sleep(timeout) => {
            registry.forget(&secret);
            kill(ipc_connection.as_ref());
            return Err(failed(format!("the worker did not register within {} ms", timeout.as_millis()), &tail));
        }
    };
    let connection = registered.connection.clone();
    let pid = child_pid.unwrap_or(registered.pid);
    if child_pid.is_some() {
        watch_connection(connection.clone(), exit.clone(), pid);
    }

    let ready = tokio::time::timeout(timeout, describe_and_init(&registered.worker, spec.dependencies, spec.grants));
    let description = tokio::select! {
        r = ready => match r {
            Ok(Ok(d)) => d,
            Ok(Err(reason)) => {
                kill(Some(&connection));
                return Err(failed(reason, &tail));
            }
            Err(_) => {
                kill(Some(&connection));
                return Err(failed(format!("init did not finish within {} ms", timeout.as_millis()), &tail));
            }
        },
        status = wait_exit(&mut exit_rx) => {
            tokio::time::sleep(Duration::from_millis(30)).await;
            return Err(failed(exited_before_ready(&status, &tail), &tail));
        }
    };
    Ok(Rc::new(Instance {
        worker: registered.worker,
        description,
        pid,
        child_pid,
        connection,
        exit,
        next_call_id: Cell::new(0),
        in_flight: Cell::new(0),
        crashed: RefCell::new(None),
    }))
}

/// An instance of a `remote:NAME` target: the next remote worker that joins under
/// NAME (nothing is started; its own orchestrator runs it). It ends when its
/// connection closes: its calls fail at once, and the host starts nothing in its place.
async fn launch_remote(spec: &LaunchSpec<'_>, registry: &Rc<Registry>, name: &str) -> Result<Rc<Instance>> {
    let target = spec.target.describe();
    loop {
        let registered = registry.joins.take(name).await.map_err(|_| Error::spawn(&target, "the host stopped while waiting for a remote worker"))?;
        let connection = registered.connection.clone();
        if connection.closed.peek().is_some() {
            continue; // it left while standing by
        }
        let (exit_tx, exit) = watch::channel(None);
        let closed = connection.closed.clone();
        tokio::task::spawn_local(async move {
            let _ = closed.await;
            let _ = exit_tx.send(Some(ExitStatus { code: None, signal: None, error: None }));
        });
        let ready = tokio::time::timeout(spec.config.spawn_timeout, describe_and_init(&registered.worker, spec.dependencies, spec.grants));
        let description = match ready.await {
            Ok(Ok(d)) => d,
            Ok(Err(reason)) => {
                tracing::warn!(target: "titan_pm", "remote worker {name} (pid {}) could not start: {reason}", registered.pid);
                connection.close();
                continue;
            }
            Err(_) => {
                tracing::warn!(target: "titan_pm", "remote worker {name} (pid {}) did not finish init in time", registered.pid);
                connection.close();
                continue;
            }
        };
        return Ok(Rc::new(Instance {
            worker: registered.worker,
            description,
            pid: registered.pid,
            child_pid: None,
            connection,
            exit,
            next_call_id: Cell::new(0),
            in_flight: Cell::new(0),
            crashed: RefCell::new(None),
        }));
    }
}

async fn wait_exit(rx: &mut watch::Receiver<Option<ExitStatus>>) -> ExitStatus {
    loop {
        if let Some(s) = rx.borrow_and_update().clone() {
            return s;
        }
        if rx.changed().await.is_err() {
            return ExitStatus::default();
        }
    }
}

fn exited_before_ready(status: &ExitStatus, tail: &StderrTail) -> String {
    if let Some(e) = &status.error {
        return e.clone();
    }
    let mut reason = format!("the worker exited before it was ready ({})", describe_exit(status.code, status.signal));
    let text = tail.text();
    if text.contains("No module named 'titan_pm'") || text.contains("No module named titan_pm") {
        reason.push_str("; the worker's Python cannot import titan_pm: pip install ./python into that interpreter, or set the `python` option");
    } else if text.contains("Cannot find module 'titan-pm") {
        reason.push_str("; the worker's Node cannot load titan-pm: npm install it where the worker file is");
    }
    reason
}

async fn describe_and_init(worker: &worker::Client, dependencies: &Value, grants: &Grants) -> std::result::Result<Description, String> {
    let reply = worker.describe_request().send().promise.await.map_err(|e| format!("describe failed: {}", e.extra))?;
    let description = reply
        .get()
        .and_then(|r| r.get_description())
        .map_err(|e| e.to_string())
        .and_then(|d| Description::read(d).map_err(|e| e.to_string()))?;
    let mut req = worker.init_request();
    let deps = match dependencies {
        Value::Null => Value::Map(Vec::new()),
        other => other.clone(),
    };
    value::write(&deps, req.get().init_dependencies());
    let mut list = req.get().init_processes(grants.processes.len() as u32);
    for (i, (name, id)) in grants.processes.iter().enumerate() {
        let mut g = list.reborrow().get(i as u32);
        g.set_name(name.as_str());
        let caller = super::grants::CallerServer { engine: grants.engine.clone(), process_id: *id };
        g.set_caller(capnp_rpc::new_client(caller));
    }
    let shared = super::grants::SharedServer { engine: grants.engine.clone(), class: description.name.clone() };
    req.get().set_shared(capnp_rpc::new_client(shared));
    let reply = req.send().promise.await.map_err(|e| format!("init failed: {}", e.extra))?;
    let r = reply.get().map_err(|e| e.to_string())?;
    if r.get_failed() {
        let info = r.get_error().map_err(|e| e.to_string()).and_then(|e| ErrorInfo::read(e).map_err(|e| e.to_string()))?;
        let mut reason = format!("init raised {}: {}", info.type_name, info.message);
        if !info.stack.is_empty() {
            reason.push('\n');
            reason.push_str(info.stack.trim_end());
        }
        return Err(reason);
    }
    Ok(description)
}

type Started = (watch::Receiver<Option<ExitStatus>>, Option<u32>, StderrTail, Option<Connection>);

async fn start(spec: &LaunchSpec<'_>, registry: &Rc<Registry>, secret: &str) -> Result<Started> {
    let endpoint = match spec.transport {
        Transport::Ipc => None,
        transport => Some(registry.endpoint(transport).await?),
    };
    match (spec.isolation, spec.target) {
        (Isolation::Child, Target::Path(path)) => match start_forked(spec, path, registry, secret, &endpoint).await? {
            Some(started) => Ok(started),
            None => start_child(spec, path, registry, secret, endpoint),
        },
        (Isolation::Child, Target::Handler { name, .. }) => Err(Error::spawn(
            name,
            "isolation 'child' needs a file target (a .py, .js or executable file)",
        )),
        (_, Target::Path(path)) => Err(Error::spawn(
            path,
            format!(
                "isolation '{}' runs workers of the host's own language in-process; use isolation 'child' for this file",
                spec.isolation.as_str()
            ),
        )),
        (Isolation::Worker, Target::Handler { factory, own_thread: false, .. }) => {
            let factory = launching_on_its_thread(factory.clone(), spec);
            start_thread(factory, registry, secret, endpoint)
        }
        (Isolation::Worker | Isolation::None, Target::Handler { factory, .. }) => {
            let name = spec.name.borrow().clone();
            live::launching(spec.live.0, spec.live.1, &name, || start_in_engine(factory, registry, secret, spec))
        }
    }
}

/// The Node worker runtime: the script a Node host names in `TITAN_NODE_WORKER`
/// (so titan-pm need not be resolvable from the worker), else `titan-pm/worker`
/// as installed next to the worker file.
const NODE_MAIN: &str = "const p=process.env.TITAN_NODE_WORKER;delete process.env.TITAN_NODE_WORKER;\
require(p||require('module').createRequire(require('path').resolve(process.argv[1])).resolve('titan-pm/worker')).main()";

/// The program and arguments that run `target`, chosen by its extension.
fn command_for(target: &str, config: &ManagerConfig) -> Result<(String, Vec<String>)> {
    // `file.py:ClassName` selects a class; the file is what must exist.
    let file = match target.rsplit_once(':') {
        Some((file, class)) if !Path::new(target).exists() && !class.contains('/') => file,
        _ => target,
    };
    let path = Path::new(file);
    let meta = std::fs::metadata(path).map_err(|e| Error::spawn(target, format!("cannot read {file}: {e}")))?;
    if meta.is_dir() {
        return Err(Error::spawn(target, format!("{file} is a directory, not a worker file")));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "ts" | "mts" | "cts" => {
            let js = path.with_extension(match ext {
                "mts" => "mjs",
                "cts" => "cjs",
                _ => "js",
            });
            Err(Error::spawn(target, format!("TypeScript cannot run directly: compile it and spawn {}", js.display())))
        }
        "py" => Ok((config.python.clone(), vec!["-m".into(), "titan_pm.worker".into(), target.into()])),
        "js" | "mjs" | "cjs" => Ok((config.node.clone(), vec!["-e".into(), NODE_MAIN.into(), "--".into(), target.into()])),
        _ => {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(Error::spawn(
                    target,
                    format!("{file} is not executable (chmod +x it, or use a .py or .js worker)"),
                ));
            }
            Ok((target.to_string(), Vec::new()))
        }
    }
}

fn start_child(
    spec: &LaunchSpec<'_>,
    target: &str,
    registry: &Rc<Registry>,
    secret: &str,
    endpoint: Option<Endpoint>,
) -> Result<Started> {
    let (program, args) = command_for(target, spec.config)?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args).args(spec.args).envs(spec.env.iter().cloned()).env(transport::ENV_SECRET, secret);
    cmd.stdin(Stdio::null());
    let piped = !matches!(spec.output, Output::Inherit);
    if piped {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let host_pid = std::process::id() as i32;
    // Its own process group, so that ending the worker ends what it started too.
    cmd.process_group(0);
    let ipc = match &endpoint {
        Some(e) => {
            cmd.env(transport::ENV_CONNECT, e.to_env_value());
            None
        }
        None => {
            let (host_end, child_end) = transport::ipc::pair().map_err(|e| Error::spawn(target, format!("socketpair: {e}")))?;
            let host_end = transport::ipc::to_tokio(host_end).map_err(|e| Error::spawn(target, format!("socketpair: {e}")))?;
            cmd.env(transport::ENV_IPC_FD, "3");
            Some((host_end, child_end))
        }
    };
    let child_fd = ipc.as_ref().map(|(_, c)| c.as_raw_fd());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = child_fd {
                if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // No orphans: the worker dies with the host's engine thread.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != host_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::spawn(target, format!("cannot start {program}: {e}")))?;
    let pid = child.id().unwrap_or(0);
    let connection = ipc.map(|(host_end, child_end)| {
        drop(child_end);
        registry.accept(host_end, false)
    });

    let tail = StderrTail::default();
    if piped {
        let name = spec.name.clone();
        let forwarder = output::Forwarder::new(spec.output.clone(), spec.output_tracker);
        if let Some(out) = child.stdout.take() {
            let dropped = spec.output_dropped.clone();
            let fwd = output::forward(out, OutputStream::Stdout, forwarder.clone(), name.clone(), pid, tail.clone(), dropped, spec.logs.clone());
            tokio::task::spawn_local(fwd);
        }
        if let Some(err) = child.stderr.take() {
            let dropped = spec.output_dropped.clone();
            let fwd = output::forward(err, OutputStream::Stderr, forwarder, name, pid, tail.clone(), dropped, spec.logs.clone());
            tokio::task::spawn_local(fwd);
        }
    }
    let (exit_tx, exit_rx) = watch::channel(None);
    tokio::task::spawn_local(async move {
        let status = child.wait().await.map(ExitStatus::from).unwrap_or_default();
        // What the worker started (in its process group) ends with it.
        signal_group(pid, libc::SIGKILL);
        let _ = exit_tx.send(Some(status));
    });
    Ok((exit_rx, Some(pid), tail, connection))
}

/// Starts a `*.py` child from the manager's fork server (see `forkserver.rs`); `None` when
/// this spawn must start a fresh interpreter instead (the reasons are listed there).
async fn start_forked(
    spec: &LaunchSpec<'_>,
    target: &str,
    registry: &Rc<Registry>,
    secret: &str,
    endpoint: &Option<Endpoint>,
) -> Result<Option<Started>> {
    if !spec.config.fork_server {
        return Ok(None);
    }
    let (program, args) = command_for(target, spec.config)?;
    if program != spec.config.python || args.get(1).map(String::as_str) != Some("titan_pm.worker") {
        return Ok(None);
    }
    // The child's whole environment, as a plain spawn would give it.
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in std::env::vars_os() {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => env.push((k, v)),
            _ => return Ok(None),
        }
    }
    let mut set = |k: &str, v: String| match env.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k.to_string(), v)),
    };
    for (k, v) in spec.env {
        set(k, v.clone());
    }
    set(transport::ENV_SECRET, secret.to_string());
    match endpoint {
        Some(e) => set(transport::ENV_CONNECT, e.to_env_value()),
        None => set(transport::ENV_IPC_FD, "3".into()),
    }
    let Some(server) = spec.fork_server.get(&spec.config.python) else { return Ok(None) };
    if !server.suits(&env) {
        return Ok(None);
    }
    let failed = |what: &str, e: std::io::Error| Error::spawn(target, format!("{what}: {e}"));
    let piped = !matches!(spec.output, Output::Inherit);
    let pipes = if piped {
        let out = super::forkserver::output_pipe().map_err(|e| failed("pipe", e))?;
        let err = super::forkserver::output_pipe().map_err(|e| failed("pipe", e))?;
        Some((out, err))
    } else {
        None
    };
    let ipc = match endpoint {
        Some(_) => None,
        None => {
            let (host_end, child_end) = transport::ipc::pair().map_err(|e| failed("socketpair", e))?;
            Some((transport::ipc::to_tokio(host_end).map_err(|e| failed("socketpair", e))?, child_end))
        }
    };
    let mut fds = match &pipes {
        Some(((_, out), (_, err))) => vec![out.as_raw_fd(), err.as_raw_fd()],
        None => vec![1, 2],
    };
    if let Some((_, child_end)) = &ipc {
        fds.push(child_end.as_raw_fd());
    }
    let mut argv = vec![target.to_string()];
    argv.extend(spec.args.iter().cloned());
    let (pid, mut server_exit) = match server.fork(&argv, &env, &fds).await {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(target: "titan_pm", "{target}: not forked ({e}); starting a fresh interpreter");
            return Ok(None);
        }
    };
    // The server holds its own copies now; the child's ends close here.
    let connection = ipc.map(|(host_end, child_end)| {
        drop(child_end);
        registry.accept(host_end, false)
    });
    let tail = StderrTail::default();
    if let Some(((out, out_w), (err, err_w))) = pipes {
        drop((out_w, err_w));
        let forwarder = output::Forwarder::new(spec.output.clone(), spec.output_tracker);
        let fwd = output::forward(out, OutputStream::Stdout, forwarder.clone(), spec.name.clone(), pid, tail.clone(), spec.output_dropped.clone(), spec.logs.clone());
        tokio::task::spawn_local(fwd);
        let fwd = output::forward(err, OutputStream::Stderr, forwarder, spec.name.clone(), pid, tail.clone(), spec.output_dropped.clone(), spec.logs.clone());
        tokio::task::spawn_local(fwd);
    }
    let (exit_tx, exit_rx) = watch::channel(None);
    tokio::task::spawn_local(async move {
        let status = wait_exit(&mut server_exit).await;
        // What the worker started (in its process group) ends with it: the child is still a
        // zombie here, so its pid (and group id) cannot have been reused.
        signal_group(pid, libc::SIGKILL);
        let _ = exit_tx.send(Some(status));
        // From here on the instance has exited (`Instance::signal` skips it): let the server reap.
        server.reap(pid).await;
    });
    Ok(Some((exit_rx, Some(pid), tail, connection)))
}

/// How long a child whose connection closed may take to exit on its own (so
/// its exit status is reported) before it is killed.
const CLOSED_GRACE: Duration = Duration::from_millis(200);

/// A child whose connection closes is not a worker any more: it gets no calls
/// from then on (`Instance::is_connected`), and is ended if it lingers.
fn watch_connection(connection: Connection, mut exit: watch::Receiver<Option<ExitStatus>>, pid: u32) {
    tokio::task::spawn_local(async move {
        let _ = connection.closed.clone().await;
        let exited = tokio::time::timeout(CLOSED_GRACE, wait_exit(&mut exit)).await;
        if exited.is_err() {
            tracing::warn!(target: "titan_pm", "worker {pid} closed its connection but did not exit; killing it");
            signal_child(pid, libc::SIGKILL);
        }
    });
}

/// Signals the process group a child worker leads (the worker and whatever it started).
fn signal_group(pid: u32, signal: i32) {
    // SAFETY: a plain syscall; a group that is gone is ESRCH, which is fine.
    unsafe { libc::kill(-(pid as i32), signal) };
}

/// Signals a child that has not been reaped yet (so its pid cannot have been
/// reused): its group, and itself in case it left that group.
fn signal_child(pid: u32, signal: i32) {
    signal_group(pid, signal);
    // SAFETY: as above; the caller knows the child is not reaped.
    unsafe { libc::kill(pid as i32, signal) };
}

/// `factory`, run (on the worker thread) as the launch of `spec`'s process, so a bridge's runtimes register to it.
#[allow(clippy::result_large_err)] // the factory's own error type
fn launching_on_its_thread(factory: HandlerFactory, spec: &LaunchSpec<'_>) -> HandlerFactory {
    let (live, process, name) = (spec.live.0.clone(), spec.live.1, spec.name.borrow().clone());
    std::sync::Arc::new(move || live::launching(&live, process, &name, || factory()))
}

fn start_thread(factory: HandlerFactory, registry: &Rc<Registry>, secret: &str, endpoint: Option<Endpoint>) -> Result<Started> {
    let failed = |what: &str, e: std::io::Error| Error::spawn("handler", format!("cannot start a worker thread: {what}: {e}"));
    let (exit_tx, exit_rx) = watch::channel(None);
    let (stream, connection) = match endpoint {
        Some(e) => (Err(e), None),
        None => {
            let (host_end, worker_end) = transport::ipc::pair().map_err(|e| failed("socketpair", e))?;
            let host_end = transport::ipc::to_tokio(host_end).map_err(|e| failed("socketpair", e))?;
            (Ok(worker_end), Some(registry.accept(host_end, false)))
        }
    };
    let secret = secret.to_string();
    let started = std::thread::Builder::new().name("titan-pm-worker".into()).spawn(move || {
        let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Err(e) => Err(format!("cannot start the worker thread's runtime: {e}")),
            Ok(rt) => {
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    let handler = factory().map_err(|e| format_start_error(&e))?;
                    let outcome = match stream {
                        Ok(s) => {
                            let s = transport::ipc::to_tokio(s).map_err(|e| e.to_string())?;
                            agent::serve(s, &secret, handler).await
                        }
                        Err(endpoint) => agent::connect_and_serve(endpoint, &secret, handler).await,
                    };
                    outcome.map_err(|e| e.to_string())
                })
            }
        };
        let status = match result {
            Ok(()) => ExitStatus { code: Some(0), ..Default::default() },
            Err(e) => ExitStatus { code: Some(1), error: Some(e), signal: None },
        };
        let _ = exit_tx.send(Some(status));
    });
    if let Err(e) = started {
        if let Some(c) = &connection {
            c.close();
        }
        return Err(failed("thread", e));
    }
    Ok((exit_rx, None, StderrTail::default(), connection))
}

fn start_in_engine(factory: &HandlerFactory, registry: &Rc<Registry>, secret: &str, spec: &LaunchSpec<'_>) -> Result<Started> {
    let handler = factory().map_err(|e| Error::spawn("handler", format_start_error(&e)))?;
    // A runtime with output of its own (a Node worker thread): its lines go to the log ring.
    if let Some(mut lines) = handler.output_lines() {
        let (logs, name, pid) = (spec.logs.clone(), spec.name.clone(), std::process::id());
        tokio::task::spawn_local(async move {
            while let Some((stderr, line)) = lines.recv().await {
                let stream = if stderr { OutputStream::Stderr } else { OutputStream::Stdout };
                let name = name.borrow().clone();
                logs.push(stream, &name, pid, &line);
            }
        });
    }
    // No socket: the host calls the agent's capability directly, on this thread.
    let (worker, done) = agent::serve_local(handler);
    let connection = Connection::local();
    let registered = Registered { worker, pid: std::process::id(), connection: connection.clone() };
    if registry.register(secret, registered).is_err() {
        return Err(Error::spawn("handler", "the spawn was forgotten before its worker registered"));
    }
    let (exit_tx, exit_rx) = watch::channel(None);
    let closed = connection.closed.clone();
    tokio::task::spawn_local(async move {
        let status = tokio::select! {
            r = done => match r {
                Ok(()) => ExitStatus { code: Some(0), ..Default::default() },
                // The handler's runtime ended on its own (`Handler::terminated`).
                Err(Error::ProcessCrashed { exit_code, signal, .. }) => ExitStatus { code: exit_code, signal, error: None },
                Err(e) => ExitStatus { code: Some(1), error: Some(e.to_string()), signal: None },
            },
            _ = closed => ExitStatus { code: Some(0), ..Default::default() }, // killed
        };
        let _ = exit_tx.send(Some(status));
    });
    Ok((exit_rx, None, StderrTail::default(), Some(connection)))
}

fn format_start_error(e: &ErrorInfo) -> String {
    let mut s = format!("{}: {}", e.type_name, e.message);
    if !e.stack.is_empty() {
        s.push('\n');
        s.push_str(e.stack.trim_end());
    }
    s
}
