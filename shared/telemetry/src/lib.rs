//! Observability shared by every GlucoChain service:
//!
//! * structured logs with `tracing` (JSON by default, text with
//!   `GLUCOCHAIN_LOG_FORMAT=text`; level from `RUST_LOG`, default `info`);
//! * OpenTelemetry traces: always recorded (so trace ids exist and travel in
//!   NATS headers), exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   is set, with gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`, the default, port
//!   4317) or protobuf over HTTP (`http/protobuf`, port 4318); the SDK's
//!   standard variables (`OTEL_BSP_*`, `OTEL_TRACES_SAMPLER`, ...) apply;
//! * Prometheus metrics through the `metrics` facade, rendered at `/metrics`;
//! * `/healthz` (alive) and `/readyz` (named readiness checks) for actix-web.
//!
//! Logs never carry keys, tokens or PHI: services log ids and hashes only.

pub mod http;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use metrics;
pub use metrics_exporter_prometheus::PrometheusHandle;

/// Errors setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Otlp(String),
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names a protocol we do not speak.
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0:?}: expected grpc or http/protobuf")]
    Protocol(String),
}

/// How spans travel to the OTLP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (collector port 4317).
    Grpc,
    /// OTLP protobuf over HTTP, `POST <endpoint>/v1/traces` (collector port 4318).
    HttpProtobuf,
}

impl OtlpProtocol {
    /// Parses the values of `OTEL_EXPORTER_OTLP_PROTOCOL` we support.
    pub fn parse(s: &str) -> Result<Self, TelemetryError> {
        match s {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            other => Err(TelemetryError::Protocol(other.to_string())),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (for machines).
    Json,
    /// Human-readable text.
    Text,
}

/// Telemetry settings, normally from the environment.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Service name (`service.name` in traces, `service` in logs).
    pub service: String,
    /// Log format.
    pub log_format: LogFormat,
    /// OTLP endpoint (e.g. `http://127.0.0.1:4317`); none = no export.
    pub otlp_endpoint: Option<String>,
    /// The protocol spoken to `otlp_endpoint` (`grpc` or `http/protobuf`;
    /// anything else is refused by [`init`] when export is on).
    pub otlp_protocol: String,
}

impl TelemetryConfig {
    /// Reads `GLUCOCHAIN_LOG_FORMAT`, `OTEL_EXPORTER_OTLP_ENDPOINT` and
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn from_env(service: &str) -> Self {
        let log_format = match std::env::var("GLUCOCHAIN_LOG_FORMAT").as_deref() {
            Ok("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        let otlp_endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|s| !s.is_empty());
        let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|_| "grpc".into());
        let otlp_protocol = protocol.trim().to_string();
        TelemetryConfig { service: service.to_string(), log_format, otlp_endpoint, otlp_protocol }
    }
}

/// Keeps the tracer provider alive; flushes spans on drop.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans leave the process (an OTLP endpoint is configured). Work
/// done only for traces, such as one span per transaction, is skipped when not.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The process's Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        // Histograms as Prometheus histograms (buckets), so dashboards can
        // aggregate quantiles across instances.
        const SECONDS: &[f64] =
            &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];
        const COUNTS: &[f64] = &[0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("glucochain_block_txs".into()), COUNTS))
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests): keep ours usable anyway.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Installs logging, tracing and metrics for `config.service`. Call once at
/// start-up and keep the returned value alive. Calling it again in the same
/// process (tests) keeps the first subscriber.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let resource = Resource::builder().with_service_name(config.service.clone()).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let protocol = OtlpProtocol::parse(&config.otlp_protocol)?;
        // The HTTP exporter's client needs a TLS provider chosen (ours: ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporter = match protocol {
            OtlpProtocol::Grpc => {
                opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint.clone()).build()
            }
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(traces_url(endpoint))
                .build(),
        }
        .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
        EXPORTING.store(true, Ordering::Relaxed);
    }
    let provider = builder.build();
    let tracer = provider.tracer(config.service.clone());
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(false).boxed(),
    };
    let otel_layer = tracing_opentelemetry::layer().with_tracer(tracer);
    let _ = tracing_subscriber::registry().with(filter).with(fmt_layer).with(otel_layer).try_init();
    prometheus();
    Ok(Telemetry { provider })
}

/// The URL spans are posted to over HTTP: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// as given, else the base endpoint with `/v1/traces` (as the OTLP spec says).
fn traces_url(base: &str) -> String {
    match std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => format!("{}/v1/traces", base.trim_end_matches('/')),
    }
}

/// The current span's OpenTelemetry trace id (32 hex), if any.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
