//! Workflow engine overhead: a 100-stage chain of no-op stages in this process
//! (isolation `none`), run with the journal off (`:memory:`) and on (SQLite in a
//! temp dir), against the same 100 no-op calls made directly through the
//! process handle. Also the cost of one journal commit on its own.
//!
//! `cargo run --release -p titan-bench --bin workflow` prints per-stage figures (medians over runs).
//! With `TITAN_BENCH_POSTGRES=postgresql://…` (an empty database) it runs the journal-on
//! figures against that Postgres server too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use titan_pm::agent::{Handler, WorkerDef};
use titan_pm::workflow::journal::{Entry, Journal, PostgresJournal, SqliteJournal};
use titan_pm::workflow::{StageOptions, WorkflowOptions};
use titan_pm::{Isolation, ManagerConfig, ProcessManager, SpawnOptions, Target, Value};

const STAGES: usize = 100;
/// A short chain too: a stage with dependencies gets every result so far, so the
/// input (and its encoding) grows along a long chain.
const SHORT: usize = 10;
const RUNS: usize = 30;
const COMMITS: usize = 2_000;

fn chain(stages: usize) -> WorkerDef {
    let mut def = WorkerDef::new("Chain", "1.0.0").method("noop", |(_,): (serde_json::Value,)| async move { Ok(()) });
    let names: Vec<String> = (0..stages).map(|i| format!("s{i:03}")).collect();
    for (i, name) in names.iter().enumerate() {
        let deps: Vec<&str> = if i == 0 { vec![] } else { vec![names[i - 1].as_str()] };
        def = def.stage(name, &deps, StageOptions::default(), |_: serde_json::Value, _| async move { Ok(()) });
    }
    def
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn per_stage_us(pm: &ProcessManager, stages: usize, journal: Option<Arc<dyn Journal>>) -> f64 {
    let target = Target::handler("Chain", move || Ok(std::rc::Rc::new(chain(stages)) as std::rc::Rc<dyn Handler>));
    let options = WorkflowOptions { spawn: SpawnOptions { isolation: Some(Isolation::None), ..Default::default() }, journal, ..Default::default() };
    let wf = pm.workflow(target, options).await.expect("workflow");
    wf.run(Value::Null, None).await.expect("warm-up run");
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        wf.run(Value::Null, None).await.expect("run");
        times.push(t.elapsed().as_secs_f64() * 1e6 / stages as f64);
    }
    median(times)
}

async fn direct_call_us(pm: &ProcessManager) -> f64 {
    let target = Target::handler("Chain", || Ok(std::rc::Rc::new(chain(1)) as std::rc::Rc<dyn Handler>));
    let h = pm.spawn(target, SpawnOptions { isolation: Some(Isolation::None), ..Default::default() }).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        for _ in 0..STAGES {
            h.call_value("noop", vec![Value::Null]).await.unwrap();
        }
        times.push(t.elapsed().as_secs_f64() * 1e6 / STAGES as f64);
    }
    median(times)
}

fn commit_us(journal: &dyn Journal) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let run = format!("commits-{}", std::process::id());
        journal.claim(&run, "bench", &Value::Null, "me", Duration::from_secs(600)).await.unwrap();
        let t = Instant::now();
        for i in 0..COMMITS {
            journal.append(&run, "me", Entry::StageStarted { stage: format!("s{i}"), attempt: 1 }).await.unwrap();
        }
        t.elapsed().as_secs_f64() * 1e6 / COMMITS as f64
    })
}

fn main() {
    let dir = tempfile_dir();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let pm = ProcessManager::new(ManagerConfig::default());
    let direct = rt.block_on(direct_call_us(&pm));
    let memory = || -> Option<Arc<dyn Journal>> { Some(Arc::new(titan_pm::workflow::journal::MemoryJournal::default())) };
    let off = rt.block_on(per_stage_us(&pm, STAGES, memory()));
    let off_short = rt.block_on(per_stage_us(&pm, SHORT, memory()));
    let sqlite: Arc<dyn Journal> = Arc::new(SqliteJournal::open(dir.join("bench.db")).unwrap());
    let on = rt.block_on(per_stage_us(&pm, STAGES, Some(sqlite.clone())));
    let on_short = rt.block_on(per_stage_us(&pm, SHORT, Some(sqlite)));
    let postgres = std::env::var("TITAN_BENCH_POSTGRES").ok().map(|url| {
        let journal = || -> Option<Arc<dyn Journal>> { Some(Arc::new(PostgresJournal::new(&url).unwrap())) };
        let long = rt.block_on(per_stage_us(&pm, STAGES, journal()));
        let short = rt.block_on(per_stage_us(&pm, SHORT, journal()));
        (long, short, commit_us(&PostgresJournal::new(&url).unwrap()))
    });
    rt.block_on(pm.shutdown());
    let commit = commit_us(&SqliteJournal::open(dir.join("commits.db")).unwrap());
    println!("workflow engine, {STAGES}-stage chain of no-op stages in-process (isolation none), median of {RUNS} runs:");
    println!("  direct call through the process handle:   {direct:8.1} us per call");
    println!("  stage, journal off (:memory:):             {off:8.1} us per stage  (engine overhead {:+.1} us)", off - direct);
    println!("  stage, journal on (SQLite, WAL, NORMAL):   {on:8.1} us per stage  (engine overhead {:+.1} us)", on - direct);
    println!("  the same, {SHORT}-stage chain: journal off {off_short:.1} us, on {on_short:.1} us per stage");
    println!("  one SQLite journal commit (append):        {commit:8.1} us  (a stage makes 2: started, completed)");
    match postgres {
        Some((long, short, commit)) => {
            println!("  stage, journal on (Postgres):              {long:8.1} us per stage  ({SHORT}-stage chain {short:.1} us)");
            println!("  one Postgres journal commit (append):      {commit:8.1} us");
        }
        None => println!("  (Postgres: set TITAN_BENCH_POSTGRES=postgresql://... to include it)"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("titan-wf-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
