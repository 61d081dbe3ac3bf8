//! Core's `tracing` messages, seen by Python's `logging` (logger `titan_pm`):
//! installed when the native module loads, before core's own stderr subscriber
//! would be. Core's filter (`TITAN_PM_LOG`, default `warn`) decides what is
//! forwarded; `logging`'s own configuration decides what is shown.

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

struct Logging;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: Subscriber> Layer<S> for Logging {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            _ => 10,
        };
        let mut message = Message(String::new());
        event.record(&mut message);
        Python::attach(|py| {
            let logged = py
                .import("logging")
                .and_then(|l| l.call_method1("getLogger", ("titan_pm",)))
                .and_then(|logger| logger.call_method1("log", (level, message.0)));
            if let Err(e) = logged {
                e.print(py);
            }
        });
    }
}

/// Installs the forwarding subscriber (once; a no-op if the process has one).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_new(titan_pm::telemetry::filter())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry().with(Logging.with_filter(filter)).try_init();
}
