//! What every HTTP service binary does the same way: run in an actix
//! system with telemetry, serve its routes plus health and metrics over
//! HTTP or HTTPS, and stop when any of its background tasks ends.

use crate::TlsArgs;
use actix_web::{HttpResponse, web};
use glucochain_telemetry::http::Readiness;
use std::net::SocketAddr;

/// Runs `serve` for the service `name` inside an actix system with telemetry
/// installed; logs the error that stopped it.
pub fn run<F, Fut>(name: &'static str, serve: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    actix_web::rt::System::new().block_on(async move {
        let _telemetry = glucochain_telemetry::init(&glucochain_telemetry::TelemetryConfig::from_env(name))?;
        let result = serve().await;
        if let Err(e) = &result {
            tracing::error!(service = name, error = format!("{e:#}"), "stopped");
        }
        result
    })
}

/// How long a client may take to send a request's head.
pub const CLIENT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An HTTP(S) server on `addr` with `/healthz`, `/readyz`, `/metrics` and
/// the routes `configure` adds (with its own app data). Every request is
/// counted in `glucochain_http_requests_total{route,method,status}` and timed
/// in `glucochain_http_request_seconds{route}`. Plain HTTP only where
/// [`TlsArgs::check_plain`] allows it.
pub fn http_server<F>(
    addr: SocketAddr,
    tls: &TlsArgs,
    ready: Readiness,
    configure: F,
) -> anyhow::Result<actix_web::dev::Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    tls.check_plain(addr)?;
    let server = actix_web::HttpServer::new(move || {
        let configure = configure.clone();
        let ready = ready.clone();
        actix_web::App::new()
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service as _;
                use tracing::Instrument as _;
                use tracing_opentelemetry::OpenTelemetrySpanExt as _;
                let started = std::time::Instant::now();
                let method = req.method().to_string();
                // One span per request, continuing the client's trace (`traceparent`).
                let span = tracing::info_span!(
                    "http.request",
                    http.method = %method,
                    http.route = tracing::field::Empty,
                    http.status = tracing::field::Empty
                );
                let _ = span.set_parent(glucochain_telemetry::http::request_context(req.headers()));
                let call = srv.call(req).instrument(span.clone());
                async move {
                    let res = call.await?;
                    // The route pattern, not the path: ids never become label values.
                    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
                    let status = res.status().as_u16().to_string();
                    span.record("http.route", route.as_str());
                    span.record("http.status", status.as_str());
                    metrics::counter!("glucochain_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
                        .increment(1);
                    metrics::histogram!("glucochain_http_request_seconds", "route" => route)
                        .record(started.elapsed().as_secs_f64());
                    Ok(res)
                }
            })
            .wrap(actix_web::middleware::Compress::default())
            .configure(move |c| glucochain_telemetry::http::configure(c, ready))
            .configure(configure)
    })
    .workers(2)
    // A client that does not finish its request head in time is answered
    // 408 and dropped (slow-header clients cannot hold connections open).
    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
    .client_disconnect_timeout(std::time::Duration::from_secs(5))
    .keep_alive(std::time::Duration::from_secs(30));
    let server = match tls.server_config()? {
        Some(config) => server.bind_rustls_0_23(addr, config),
        None => server.bind(addr),
    }
    .map_err(|e| anyhow::anyhow!("bind {addr}: {e}"))?;
    Ok(server.run())
}

/// The error for a background task that ended (they are meant to run forever).
pub fn ended(what: &'static str, r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match r {
        Ok(Ok(())) => anyhow::anyhow!("{what} ended"),
        Ok(Err(e)) => e.context(what),
        Err(e) => anyhow::anyhow!("{what} panicked: {e}"),
    }
}

/// `GET /openapi.json` for a service's document, with every problem
/// response documented as what it is on the wire: `application/problem+json`.
pub fn openapi_response(doc: &utoipa::openapi::OpenApi) -> HttpResponse {
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    malformed_requests_answer_400(&mut v);
    problems_as_problem_json(&mut v);
    HttpResponse::Ok().content_type("application/json").body(serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// Documents `400 bad-request` on every operation that does not yet: any
/// endpoint answers it for a path, query or body that does not parse.
fn malformed_requests_answer_400(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    for operation in paths.values_mut().filter_map(|p| p.as_object_mut()).flat_map(|p| p.values_mut()) {
        let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
        responses.entry("400").or_insert_with(|| {
            serde_json::json!({
                "description": "a path, query or body that does not parse",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
            })
        });
    }
}

/// Moves each response whose body is the `Problem` schema from
/// `application/json` (utoipa's default) to `application/problem+json`.
fn problems_as_problem_json(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    for operation in paths.values_mut().filter_map(|p| p.as_object_mut()).flat_map(|p| p.values_mut()) {
        let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
        for content in responses.values_mut().filter_map(|r| r.get_mut("content")?.as_object_mut()) {
            let is_problem = content
                .get("application/json")
                .and_then(|c| c["schema"]["$ref"].as_str())
                .is_some_and(|r| r.ends_with("/Problem"));
            if is_problem && let Some(c) = content.remove("application/json") {
                content.insert("application/problem+json".into(), c);
            }
        }
    }
}

/// The resource at `path`, whose methods other than `allow` (e.g. `"GET"`,
/// `"GET, POST"`) are answered `405 method-not-allowed` with an `Allow`
/// header, as HTTP asks, rather than falling through to 404.
pub fn endpoint(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        let problem = crate::Problem::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("this endpoint answers {allow}"),
        );
        let mut r = actix_web::ResponseError::error_response(&problem);
        r.headers_mut()
            .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static(allow));
        r
    }))
}

/// The fallback for unknown paths: a 404 problem document.
pub async fn no_such_endpoint() -> HttpResponse {
    actix_web::ResponseError::error_response(&crate::Problem::not_found("no such endpoint"))
}

/// Connects the service's database (`url`, or SQLite under `data_dir`
/// which is created when needed) and marks `database` ready.
pub async fn open_store(
    url: &str,
    data_dir: &std::path::Path,
    ready: &Readiness,
) -> anyhow::Result<glucochain_store::Store> {
    if !url.starts_with("postgres") {
        std::fs::create_dir_all(data_dir).map_err(|e| anyhow::anyhow!("data dir {}: {e}", data_dir.display()))?;
    }
    let store = glucochain_store::Store::connect(url).await.map_err(|e| anyhow::anyhow!("database: {e}"))?;
    ready.set("database", true);
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_responses_are_documented_as_problem_json_and_every_operation_documents_400() {
        let mut doc = serde_json::json!({"paths": {"/x": {"get": {"responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
            "404": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        }}}}});
        malformed_requests_answer_400(&mut doc);
        problems_as_problem_json(&mut doc);
        let r = &doc["paths"]["/x"]["get"]["responses"];
        assert!(r["200"]["content"]["application/json"].is_object(), "other bodies keep their type");
        for code in ["404", "400"] {
            assert!(r[code]["content"]["application/problem+json"]["schema"]["$ref"].is_string(), "{code}: {r}");
            assert!(r[code]["content"].get("application/json").is_none());
        }
    }
}
