//! A private PostgreSQL server for the Postgres journal tests: `initdb` into a
//! temporary folder and `postgres` listening only on a Unix socket inside it (no
//! TCP port), stopped and removed on drop. `TITAN_TEST_POSTGRES=url` uses that
//! server instead. The server programs come from Debian's `postgresql` package
//! (`scripts/test.sh` installs it when missing); as root they run as the
//! `postgres` user, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgServer {
    pub url: String,
    /// The server process, its `pg_ctl` and data folder (None with `TITAN_TEST_POSTGRES`).
    child: Option<(Child, PathBuf, PathBuf)>,
    _dir: Option<tempfile::TempDir>,
}

fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path().join("bin")).collect();
    versions.sort();
    versions.into_iter().rev().find(|d| d.join("initdb").exists() && d.join("postgres").exists())
}

/// The command, run as `postgres` when we are root.
fn as_server_user(program: &Path) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    /// Starts a server (or takes `TITAN_TEST_POSTGRES`); panics with the reason if it cannot.
    pub fn start() -> PgServer {
        if let Ok(url) = std::env::var("TITAN_TEST_POSTGRES") {
            return PgServer { url, child: None, _dir: None };
        }
        let bin = bin_dir().expect("PostgreSQL is not installed (apt-get install postgresql; scripts/test.sh does it)");
        let dir = tempfile::Builder::new().prefix("titan-pg-").tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown to the postgres user failed");
        }
        let out = as_server_user(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let child = as_server_user(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=", "-c", "fsync=off", "-k"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let ready = || {
            Command::new(bin.join("pg_isready")).args(["-q", "-U", "postgres", "-h"]).arg(dir.path()).status().is_ok_and(|s| s.success())
        };
        while !ready() {
            assert!(Instant::now() < until, "the PostgreSQL server did not accept connections within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let url = format!("postgresql:///postgres?host={}&user=postgres", dir.path().display());
        PgServer { url, child: Some((child, bin.join("pg_ctl"), data)), _dir: Some(dir) }
    }

    /// A fresh database on this server for one test (tables of its own).
    pub async fn database(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect to the test server");
        let task = tokio::spawn(conn);
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        drop(client);
        let _ = task.await;
        self.url.replacen("/postgres?", &format!("/{name}?"), 1)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some((child, pg_ctl, data)) = &mut self.child {
            let _ = as_server_user(pg_ctl).args(["stop", "-m", "immediate", "-t", "10", "-D"]).arg(&*data).stdout(Stdio::null()).status();
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
