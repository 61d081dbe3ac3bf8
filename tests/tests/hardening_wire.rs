//! Attacks on the host's listeners by a peer that has no secret: a segment
//! table claiming gigabytes (the pre-authentication memory bomb), a flood of
//! silent connections, a connection that never registers, descriptor
//! exhaustion (EMFILE) in the accept loop; and the unix socket's permissions
//! under a permissive umask. Unrelated calls must stay fast throughout.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use titan_pm::transport::{MAX_PREAUTH_CONNECTIONS, PREAUTH_TIMEOUT};
use titan_pm::{ManagerConfig, ProcessHandle, ProcessManager, SpawnOptions, Transport};
use titan_pm_tests::{open_fds, rss};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const HOST: &str = env!("CARGO_BIN_EXE_test-host");

/// One segment claiming 2^30 - 1 words (8 GiB): what a peer without a secret sent.
const BOMB: [u8; 8] = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0x3f];
/// One segment claiming 256 MiB: within what a trusted peer may send, far over a registration.
const SMALLER_BOMB: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 0x02];

/// The slowest of `n` calls to `add`, one every 20 ms.
async fn slowest_call(h: &ProcessHandle, n: usize) -> Duration {
    let mut max = Duration::ZERO;
    for _ in 0..n {
        let started = Instant::now();
        assert_eq!(h.call::<i64>("add", (1, 2)).await.unwrap(), 3);
        max = max.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    max
}

/// Waits (in a blocking thread) until the host closes `stream`; how long it took.
fn closed_within(mut stream: impl Read, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Some(started.elapsed()),
            Ok(_) if started.elapsed() > limit => return None,
            Ok(_) => {}
        }
    }
}

async fn unix_path(pm: &ProcessManager) -> PathBuf {
    let options = SpawnOptions { transport: Some(Transport::Unix), ..Default::default() };
    let h = pm.spawn(WORKER, options).await.unwrap();
    let connect: Option<String> = h.call("getenv", ("TITAN_CONNECT",)).await.unwrap();
    PathBuf::from(connect.unwrap().strip_prefix("unix:").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_before_authentication_is_refused_at_once() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let addr = pm.tcp_address().await.unwrap();
    let path = unix_path(&pm).await;
    let before = rss();
    let calls = tokio::spawn({
        let h = h.clone();
        async move { slowest_call(&h, 40).await }
    });
    let attacks = tokio::task::spawn_blocking(move || {
        let mut closed = Vec::new();
        for i in 0..8 {
            // A refused table closes the connection at once; one accepted would wait for its body.
            let timeout = Duration::from_secs(10);
            let bomb = if i % 4 < 2 { BOMB } else { SMALLER_BOMB };
            let took = if i % 2 == 0 {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(timeout)).unwrap();
                s.write_all(&bomb).unwrap();
                closed_within(s, timeout)
            } else {
                let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
                s.set_read_timeout(Some(timeout)).unwrap();
                s.write_all(&bomb).unwrap();
                closed_within(s, timeout)
            };
            closed.push(took.expect("the host did not close the bomb's connection"));
        }
        closed
    });
    let closed = attacks.await.unwrap();
    let slowest = calls.await.unwrap();
    let grew = rss().saturating_sub(before);
    eprintln!("memory bombs x8: host RSS {} MB -> +{} MB; closed after {closed:?}; slowest call {slowest:?}", before >> 20, grew >> 20);
    assert!(closed.iter().all(|d| *d < Duration::from_secs(2)), "{closed:?}");
    assert!(grew < 64 << 20, "the host grew by {} MB", grew >> 20);
    assert!(slowest < Duration::from_millis(500), "a call took {slowest:?} during the attack");
    // The listeners still serve real workers.
    let tcp = pm.spawn(WORKER, SpawnOptions { transport: Some(Transport::Tcp), ..Default::default() }).await.unwrap();
    assert_eq!(tcp.call::<i64>("add", (2, 2)).await.unwrap(), 4);
    pm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_registration_is_refused_before_it_is_read() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let addr = pm.tcp_address().await.unwrap();
    // A table just over the unauthenticated limit (64 KiB), no body: closed at once, not
    // after waiting PREAUTH_TIMEOUT for a body that would have been read.
    let words: u32 = (titan_pm::transport::PREAUTH_MAX_MESSAGE_BYTES / 8) as u32 + 1;
    let mut frame = vec![0, 0, 0, 0];
    frame.extend_from_slice(&words.to_le_bytes());
    // And one with more segments than a registration needs (20 segments of 1 word).
    let mut segments = 19u32.to_le_bytes().to_vec();
    segments.extend(std::iter::repeat(1u32.to_le_bytes()).take(20).flatten());
    for frame in [frame, segments] {
        let took = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(&frame).unwrap();
            closed_within(s, Duration::from_secs(10))
        });
        let took = took.await.unwrap().expect("not closed");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    pm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_is_capped_and_timed_out() {
    let pm = ProcessManager::new(ManagerConfig::default());
    let h = pm.spawn(WORKER, SpawnOptions::default()).await.unwrap();
    let addr = pm.tcp_address().await.unwrap();
    let me = std::process::id();
    let base = open_fds(me);
    const FLOOD: usize = 400;
    let calls = tokio::spawn({
        let h = h.clone();
        async move { slowest_call(&h, 30).await }
    });
    let clients: Vec<_> = (0..FLOOD).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    // Let the host accept them all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = open_fds(me);
    let slowest = calls.await.unwrap();
    // Our own FLOOD client sockets are in this process too; the host side holds at most the cap
    // (other tests of this file run meanwhile, hence the margin; without the cap it would be FLOOD).
    let host_side = during.saturating_sub(base + FLOOD);
    eprintln!("flood of {FLOOD}: host-side descriptors {host_side} (cap {MAX_PREAUTH_CONNECTIONS}); slowest call {slowest:?}");
    assert!(host_side <= MAX_PREAUTH_CONNECTIONS + 60, "{host_side} host-side descriptors");
    assert!(slowest < Duration::from_millis(500), "a call took {slowest:?} during the flood");
    // A real worker still registers during the flood (the oldest silent ones make room).
    let tcp = pm.spawn(WORKER, SpawnOptions { transport: Some(Transport::Tcp), ..Default::default() }).await.unwrap();
    assert_eq!(tcp.call::<i64>("add", (2, 2)).await.unwrap(), 4);
    drop(clients);

    // A connection that never registers is closed after PREAUTH_TIMEOUT.
    let limit = PREAUTH_TIMEOUT + Duration::from_secs(3);
    let took = tokio::task::spawn_blocking(move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(limit)).unwrap();
        closed_within(s, limit)
    });
    let took = took.await.unwrap().expect("a silent connection was never closed");
    assert!(took >= PREAUTH_TIMEOUT - Duration::from_millis(500) && took < limit, "{took:?}");
    pm.shutdown().await;
}

#[test]
fn the_tcp_listener_survives_descriptor_exhaustion() {
    let mut host = std::process::Command::new(HOST)
        .args(["--emfile", WORKER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = host.stdin.take().unwrap();
    let mut lines = BufReader::new(host.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    let words: Vec<&str> = ready.split_whitespace().collect();
    assert_eq!(words[0], "ready", "{ready}");
    let addr: std::net::SocketAddr = words[1].parse().unwrap();
    let limit: usize = words[2].parse().unwrap();
    let pid: u32 = words[3].parse().unwrap();

    // More connections than the host has descriptors left: accept fails with EMFILE.
    let clients: Vec<_> = (0..80).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    let started = Instant::now();
    while open_fds(pid) < limit && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(open_fds(pid) >= limit, "the host never ran out of descriptors ({} of {limit})", open_fds(pid));
    std::thread::sleep(Duration::from_millis(500)); // accept keeps failing meanwhile
    // Calls to a running worker are unaffected.
    writeln!(stdin, "call").unwrap();
    let called = lines.next().unwrap().unwrap();
    let ms: u64 = called.strip_prefix("called ").unwrap_or_else(|| panic!("{called}")).parse().unwrap();
    eprintln!("during EMFILE: a call took {ms} ms");
    assert!(ms < 500, "{ms} ms");
    drop(clients);
    // Once descriptors are free again, the listener accepts: a new tcp worker registers.
    std::thread::sleep(Duration::from_millis(500));
    writeln!(stdin, "spawn").unwrap();
    let spawned = lines.next().unwrap().unwrap();
    assert!(spawned.starts_with("spawned "), "{spawned}");
    writeln!(stdin, "quit").unwrap();
    let status = host.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_unix_socket_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: plain syscall; this is the only test in this binary that depends on the umask.
    let old = unsafe { libc::umask(0) };
    let pm = ProcessManager::new(ManagerConfig::default());
    let path = unix_path(&pm).await;
    unsafe { libc::umask(old) };
    let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
    let sock_mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!((dir_mode, sock_mode), (0o700, 0o600), "dir {dir_mode:o}, socket {sock_mode:o}");
    pm.shutdown().await;
}
