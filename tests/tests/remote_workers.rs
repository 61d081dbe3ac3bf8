//! Remote workers over loopback: a host listens with mutual TLS (certificates
//! made here with rcgen), Rust workers started by the test (as an orchestrator
//! would) dial in with `--connect`, join a `remote:api` pool and serve; a killed
//! member fails its in-flight call at once and the pool keeps serving; it
//! restarts and rejoins; wrong CA, no certificate and a wrong token are refused
//! with a `refused` event; plain TCP only on loopback with a token; workers
//! reconnect to a restarted host; SIGTERM drains. Workers dialling `wss://`
//! (TLS, then a WebSocket upgrade) share the listener's port with plain mTLS
//! ones; `ws://` only where plain TCP is allowed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use titan_pm::error::Error;
use titan_pm::pool::PoolOptions;
use titan_pm::{EventKind, ListenOptions, ManagerConfig, PoolSize, ProcessManager, SpawnOptions, TlsFiles};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
/// Every wait in these tests ends by this (a hang fails).
const LIMIT: Duration = Duration::from_secs(30);

struct Pki {
    dir: tempfile::TempDir,
}

fn write(dir: &Path, name: &str, text: String) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

impl Pki {
    /// A CA, a host certificate (localhost, 127.0.0.1 and `extra_ips`), a worker
    /// certificate from that CA, and a worker certificate from another CA.
    fn new(extra_ips: &[&str]) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            let cert = p.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("titan-pm test ca");
        let (other_cert, other_key) = ca("another ca");
        let leaf = |names: Vec<String>, issuer: &rcgen::Certificate, issuer_key: &KeyPair, stem: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, stem);
            let cert = p.signed_by(&key, issuer, issuer_key).unwrap();
            write(dir.path(), &format!("{stem}.crt"), cert.pem());
            write(dir.path(), &format!("{stem}.key"), key.serialize_pem());
        };
        let mut host_names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        host_names.extend(extra_ips.iter().map(|s| s.to_string()));
        leaf(host_names, &ca_cert, &ca_key, "host");
        leaf(vec!["worker".into()], &ca_cert, &ca_key, "worker");
        leaf(vec!["worker".into()], &other_cert, &other_key, "stranger");
        write(dir.path(), "ca.crt", ca_cert.pem());
        write(dir.path(), "other-ca.crt", other_cert.pem());
        Pki { dir }
    }

    fn files(&self, stem: &str, ca: &str) -> TlsFiles {
        let p = |n: String| self.dir.path().join(n);
        TlsFiles { cert: p(format!("{stem}.crt")), key: p(format!("{stem}.key")), ca: p(format!("{ca}.crt")) }
    }

    fn host(&self) -> TlsFiles {
        self.files("host", "ca")
    }
}

/// A worker the test starts as its orchestrator would, killed when dropped.
struct Remote(Child);

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dial(program: &str, pre: &[&str], connect: &str, tls: Option<&TlsFiles>, token: Option<&str>, name: &str) -> Remote {
    let mut cmd = Command::new(program);
    cmd.args(pre).args(["--connect", connect, "--name", name]);
    if let Some(t) = tls {
        cmd.arg("--tls-cert").arg(&t.cert).arg("--tls-key").arg(&t.key).arg("--tls-ca").arg(&t.ca);
    }
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    for var in ["TITAN_IPC_FD", "TITAN_CONNECT", "TITAN_SECRET", "TITAN_PM_CONNECT", "TITAN_PM_TOKEN"] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    Remote(cmd.spawn().unwrap())
}

fn rust_worker(connect: &str, tls: Option<&TlsFiles>, token: Option<&str>) -> Remote {
    dial(WORKER, &[], connect, tls, token, "api")
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn members(pool: &titan_pm::PoolHandle) -> usize {
    pool.metrics().await.map(|m| m.size).unwrap_or(0)
}

async fn distinct_pids(pool: &titan_pm::PoolHandle, calls: usize) -> std::collections::BTreeSet<u32> {
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..calls {
        pids.insert(pool.call::<u32>("pid", ()).await.unwrap());
    }
    pids
}

fn pool_options(min: usize) -> PoolOptions {
    PoolOptions { size: PoolSize::Fixed(min), request_timeout: Some(Duration::from_secs(20)), ..PoolOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtls_pool_serves_loses_a_member_at_once_and_takes_it_back() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let pki = Pki::new(&[]);
        let pm = ProcessManager::new(ManagerConfig::default());
        let addr = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: Some(pki.host()), token: Some("s3cret".into()), gateway: None }).await.unwrap();
        let connect = addr.to_string();
        let worker_tls = pki.files("worker", "ca");

        // The pool exists before any worker: a call queues until one joins.
        let pool = pm.pool("remote:api", pool_options(3)).await.unwrap();
        let early = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call::<i64>("add", (2, 3)).await })
        };
        let mut workers: Vec<Remote> = (0..3).map(|_| rust_worker(&connect, Some(&worker_tls), Some("s3cret"))).collect();
        assert_eq!(tokio::time::timeout(LIMIT, early).await.unwrap().unwrap().unwrap(), 5);
        wait_for("three members", || async { members(&pool).await == 3 }).await;
        let pids = distinct_pids(&pool, 30).await;
        assert_eq!(pids.len(), 3, "round robin over three remote workers: {pids:?}");
        let expected: std::collections::BTreeSet<u32> = workers.iter().map(|w| w.0.id()).collect();
        assert_eq!(pids, expected, "the members are the workers the test started");

        // Kill one with a call in flight: that call fails at once, not at its deadline.
        let victim_pid = workers[0].0.id();
        let slow: Vec<_> = (0..3)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let r = pool.call::<serde_json::Value>("slow", (5_000u64,)).await;
                    (r, Instant::now())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let killed_at = Instant::now();
        unsafe { libc::kill(victim_pid as i32, libc::SIGKILL) };
        let mut crashed = 0;
        for s in slow {
            let (result, ended) = tokio::time::timeout(LIMIT, s).await.unwrap().unwrap();
            if let Err(e) = result {
                assert!(matches!(e, Error::ProcessCrashed { .. }), "{e}");
                assert!(e.to_string().contains("disconnected"), "{e}");
                let after = ended.duration_since(killed_at);
                assert!(after < Duration::from_millis(2500), "the crash was reported {after:?} after the kill (the call had 5 s left)");
                crashed += 1;
            }
        }
        assert_eq!(crashed, 1, "the victim's call fails, the other two finish");
        // The pool keeps serving with the other two.
        for _ in 0..10 {
            assert_eq!(pool.call::<i64>("add", (1, 1)).await.unwrap(), 2);
        }
        // The orchestrator restarts it: it rejoins as a new member.
        workers[0] = rust_worker(&connect, Some(&worker_tls), Some("s3cret"));
        let new_pid = workers[0].0.id();
        wait_for("the restarted worker to serve", || {
            let pool = pool.clone();
            async move { distinct_pids(&pool, 9).await.contains(&new_pid) }
        })
        .await;
        assert_eq!(members(&pool).await, 3);

        // A fourth worker joining grows the pool.
        workers.push(rust_worker(&connect, Some(&worker_tls), Some("s3cret")));
        wait_for("a fourth member", || async { members(&pool).await == 4 }).await;

        // attach: one remote worker (of another name) as a process.
        workers.push(dial(WORKER, &[], &connect, Some(&worker_tls), Some("s3cret"), "solo"));
        let one = pm.attach("remote:solo", SpawnOptions::default()).await.unwrap();
        assert_eq!(one.call::<i64>("add", (20, 22)).await.unwrap(), 42);
        pool.destroy().await.unwrap();
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

/// Waits for the next `refused` event and returns its reason.
async fn refused(events: &mut tokio::sync::broadcast::Receiver<titan_pm::Event>) -> String {
    loop {
        let e = tokio::time::timeout(LIMIT, events.recv()).await.expect("no refused event").unwrap();
        if let EventKind::Refused { reason } = e.kind {
            return reason;
        }
    }
}

/// Waits for a `refused` event whose reason contains every one of `needles`
/// (a refused worker redials, so an earlier one may be refused again meanwhile).
async fn refused_with(events: &mut tokio::sync::broadcast::Receiver<titan_pm::Event>, needles: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let reason = refused(events).await;
        if needles.iter().all(|n| reason.contains(n)) {
            return reason;
        }
        assert!(start.elapsed() < LIMIT, "no refusal with {needles:?} (last: {reason})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_and_logged() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let pki = Pki::new(&[]);
        let pm = ProcessManager::new(ManagerConfig::default());
        let addr = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: Some(pki.host()), token: Some("s3cret".into()), gateway: None }).await.unwrap();
        let connect = addr.to_string();
        let mut events = pm.events();

        // A certificate from another CA.
        let stranger = rust_worker(&connect, Some(&pki.files("stranger", "ca")), Some("s3cret"));
        let reason = refused(&mut events).await;
        assert!(reason.contains("TLS handshake failed") && reason.to_lowercase().contains("certificate"), "{reason}");
        drop(stranger);

        // No certificate at all (a TLS client that trusts the host but presents nothing).
        let roots = {
            let mut store = rustls::RootCertStore::empty();
            use rustls::pki_types::pem::PemObject;
            for c in rustls::pki_types::CertificateDer::pem_file_iter(pki.dir.path().join("ca.crt")).unwrap() {
                store.add(c.unwrap()).unwrap();
            }
            store
        };
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let attempt = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await;
        if let Ok(mut s) = attempt {
            // TLS 1.3: the client learns of the refusal on its first read.
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 16];
            let _ = tokio::time::timeout(LIMIT, s.read(&mut buf)).await;
        }
        refused_with(&mut events, &["TLS handshake failed", "no certificate"]).await;

        // The right certificate with a wrong token, then with none.
        let wrong = rust_worker(&connect, Some(&pki.files("worker", "ca")), Some("guess"));
        refused_with(&mut events, &["a wrong join token"]).await;
        drop(wrong);
        let none = rust_worker(&connect, Some(&pki.files("worker", "ca")), None);
        refused_with(&mut events, &["no join token"]).await;
        drop(none);

        // None of them joined: a call on remote:api has nobody to go to.
        let pool = pm.pool("remote:api", PoolOptions { request_timeout: Some(Duration::from_millis(300)), ..pool_options(1) }).await.unwrap();
        assert!(matches!(pool.call::<i64>("add", (1, 1)).await, Err(Error::CallTimeout { .. })));
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_only_on_loopback_with_a_token() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let pm = ProcessManager::new(ManagerConfig::default());
        let err = pm.listen(ListenOptions { address: "0.0.0.0:0".into(), tls: None, token: Some("t".into()), gateway: None }).await.unwrap_err();
        assert!(matches!(err, Error::Config(_)) && err.to_string().contains("only on loopback"), "{err}");
        let err = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: None, token: None, gateway: None }).await.unwrap_err();
        assert!(err.to_string().contains("a token is required"), "{err}");
        let err = pm.listen(ListenOptions { address: "nowhere".into(), tls: None, token: Some("t".into()), gateway: None }).await.unwrap_err();
        assert!(err.to_string().contains("is not ip:port"), "{err}");

        let addr = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: None, token: Some("local-token".into()), gateway: None }).await.unwrap();
        let _w = rust_worker(&addr.to_string(), None, Some("local-token"));
        let one = pm.attach("api", SpawnOptions::default()).await.unwrap();
        assert_eq!(one.call::<i64>("add", (2, 2)).await.unwrap(), 4);
        // Plain WebSocket on the same port, under the same rule (loopback, token).
        let _ws = dial(WORKER, &[], &format!("ws://{addr}/"), None, Some("local-token"), "wsapi");
        let over_ws = pm.attach("wsapi", SpawnOptions::default()).await.unwrap();
        assert_eq!(over_ws.call::<i64>("add", (3, 4)).await.unwrap(), 7);
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_mtls_workers_share_a_port_and_a_pool() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let pki = Pki::new(&[]);
        let pm = ProcessManager::new(ManagerConfig::default());
        let addr = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: Some(pki.host()), token: Some("s3cret".into()), gateway: None }).await.unwrap();
        let worker_tls = pki.files("worker", "ca");
        let mut events = pm.events();

        // One member over wss:// (TLS, then the WebSocket upgrade), one over plain mutual TLS.
        let _over_wss = rust_worker(&format!("wss://localhost:{}/titan", addr.port()), Some(&worker_tls), Some("s3cret"));
        let _over_tls = rust_worker(&addr.to_string(), Some(&worker_tls), Some("s3cret"));
        let pool = pm.pool("remote:api", pool_options(2)).await.unwrap();
        wait_for("both workers to join", || async { members(&pool).await == 2 }).await;
        let pids = distinct_pids(&pool, 20).await;
        let expected: std::collections::BTreeSet<u32> = [_over_wss.0.id(), _over_tls.0.id()].into();
        assert_eq!(pids, expected, "both the wss and the mTLS worker serve the pool");
        assert_eq!(pool.call::<i64>("add", (20, 22)).await.unwrap(), 42);

        // wss:// with a certificate from another CA: refused in the TLS handshake, before any upgrade.
        let stranger = rust_worker(&format!("wss://127.0.0.1:{}/", addr.port()), Some(&pki.files("stranger", "ca")), Some("s3cret"));
        let reason = refused_with(&mut events, &["TLS handshake failed"]).await;
        assert!(reason.to_lowercase().contains("certificate"), "{reason}");
        drop(stranger);
        // The right certificate over wss:// with a wrong token: refused at registration, as over mTLS.
        let wrong = rust_worker(&format!("wss://127.0.0.1:{}/", addr.port()), Some(&worker_tls), Some("guess"));
        refused_with(&mut events, &["a wrong join token"]).await;
        drop(wrong);

        // The pool still has its two members and serves.
        assert_eq!(members(&pool).await, 2);
        assert_eq!(pool.call::<i64>("add", (1, 1)).await.unwrap(), 2);
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

#[test]
fn a_ws_scheme_must_match_the_tls_flags() {
    let pki = Pki::new(&[]);
    let t = pki.files("worker", "ca");
    let run = |connect: &str, tls: bool| {
        let mut cmd = Command::new(WORKER);
        cmd.args(["--connect", connect, "--name", "api", "--token", "t"]);
        if tls {
            cmd.arg("--tls-cert").arg(&t.cert).arg("--tls-key").arg(&t.key).arg("--tls-ca").arg(&t.ca);
        }
        for var in ["TITAN_IPC_FD", "TITAN_CONNECT", "TITAN_SECRET", "TITAN_PM_CONNECT", "TITAN_PM_TOKEN"] {
            cmd.env_remove(var);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{connect}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("wss://127.0.0.1:9/", false);
    assert!(err.contains("wss:// needs --tls-cert"), "{err}");
    let err = run("ws://127.0.0.1:9/", true);
    assert!(err.contains("with TLS files dial wss://"), "{err}");
    let err = run("ws://10.1.2.3:9/", false);
    assert!(err.contains("only dials a loopback host"), "{err}");
    let err = run("wss://nohost/", true);
    assert!(err.contains("is not host:port"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_rejoin_a_restarted_host_and_drain_on_sigterm() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let pki = Pki::new(&[]);
        let listen = |address: String| ListenOptions { address, tls: Some(pki.host()), token: None, gateway: None };
        let pm = ProcessManager::new(ManagerConfig::default());
        let addr = pm.listen(listen("127.0.0.1:0".into())).await.unwrap();
        let mut worker = rust_worker(&addr.to_string(), Some(&pki.files("worker", "ca")), None);
        let one = pm.attach("remote:api", SpawnOptions::default()).await.unwrap();
        assert_eq!(one.call::<i64>("add", (1, 2)).await.unwrap(), 3);
        pm.shutdown().await;
        drop(one);
        drop(pm);

        // A new host on the same address: the worker dials again within its backoff.
        let pm = ProcessManager::new(ManagerConfig::default());
        let start = Instant::now();
        loop {
            match pm.listen(listen(addr.to_string())).await {
                Ok(_) => break,
                Err(e) if start.elapsed() < LIMIT => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("cannot listen again on {addr}: {e}"),
            }
        }
        let one = pm.attach("remote:api", SpawnOptions { ..SpawnOptions::default() }).await.unwrap();
        assert_eq!(one.call::<i64>("add", (3, 4)).await.unwrap(), 7);

        // SIGTERM with a call in flight: the call finishes, then the worker exits 0.
        let slow = {
            let one = one.clone();
            tokio::spawn(async move { one.call::<serde_json::Value>("slow", (1500u64,)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        unsafe { libc::kill(worker.0.id() as i32, libc::SIGTERM) };
        assert!(tokio::time::timeout(LIMIT, slow).await.unwrap().unwrap().is_ok(), "the in-flight call was drained");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = worker.0.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < LIMIT, "the worker did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.code(), Some(0));
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

/// A remote worker's pid is another machine's: the host shows the cpu and memory
/// the worker reports about itself, in the process's and the pool's metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_workers_report_their_own_cpu_and_memory() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let pm = ProcessManager::new(ManagerConfig::default());
        let addr = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: None, token: Some("t0ken".into()), gateway: None }).await.unwrap();
        let _worker = rust_worker(&addr.to_string(), None, Some("t0ken"));
        // least-loaded balances on the members' cpu and memory: the pool samples them.
        let options = PoolOptions { strategy: titan_pm::Strategy::LeastLoaded, ..pool_options(1) };
        let pool = pm.pool("remote:api", options).await.unwrap();
        wait_for("the worker to join", || async { members(&pool).await == 1 }).await;
        let id = pool.metrics().await.unwrap().workers[0].process_id;
        let memory = || async { pm.get_metrics(id).await.unwrap().memory };
        wait_for("a first report", || async { memory().await > 0 }).await;
        let before = memory().await;
        assert!(before < 40 << 20, "a fresh worker is small ({before} bytes)");

        pool.call::<usize>("allocate", (50usize,)).await.unwrap();
        wait_for("the 50 MB to show", || async { memory().await > before + (48 << 20) }).await;
        assert!(memory().await > 50 << 20);
        let member = || async { pool.metrics().await.unwrap().workers[0].clone() };
        wait_for("the pool's load to show it", || async { member().await.memory > 50 << 20 }).await;

        // The report that covers a busy call shows it until the next one (a second later): look
        // for it after each of a few busy calls, so a slow test thread cannot miss it.
        let mut seen = false;
        for _ in 0..5 {
            pool.call::<u32>("spin", (1500u64,)).await.unwrap();
            let until = Instant::now() + Duration::from_secs(3);
            while !seen && Instant::now() < until {
                seen = pm.get_metrics(id).await.unwrap().cpu > 5.0;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if seen {
                break;
            }
        }
        assert!(seen, "the host never showed the worker's cpu after busy calls");
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

/// A `remote:` pool that still waits for a worker to join: destroying it ends the wait
/// at once (its queued call fails with the pool's error), and a worker that joins
/// afterwards is not taken by the destroyed pool's wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_remote_pool_ends_its_wait_for_workers() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let pm = ProcessManager::new(ManagerConfig::default());
        let addr = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: None, token: Some("t0ken".into()), gateway: None }).await.unwrap();
        let mut events = pm.events();
        let pool = pm.pool("remote:api", pool_options(1)).await.unwrap();
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call::<i64>("add", (1, 2)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        pool.destroy().await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(5), queued).await.expect("the queued call still waits").unwrap();
        assert!(matches!(outcome, Err(Error::ProcessFailed { .. })), "{outcome:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "destroy took {:?}", start.elapsed());

        let _worker = rust_worker(&addr.to_string(), None, Some("t0ken"));
        let one = pm.attach("remote:api", SpawnOptions::default()).await.unwrap();
        assert_eq!(one.call::<i64>("add", (2, 3)).await.unwrap(), 5);
        // Only the attached process took a worker: nothing was spawned for the destroyed pool.
        let mut spawned = Vec::new();
        while let Ok(e) = events.try_recv() {
            if let EventKind::Spawned { .. } = e.kind {
                spawned.push(e.process_id);
            }
        }
        assert_eq!(spawned, vec![one.id()]);
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

/// A network namespace and a veth pair that the test creates and removes: the
/// host keeps one end (`host_ip`) in the test's namespace, the workers run in
/// the other namespace (`worker_ip`). Traffic goes only between those two addresses.
struct Netns {
    name: String,
    host_veth: String,
    host_ip: String,
}

impl Netns {
    /// `None` (with the reason) where the machine does not let the test make namespaces.
    /// `tag` (0-9) tells apart the namespaces of tests running at once.
    fn create(tag: u32) -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let octet = 16 + (std::process::id() % 200);
        let (host, worker) = (4 * tag + 1, 4 * tag + 2);
        let ns = Netns { name: format!("titanpm-t{id}-{tag}"), host_veth: format!("tpm{id}{tag}h"), host_ip: format!("10.213.{octet}.{host}") };
        let worker_veth = format!("tpm{id}{tag}w");
        let worker_ip = format!("10.213.{octet}.{worker}");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), ns.name.clone()],
            vec!["link".into(), "add".into(), ns.host_veth.clone(), "type".into(), "veth".into(), "peer".into(), "name".into(), worker_veth.clone()],
            vec!["link".into(), "set".into(), worker_veth.clone(), "netns".into(), ns.name.clone()],
            vec!["addr".into(), "add".into(), format!("{}/30", ns.host_ip), "dev".into(), ns.host_veth.clone()],
            vec!["link".into(), "set".into(), ns.host_veth.clone(), "up".into()],
            vec!["-n".into(), ns.name.clone(), "addr".into(), "add".into(), format!("{worker_ip}/30"), "dev".into(), worker_veth.clone()],
            vec!["-n".into(), ns.name.clone(), "link".into(), "set".into(), worker_veth, "up".into()],
            vec!["-n".into(), ns.name.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
        ];
        for step in steps {
            let out = Command::new("ip").args(&step).output().map_err(|e| format!("cannot run ip: {e}"))?;
            if !out.status.success() {
                return Err(format!("ip {}: {}", step.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_veth]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_in_another_network_namespace_join_over_mtls() {
    let ns = match Netns::create(0) {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: this machine does not let the test create a network namespace and veth pair ({why}); the loopback tests cover the same paths");
            return;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), async {
        let pki = Pki::new(&[&ns.host_ip]);
        let pm = ProcessManager::new(ManagerConfig::default());
        let addr = pm.listen(ListenOptions { address: format!("{}:0", ns.host_ip), tls: Some(pki.host()), token: Some("s3cret".into()), gateway: None }).await.unwrap();
        let worker_tls = pki.files("worker", "ca");
        let in_ns = |tls: &TlsFiles, token: &str| {
            let pre = ["netns", "exec", ns.name.as_str(), WORKER];
            dial("ip", &pre, &addr.to_string(), Some(tls), Some(token), "api")
        };
        let mut workers: Vec<Remote> = (0..3).map(|_| in_ns(&worker_tls, "s3cret")).collect();
        let pool = pm.pool("remote:api", pool_options(3)).await.unwrap();
        wait_for("three members from the other namespace", || async { members(&pool).await == 3 }).await;
        assert_eq!(distinct_pids(&pool, 30).await.len(), 3);

        // Kill one (ip netns exec execs the worker: the child is the worker) with a call in flight.
        let slow: Vec<_> = (0..3)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { (pool.call::<serde_json::Value>("slow", (5_000u64,)).await, Instant::now()) })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let killed_at = Instant::now();
        unsafe { libc::kill(workers[0].0.id() as i32, libc::SIGKILL) };
        let mut crashed = 0;
        for s in slow {
            let (r, ended) = tokio::time::timeout(LIMIT, s).await.unwrap().unwrap();
            if let Err(e) = r {
                assert!(matches!(e, Error::ProcessCrashed { .. }), "{e}");
                assert!(ended.duration_since(killed_at) < Duration::from_millis(2500));
                crashed += 1;
            }
        }
        assert_eq!(crashed, 1);
        assert_eq!(pool.call::<i64>("add", (1, 1)).await.unwrap(), 2);
        workers[0] = in_ns(&worker_tls, "s3cret");
        let fresh = workers[0].0.id();
        wait_for("the restarted worker to rejoin", || {
            let pool = pool.clone();
            async move { distinct_pids(&pool, 9).await.contains(&fresh) }
        })
        .await;

        // Refused from the other namespace too: another CA, a wrong token.
        let mut events = pm.events();
        let stranger = in_ns(&pki.files("stranger", "ca"), "s3cret");
        assert!(refused(&mut events).await.contains("TLS handshake failed"));
        drop(stranger);
        let _wrong = in_ns(&worker_tls, "guess");
        refused_with(&mut events, &["a wrong join token"]).await;
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

/// The interpreter and Node files the three-language test starts (`TITAN_TEST_PYTHON`: a
/// Python that imports titan_pm; `TITAN_TEST_NODE_WORKER`: the compiled calculator.js, whose
/// package's `dist/worker/bin.js` is `titan-pm-worker`), or why they are missing.
fn language_workers() -> Result<(String, String, String), String> {
    let python = std::env::var("TITAN_TEST_PYTHON").map_err(|_| "TITAN_TEST_PYTHON is not set (scripts/test-python.sh sets it)")?;
    let node_worker = std::env::var("TITAN_TEST_NODE_WORKER").map_err(|_| "TITAN_TEST_NODE_WORKER is not set (scripts/test-node.sh sets it)")?;
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/dist/worker/bin.js");
    if !bin.exists() {
        return Err(format!("{} is missing (build the Node package)", bin.display()));
    }
    Ok((python, node_worker, bin.display().to_string()))
}

/// A Python, a Node and a Rust worker dial in from another network namespace over
/// mTLS into one pool; it serves from all three; a killed one leaves the pool
/// serving, and started again it rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_node_and_rust_workers_from_another_namespace_share_a_pool() {
    let (python, node_worker, node_bin) = match language_workers() {
        Ok(x) => x,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let ns = match Netns::create(1) {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: this machine does not let the test create a network namespace and veth pair ({why}); the loopback tests cover the same paths");
            return;
        }
    };
    let py_worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/tests/workers/remote_worker.py").display().to_string();
    tokio::time::timeout(Duration::from_secs(150), async {
        let pki = Pki::new(&[&ns.host_ip]);
        let pm = ProcessManager::new(ManagerConfig::default());
        let addr = pm.listen(ListenOptions { address: format!("{}:0", ns.host_ip), tls: Some(pki.host()), token: Some("s3cret".into()), gateway: None }).await.unwrap();
        let tls = pki.files("worker", "ca");
        let connect = addr.to_string();
        let in_ns = |program: &[&str]| {
            let pre: Vec<&str> = ["netns", "exec", ns.name.as_str()].into_iter().chain(program.iter().copied()).collect();
            dial("ip", &pre, &connect, Some(&tls), Some("s3cret"), "api")
        };
        let python_cmd = [python.as_str(), "-m", "titan_pm.worker", py_worker.as_str()];
        let node_cmd = ["node", node_bin.as_str(), node_worker.as_str()];
        let mut workers = vec![in_ns(&python_cmd), in_ns(&node_cmd), in_ns(&[WORKER])];
        let pool = pm.pool("remote:api", pool_options(3)).await.unwrap();
        wait_for("three members from the other namespace", || async { members(&pool).await == 3 }).await;
        let all: std::collections::BTreeSet<u32> = workers.iter().map(|w| w.0.id()).collect();
        wait_for("calls served by all three", || {
            let (pool, all) = (pool.clone(), all.clone());
            async move { distinct_pids(&pool, 12).await == all }
        })
        .await;
        for i in 0..12 {
            assert_eq!(pool.call::<i64>("add", (i, 1)).await.unwrap(), i + 1);
        }

        // The Node worker is killed: the pool keeps serving; started again, it rejoins.
        workers[1].0.kill().unwrap();
        let _ = workers[1].0.wait();
        wait_for("the pool to lose the killed member", || async { members(&pool).await == 2 }).await;
        assert_eq!(pool.call::<i64>("add", (2, 2)).await.unwrap(), 4);
        workers[1] = in_ns(&node_cmd);
        let fresh = workers[1].0.id();
        wait_for("the restarted node worker to rejoin", || {
            let pool = pool.clone();
            async move { distinct_pids(&pool, 9).await.contains(&fresh) }
        })
        .await;
        pm.shutdown().await;
    })
    .await
    .expect("the test hung");
}

/// Not a check: prints remote call latency (p50) and 64-in-flight throughput over
/// mTLS, wss:// (mTLS plus WebSocket), plain loopback TCP (token) and, for
/// comparison, a child over the http, tcp and ipc transports. `cargo test --release -p titan-pm-tests --test remote_workers -- --ignored --nocapture bench`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_remote_calls() {
    use titan_pm::{ProcessHandle, Transport};
    async fn measure(label: &str, h: &ProcessHandle) {
        for _ in 0..200 {
            h.call::<i64>("add", (1, 2)).await.unwrap();
        }
        let mut lat = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let t = Instant::now();
            h.call::<i64>("add", (1, 2)).await.unwrap();
            lat.push(t.elapsed());
        }
        lat.sort();
        let p50 = lat[lat.len() / 2];
        let p99 = lat[lat.len() * 99 / 100];
        let n = 20_000;
        let t = Instant::now();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                let r = h.call::<i64>("add", (1, 2)).await;
                drop(permit);
                r.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        println!("bench {label:<28} p50 {:>7.1} us  p99 {:>7.1} us  64 in flight {:>8.0} calls/s", p50.as_secs_f64() * 1e6, p99.as_secs_f64() * 1e6, rate);
    }
    let pki = Pki::new(&[]);
    let pm = ProcessManager::new(ManagerConfig::default());
    let tls_addr = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: Some(pki.host()), token: None, gateway: None }).await.unwrap();
    let plain_addr = pm.listen(ListenOptions { address: "127.0.0.1:0".into(), tls: None, token: Some("t".into()), gateway: None }).await.unwrap();
    let _a = dial(WORKER, &[], &tls_addr.to_string(), Some(&pki.files("worker", "ca")), None, "tls");
    let _b = dial(WORKER, &[], &plain_addr.to_string(), None, Some("t"), "plain");
    let _c = dial(WORKER, &[], &format!("wss://127.0.0.1:{}/", tls_addr.port()), Some(&pki.files("worker", "ca")), None, "wss");
    let tls = pm.attach("remote:tls", SpawnOptions::default()).await.unwrap();
    let wss = pm.attach("remote:wss", SpawnOptions::default()).await.unwrap();
    let http = pm.spawn(WORKER, SpawnOptions { transport: Some(Transport::Http), ..SpawnOptions::default() }).await.unwrap();
    let plain = pm.attach("remote:plain", SpawnOptions::default()).await.unwrap();
    let tcp = pm.spawn(WORKER, SpawnOptions { transport: Some(Transport::Tcp), ..SpawnOptions::default() }).await.unwrap();
    let ipc = pm.spawn(WORKER, SpawnOptions { transport: Some(Transport::Ipc), ..SpawnOptions::default() }).await.unwrap();
    measure("remote, mutual TLS", &tls).await;
    measure("remote, wss (mTLS + WebSocket)", &wss).await;
    measure("remote, plain loopback tcp", &plain).await;
    measure("child, http transport", &http).await;
    measure("child, tcp transport", &tcp).await;
    measure("child, ipc transport", &ipc).await;
    pm.shutdown().await;
}
