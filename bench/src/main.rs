//! Rust host -> Rust child worker over `ipc`, against two references run in the
//! same process: a raw Unix-socket ping-pong and a bare capnp-rpc client/server
//! on the same schema (both with a child process on an inherited socketpair).
//!
//! `cargo run --release -p titan-bench` prints sequential p50/p99 and the
//! throughput with 64 calls in flight for each (medians of `BENCH_ROUNDS`, default 3,
//! interleaved rounds), and the ratios of the brief's §6. Pinned to one vCPU:
//! `taskset -c 0 cargo run --release -p titan-bench`.
//! The same binary is the child for the references (`echo` / `capnp-server`).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use capnp::capability::Rc as CapRc;
use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::RpcSystem;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use titan_pm::titan_capnp::worker;
use titan_pm::{ManagerConfig, ProcessManager, SpawnOptions, Value};

const SEQUENTIAL: usize = 20_000;
const IN_FLIGHT: usize = 64;
const PIPELINED: usize = 100_000;

struct Figures {
    p50_us: f64,
    p99_us: f64,
    calls_per_s: f64,
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("echo") => return echo_server(),
        Some("capnp-server") => return capnp_server(),
        _ => {}
    }
    let worker = std::env::current_exe().unwrap().with_file_name("rust-calculator");
    assert!(worker.exists(), "build the worker first: cargo build --release -p rust-calculator");

    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "titan-pm bench: {SEQUENTIAL} sequential calls, then {PIPELINED} calls with {IN_FLIGHT} in flight; \
         {rounds} interleaved rounds, medians ({cpus} usable cpus: {})\n",
        if cpus == 1 { "pinned" } else { "unpinned" }
    );
    let spin = Duration::from_micros(200);
    let names = [
        "raw unix socket ping-pong",
        "bare capnp-rpc client/server",
        "titan-pm (engine thread, defaults)",
        "titan-pm (engine thread, spin 0.2 ms)",
        "titan-pm (new_local, no hop)",
        "titan-pm (engine thread, spin off)",
    ];
    let mut all: Vec<Vec<Figures>> = names.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        all[0].push(raw_socket());
        all[1].push(bare_capnp());
        all[2].push(titan(&worker, Engine::Thread(ManagerConfig::default().spin)));
        all[3].push(titan(&worker, Engine::Thread(spin)));
        all[4].push(titan(&worker, Engine::Local));
        all[5].push(titan(&worker, Engine::Thread(Duration::ZERO)));
    }
    for (name, rows) in names.iter().zip(&all) {
        report(name, &median_of(rows));
    }
    println!();
    let ratio = |a: &[Figures], b: &[Figures], f: fn(&Figures) -> f64| median(a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect());
    for (name, i) in [("engine thread", 2), ("thread, spin", 3), ("thread, no spin", 5), ("new_local", 4)] {
        println!(
            "titan-pm {name:15}: sequential p50 {:.2}x raw (target <= 1.5x); 64 in flight {:.2}x bare capnp-rpc (target >= 0.8x)",
            ratio(&all[i], &all[0], |f| f.p50_us),
            ratio(&all[i], &all[1], |f| f.calls_per_s),
        );
    }
    let tail = |i: usize| median(all[i].iter().map(|f| f.p99_us / f.p50_us).collect());
    println!(
        "p99 / p50 (target <= 2 with everything on one vCPU): raw {:.2}, bare capnp-rpc {:.2}, engine thread {:.2}, new_local {:.2}",
        tail(0),
        tail(1),
        tail(2),
        tail(4),
    );
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn median_of(rows: &[Figures]) -> Figures {
    Figures {
        p50_us: median(rows.iter().map(|f| f.p50_us).collect()),
        p99_us: median(rows.iter().map(|f| f.p99_us).collect()),
        calls_per_s: median(rows.iter().map(|f| f.calls_per_s).collect()),
    }
}

fn report(name: &str, f: &Figures) {
    println!("{name:38} p50 {:7.1} us  p99 {:7.1} us  64 in flight {:9.0} calls/s", f.p50_us, f.p99_us, f.calls_per_s);
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// Starts this binary as `mode` with one end of a socketpair as its fd 3.
fn child(mode: &str) -> (std::process::Child, UnixStream) {
    let (mine, theirs) = UnixStream::pair().unwrap();
    let fd = theirs.as_raw_fd();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.arg(mode);
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let c = cmd.spawn().unwrap();
    drop(theirs);
    (c, mine)
}

fn inherited() -> UnixStream {
    unsafe { UnixStream::from_raw_fd(3) }
}

// ---- raw socket ----

fn echo_server() {
    let mut s = inherited();
    let mut buf = [0u8; 16];
    while s.read_exact(&mut buf).is_ok() {
        let a = i64::from_le_bytes(buf[..8].try_into().unwrap());
        let b = i64::from_le_bytes(buf[8..].try_into().unwrap());
        if s.write_all(&(a + b).to_le_bytes()).is_err() {
            break;
        }
    }
}

fn raw_socket() -> Figures {
    let (mut c, mut s) = child("echo");
    let mut h = histogram();
    let mut msg = [0u8; 16];
    let mut reply = [0u8; 8];
    for i in 0..SEQUENTIAL {
        msg[..8].copy_from_slice(&(i as i64).to_le_bytes());
        let t = Instant::now();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut reply).unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    // 64 in flight: keep the pipe full, one new request per reply.
    let t = Instant::now();
    for _ in 0..IN_FLIGHT {
        s.write_all(&msg).unwrap();
    }
    for i in 0..PIPELINED {
        s.read_exact(&mut reply).unwrap();
        if i + IN_FLIGHT < PIPELINED {
            s.write_all(&msg).unwrap();
        }
    }
    let rate = PIPELINED as f64 / t.elapsed().as_secs_f64();
    drop(s);
    c.wait().unwrap();
    figures(&h, rate)
}

fn figures(h: &Histogram<u64>, calls_per_s: f64) -> Figures {
    Figures {
        p50_us: h.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: h.value_at_quantile(0.99) as f64 / 1000.0,
        calls_per_s,
    }
}

// ---- bare capnp-rpc ----

struct Adder;

impl worker::Server for Adder {
    async fn call(self: CapRc<Self>, params: worker::CallParams, mut results: worker::CallResults) -> Result<(), capnp::Error> {
        let args = params.get()?.get_args()?;
        let a = int(args.get(0))?;
        let b = int(args.get(1))?;
        results.get().init_result().init_ok().set_int(a + b);
        Ok(())
    }
}

fn int(v: titan_pm::titan_capnp::value::Reader<'_>) -> Result<i64, capnp::Error> {
    match v.which()? {
        titan_pm::titan_capnp::value::Which::Int(i) => Ok(i),
        _ => Err(capnp::Error::failed("not an int".into())),
    }
}

fn local_runtime() -> (tokio::runtime::Runtime, tokio::task::LocalSet) {
    (tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(), tokio::task::LocalSet::new())
}

/// capnp-rpc as its documentation sets it up (buffered halves, one flush per
/// message), without titan-pm's transport: the peer the engine is measured against.
fn bare_network(stream: tokio::net::UnixStream, side: Side) -> capnp_rpc::twoparty::VatNetwork<impl futures::AsyncRead + Unpin> {
    use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};
    let (reader, writer) = stream.into_split();
    capnp_rpc::twoparty::VatNetwork::new(
        futures::io::BufReader::new(reader.compat()),
        futures::io::BufWriter::new(writer.compat_write()),
        side,
        titan_pm::transport::reader_options(),
    )
}

fn capnp_server() {
    let (rt, local) = local_runtime();
    local.block_on(&rt, async {
        let s = inherited();
        s.set_nonblocking(true).unwrap();
        let stream = tokio::net::UnixStream::from_std(s).unwrap();
        let client: worker::Client = capnp_rpc::new_client(Adder);
        let network = bare_network(stream, Side::Server);
        let _ = RpcSystem::new(Box::new(network), Some(client.client)).await;
    });
}

fn bare_capnp() -> Figures {
    let (mut c, s) = child("capnp-server");
    let (rt, local) = local_runtime();
    let result = local.block_on(&rt, async move {
        s.set_nonblocking(true).unwrap();
        let stream = tokio::net::UnixStream::from_std(s).unwrap();
        let mut rpc = RpcSystem::new(Box::new(bare_network(stream, Side::Client)), None);
        let worker: worker::Client = rpc.bootstrap(Side::Server);
        tokio::task::spawn_local(rpc);
        let call = |a: i64| {
            let mut req = worker.call_request();
            let mut p = req.get();
            p.set_method("add");
            let mut args = p.init_args(2);
            args.reborrow().get(0).set_int(a);
            args.reborrow().get(1).set_int(1);
            async move {
                let reply = req.send().promise.await.unwrap();
                match reply.get().unwrap().get_result().unwrap().which().unwrap() {
                    titan_pm::titan_capnp::call_result::Which::Ok(v) => int(v.unwrap()).unwrap(),
                    titan_pm::titan_capnp::call_result::Which::Error(_) => panic!("the call failed"),
                }
            }
        };
        measure(|i| call(i as i64)).await
    });
    c.kill().ok();
    c.wait().ok();
    result
}

/// Sequential latency, then throughput with IN_FLIGHT outstanding calls.
async fn measure<F, Fut>(call: F) -> Figures
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    for i in 0..1000 {
        call(i).await; // warm up
    }
    let mut h = histogram();
    for i in 0..SEQUENTIAL {
        let t = Instant::now();
        call(i).await;
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    let t = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut sent = 0;
    while sent < IN_FLIGHT {
        pending.push(call(sent));
        sent += 1;
    }
    while pending.next().await.is_some() {
        if sent < PIPELINED {
            pending.push(call(sent));
            sent += 1;
        }
    }
    figures(&h, PIPELINED as f64 / t.elapsed().as_secs_f64())
}

// ---- titan-pm ----

/// Where the manager's engine runs: its own thread (spinning this long after each job), or the caller's.
enum Engine {
    Thread(Duration),
    Local,
}

fn titan(worker: &std::path::Path, engine: Engine) -> Figures {
    let (rt, local) = local_runtime();
    local.block_on(&rt, async {
        let config = ManagerConfig { timeout: Duration::from_secs(60), ..ManagerConfig::default() };
        let pm = match engine {
            Engine::Thread(spin) => ProcessManager::new(ManagerConfig { spin, ..config }),
            Engine::Local => ProcessManager::new_local(config),
        };
        let calc = pm.spawn(worker, SpawnOptions::default()).await.unwrap();
        let f = measure(|i| {
            let calc = calc.clone();
            async move {
                let r = calc.call_value("add", vec![Value::Int(i as i64), Value::Int(1)]).await.unwrap();
                r.as_i64().unwrap()
            }
        })
        .await;
        pm.shutdown().await;
        f
    })
}
