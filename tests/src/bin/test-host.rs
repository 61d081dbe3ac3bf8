//! A host for tests that must watch a whole host process:
//! `test-host WORKER` spawns the worker, prints its pid and waits to be killed;
//! `test-host --print-demo WORKER` has the worker print a line, then shuts down.
use titan_pm::{ManagerConfig, ProcessManager, SpawnOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (print_demo, worker) = match args.as_slice() {
        [flag, w] if flag == "--print-demo" => (true, w.clone()),
        [w] => (false, w.clone()),
        _ => panic!("usage: test-host [--print-demo] WORKER"),
    };
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(worker.as_str(), SpawnOptions::default()).await.expect("spawn");
    if print_demo {
        h.call::<()>("print", ("hello from the worker",)).await.expect("print");
        pm.shutdown().await;
        return;
    }
    println!("worker {}", h.info().await.expect("info").pid);
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
}
