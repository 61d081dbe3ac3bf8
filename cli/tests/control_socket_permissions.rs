//! The control socket is 0600 in a 0700 directory whatever the umask, and a
//! connection from another user is refused: by the directory's mode, and, if
//! the modes are opened up, by the server's `SO_PEERCRED` check.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use titan_pm::{ManagerConfig, ProcessManager};

#[test]
fn socket_is_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl").join("control.sock");
    let old = unsafe { libc::umask(0) }; // the most permissive umask
    let pm = ProcessManager::new(ManagerConfig::default());
    let control = pm.serve_control(&socket);
    unsafe { libc::umask(old) };
    let control = control.expect("serve control");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    // A second manager on the same socket is refused.
    let err = ProcessManager::new(ManagerConfig::default()).serve_control(&socket).err().expect("refused");
    assert!(err.to_string().contains("already serves"), "{err}");

    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped the other-user part: it needs root to switch users");
        return;
    }
    // Another user (nobody), from a thread that switched its own uid only.
    let as_nobody = |path: std::path::PathBuf| {
        std::thread::spawn(move || {
            let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
            assert_eq!(rc, 0, "setresuid");
            match std::os::unix::net::UnixStream::connect(&path) {
                Err(e) => format!("connect: {}", e.kind()),
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut buf = [0u8; 1];
                    match s.read(&mut buf) {
                        Ok(0) => "closed".to_string(),
                        other => format!("open: {other:?}"),
                    }
                }
            }
        })
        .join()
        .unwrap()
    };
    assert_eq!(as_nobody(socket.clone()), "connect: permission denied", "the modes forbid it");
    std::fs::set_permissions(socket.parent().unwrap(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(as_nobody(socket.clone()), "closed", "the server refuses another uid");
    // The owner is still served.
    let out = common::cli(&socket, &["ls", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    control.close();
    assert!(!socket.exists());
}
