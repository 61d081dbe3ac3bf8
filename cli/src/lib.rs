//! `titan-pm`: operate a titan-pm manager from a shell, as PM2 users expect.
//! Every command but `start` is a client of the manager's control socket
//! (`Manager` in schema/titan.capnp); `start` runs a manager from a process
//! file, as a daemon or in the foreground.
//!
//! The command is [`run`]: the `titan-pm` binary (`src/main.rs`), the Python
//! package's `titan-pm` script (`titan_pm._cli`, through `_native.cli_run`) and
//! the npm package's `bin` (`dist/cli.js`, through the addon's `cliRun`) all
//! call it, each saying how to run itself again ([`Launcher`]): the
//! daemon is a fresh process started that way, never a fork of the caller.
//!
//! - [`client`]: connecting, reading report `Value`s.
//! - [`commands`]: one function per command, printing tables or `--json`.
//! - [`monit`]: the live terminal view.
//! - [`daemon`]: `start FILE`: the process file, the daemon, its log and pid file.

mod client;
mod commands;
mod daemon;
mod monit;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "titan-pm", version, about = "Run, watch, scale and reload titan-pm workers")]
struct Cli {
    /// The manager's control socket [default: $TITAN_PM_SOCKET, else $XDG_RUNTIME_DIR/titan-pm/control.sock, else /tmp/titan-pm-$UID/control.sock]
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Print listings as JSON (the API's report shapes)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every process: id, name, pid, state, restarts, cpu, memory, uptime, isolation
    #[command(alias = "list", alias = "status")]
    Ls,
    /// One process (by id or name), all it reports
    #[command(alias = "describe", alias = "show")]
    Info { target: String },
    /// The last lines workers wrote (all processes, or one process, name or pool)
    Logs {
        target: Option<String>,
        /// Keep printing new lines until interrupted
        #[arg(short, long)]
        follow: bool,
        /// How many lines (0: every kept line)
        #[arg(short = 'n', long, default_value_t = 15)]
        lines: u32,
    },
    /// Graceful restart: a new instance is ready before the old one drains and stops (a pool: rolling)
    Restart { target: String },
    /// Stop at once (SIGKILL); a pool is destroyed
    Kill { target: String },
    /// Without a target: stop the manager gracefully (every worker drains and stops). With one: stop it gracefully
    Stop { target: Option<String> },
    /// Grow or shrink a pool to N workers
    Scale { pool: String, size: u32 },
    /// Each process's health check
    Health { target: Option<String> },
    /// Calls, errors, latency, cpu and memory per process and pool
    Metrics {
        target: Option<String>,
        /// Prometheus text exposition instead of a table
        #[arg(long)]
        prometheus: bool,
    },
    /// Every pool: id, name, size, members
    Pools,
    /// Call a method on a process or through a pool; ARGS are JSON values
    Call {
        target: String,
        method: String,
        args: Vec<String>,
        /// Deadline in ms (default: the process's or pool's)
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Run a workflow the process file declares ([[workflow]]) with INPUT (JSON; a bare word is a string); prints every stage's result
    Run {
        workflow: String,
        input: Option<String>,
        /// The run's id: a finished run's id returns its stored outcome, an unfinished one resumes (default: a new run)
        #[arg(long)]
        id: Option<String>,
    },
    /// The workflows the process file declares (their stages) and the journal's newest runs
    Workflows {
        /// How many runs to show
        #[arg(long, default_value_t = 10)]
        runs: u32,
    },
    /// Lifecycle events as they happen (one JSON object per line)
    Events,
    /// A live view: cpu and memory sparklines, requests/s, errors, latency per process (q quits)
    Monit {
        /// Refresh interval in ms
        #[arg(long, default_value_t = 1000)]
        interval: u64,
    },
    /// Run a manager from a process file (a daemon unless --no-daemon)
    Start {
        file: PathBuf,
        /// Stay in the foreground (systemd, containers)
        #[arg(long)]
        no_daemon: bool,
        /// (internal) the daemon reports readiness on this file descriptor
        #[arg(long, hide = true, requires = "no_daemon")]
        ready_fd: Option<i32>,
    },
    /// Apply a process file to the running manager with a rolling, zero-downtime reload
    Reload {
        file: PathBuf,
        /// Only replace entries whose options changed (default: every entry, to pick up new code)
        #[arg(long)]
        changed_only: bool,
    },
}

/// Where the CLI runs: how to run it again, and the interpreters its front end
/// would use.
#[derive(Clone, Debug, Default)]
pub struct Launcher {
    /// The command that runs this same CLI again (`[titan-pm]`, `[python, -m,
    /// titan_pm._cli]`, `[node, .../cli.js]`): `start` without `--no-daemon` runs
    /// it with `start --no-daemon` in a new session, its output to the daemon's
    /// log, and waits until that manager is ready.
    pub relaunch: Vec<OsString>,
    /// The manager's `python` when the process file's `[manager]` sets none (the
    /// Python package's CLI: its own interpreter, as `ProcessManager()` does).
    pub python: Option<String>,
    /// The manager's `node` when the file sets none (the npm package's CLI: its own node).
    pub node: Option<String>,
}

impl Launcher {
    /// A launcher that runs the CLI again as `relaunch`, with the core's default interpreters.
    pub fn new(relaunch: Vec<OsString>) -> Self {
        Launcher { relaunch, python: None, node: None }
    }
}

/// Runs the `titan-pm` command line `args` (the first is the program name) and
/// returns its exit code: 0 on success, 1 on an error (printed as `titan-pm: ...`),
/// 2 on a usage error.
pub fn run<I, T>(args: I, launcher: &Launcher) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are "errors" that exit 0.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let socket = client::socket_path(cli.socket);
    let result = match cli.command {
        Command::Start { file, no_daemon, ready_fd } => daemon::start(&file, &socket, no_daemon, ready_fd, launcher),
        command => run_client(command, socket, cli.json),
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("titan-pm: {e}");
            1
        }
    }
}

fn run_client(command: Command, socket: PathBuf, json: bool) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let m = client::connect(&socket).await?;
        use commands as c;
        match command {
            Command::Ls => c::ls(&m, json).await,
            Command::Info { target } => c::info(&m, &target, json).await,
            Command::Logs { target, follow, lines } => c::logs(&m, target.as_deref().unwrap_or(""), lines, follow, json).await,
            Command::Restart { target } => c::restart(&m, &target).await,
            Command::Kill { target } => c::kill(&m, &target).await,
            Command::Stop { target: None } => c::shutdown(&m).await,
            Command::Stop { target: Some(t) } => c::stop(&m, &t).await,
            Command::Scale { pool, size } => c::scale(&m, &pool, size).await,
            Command::Health { target } => c::health(&m, target.as_deref().unwrap_or(""), json).await,
            Command::Metrics { target, prometheus } => c::metrics(&m, target.as_deref().unwrap_or(""), prometheus, json).await,
            Command::Pools => c::pools(&m, json).await,
            Command::Call { target, method, args, timeout } => c::call(&m, &target, &method, &args, timeout.unwrap_or(0)).await,
            Command::Events => c::events(&m).await,
            Command::Run { workflow, input, id } => c::run_workflow(&m, &workflow, input.as_deref(), id.as_deref().unwrap_or("")).await,
            Command::Workflows { runs } => c::workflows(&m, runs, json).await,
            Command::Monit { interval } => monit::run(&m, std::time::Duration::from_millis(interval.max(100))).await,
            Command::Reload { file, changed_only } => c::reload(&m, &file, !changed_only, json).await,
            Command::Start { .. } => unreachable!("handled before the runtime starts"),
        }
    })
}
