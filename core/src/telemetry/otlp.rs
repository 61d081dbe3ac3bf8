//! OTLP export of the spans the trace layer records (`@Trace` calls, see
//! [`crate::policy::trace`]) when `monitoring.tracing` names an `endpoint`.
//! A manager with one owns an [`Exporter`]: the `opentelemetry_sdk` batch
//! processor (its own thread, a bounded queue of [`MAX_QUEUED_SPANS`], a batch
//! at most every [`EXPORT_DELAY`]) over the `opentelemetry-otlp` HTTP exporter
//! (`http/protobuf` or `http/json`). The POST itself goes through a small
//! blocking client (`ureq`, plain HTTP: point it at a local collector), on the
//! processor's thread, so no async runtime is needed. The in-memory store keeps
//! every span as before; export is in addition to it. A failed export is a
//! warning through `tracing` (the SDK's internal logs, target `opentelemetry*`).
//!
//! A span keeps the ids the trace layer gave it (trace, span, parent), so a
//! collector sees the same trace the call contexts carry across languages.

use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor};
use opentelemetry_sdk::Resource;

use crate::error::{Error, Result};
use crate::policy::trace::Span;

/// The most spans waiting for export; beyond it the newest are dropped (the processor counts them).
pub const MAX_QUEUED_SPANS: usize = 2048;
/// How long a span may wait before its batch is sent.
pub const EXPORT_DELAY: Duration = Duration::from_millis(500);
/// The most bytes read of a collector's answer.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// The wire format of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// `http/protobuf` (the default).
    #[default]
    Protobuf,
    /// `http/json`.
    Json,
}

impl std::str::FromStr for OtlpProtocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "http/protobuf" => Ok(OtlpProtocol::Protobuf),
            "http/json" => Ok(OtlpProtocol::Json),
            _ => Err(Error::Config(format!("unknown protocol {s:?} (expected \"http/protobuf\" or \"http/json\")"))),
        }
    }
}

/// Where and how spans are exported (`monitoring.tracing: { endpoint, protocol, serviceName, headers, timeout }`).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// The collector's traces URL: a base URL (`http://localhost:4318`) gets `/v1/traces`; a URL with a path is used as is.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// The resource's `service.name` (default `titan-pm`).
    pub service_name: String,
    /// Extra request headers (an API key, say).
    pub headers: Vec<(String, String)>,
    /// One export's deadline (default 10 s).
    pub timeout: Duration,
}

impl OtlpConfig {
    pub fn new(endpoint: impl Into<String>) -> Self {
        OtlpConfig {
            endpoint: endpoint.into(),
            protocol: OtlpProtocol::default(),
            service_name: "titan-pm".into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The URL spans are POSTed to, or why `endpoint` is not one.
    pub fn traces_url(&self) -> std::result::Result<String, String> {
        let uri: http::Uri = self.endpoint.parse().map_err(|e| format!("not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err("https is not supported (the exporter has no TLS): use an http:// collector, such as a local agent".into()),
            _ => return Err("must be an http:// URL".into()),
        }
        if uri.host().is_none() {
            return Err("has no host".into());
        }
        Ok(match uri.path() {
            "" | "/" => format!("{}/v1/traces", self.endpoint.trim_end_matches('/')),
            _ => self.endpoint.clone(),
        })
    }
}

/// A manager's span exporter. Dropping it sends what is queued (bounded by the export timeout).
pub struct Exporter {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    pub fn new(config: &OtlpConfig) -> Result<Exporter> {
        let url = config.traces_url().map_err(|e| Error::Config(format!("monitoring.tracing.endpoint: {e}")))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let protocol = match config.protocol {
            OtlpProtocol::Protobuf => Protocol::HttpBinary,
            OtlpProtocol::Json => Protocol::HttpJson,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Client(agent))
            .with_endpoint(url)
            .with_protocol(protocol)
            .with_timeout(config.timeout)
            .with_headers(config.headers.iter().cloned().collect())
            .build()
            .map_err(|e| Error::Config(format!("monitoring.tracing: cannot build the OTLP exporter: {e}")))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let mut processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        processor.set_resource(&Resource::builder().with_service_name(config.service_name.clone()).build());
        let scope = InstrumentationScope::builder("titan-pm").with_version(env!("CARGO_PKG_VERSION")).build();
        Ok(Exporter { processor, scope })
    }

    /// Queues `span` for export (never blocks: a full queue drops it).
    pub fn export(&self, span: &Span) {
        if let Some(data) = self.span_data(span) {
            self.processor.on_end(data);
        }
    }

    /// Sends what is queued now (blocks until the collector answered or the export timed out).
    pub fn flush(&self) -> Result<()> {
        self.processor.force_flush().map_err(|e| Error::Config(format!("OTLP export: {e}")))
    }

    fn span_data(&self, span: &Span) -> Option<SpanData> {
        let c = &span.context;
        let trace_id = TraceId::from_hex(&c.trace_id).ok()?;
        let span_id = SpanId::from_hex(&c.span_id).ok()?;
        let parent = if c.parent_span_id.is_empty() { SpanId::INVALID } else { SpanId::from_hex(&c.parent_span_id).unwrap_or(SpanId::INVALID) };
        let start = UNIX_EPOCH + Duration::from_millis(span.start_ms);
        let (process, method) = span.name.rsplit_once('.').unwrap_or(("", &span.name));
        let mut attributes = vec![
            KeyValue::new("rpc.system", "titan-pm"),
            KeyValue::new("rpc.service", process.to_string()),
            KeyValue::new("rpc.method", method.to_string()),
        ];
        let status = match &span.error {
            Some(class) => {
                attributes.push(KeyValue::new("error.type", class.clone()));
                Status::error(class.clone())
            }
            None => Status::Ok,
        };
        Some(SpanData {
            span_context: SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, TraceState::default()),
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: span.name.clone().into(),
            start_time: start,
            end_time: start + Duration::from_micros(span.duration_us),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        })
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.processor.shutdown();
    }
}

/// The exporter's HTTP client: one blocking POST on the processor's thread.
#[derive(Debug)]
struct Client(ureq::Agent);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(&self, request: http::Request<bytes::Bytes>) -> std::result::Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = request.map(|b| b.to_vec());
        let mut response = self.0.run(request)?;
        let body = response.body_mut().with_config().limit(MAX_RESPONSE_BYTES).read_to_vec()?;
        let (parts, _) = response.into_parts();
        Ok(http::Response::from_parts(parts, bytes::Bytes::from(body)))
    }
}
