//! The Python fork server: one pre-imported interpreter per manager
//! (`python -m titan_pm._forkserver`) that forks each Python child on request,
//! so a child skips the interpreter's start and the worker's imports. What the
//! server does is in `python/titan_pm/_forkserver.py`; when it is used and what
//! a child gets is decided here.
//!
//! It starts with the manager when `ManagerConfig::fork_server_early` is set
//! (a Python host's manager whose isolation is `child`: the options reader
//! sets it), in the background: the manager does not wait for it, and a spawn
//! that comes before it is ready waits in its socket. Otherwise it starts on
//! the first `*.py` child spawn. A Python manager that never spawns a Python
//! child thus pays one idle interpreter (measured: 140 ms of CPU at start on
//! this 2-vCPU machine, then only its memory, 27 MB RSS) so that its first
//! spawn does not wait those ~100-400 ms.
//!
//! A forked child keeps a plain spawn's guarantees: its own process (forked,
//! then running only its target), its own process group, SIGKILL when its
//! parent (the server) dies, and the server has SIGKILL when the host's engine
//! thread ends, so nothing outlives the host; the environment the spawn asks
//! for (the host's, then the spawn's `env`, sent whole with each request);
//! stdout and stderr on pipes the host reads (or the host's own with
//! `output: inherit`); the IPC socket at descriptor 3. The server is the
//! child's parent: it learns that a child ended without reaping it
//! (`waitid(WNOWAIT)`) and sends its exit code or signal here; the child stays
//! a zombie, so its pid and process group id cannot be reused, until the host
//! has published the exit (after which `Instance::signal` no longer signals
//! that pid) and killed what is left of the child's group, and sends
//! `{"reap": pid}` ([`State::reap`]). The server then reaps it. Without this,
//! a kill by pid in the window between the server's reap and the host hearing
//! of it could hit an unrelated process that got the pid. Once the host closes
//! the socket, nobody acts on those pids any more and the server reaps at once.
//!
//! A spawn starts a fresh interpreter instead (as with `forkServer: false`)
//! when: the target is not a `.py` file; the child's environment differs from
//! the server's in a variable the interpreter or the dynamic loader reads at
//! start (`PYTHON*`, `LD_*`, `LANG`, `LC_*`), so a forked child would not
//! honour it; a variable is not UTF-8; the request is larger than
//! [`MAX_REQUEST`]; or the server cannot be started or went away before it
//! answered. Resource limits (`maxMemory`, `maxCpu`) are applied by pid after
//! the launch, as for any child.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::rc::Rc;

use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch};

use super::launch::ExitStatus;

/// The largest request (argv and environment, JSON) sent to the server; the server reads at most this.
pub(crate) const MAX_REQUEST: usize = 1 << 20;
/// The largest message the server sends back (a pid or an exit status).
const MAX_REPLY: usize = 4096;
/// How many times a manager restarts a server that died before it gives up and spawns plainly.
const MAX_RESTARTS: u32 = 3;

/// A manager's fork server, started with the manager or when first needed.
#[derive(Default)]
pub(crate) struct Slot {
    server: RefCell<Option<Server>>,
    /// Started with the manager, not yet watched by the engine (see [`Slot::for_manager`]).
    early: RefCell<Option<Launched>>,
    deaths: Cell<u32>,
}

impl Slot {
    /// The slot of a manager being built, on its engine's thread (the server's parent-death
    /// signal follows the thread that started it): with `fork_server_early` the server
    /// process starts now, before the engine first runs, so that the first `*.py` spawn
    /// finds it ready (or at least under way) instead of paying its start.
    pub(crate) fn for_manager(config: &super::ManagerConfig) -> Slot {
        let slot = Slot::default();
        if config.fork_server && config.fork_server_early {
            match Launched::spawn(&config.python) {
                Ok(l) => *slot.early.borrow_mut() = Some(l),
                Err(e) => {
                    tracing::warn!(target: "titan_pm", "the Python fork server did not start ({e}); Python children start a fresh interpreter");
                    slot.deaths.set(MAX_RESTARTS);
                }
            }
        }
        slot
    }

    /// Starts watching a server started with the manager (its replies and its stderr); in
    /// the engine's runtime, when the engine first runs.
    pub(crate) fn adopt_early(&self) {
        let Some(launched) = self.early.borrow_mut().take() else { return };
        match Server::adopt(launched) {
            Ok(s) => *self.server.borrow_mut() = Some(s),
            Err(e) => {
                tracing::warn!(target: "titan_pm", "the Python fork server cannot be watched ({e}); Python children start a fresh interpreter");
                self.deaths.set(MAX_RESTARTS);
            }
        }
    }

    /// The running server for `python`, started now if there is none; `None` when it cannot run
    /// (the caller spawns plainly).
    pub(crate) fn get(&self, python: &str) -> Option<Rc<State>> {
        self.adopt_early();
        if let Some(s) = &*self.server.borrow() {
            if !s.state.dead.get() {
                return Some(s.state.clone());
            }
        }
        if self.server.borrow_mut().take().is_some() {
            self.deaths.set(self.deaths.get() + 1);
        }
        if self.deaths.get() >= MAX_RESTARTS {
            return None;
        }
        match Server::start(python) {
            Ok(s) => {
                let state = s.state.clone();
                *self.server.borrow_mut() = Some(s);
                Some(state)
            }
            Err(e) => {
                tracing::warn!(target: "titan_pm", "the Python fork server did not start ({e}); Python children start a fresh interpreter");
                self.deaths.set(MAX_RESTARTS);
                None
            }
        }
    }
}

/// The variables read when an interpreter starts: a child whose environment differs in these is spawned plainly.
pub(crate) fn interpreter_var(key: &str) -> bool {
    key.starts_with("PYTHON") || key.starts_with("LD_") || key.starts_with("LC_") || key == "LANG"
}

fn interpreter_env<'a>(env: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = env.filter(|(k, _)| interpreter_var(k)).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

/// The handle that owns the server: dropping it (with the engine) shuts the control socket,
/// and the server exits once its children have.
struct Server {
    state: Rc<State>,
    child: Option<std::process::Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: a plain syscall on the socket the state owns; the reader then sees EOF.
        unsafe { libc::shutdown(self.state.socket.as_raw_fd(), libc::SHUT_RDWR) };
        // It exits once its children have (the host has ended them by now): reap it off
        // this thread, so no zombie is left behind, whether or not a runtime is still running.
        if let Some(mut child) = self.child.take() {
            let _ = std::thread::Builder::new().name("titan-pm-reap".into()).spawn(move || child.wait());
        }
    }
}

/// What the host knows about a running server: its socket, the requests waiting for a pid,
/// the children it forked that have not ended.
pub(crate) struct State {
    socket: AsyncFd<OwnedFd>,
    pending: RefCell<HashMap<u64, oneshot::Sender<std::result::Result<Forked, String>>>>,
    children: RefCell<HashMap<u32, watch::Sender<Option<ExitStatus>>>>,
    next_id: Cell<u64>,
    dead: Cell<bool>,
    /// The server's interpreter-start variables (see [`interpreter_var`]).
    interpreter_env: Vec<(String, String)>,
    pid: u32,
}

/// A forked child: its pid and where its exit status arrives.
pub(crate) type Forked = (u32, watch::Receiver<Option<ExitStatus>>);

/// A server process just started, not yet watched by the engine (no runtime needed): the
/// process and the host's end of its control socket.
struct Launched(Option<(std::process::Child, OwnedFd)>);

impl Drop for Launched {
    fn drop(&mut self) {
        // Never adopted (the engine never ran): closing the socket ends the server, which has no
        // children yet; reap it off this thread, as `Server` does.
        if let Some((mut child, host_end)) = self.0.take() {
            drop(host_end);
            let _ = std::thread::Builder::new().name("titan-pm-reap".into()).spawn(move || child.wait());
        }
    }
}

impl Launched {
    fn spawn(python: &str) -> std::io::Result<Launched> {
        let (host_end, server_end) = seqpacket_pair()?;
        let server_fd = server_end.as_raw_fd();
        let host_pid = std::process::id() as i32;
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(python);
        cmd.args(["-m", "titan_pm._forkserver"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // Its own group: a terminal's Ctrl-C reaches the host, which ends its workers itself.
        cmd.process_group(0);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if server_fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else if libc::dup2(server_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != host_pid {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(server_end);
        Ok(Launched(Some((child, host_end))))
    }
}

impl Server {
    fn start(python: &str) -> std::io::Result<Server> {
        Server::adopt(Launched::spawn(python)?)
    }

    /// Watches a started server: its replies, and its own stderr (into the host's log).
    fn adopt(mut launched: Launched) -> std::io::Result<Server> {
        let (mut child, host_end) = launched.0.take().expect("a launched server is adopted once");
        let pid = child.id();
        let vars: Vec<(String, String)> = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        let interpreter_env = interpreter_env(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // SAFETY: the OwnedFd stays open and the same for as long as the AsyncFd owns it.
        let socket = unsafe { AsyncFd::register(host_end) }.map_err(|e| e.into_parts().1)?;
        let state = Rc::new(State {
            socket,
            pending: RefCell::default(),
            children: RefCell::default(),
            next_id: Cell::new(0),
            dead: Cell::new(false),
            interpreter_env,
            pid,
        });
        // Its own errors (it cannot import titan_pm, say) go to the host's log.
        if let Some(stderr) = child.stderr.take() {
            let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(stderr))?;
            tokio::task::spawn_local(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(target: "titan_pm", "python fork server: {line}");
                }
            });
        }
        tokio::task::spawn_local(read_replies(state.clone()));
        Ok(Server { state, child: Some(child) })
    }
}

impl State {
    /// Whether a child with environment `env` can be forked from this server.
    pub(crate) fn suits(&self, env: &[(String, String)]) -> bool {
        interpreter_env(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))) == self.interpreter_env
    }

    /// Asks the server to fork a child running `argv` (after `python -m titan_pm.worker`) with
    /// exactly `env`, and `fds` (stdout, stderr, then the IPC socket if any) at 1, 2 and 3.
    /// An `Err` means the server could not do it (the caller spawns plainly).
    pub(crate) async fn fork(&self, argv: &[String], env: &[(String, String)], fds: &[RawFd]) -> std::result::Result<Forked, String> {
        if self.dead.get() {
            return Err("the fork server has ended".into());
        }
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let message = serde_json::json!({ "id": id, "argv": argv, "env": env }).to_string();
        if message.len() > MAX_REQUEST {
            return Err(format!("the request is larger than {MAX_REQUEST} bytes"));
        }
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        if let Err(e) = self.send(message.as_bytes(), fds).await {
            self.pending.borrow_mut().remove(&id);
            return Err(format!("cannot send the request: {e}"));
        }
        rx.await.unwrap_or_else(|_| Err("the fork server ended before it answered".into()))
    }

    /// Lets the server reap `pid`, whose exit it reported: call it once the host will not
    /// signal that pid or its group any more (until then the zombie keeps the pid from reuse).
    pub(crate) async fn reap(&self, pid: u32) {
        if self.dead.get() {
            return; // the kernel's init reaps what the server left
        }
        let message = serde_json::json!({ "reap": pid }).to_string();
        if let Err(e) = self.send(message.as_bytes(), &[]).await {
            // Only when the server is going away: it reaps its children itself once the socket closes.
            tracing::debug!(target: "titan_pm", "the fork server was not told to reap {pid}: {e}");
        }
    }

    async fn send(&self, message: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
        loop {
            let mut guard = self.socket.writable().await?;
            match guard.try_io(|s| send_with_fds(s.as_raw_fd(), message, fds)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// The server's pid (for the host's own checks and logs).
    #[allow(dead_code)]
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    fn end(&self) {
        self.dead.set(true);
        self.pending.borrow_mut().clear();
        // The kernel kills the server's children with it (their parent-death signal).
        for (_, tx) in self.children.borrow_mut().drain() {
            let _ = tx.send(Some(ExitStatus { code: None, signal: Some(libc::SIGKILL), error: None }));
        }
    }
}

/// The server's answers, as JSON.
#[derive(serde::Deserialize)]
struct Reply {
    id: Option<u64>,
    pid: Option<u32>,
    error: Option<String>,
    exit: Option<u32>,
    code: Option<i32>,
    signal: Option<i32>,
}

async fn read_replies(state: Rc<State>) {
    let mut buf = vec![0u8; MAX_REPLY];
    loop {
        let n = {
            let mut guard = match state.socket.readable().await {
                Ok(g) => g,
                Err(_) => break,
            };
            match guard.try_io(|s| {
                // SAFETY: reads into our buffer of its length.
                let n = unsafe { libc::recv(s.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => break,
                Err(_would_block) => continue,
            }
        };
        if n == 0 {
            break;
        }
        let Ok(reply) = serde_json::from_slice::<Reply>(&buf[..n]) else {
            tracing::warn!(target: "titan_pm", "the python fork server sent a message that is not a reply");
            break;
        };
        if let Some(pid) = reply.exit {
            if let Some(tx) = state.children.borrow_mut().remove(&pid) {
                let _ = tx.send(Some(ExitStatus { code: reply.code, signal: reply.signal, error: None }));
            }
            continue;
        }
        let Some(tx) = reply.id.and_then(|id| state.pending.borrow_mut().remove(&id)) else { continue };
        match (reply.pid, reply.error) {
            (Some(pid), _) => {
                // Registered before the launch hears of it: the pid's exit always comes after.
                let (exit_tx, exit_rx) = watch::channel(None);
                state.children.borrow_mut().insert(pid, exit_tx);
                let _ = tx.send(Ok((pid, exit_rx)));
            }
            (None, error) => {
                let _ = tx.send(Err(error.unwrap_or_else(|| "the fork server gave no pid".into())));
            }
        }
    }
    state.end();
}

fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into the array on success.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors we own.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: a plain fcntl on our descriptor.
    unsafe {
        let flags = libc::fcntl(a.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(a.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    Ok((a, b))
}

/// Sends one message with `fds` attached (SCM_RIGHTS).
fn send_with_fds(socket: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer is CMSG_SPACE bytes, room for one header and the descriptors.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), fd_bytes);
        }
    }
    // SAFETY: msg points at live buffers.
    let n = unsafe { libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe for a child's stdout or stderr: the host's end (non-blocking, read by tokio) and the child's.
pub(crate) fn output_pipe() -> std::io::Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors we own.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let read = tokio::net::unix::pipe::Receiver::from_owned_fd(read)?;
    Ok((read, write))
}
