//! Every request runs in a span that continues the caller's W3C trace
//! (`traceparent`), so one trace can follow a submission into the services.

use actix_web::{HttpResponse, web};
use glucochain_api::TlsArgs;
use glucochain_api::service::http_server;
use glucochain_telemetry::http::Readiness;
use std::io::{Read as _, Write as _};

async fn whoami() -> HttpResponse {
    HttpResponse::Ok().body(glucochain_telemetry::current_trace_id().unwrap_or_default())
}

fn get(port: u16, traceparent: Option<&str>) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let extra = traceparent.map(|t| format!("traceparent: {t}\r\n")).unwrap_or_default();
    write!(s, "GET /whoami HTTP/1.1\r\nhost: localhost\r\n{extra}connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

#[test]
fn a_request_continues_the_callers_trace_or_starts_one() {
    actix_web::rt::System::new().block_on(async {
        let _telemetry = glucochain_telemetry::init(&glucochain_telemetry::TelemetryConfig::from_env("test")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server =
            http_server(format!("127.0.0.1:{port}").parse().unwrap(), &TlsArgs::default(), Readiness::new(&[]), |c| {
                c.route("/whoami", web::get().to(whoami));
            })
            .unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let answers = actix_web::rt::task::spawn_blocking(move || {
            let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
            let with = get(port, Some(&format!("00-{trace}-00f067aa0ba902b7-01")));
            let without = get(port, None);
            (trace, with, without)
        })
        .await
        .unwrap();
        handle.stop(true).await;
        let (trace, with, without) = answers;
        assert_eq!(with, trace, "the caller's trace continues");
        assert_eq!(without.len(), 32, "a new trace starts: {without:?}");
        assert_ne!(without, trace);
    });
}
