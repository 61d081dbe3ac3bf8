//! Shared pieces of the end-to-end tests: the test worker's definition (served
//! as the `test-worker` executable and as an in-process handler) and helpers.
//!
//! The test worker reads `TEST_MODE` from its environment: `die-before-register`
//! exits at once with a message on stderr, `init-fails` raises in init; and
//! `TEST_DIE_IF_EXISTS=path` makes it exit before registering while that file exists.
//! With `TEST_LOG=path` it appends `start LABEL` after init and `stop LABEL` in its
//! shutdown hook (`TEST_LABEL`), so tests can read start and stop order. With
//! `TEST_INIT_CALL=name` its init calls `add(1, 1)` on the process it was given
//! under that name and fails unless that answers 2.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use titan_pm::agent::{Handler, WorkerDef, WorkerError};
use titan_pm::protocol::{CheckStatus, HealthCheck, HealthReport, HealthStatus};
use titan_pm::policy::method::{ArgKey, Cache, CircuitBreaker, HealAction, Idempotent, RateLimit, SelfHeal};
use titan_pm::policy::BreakerOptions;
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
    let log = std::env::var("TEST_LOG").ok().map(|path| (path, std::env::var("TEST_LABEL").unwrap_or_default()));
    let log2 = log.clone();
    let init_fails = std::env::var("TEST_MODE").as_deref() == Ok("init-fails");
    let deps = Rc::new(std::cell::RefCell::new(Value::Null));
    let delay = Rc::new(Cell::new(0u64));
    let unhealthy = Rc::new(Cell::new(false));
    let (delay1, delay2, sick1, sick2) = (delay.clone(), delay.clone(), unhealthy.clone(), unhealthy.clone());
    let (d1, d2) = (deps.clone(), deps.clone());
    let runs = Rc::new(Cell::new(0u64));
    // (running now, most ever running at once) of `overlap` calls.
    let overlap = Rc::new(Cell::new((0u32, 0u32)));
    let [r0, r1, r2, r3, r4, r5, r6, r7] = [(); 8].map(|_| runs.clone());
    let def = WorkerDef::new("test-worker", TEST_WORKER_VERSION);
    let caps = def.capabilities();
    let (caps1, caps2, caps3, caps4, caps5, caps6) = (caps.clone(), caps.clone(), caps.clone(), caps.clone(), caps.clone(), caps.clone());
    let caps_init = caps.clone();
    let init_call = std::env::var("TEST_INIT_CALL").ok();
    def.on_init(move |dependencies| {
            *d1.borrow_mut() = dependencies;
            let log = log.clone();
            let init_call = init_call.clone().map(|name| (caps1.process(&name), name));
            async move {
                if let Some((given, name)) = init_call {
                    let two: i64 = given.map_err(|e| WorkerError::new("LookupError", e.to_string()))?
                        .call("add", (1, 1))
                        .await
                        .map_err(|e| WorkerError::new(e.class_name(), format!("init could not call {name}: {e}")))?;
                    if two != 2 {
                        return Err(WorkerError::new("RuntimeError", format!("{name} answered {two}")));
                    }
                }
                if init_fails {
                    return Err(WorkerError::new("RuntimeError", "init failed on purpose"));
                }
                if let Some((path, label)) = log {
                    append_line(&path, &format!("start {label}"));
                }
                Ok(())
            }
        })
        .method("add", |(a, b): (i64, i64)| async move { Ok(a + b) })
        // Calls a process this worker was given: {"ok": result} or {"error": class, "message": text}.
        // `timeout_ms` 0: the callee's default deadline.
        .method("call_given", move |(name, method, args, timeout_ms): (String, String, Vec<serde_json::Value>, u64)| {
            let caps = caps2.clone();
            async move {
                let outcome = async {
                    let args = args.iter().map(titan_pm::value::to_value).collect::<titan_pm::Result<Vec<_>>>()?;
                    let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
                    caps.process(&name)?.call_value(&method, args, timeout).await
                }
                .await;
                Ok(match outcome {
                    Ok(v) => serde_json::json!({ "ok": titan_pm::value::from_value::<serde_json::Value>(v).unwrap_or_default() }),
                    Err(e) => serde_json::json!({ "error": e.class_name(), "message": e.to_string() }),
                })
            }
        })
        .method("trace_context", |()| async move {
            Ok(titan_pm::policy::trace::current().map(|t| {
                serde_json::json!({ "traceId": t.trace_id, "spanId": t.span_id, "parentSpanId": t.parent_span_id })
            }))
        })
        // This call's trace context and what `method` of the process given as `name`
        // answers (a method that returns its own trace context): {"mine": {...}, "theirs": ...}.
        .method("trace_via", move |(name, method): (String, String)| {
            let caps = caps6.clone();
            async move {
                let mine = titan_pm::policy::trace::current().map(|t| {
                    serde_json::json!({ "traceId": t.trace_id, "spanId": t.span_id, "parentSpanId": t.parent_span_id })
                });
                let theirs = caps.process(&name).map_err(|e| WorkerError::new(e.class_name(), e.to_string()))?
                    .call_value(&method, vec![], None)
                    .await
                    .map_err(|e| WorkerError::new(e.class_name(), e.to_string()))?;
                let theirs: serde_json::Value = titan_pm::value::from_value(theirs).unwrap_or_default();
                Ok(serde_json::json!({ "mine": mine, "theirs": theirs }))
            }
        })
        .method("given", move |()| {
            let names = caps3.process_names();
            async move { Ok(names) }
        })
        // Adds `n` to this class's shared `property` (atomically, on the host); returns the new value.
        .method("shared_add", move |(property, n): (String, i64)| {
            let caps = caps4.clone();
            async move {
                let v = caps.shared().map_err(|e| e.to_string())?.add(&property, n).await.map_err(|e| e.to_string())?;
                Ok(titan_pm::value::from_value::<i64>(v).map_err(|e| e.to_string())?)
            }
        })
        .method("shared_get", move |(property,): (String,)| {
            let caps = caps5.clone();
            async move {
                let v = caps.shared().map_err(|e| e.to_string())?.get(&property).await.map_err(|e| e.to_string())?;
                Ok(titan_pm::value::from_value::<serde_json::Value>(v).map_err(|e| e.to_string())?)
            }
        })
        // Seeds `property` with `v` if it was never set (the first instance does); returns its value.
        .method("shared_init", move |(property, v): (String, i64)| {
            let caps = caps_init.clone();
            async move {
                let v = caps.shared().map_err(|e| e.to_string())?.init(&property, titan_pm::value::Value::Int(v)).await.map_err(|e| e.to_string())?;
                Ok(titan_pm::value::from_value::<i64>(v).map_err(|e| e.to_string())?)
            }
        })
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
        // Keeps a core busy for `ms` milliseconds (blocking the worker), returns the pid.
        .method("spin", |(ms,): (u64,)| async move {
            let until = std::time::Instant::now() + Duration::from_millis(ms);
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            Ok(std::process::id())
        })
        .method("set_delay", move |(ms,): (u64,)| {
            delay1.set(ms);
            async move { Ok(std::process::id()) }
        })
        // Runs across `yields` scheduler turns; returns the most `overlap` calls ever running at once here.
        .method("overlap", move |(yields,): (u32,)| {
            let overlap = overlap.clone();
            async move {
                let (now, most) = overlap.get();
                overlap.set((now + 1, most.max(now + 1)));
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
                let (now, most) = overlap.get();
                overlap.set((now - 1, most));
                Ok(most)
            }
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
        // For call retries (tests/tests/call_retries.rs): each call appends a line to `path`
        // (a count that outlives the process); the first `crashes` calls abort the worker,
        // later ones return the count.
        .method("crash_first", |(path, crashes): (String, usize)| async move {
            append_line(&path, "call");
            let calls = std::fs::read_to_string(&path).map(|t| t.lines().count()).unwrap_or(0);
            if calls <= crashes {
                std::process::abort();
            }
            Ok(calls)
        })
        // Counts its calls in `path` like `crash_first`, and raises (the worker's own error).
        .method("raise_counted", |(path,): (String,)| async move {
            append_line(&path, "call");
            Err::<(), _>(WorkerError::new("ValueError", "raised on purpose"))
        })
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
        .method("runs", move |()| {
            let n = r0.get();
            async move { Ok(n) }
        })
        // Method policies (tests/tests/policy_*.rs). Each counts its runs (`runs`, and a line
        // in $TEST_RUNS_FILE so that a pool's runs add up across members).
        .method("limited", move |()| std::future::ready(bump(&r1)))
        .method("limited_by_key", move |(_key,): (String,)| std::future::ready(bump(&r2)))
        .method("cached", move |(x,): (i64,)| {
            let n = bump(&r3);
            async move { Ok(x * 1000 + n? as i64) }
        })
        .method("cached_fails", move |(_x,): (i64,)| {
            let _ = bump(&r4);
            async move { Err::<i64, _>(WorkerError::new("ValueError", "not cached")) }
        })
        .method("validated", move |(_user,): (serde_json::Value,)| std::future::ready(bump(&r5)))
        .method("guarded", move |(fail,): (bool,)| {
            let _ = bump(&r6);
            async move { if fail { Err(WorkerError::new("ValueError", "guarded failed")) } else { Ok("guarded".to_string()) } }
        })
        .method("guarded_fallback", |(_fail,): (bool,)| async move { Ok("fallback".to_string()) })
        .method("pay", move |(req,): (serde_json::Value,)| {
            let n = bump(&r7);
            async move {
                let n = n?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(serde_json::json!({ "run": n, "pid": std::process::id(), "amount": req["amount"] }))
            }
        })
        .method("lose_connection", |()| async move { Err::<(), _>(WorkerError::new("ConnectionError", "connection lost")) })
        .method("traced", |()| async move { Ok(()) })
        .metric("add", None)
        .metric("raise", Some("raise_calls"))
        .rate_limit("limited", RateLimit { rps: 10.0, burst: 10, ..RateLimit::default() })
        .rate_limit("limited_by_key", RateLimit { rps: 10.0, burst: 3, key: Some(ArgKey::Index(0)), ..RateLimit::default() })
        .cache("cached", Cache { ttl: Duration::from_millis(400), key: None, has_condition: false })
        .cache("cached_fails", Cache { ttl: Duration::from_secs(60), key: None, has_condition: false })
        .validate(
            "validated",
            serde_json::json!({
                "type": "object",
                "required": ["email", "age"],
                "properties": { "email": { "type": "string", "pattern": "@" }, "age": { "type": "integer", "minimum": 0 } }
            }),
        )
        .circuit_breaker(
            "guarded",
            CircuitBreaker {
                options: BreakerOptions { threshold: 3, timeout: Duration::from_millis(300), half_open_requests: 1 },
                fallback: Some("guarded_fallback".into()),
            },
        )
        .idempotent("pay", Idempotent { key: ArgKey::Field("transactionId".into()), ttl: Duration::from_millis(600) })
        .self_heal("lose_connection", SelfHeal { symptoms: vec!["ConnectionError".into()], action: HealAction::Restart, cooldown: Duration::from_secs(30) })
        .trace("traced")
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
            let log = log2.clone();
            async move {
                if let Some(f) = file {
                    let _ = std::fs::write(f, "shutdown hook ran");
                }
                if let Some((path, label)) = log {
                    append_line(&path, &format!("stop {label}"));
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

/// Appends one line (one `write` with `O_APPEND`, so lines from several workers do not mix).
fn append_line(path: &str, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
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

/// Counts one run of a policy method: in `runs`, and as a line in `$TEST_RUNS_FILE` if set.
fn bump(runs: &Cell<u64>) -> Result<u64, WorkerError> {
    runs.set(runs.get() + 1);
    if let Ok(path) = std::env::var("TEST_RUNS_FILE") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| e.to_string())?;
        writeln!(f, "{}", std::process::id()).map_err(|e| e.to_string())?;
    }
    Ok(runs.get())
}

/// Lines in a runs file (0 if it does not exist).
pub fn runs_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

pub mod postgres;
pub mod workflows;
