//! What the shared HTTP server does with clients that misbehave: plain HTTP
//! on a public address is refused at start; a client that never finishes
//! its request head is answered 408 and dropped; a method an endpoint does
//! not answer gets 405 with `Allow`.

use actix_web::{HttpResponse, web};
use glucochain_api::TlsArgs;
use glucochain_api::service::{endpoint, http_server};
use glucochain_telemetry::http::Readiness;
use std::io::{Read as _, Write as _};
use std::time::Duration;

#[test]
fn plain_http_on_a_public_address_is_refused_unless_a_proxy_terminates_tls() {
    actix_web::rt::System::new().block_on(async {
        let refused = http_server("0.0.0.0:0".parse().unwrap(), &TlsArgs::default(), Readiness::new(&[]), |_| {});
        let e = refused.err().expect("plain HTTP on 0.0.0.0 refused").to_string();
        assert!(e.contains("--insecure-http"), "{e}");
        let behind_proxy = TlsArgs { insecure_http: true, ..TlsArgs::default() };
        assert!(http_server("0.0.0.0:0".parse().unwrap(), &behind_proxy, Readiness::new(&[]), |_| {}).is_ok());
    });
}

fn start(port: u16) -> actix_web::dev::ServerHandle {
    let server =
        http_server(format!("127.0.0.1:{port}").parse().unwrap(), &TlsArgs::default(), Readiness::new(&[]), |c| {
            c.service(endpoint("/thing", "GET").route(web::get().to(|| async { HttpResponse::Ok().body("thing") })));
        })
        .unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    handle
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_dropped_and_others_are_served() {
    actix_web::rt::System::new().block_on(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let handle = start(port);
        let (slow, other) = actix_web::rt::task::spawn_blocking(move || {
            let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            slow.write_all(b"GET /thing HTTP/1.1\r\nhost: localhost\r\nx-a: ").unwrap();
            // A guard against hanging the test, far beyond the server's timeout.
            slow.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            // Meanwhile another client is served.
            let mut other = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            other.write_all(b"GET /thing HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            other.read_to_string(&mut answer).unwrap();
            let mut got = Vec::new();
            let closed = slow.read_to_end(&mut got).is_ok();
            (closed.then(|| String::from_utf8_lossy(&got).into_owned()), answer)
        })
        .await
        .unwrap();
        assert!(other.starts_with("HTTP/1.1 200") && other.ends_with("thing"), "{other}");
        let slow = slow.expect("the server closed the slow connection");
        assert!(slow.is_empty() || slow.starts_with("HTTP/1.1 408"), "{slow}");
        handle.stop(true).await;
    });
}

#[test]
fn a_method_an_endpoint_does_not_answer_gets_405_with_allow() {
    actix_web::rt::System::new().block_on(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let handle = start(port);
        let answer = actix_web::rt::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"DELETE /thing HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("\r\nallow: get\r\n"), "{answer}");
        assert!(answer.contains("urn:glucochain:problem:method-not-allowed"), "{answer}");
        handle.stop(true).await;
    });
}
