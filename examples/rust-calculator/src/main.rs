//! A calculator worker written in Rust: run by a titan-pm host as an executable
//! target (`pm.spawn("target/release/rust-calculator", ...)`), from any of the
//! three front ends.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use titan_pm::agent::{WorkerDef, WorkerError};
use titan_pm::protocol::{CheckStatus, HealthCheck, HealthReport, HealthStatus};

fn main() {
    let served = Rc::new(Cell::new(0u64));
    let counted = served.clone();
    WorkerDef::new("calculator", "1.0.0")
        .method("add", move |(a, b): (i64, i64)| {
            counted.set(counted.get() + 1);
            async move { a.checked_add(b).ok_or_else(|| WorkerError::new("OverflowError", "add overflowed i64")) }
        })
        .method("multiply", |(a, b): (f64, f64)| async move { Ok(a * b) })
        .method("slow", |(ms,): (u64,)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ms)
        })
        .method("crash", |()| async move {
            eprintln!("crashing on purpose");
            std::process::abort();
            #[allow(unreachable_code)]
            Ok(())
        })
        .method("raise", |(message,): (String,)| async move { Err::<(), _>(WorkerError::new("ValueError", message)) })
        .health_check(move || {
            let served = served.get();
            async move {
                let check = HealthCheck { name: "served".into(), status: CheckStatus::Pass, message: format!("{served} additions") };
                HealthReport::new(HealthStatus::Healthy, vec![check])
            }
        })
        .on_shutdown(|| async { println!("calculator shutting down") })
        .run()
}
