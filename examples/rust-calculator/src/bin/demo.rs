//! The demo: a Rust host spawns the Rust calculator worker as a child process,
//! calls it, and prints its results, health and metrics.

use std::time::Duration;

use titan_pm::{CallOptions, Error, ManagerConfig, ProcessManager, SpawnOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> titan_pm::Result<()> {
    let worker = std::env::current_exe().expect("own path").with_file_name("rust-calculator");
    let pm = ProcessManager::new(ManagerConfig::default());
    let calc = pm.spawn(worker, SpawnOptions::default()).await?;
    let info = calc.info().await?;
    println!("spawned {} (process {}, pid {}, {} over {})", info.name, info.process_id, info.pid, info.isolation.as_str(), info.transport.as_str());

    println!("add(5, 3)       = {}", calc.call::<i64>("add", (5, 3)).await?);
    println!("multiply(4, 5)  = {}", calc.call::<f64>("multiply", (4, 5)).await?);
    match calc.call::<()>("raise", ("no such account",)).await {
        Err(Error::Remote { remote_type, message, .. }) => println!("raise(...)      -> {remote_type}: {message}"),
        other => println!("raise(...)      -> unexpected {other:?}"),
    }
    let quick = calc.with_options(CallOptions { timeout: Some(Duration::from_millis(100)), ..Default::default() });
    match quick.call::<u64>("slow", (2_000,)).await {
        Err(e) => println!("slow(2000)      -> {e}"),
        Ok(v) => println!("slow(2000)      -> {v}"),
    }
    match calc.call::<()>("crash", ()).await {
        Err(e) => println!("crash()         -> {e}"),
        Ok(()) => println!("crash()         -> returned?"),
    }
    println!("add(1, 2)       = {} (after the restart; pid now {})", calc.call::<i64>("add", (1, 2)).await?, calc.info().await?.pid);
    for i in 0..1000 {
        calc.call::<i64>("add", (i, i)).await?;
    }

    let health = pm.get_health(calc.id()).await?;
    println!("health          : {} {:?}", health.status.as_str(), health.checks.iter().map(|c| format!("{}: {}", c.name, c.message)).collect::<Vec<_>>());
    let m = pm.get_metrics(calc.id()).await?;
    println!(
        "metrics         : requests {}, errors {}, cpu {:.1}%, memory {} KiB, latency p50 {:.3} ms p95 {:.3} ms p99 {:.3} ms",
        m.requests, m.errors, m.cpu, m.memory / 1024, m.latency.p50, m.latency.p95, m.latency.p99
    );
    pm.shutdown().await;
    println!("shut down");
    Ok(())
}
