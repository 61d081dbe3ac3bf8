//! Worker output that would break or stall the host: bytes that are not UTF-8,
//! a line with no end, a host stdout nobody reads, a callback that is slow.
//! Output keeps flowing (lossily), memory stays bounded, calls stay fast, and
//! what could not be forwarded is counted in `output_dropped`.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use titan_pm::host::OutputStream;
use titan_pm::{ManagerConfig, Output, ProcessManager, SpawnOptions};
use titan_pm_tests::{eventually, rss};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const HOST: &str = env!("CARGO_BIN_EXE_test-host");
const MAX_LINE: usize = titan_pm::host::MAX_LINE_BYTES;

type Seen = Arc<Mutex<Vec<(OutputStream, String)>>>;

fn collecting() -> (Output, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let output = Output::Callback(Arc::new(move |stream, _name, _pid, line| s.lock().unwrap().push((stream, line.to_string()))));
    (output, seen)
}

#[tokio::test]
async fn bytes_that_are_not_utf8_are_forwarded_lossily_and_reading_goes_on() {
    let (output, seen) = collecting();
    let pm = ProcessManager::new(ManagerConfig { output, ..ManagerConfig::default() });
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    for fd in [1, 2] {
        h.call::<()>("write_bytes", (fd, b"ok \xff\xfe bad\n".to_vec())).await.unwrap();
    }
    h.call::<()>("print", ("after",)).await.unwrap();
    let want = |stream: OutputStream, line: &str| {
        let seen = seen.clone();
        let line = line.to_string();
        move || seen.lock().unwrap().iter().any(|(s, l)| *s == stream && *l == line)
    };
    for stream in [OutputStream::Stdout, OutputStream::Stderr] {
        assert!(eventually(Duration::from_secs(5), want(stream, "ok \u{fffd}\u{fffd} bad")).await, "{seen:?}");
    }
    // Forwarding did not stop at the bad bytes, and the worker still serves.
    assert!(eventually(Duration::from_secs(5), want(OutputStream::Stdout, "after")).await);
    assert!(eventually(Duration::from_secs(5), want(OutputStream::Stderr, "err: after")).await);
    assert_eq!(h.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_line_without_end_is_split_and_not_held() {
    let (output, seen) = collecting();
    let pm = ProcessManager::new(ManagerConfig { output, ..ManagerConfig::default() });
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    // 1.5 MiB with no newline at all.
    let total = 3 << 19;
    h.call::<()>("spew", (total, 0usize)).await.unwrap();
    h.call::<()>("write_bytes", (1, b"\nend\n".to_vec())).await.unwrap();
    let done = || seen.lock().unwrap().iter().any(|(_, l)| l == "end");
    assert!(eventually(Duration::from_secs(5), done).await);
    let seen = seen.lock().unwrap();
    let pieces: Vec<usize> = seen.iter().filter(|(_, l)| l.starts_with('x')).map(|(_, l)| l.len()).collect();
    assert!(pieces.iter().all(|n| *n <= MAX_LINE), "{pieces:?}");
    assert_eq!(pieces.iter().sum::<usize>(), total);
    assert_eq!(pieces.len(), total.div_ceil(MAX_LINE));
    drop(seen);
    pm.shutdown().await;
}

#[tokio::test]
async fn an_endless_line_with_output_ignore_keeps_host_memory_flat() {
    let pm = ProcessManager::new(ManagerConfig { output: Output::Ignore, ..ManagerConfig::default() });
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let before = rss();
    // 256 MiB with no newline: it used to be held whole.
    h.call::<()>("spew", (256usize << 20, 0usize)).await.unwrap();
    let grew = rss().saturating_sub(before);
    eprintln!("256 MiB line, output ignore: host RSS {} MB -> +{} MB", before >> 20, grew >> 20);
    assert!(grew < 32 << 20, "the host grew by {} MB", grew >> 20);
    assert_eq!(h.call::<i64>("add", (1, 2)).await.unwrap(), 3);
    pm.shutdown().await;
}

#[tokio::test]
async fn a_slow_callback_neither_blocks_calls_nor_queues_without_bound() {
    let calls = Arc::new(Mutex::new(0u64));
    let c = calls.clone();
    let output = Output::Callback(Arc::new(move |_, _, _, _| {
        std::thread::sleep(Duration::from_millis(5));
        *c.lock().unwrap() += 1;
    }));
    let pm = ProcessManager::new(ManagerConfig { output, ..ManagerConfig::default() });
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    // Calls go to another worker: the flooding one is busy writing.
    let other = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let before = rss();
    // 2M lines of 16 bytes: 6 hours of callbacks at 5 ms each.
    let flood = tokio::spawn({
        let h = h.clone();
        async move { h.call::<()>("spew", (32usize << 20, 16usize)).await }
    });
    let mut slowest = Duration::ZERO;
    while !flood.is_finished() {
        let started = Instant::now();
        assert_eq!(other.call::<i64>("add", (1, 2)).await.unwrap(), 3);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    flood.await.unwrap().unwrap();
    let grew = rss().saturating_sub(before);
    let dropped = pm.get_metrics(h.id()).await.unwrap().output_dropped;
    eprintln!("slow callback, 2M lines: slowest call {slowest:?}, dropped {dropped}, host RSS +{} MB", grew >> 20);
    // Blocked calls would wait hours behind the callbacks; a loaded machine may add seconds.
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    assert!(dropped > 1_000_000, "{dropped}");
    assert!(grew < 64 << 20, "the host grew by {} MB", grew >> 20);
    assert!(*calls.lock().unwrap() > 0);
    pm.shutdown().await;
}

#[test]
fn a_blocked_host_stdout_does_not_stall_calls() {
    // The host's stdout is a pipe nobody reads.
    let (_unread, stdout) = std::io::pipe().unwrap();
    let mut host = std::process::Command::new(HOST)
        .args(["--blocked-stdout", WORKER])
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = host.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = host.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            host.kill().unwrap();
            panic!("the host hung with its stdout blocked");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = reader.join().unwrap();
    let result = text.lines().find(|l| l.starts_with("result ")).unwrap_or_else(|| panic!("{status}: {text}"));
    eprintln!("blocked stdout: {result}");
    let field = |name: &str| -> u64 {
        result.split_whitespace().find_map(|w| w.strip_prefix(name)).unwrap().parse().unwrap()
    };
    assert!(field("max_call_ms=") < 500, "{result}");
    assert!(field("dropped=") > 0, "{result}");
}
