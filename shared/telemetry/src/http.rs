//! `/healthz`, `/readyz` and `/metrics` for actix-web services.
//!
//! * `/healthz`: 200 while the process serves HTTP (liveness).
//! * `/readyz`: 200 when every registered check is ready, else 503 with the
//!   checks that are not (readiness: e.g. `nats`, `database`, `caught_up`).
//! * `/metrics`: Prometheus text format.

use actix_web::{HttpResponse, web};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Named readiness checks, shared between the service and its HTTP server.
#[derive(Clone, Default, Debug)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Readiness {
    /// A set of checks, all initially not ready.
    pub fn new(names: &[&str]) -> Self {
        let r = Readiness::default();
        for n in names {
            r.set(n, false);
        }
        r
    }

    /// Marks a check ready or not.
    pub fn set(&self, name: &str, ready: bool) {
        self.checks.lock().expect("readiness lock").insert(name.to_string(), ready);
    }

    /// Whether every check is ready.
    pub fn is_ready(&self) -> bool {
        self.checks.lock().expect("readiness lock").values().all(|v| *v)
    }

    /// Snapshot of the checks.
    pub fn snapshot(&self) -> BTreeMap<String, bool> {
        self.checks.lock().expect("readiness lock").clone()
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(r: web::Data<Readiness>) -> HttpResponse {
    let checks = r.snapshot();
    let body = serde_json::json!({ "ready": r.is_ready(), "checks": checks });
    if r.is_ready() { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(crate::prometheus().render())
}

/// Registers the three endpoints; `readiness` is what `/readyz` reports.
/// Reads W3C trace context from an HTTP request's headers.
struct RequestHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The trace context a request carries (`traceparent`), so a client's trace
/// continues through the service; an empty context when there is none.
pub fn request_context(headers: &actix_web::http::header::HeaderMap) -> opentelemetry::Context {
    use opentelemetry::propagation::TextMapPropagator as _;
    opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&RequestHeaders(headers))
}

pub fn configure(cfg: &mut web::ServiceConfig, readiness: Readiness) {
    cfg.app_data(web::Data::new(readiness))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics_text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test};

    #[actix_web::test]
    async fn endpoints_report_health_readiness_and_metrics() {
        let readiness = Readiness::new(&["nats", "database"]);
        let app = test::init_service(App::new().configure(|c| configure(c, readiness.clone()))).await;

        let resp = test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
        assert_eq!(resp.status(), 200);

        let resp = test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(resp.status(), 503);
        let body: serde_json::Value = test::read_body_json(resp).await;
        assert_eq!(body["checks"]["nats"], false);

        readiness.set("nats", true);
        readiness.set("database", true);
        let resp = test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(resp.status(), 200);

        crate::prometheus();
        metrics::counter!("glucochain_test_events_total", "kind" => "x").increment(3);
        let resp = test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
        assert_eq!(resp.status(), 200);
        let text = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        assert!(text.contains("glucochain_test_events_total{kind=\"x\"} 3"), "{text}");
    }
}
