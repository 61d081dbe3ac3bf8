//! A process's CPU and memory use, read from `/proc`: the host reads its child
//! workers' ([`crate::host`]), a worker reads its own (what a remote worker
//! reports in `Worker.metrics`: its pid is on another machine).

use std::time::Instant;

/// A process's RSS in bytes (0 if it cannot be read).
pub fn rss(pid: u32) -> u64 {
    procfs::process::Process::new(pid as i32).and_then(|p| p.stat()).map(|s| s.rss * procfs::page_size()).unwrap_or(0)
}

/// CPU use between two readings of one OS process.
#[derive(Default)]
pub struct CpuSampler {
    last: Option<(u32, Instant, u64)>,
}

impl CpuSampler {
    /// Percent of one core used by `pid` since the last reading (or since it started), and its RSS.
    pub fn sample(&mut self, pid: u32) -> (f64, u64) {
        let Ok(proc) = procfs::process::Process::new(pid as i32) else { return (0.0, 0) };
        let Ok(stat) = proc.stat() else { return (0.0, 0) };
        let ticks = stat.utime + stat.stime;
        let tps = procfs::ticks_per_second() as f64;
        let now = Instant::now();
        let memory = stat.rss * procfs::page_size();
        let cpu = match self.last {
            Some((last_pid, t, last_ticks)) if last_pid == pid && now > t => {
                let busy = ticks.saturating_sub(last_ticks) as f64 / tps;
                100.0 * busy / now.duration_since(t).as_secs_f64()
            }
            _ => {
                // First reading: average over the process's life so far.
                let boot = procfs::boot_time_secs().unwrap_or(0) as f64;
                let started = boot + stat.starttime as f64 / tps;
                let now_s = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(started);
                let life = (now_s - started).max(0.01);
                100.0 * (ticks as f64 / tps) / life
            }
        };
        self.last = Some((pid, now, ticks));
        (cpu, memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_reads_its_own_memory_and_its_cpu_after_work() {
        let mut sampler = CpuSampler::default();
        let me = std::process::id();
        let (_, memory) = sampler.sample(me);
        assert!(memory > 1 << 20, "rss {memory}");
        let until = Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let (cpu, _) = sampler.sample(me);
        assert!(cpu > 10.0, "cpu {cpu}% after 300 ms of work");
        assert_eq!(sampler.sample(u32::MAX), (0.0, 0), "no such process");
    }
}
