//! Helpers for integration tests that need real servers: a `nats-server` with
//! JetStream on a free port (its own store directory, killed on drop) and a
//! fresh PostgreSQL database per test (dropped afterwards); an OTLP/HTTP
//! endpoint that keeps the spans services export; a test CA issuing
//! certificates for servers that speak TLS.
//!
//! Nothing here is mocked: these are the real servers the services use.
//! Configuration (all optional):
//! * `NATS_SERVER_BIN`: the nats-server binary (default: `nats-server` on PATH;
//!   must be 2.10 or newer, which JetStream key-value needs).
//! * `GLUCOCHAIN_TEST_PG`: an admin URL of a PostgreSQL server (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`).

pub mod canary;
pub mod nats;
pub mod otlp;
pub mod postgres;
pub mod tls;

pub use nats::NatsServer;
pub use otlp::{OtlpCollector, ReceivedSpan};
pub use postgres::PgTestDb;

/// A free TCP port on 127.0.0.1 (bound then released; the caller binds it
/// again right away, so a collision is possible but rare).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind 127.0.0.1:0")
}
