//! Auto-scaling decisions: grow when CPU, memory or saturation is above target
//! or the queue keeps growing; shrink conservatively when everything is well
//! below; never outside `min..=max`; at most one step per cooldown.
//!
//! ```
//! use std::time::Duration;
//! use titan_pm::pool::{AutoScale, Load, scale_decision};
//! let opts = AutoScale { min: 1, max: 4, ..AutoScale::default() };
//! let busy = Load { saturation: 1.0, ..Load::default() };
//! assert_eq!(scale_decision(&opts, 2, &busy, Some(Duration::from_secs(60))), 3);
//! ```

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct AutoScale {
    pub enabled: bool,
    pub min: usize,
    pub max: usize,
    /// Grow when the workers' average CPU (percent of one core) is above this.
    pub target_cpu: f64,
    /// Grow when the workers' average RSS is above this percent of the machine's memory (0: ignore memory).
    pub target_memory: f64,
    /// Grow when (in flight + queued) / capacity is above this.
    pub scale_up_threshold: f64,
    /// Shrink when saturation is below this (and CPU below half its target).
    pub scale_down_threshold: f64,
    pub cooldown: Duration,
    /// How often the pool looks.
    pub interval: Duration,
}

impl Default for AutoScale {
    fn default() -> Self {
        AutoScale {
            enabled: true,
            min: 1,
            max: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            target_cpu: 80.0,
            target_memory: 0.0,
            scale_up_threshold: 0.8,
            scale_down_threshold: 0.2,
            cooldown: Duration::from_secs(30),
            interval: Duration::from_secs(1),
        }
    }
}

/// The pool's load as the autoscaler reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    pub cpu: f64,
    /// The workers' average RSS as a percent of the machine's memory.
    pub memory: f64,
    pub saturation: f64,
    /// The queue grew on each of the last few looks.
    pub queue_growing: bool,
}

/// The size the pool should have now. `since_last_step` is `None` before the first step.
pub fn scale_decision(opts: &AutoScale, size: usize, load: &Load, since_last_step: Option<Duration>) -> usize {
    let (min, max) = (opts.min.max(1), opts.max.max(opts.min.max(1)));
    if size < min {
        return min;
    }
    if size > max {
        return max;
    }
    if since_last_step.is_some_and(|t| t < opts.cooldown) {
        return size;
    }
    let hot = load.cpu > opts.target_cpu
        || (opts.target_memory > 0.0 && load.memory > opts.target_memory)
        || load.saturation > opts.scale_up_threshold
        || load.queue_growing;
    let cold = load.saturation < opts.scale_down_threshold
        && load.cpu < opts.target_cpu / 2.0
        && (opts.target_memory == 0.0 || load.memory < opts.target_memory / 2.0);
    if hot && size < max {
        size + 1
    } else if cold && !hot && size > min {
        size - 1
    } else {
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> AutoScale {
        AutoScale { min: 2, max: 4, cooldown: Duration::from_secs(10), ..AutoScale::default() }
    }

    #[test]
    fn grows_on_any_hot_signal_within_max() {
        let long = Some(Duration::from_secs(60));
        for load in [
            Load { cpu: 95.0, ..Load::default() },
            Load { saturation: 0.9, ..Load::default() },
            Load { queue_growing: true, ..Load::default() },
        ] {
            assert_eq!(scale_decision(&opts(), 2, &load, long), 3, "{load:?}");
            assert_eq!(scale_decision(&opts(), 4, &load, long), 4, "{load:?}");
        }
        let mem = AutoScale { target_memory: 80.0, ..opts() };
        assert_eq!(scale_decision(&mem, 2, &Load { memory: 85.0, ..Load::default() }, long), 3);
        assert_eq!(scale_decision(&mem, 2, &Load { memory: 1.0, ..Load::default() }, long), 2);
    }

    #[test]
    fn shrinks_only_when_everything_is_cold_and_never_below_min() {
        let long = Some(Duration::from_secs(60));
        assert_eq!(scale_decision(&opts(), 3, &Load::default(), long), 2);
        assert_eq!(scale_decision(&opts(), 2, &Load::default(), long), 2);
        let warm = Load { saturation: 0.5, ..Load::default() };
        assert_eq!(scale_decision(&opts(), 3, &warm, long), 3);
        let cpu = Load { cpu: 60.0, ..Load::default() };
        assert_eq!(scale_decision(&opts(), 3, &cpu, long), 3);
    }

    #[test]
    fn one_step_per_cooldown_and_bounds_are_restored_at_once() {
        let hot = Load { saturation: 1.0, ..Load::default() };
        assert_eq!(scale_decision(&opts(), 2, &hot, Some(Duration::from_secs(1))), 2);
        assert_eq!(scale_decision(&opts(), 2, &hot, None), 3);
        assert_eq!(scale_decision(&opts(), 1, &Load::default(), Some(Duration::ZERO)), 2);
        assert_eq!(scale_decision(&opts(), 6, &hot, Some(Duration::ZERO)), 4);
    }
}
