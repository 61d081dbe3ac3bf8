//! Core's own messages (a restart that failed, a refused connection, a worker
//! recycled after a stuck cancel) go through `tracing`, target `titan_pm`,
//! never straight to stderr. [`init`] installs the default subscriber once: to
//! stderr, filtered by `TITAN_PM_LOG` (a `tracing` filter such as `debug` or
//! `titan_pm=info`; default `warn`), or by Node's convention `DEBUG=titan-pm`
//! (debug level). An application that installed its own subscriber first keeps
//! it (the Python package installs one that forwards to `logging`).
//!
//! [`otlp`] exports trace spans over OTLP/HTTP when `monitoring.tracing` names an endpoint.
//!
//! ```
//! titan_pm::telemetry::init();
//! tracing::warn!(target: "titan_pm", "seen on stderr unless TITAN_PM_LOG says otherwise");
//! ```

pub mod otlp;

pub use otlp::{OtlpConfig, OtlpProtocol};

/// The filter variable.
pub const ENV: &str = "TITAN_PM_LOG";

/// The filter in force: `TITAN_PM_LOG`, else `debug` when `DEBUG` names `titan-pm`, else `warn`.
pub fn filter() -> String {
    if let Ok(f) = std::env::var(ENV) {
        return f;
    }
    let debug = std::env::var("DEBUG").unwrap_or_default();
    if debug.split(',').any(|d| matches!(d.trim(), "titan-pm" | "titan-pm:*" | "*")) {
        return "debug".into();
    }
    "warn".into()
}

/// Installs the stderr subscriber, once, unless the process has a subscriber already.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_new(filter()).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .without_time()
            .with_target(false)
            .try_init();
    });
}
