//! A host for tests that must watch a whole host process:
//! - `test-host WORKER` spawns the worker, prints its pid and waits to be killed;
//! - `test-host --print-demo WORKER` has the worker print a line, then shuts down;
//! - `test-host --emfile WORKER` listens on tcp with few descriptors left
//!   (RLIMIT_NOFILE = open + 40), prints `ready ADDR LIMIT PID`, then obeys stdin
//!   lines: `spawn` (a tcp worker: `spawned PID` or `error ...`), `call`
//!   (`called MS` or `error ...`), `quit`;
//! - `test-host --blocked-stdout WORKER` (run it with a stdout nobody reads):
//!   a worker floods stdout while the host calls another with a 2 s deadline;
//!   prints `result max_call_ms=N dropped=N` on stderr.
use std::io::BufRead;
use std::time::{Duration, Instant};

use titan_pm::{CallOptions, ManagerConfig, ProcessManager, SpawnOptions, Transport};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, w] if flag == "--print-demo" => print_demo(w).await,
        [flag, w] if flag == "--emfile" => emfile(w).await,
        [flag, w] if flag == "--blocked-stdout" => blocked_stdout(w).await,
        [w] => {
            let pm = ProcessManager::new(ManagerConfig::default());
            let h = pm.spawn(w.as_str(), SpawnOptions::default()).await.expect("spawn");
            println!("worker {}", h.info().await.expect("info").pid);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        _ => panic!("usage: test-host [--print-demo|--emfile|--blocked-stdout] WORKER"),
    }
}

async fn print_demo(worker: &str) {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(worker, SpawnOptions::default()).await.expect("spawn");
    h.call::<()>("print", ("hello from the worker",)).await.expect("print");
    pm.shutdown().await;
}

async fn emfile(worker: &str) {
    let config = ManagerConfig { transport: Transport::Tcp, ..ManagerConfig::default() };
    let pm = ProcessManager::new(config);
    let first = pm.spawn(worker, SpawnOptions::default()).await.expect("spawn");
    let addr = pm.tcp_address().await.expect("tcp address");
    let limit = titan_pm_tests::open_fds(std::process::id()) as u64 + 40;
    let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: a plain syscall on this process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0, "setrlimit");
    println!("ready {addr} {limit} {}", std::process::id());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(command) = rx.recv().await {
        match command.trim() {
            "spawn" => match pm.spawn(worker, SpawnOptions::default()).await {
                Ok(h) => println!("spawned {}", h.info().await.map(|i| i.pid).unwrap_or(0)),
                Err(e) => println!("error {}", e.to_string().replace('\n', " | ")),
            },
            "call" => {
                let started = Instant::now();
                match first.call::<i64>("add", (1, 2)).await {
                    Ok(_) => println!("called {}", started.elapsed().as_millis()),
                    Err(e) => println!("error {e}"),
                }
            }
            _ => break,
        }
    }
    pm.shutdown().await;
}

async fn blocked_stdout(worker: &str) {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(worker, SpawnOptions::default()).await.expect("spawn");
    // Calls go to another worker: the flooding one is busy writing.
    let other = pm.spawn(worker, SpawnOptions::default()).await.expect("spawn");
    // 64 MiB of 100-byte lines: far more than a pipe and the output queue hold.
    let flood = tokio::spawn({
        let h = h.clone();
        async move { h.call::<()>("spew", (64usize << 20, 100usize)).await }
    });
    let quick = other.with_options(CallOptions { timeout: Some(Duration::from_secs(2)), ..Default::default() });
    let mut max = Duration::ZERO;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        quick.call::<i64>("add", (1, 2)).await.expect("a call during the flood");
        max = max.max(started.elapsed());
    }
    flood.await.expect("join").expect("the flood call");
    let dropped = pm.get_metrics(h.id()).await.expect("metrics").output_dropped;
    eprintln!("result max_call_ms={} dropped={dropped}", max.as_millis());
    // Exit without waiting for the stuck stdout writer.
    std::process::exit(0);
}
