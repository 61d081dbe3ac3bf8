//! Shared pieces of the end-to-end tests: the test worker's definition (served
//! as the `test-worker` executable and as an in-process handler) and helpers.
//!
//! The test worker reads `TEST_MODE` from its environment: `die-before-register`
//! exits at once with a message on stderr, `init-fails` raises in init; and
//! `TEST_DIE_IF_EXISTS=path` makes it exit before registering while that file exists.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use titan_pm::agent::{Handler, WorkerDef, WorkerError};
use titan_pm::protocol::{CheckStatus, HealthCheck, HealthReport, HealthStatus};
use titan_pm::Value;

/// Counts a call as cancelled if it is dropped before it finishes.
struct CancelGuard {
    cancelled: Rc<Cell<u64>>,
    finished: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.cancelled.set(self.cancelled.get() + 1);
        }
    }
}

/// The version the test worker declares.
pub const TEST_WORKER_VERSION: &str = "0.1.0";

pub fn test_worker() -> WorkerDef {
    let counter = Rc::new(Cell::new(0i64));
    let cancelled = Rc::new(Cell::new(0u64));
    let (c1, c2) = (cancelled.clone(), cancelled.clone());
    let shutdown_file = std::env::var("TEST_SHUTDOWN_FILE").ok();
    let init_fails = std::env::var("TEST_MODE").as_deref() == Ok("init-fails");
    let deps = Rc::new(std::cell::RefCell::new(Value::Null));
    let delay = Rc::new(Cell::new(0u64));
    let unhealthy = Rc::new(Cell::new(false));
    let (delay1, delay2, sick1, sick2) = (delay.clone(), delay.clone(), unhealthy.clone(), unhealthy.clone());
    let (d1, d2) = (deps.clone(), deps.clone());
    WorkerDef::new("test-worker", TEST_WORKER_VERSION)
        .on_init(move |dependencies| {
            *d1.borrow_mut() = dependencies;
            async move {
                if init_fails {
                    return Err(WorkerError::new("RuntimeError", "init failed on purpose"));
                }
                Ok(())
            }
        })
        .method("add", |(a, b): (i64, i64)| async move { Ok(a + b) })
        .method("increment", move |()| {
            counter.set(counter.get() + 1);
            let n = counter.get();
            async move { Ok(n) }
        })
        .method("dependencies", move |()| {
            let d = d2.borrow().clone();
            async move { Ok(titan_pm::value::from_value::<serde_json::Value>(d).unwrap_or_default()) }
        })
        .method("slow", move |(ms,): (u64,)| {
            let guard = CancelGuard { cancelled: c1.clone(), finished: false };
            async move {
                let mut guard = guard;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                guard.finished = true;
                Ok(ms)
            }
        })
        .method("cancelled", move |()| {
            let n = c2.get();
            async move { Ok(n) }
        })
        .method("pid", |()| async move { Ok(std::process::id()) })
        // An environment variable of the worker (null if unset): which version of a worker file answers.
        .method("env", |(name,): (String,)| async move { Ok(std::env::var(name).ok()) })
        .method("allocate", |(mb,): (usize,)| async move {
            // Held for the rest of the process's life, and touched so it counts in RSS.
            let block = Box::leak(vec![1u8; mb << 20].into_boxed_slice());
            Ok(block.len())
        })
        .method("set_delay", move |(ms,): (u64,)| {
            delay1.set(ms);
            async move { Ok(std::process::id()) }
        })
        // Sleeps this worker's delay, returns its pid.
        .method("work", move |()| {
            let ms = delay2.get();
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(std::process::id())
            }
        })
        // Crashes the process `percent` % of the time, else returns the pid.
        .method("flaky", |(percent,): (u32,)| async move {
            if fastrand::u32(0..100) < percent {
                std::process::abort();
            }
            Ok(std::process::id())
        })
        .method("set_unhealthy", move |()| {
            sick1.set(true);
            async move { Ok(()) }
        })
        .method("crash", |()| async move {
            std::process::abort();
            #[allow(unreachable_code)]
            Ok(())
        })
        .method("exit", |(code,): (i32,)| async move {
            std::process::exit(code);
            #[allow(unreachable_code)]
            Ok(())
        })
        .method("hang", |()| async move {
            // Blocks its thread: no cancel can reach it.
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        })
        .method("print", |(line,): (String,)| async move {
            println!("{line}");
            eprintln!("err: {line}");
            Ok(())
        })
        .method("raise", |(message,): (String,)| async move { Err::<(), _>(WorkerError::new("ValueError", message)) })
        // ---- for the hardening tests ----
        // A text result of `n` bytes.
        .method("big_text", |(n,): (usize,)| async move { Ok("x".repeat(n)) })
        // A result nested `depth` lists deep.
        .method("deep", |(depth,): (usize,)| async move { Ok(nested_json(depth)) })
        .method("echo", |(v,): (serde_json::Value,)| async move { Ok(v) })
        // Raw bytes to stdout (1) or stderr (2), no newline added.
        .method("write_bytes", |(fd, bytes): (i32, Vec<u8>)| async move {
            write_all(fd, &bytes);
            Ok(())
        })
        // `total` bytes of `x` to stdout, in lines of `line` bytes (0: no newline at all).
        .method("spew", |(total, line): (usize, usize)| async move {
            spew(total, line);
            Ok(())
        })
        .method("getenv", |(name,): (String,)| async move { Ok(std::env::var(name).ok()) })
        // Starts `sleep 300` (a grandchild of the host), returns its pid.
        .method("spawn_grandchild", |()| async move {
            let child = std::process::Command::new("sleep").arg("300").spawn().map_err(|e| WorkerError::from(e.to_string()))?;
            Ok(child.id())
        })
        // Closes the host connection (the ipc descriptor) but stays alive, blocking its thread.
        .method("disconnect", |()| async move {
            unsafe { libc::shutdown(3, libc::SHUT_RDWR) };
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        })
        .health_check(move || {
            let (status, check) =
                if sick2.get() { (HealthStatus::Unhealthy, CheckStatus::Fail) } else { (HealthStatus::Degraded, CheckStatus::Warn) };
            async move {
                let check = HealthCheck { name: "self".into(), status: check, message: "test".into() };
                HealthReport::new(status, vec![check])
            }
        })
        .on_shutdown(move || {
            let file = shutdown_file.clone();
            async move {
                if let Some(f) = file {
                    let _ = std::fs::write(f, "shutdown hook ran");
                }
            }
        })
}

/// `[[[...1...]]]`: 1 inside `depth` lists.
pub fn nested_json(depth: usize) -> serde_json::Value {
    let mut v = serde_json::json!(1);
    for _ in 0..depth {
        v = serde_json::Value::Array(vec![v]);
    }
    v
}

fn write_all(fd: i32, bytes: &[u8]) {
    use std::io::Write;
    let _ = match fd {
        2 => std::io::stderr().write_all(bytes).and_then(|_| std::io::stderr().flush()),
        _ => std::io::stdout().write_all(bytes).and_then(|_| std::io::stdout().flush()),
    };
}

fn spew(total: usize, line: usize) {
    let piece = if line == 0 { vec![b'x'; 64 * 1024] } else {
        let mut l = vec![b'x'; line.max(1) - 1];
        l.push(b'\n');
        l
    };
    let mut left = total;
    while left > 0 {
        let n = left.min(piece.len());
        write_all(1, &piece[..n]);
        left -= n;
    }
}

/// Resident memory of this process, in bytes.
pub fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Open descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// The test worker as an in-process handler target (isolation `worker` or `none`).
pub fn test_worker_target() -> titan_pm::Target {
    titan_pm::Target::handler("test-worker", || Ok(Rc::new(test_worker()) as Rc<dyn Handler>))
}

/// This process's RSS in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// True while `pid` is a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

pub mod workflows;
