//! An OpenTelemetry collector endpoint for tests: it accepts OTLP protobuf
//! over HTTP (`POST /v1/traces`, what services send with
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`) and keeps every span it
//! receives, so a test can follow one trace across processes.

use prost::Message as _;
use std::sync::{Arc, Mutex};

/// One received span, reduced to what tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// `service.name` of the process that exported it.
    pub service: String,
    /// Trace id, 32 lowercase hex characters.
    pub trace_id: String,
    /// Span id, 16 hex characters.
    pub span_id: String,
    /// Parent span id (empty for a root span).
    pub parent_span_id: String,
    /// Span name.
    pub name: String,
}

/// A running collector endpoint; stopped on drop.
pub struct OtlpCollector {
    url: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    handle: actix_web::dev::ServerHandle,
}

fn decode(body: &[u8]) -> Result<Vec<ReceivedSpan>, prost::DecodeError> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let request = ExportTraceServiceRequest::decode(body)?;
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            out.push(ReceivedSpan {
                service: service.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                name: span.name,
            });
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn traces(
    body: actix_web::web::Bytes,
    spans: actix_web::web::Data<Mutex<Vec<ReceivedSpan>>>,
) -> actix_web::HttpResponse {
    match decode(&body) {
        Ok(received) => {
            spans.lock().expect("spans lock").extend(received);
            // An empty ExportTraceServiceResponse: full success.
            actix_web::HttpResponse::Ok().content_type("application/x-protobuf").finish()
        }
        Err(e) => actix_web::HttpResponse::BadRequest().body(e.to_string()),
    }
}

impl OtlpCollector {
    /// Starts the endpoint on a free port of 127.0.0.1.
    pub fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let spans = actix_web::web::Data::new(Mutex::new(Vec::new()));
        let shared = spans.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = match actix_web::HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(shared.clone())
                        .app_data(actix_web::web::PayloadConfig::new(64 << 20))
                        .route("/v1/traces", actix_web::web::post().to(traces))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                {
                    Ok(s) => s.run(),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(server.handle()));
                let _ = server.await;
            })
        });
        let handle = rx.recv()??;
        Ok(OtlpCollector { url, spans: spans.into_inner(), handle })
    }

    /// The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The environment that makes a service export its spans here, quickly.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), self.url.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ]
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans lock").clone()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect()
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        // Stop without waiting: the server's own thread finishes it.
        drop(self.handle.stop(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn keeps_what_it_is_sent_and_refuses_garbage() {
        let collector = OtlpCollector::start().unwrap();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue { value: Some(any_value::Value::StringValue("ingest".into())) }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![1; 8],
                        name: "POST /v1/transactions".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let post = |body: Vec<u8>| {
            use std::io::{Read as _, Write as _};
            let addr = collector.url().trim_start_matches("http://").to_string();
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            s.write_all(&body).unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            answer
        };
        assert!(post(request.encode_to_vec()).starts_with("HTTP/1.1 200"));
        let spans = collector.trace(&"ab".repeat(16));
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].service, "ingest");
        assert_eq!(spans[0].name, "POST /v1/transactions");
        assert_eq!(spans[0].parent_span_id, "");
        assert!(post(vec![0xff, 0xff, 0xff]).starts_with("HTTP/1.1 400"));
        assert_eq!(collector.spans().len(), 1);
    }
}
