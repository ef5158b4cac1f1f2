//! NATS over TLS against a real nats-server: a service trusting the
//! deployment's CA (`GLUCOCHAIN_NATS_CA_FILE`) connects and works; one that
//! trusts only the system's roots, or another CA (a server in the middle),
//! does not connect at all.

use futures::StreamExt as _;
use glucochain_bus::Bus;
use glucochain_testkit::NatsServer;
use glucochain_testkit::tls::TestCa;

fn tls_server(dir: &std::path::Path) -> (NatsServer, std::path::PathBuf) {
    let ca = TestCa::new("NATS test CA").unwrap();
    let files = ca.issue(dir, "nats", &["localhost"]).unwrap();
    let config =
        format!("tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n", files.cert.display(), files.key.display());
    (NatsServer::start_with_config(&config).expect("nats-server with TLS"), files.ca)
}

#[tokio::test]
async fn a_service_trusting_the_ca_talks_over_tls_and_others_cannot_connect() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path());
    let url = format!("tls://localhost:{}", server.port());

    let bus = Bus::connect_with(&url, "tls-test", None, Some(ca.clone())).await.expect("connects with the CA");
    let mut sub = bus.client().subscribe("emr.test.tls").await.unwrap();
    bus.client().publish("emr.test.tls", "over tls".into()).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next()).await.unwrap().unwrap();
    assert_eq!(got.payload.as_ref(), b"over tls");
    // JetStream works through it too.
    bus.ensure_stream(&glucochain_bus::streams::StreamSpec::blocks()).await.unwrap();

    // The system's roots do not vouch for the deployment's CA.
    let refused = Bus::connect_with(&url, "no-ca", None, None).await;
    assert!(refused.is_err(), "connected without trusting the CA");
    // Nor does another CA: a server in the middle is refused.
    let other = TestCa::new("Someone else").unwrap().issue(dir.path(), "other", &["localhost"]).unwrap();
    let refused = Bus::connect_with(&url, "wrong-ca", None, Some(other.ca)).await;
    assert!(refused.is_err(), "connected trusting another CA");
    // A CA file that is not there is a configuration error, said at once.
    let missing = Bus::connect_with(&url, "missing", None, Some(dir.path().join("nope.crt"))).await;
    assert!(missing.unwrap_err().to_string().contains("GLUCOCHAIN_NATS_CA_FILE"));
}

#[tokio::test]
async fn with_a_ca_configured_a_plain_server_is_refused() {
    // A service told to require TLS does not fall back to plain text.
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("NATS test CA").unwrap().issue(dir.path(), "nats", &["localhost"]).unwrap();
    let plain = NatsServer::start().expect("nats-server");
    let refused = Bus::connect_with(&plain.url(), "tls-required", None, Some(ca.ca)).await;
    assert!(refused.is_err(), "connected in plain text although TLS is required");
}
