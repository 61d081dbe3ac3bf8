//! `resources.maxCpu` for child workers: a CPU quota through the kernel's cpu
//! controller. cgroup v2 (`cpu.max` under `/sys/fs/cgroup`) is tried first,
//! then v1 (`cpu.cfs_quota_us` under `/sys/fs/cgroup/cpu`). Where the host may
//! not create cgroups (no permission, no controller), the limit is not
//! enforced: one warning says so, and the worker runs unlimited.

use std::path::{Path, PathBuf};

/// The quota period (100 ms, the kernel's default).
const PERIOD_US: u64 = 100_000;

/// A cgroup holding one worker; removed when dropped (after the worker exited).
pub(crate) struct CpuLimit {
    dir: PathBuf,
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl CpuLimit {
    /// The cgroup directory (for tests and diagnostics).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Puts `pid` in a new cgroup limited to `percent` of one core; `None` if the OS does not let us.
pub(crate) fn limit_cpu(pid: u32, percent: f64, name: &str) -> Option<CpuLimit> {
    let quota = ((percent / 100.0) * PERIOD_US as f64).max(1000.0) as u64;
    let leaf = format!("titan-pm-{}-{pid}", std::process::id());
    let v2 = Path::new("/sys/fs/cgroup");
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    let attempts: [(&Path, &[(&str, String)]); 2] = [
        (v2, &[("cpu.max", format!("{quota} {PERIOD_US}"))]),
        (v1, &[("cpu.cfs_period_us", PERIOD_US.to_string()), ("cpu.cfs_quota_us", quota.to_string())]),
    ];
    let mut why = String::from("no cpu controller");
    for (root, files) in attempts {
        if !root.join(files[0].0).exists() && !root.join("cgroup.controllers").exists() && !root.join("cpu.cfs_quota_us").exists() {
            continue;
        }
        let dir = root.join(&leaf);
        let result = std::fs::create_dir(&dir).and_then(|_| {
            for (file, value) in files {
                std::fs::write(dir.join(file), value)?;
            }
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
        });
        match result {
            Ok(()) => return Some(CpuLimit { dir }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                why = format!("{}: {e}", root.display());
            }
        }
    }
    warn_once(&format!("resources.maxCpu is not enforced for {name}: cannot create a cgroup ({why})"));
    None
}

fn warn_once(message: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| tracing::warn!(target: "titan_pm", "{message}"));
}
