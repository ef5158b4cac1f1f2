//! The bus against a real nats-server with JetStream (started per test on a
//! free port by the testkit).

use bytes::Bytes;
use futures::StreamExt;
use glucochain_bus::streams::{ConsumerSpec, StreamSpec};
use glucochain_bus::{Bus, subjects, trace};
use glucochain_testkit::NatsServer;
use std::time::Duration;

async fn bus(server: &NatsServer) -> Bus {
    Bus::connect(&server.url(), "bus-test").await.expect("connect")
}

#[tokio::test]
async fn stream_setup_is_idempotent_and_updates_in_place() {
    let server = NatsServer::start().unwrap();
    let bus = bus(&server).await;
    bus.ensure_all_streams().await.unwrap();
    bus.ensure_all_streams().await.unwrap();
    let mut s = bus.ensure_stream(&StreamSpec::txs()).await.unwrap();
    assert_eq!(s.info().await.unwrap().config.subjects, vec![subjects::TX_ALL.to_string()]);

    // A changed declaration updates the existing stream, keeping its messages.
    bus.publish(&subjects::tx("observation.record"), "m1", Bytes::from_static(b"x")).await.unwrap();
    let mut changed = StreamSpec::txs();
    changed.duplicate_window = Duration::from_secs(600);
    let mut s2 = bus.ensure_stream(&changed).await.unwrap();
    let info = s2.info().await.unwrap();
    assert_eq!(info.config.duplicate_window, Duration::from_secs(600));
    assert_eq!(info.state.messages, 1);
    assert_eq!(s.info().await.unwrap().config.duplicate_window, Duration::from_secs(600));
}

#[tokio::test]
async fn publish_dedups_on_message_id_and_waits_for_ack() {
    let server = NatsServer::start().unwrap();
    let bus = bus(&server).await;
    let mut stream = bus.ensure_stream(&StreamSpec::txs()).await.unwrap();
    let first = bus.publish(&subjects::tx("consent.grant"), "hash-a", Bytes::from_static(b"tx-a")).await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.stream, "TXS");
    let again = bus.publish(&subjects::tx("consent.grant"), "hash-a", Bytes::from_static(b"tx-a")).await.unwrap();
    assert!(again.duplicate, "same msg id must be de-duplicated");
    assert_eq!(again.sequence, first.sequence);
    let other = bus.publish(&subjects::tx("consent.grant"), "hash-b", Bytes::from_static(b"tx-b")).await.unwrap();
    assert!(!other.duplicate);
    assert_eq!(stream.info().await.unwrap().state.messages, 2);

    // A subject no stream captures is not acknowledged: publish fails.
    let err = bus.publish("emr.nowhere", "x", Bytes::new()).await;
    assert!(err.is_err());
}

#[tokio::test]
async fn durable_consumer_redelivers_unacked_messages_after_restart_of_the_client() {
    let server = NatsServer::start().unwrap();
    let stream = {
        let bus = bus(&server).await;
        let stream = bus.ensure_stream(&StreamSpec::blocks()).await.unwrap();
        for i in 0..3 {
            bus.publish(subjects::BLOCK_COMMITTED, &format!("block-{i}"), Bytes::from(format!("b{i}"))).await.unwrap();
        }
        let mut spec = ConsumerSpec::durable("ledger-test");
        spec.ack_wait = Duration::from_secs(1);
        let consumer = bus.ensure_consumer(&stream, &spec).await.unwrap();
        let mut msgs = consumer.fetch().max_messages(2).messages().await.unwrap();
        // Ack the first only; "crash" before acking the second.
        let m0 = msgs.next().await.unwrap().unwrap();
        assert_eq!(&m0.payload[..], b"b0");
        // double_ack waits for the server to confirm the ack (a plain ack is
        // fire-and-forget and may be lost when the client goes away).
        m0.double_ack().await.unwrap();
        let m1 = msgs.next().await.unwrap().unwrap();
        assert_eq!(&m1.payload[..], b"b1");
        stream
    };
    drop(stream);
    // A new connection with the same durable name gets b1 again, then b2.
    let bus = bus(&server).await;
    let stream = bus.ensure_stream(&StreamSpec::blocks()).await.unwrap();
    let mut spec = ConsumerSpec::durable("ledger-test");
    spec.ack_wait = Duration::from_secs(1);
    let consumer = bus.ensure_consumer(&stream, &spec).await.unwrap();
    let mut got = Vec::new();
    let mut msgs = consumer.messages().await.unwrap();
    while got.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next()).await.expect("redelivery").unwrap().unwrap();
        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
        m.double_ack().await.unwrap();
    }
    // b2 is new; b1 comes back once its ack wait expires: order between them is not fixed.
    got.sort();
    assert_eq!(got, vec!["b1", "b2"]);
}

#[tokio::test]
async fn trace_context_travels_in_headers() {
    let _t = glucochain_telemetry::init(&glucochain_telemetry::TelemetryConfig::from_env("bus-test")).unwrap();
    let server = NatsServer::start().unwrap();
    let bus = bus(&server).await;
    bus.ensure_stream(&StreamSpec::alerts()).await.unwrap();
    let mut sub = bus.client().subscribe("emr.alert.>").await.unwrap();
    bus.flush().await.unwrap();

    let span = tracing::info_span!("submit");
    let sent_trace = {
        let _g = span.enter();
        bus.publish(&subjects::alert("urgent_low"), "alert-1", Bytes::from_static(b"a")).await.unwrap();
        glucochain_telemetry::current_trace_id().expect("a trace id while in a span")
    };
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    let headers = msg.headers.as_ref();
    assert!(headers.and_then(|h| h.get("traceparent")).is_some(), "traceparent header present");
    assert_eq!(trace::trace_id(headers), Some(sent_trace.clone()));

    // A consumer's span becomes a child of the same trace.
    let child = tracing::info_span!("consume");
    trace::set_parent_from(&child, headers);
    let _g = child.enter();
    assert_eq!(glucochain_telemetry::current_trace_id(), Some(sent_trace));
}

#[tokio::test]
async fn reconnects_after_the_server_restarts() {
    let mut server = NatsServer::start().unwrap();
    let bus = bus(&server).await;
    bus.ensure_stream(&StreamSpec::reminders()).await.unwrap();
    bus.publish(&subjects::reminder("medication"), "r1", Bytes::from_static(b"1")).await.unwrap();
    server.restart().unwrap();
    // The client reconnects by itself; the stream survived on disk.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let published = loop {
        match bus.publish(&subjects::reminder("medication"), "r2", Bytes::from_static(b"2")).await {
            Ok(p) => break p,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no reconnect: {e}"),
        }
    };
    assert_eq!(published.sequence, 2);
    assert!(bus.is_connected());
}

/// JetStream encryption at rest (issue 21): a message on a stream reads
/// back whole, and no file of the server's store holds it — in clear or
/// base64 — while a server without the key (the control) shows it.
#[tokio::test]
async fn stream_files_hold_no_message_in_clear_when_encrypted_at_rest() {
    const CANARY: &str = "canary-glucose-87.3141-Zebulon";
    let body = format!("{{\"note\":\"{CANARY}\"}}");
    for (encrypted, server) in [(true, NatsServer::start().unwrap()), (false, NatsServer::start_unencrypted().unwrap())]
    {
        let bus = bus(&server).await;
        let stream = bus.ensure_stream(&StreamSpec::txs()).await.unwrap();
        bus.publish(&subjects::tx("observation.record"), "c1", Bytes::from(body.clone())).await.unwrap();
        let got = stream.get_raw_message(1).await.unwrap();
        assert_eq!(got.payload, Bytes::from(body.clone()));
        // The server writes its message blocks as they fill; stopping it
        // flushes everything it holds.
        let mut server = server;
        server.stop();
        let found = glucochain_testkit::canary::files_holding(server.store_dir(), CANARY);
        if encrypted {
            assert!(found.is_empty(), "in clear in an encrypted store: {found:?}");
        } else {
            assert!(!found.is_empty(), "the control must find the canary, or the search proves nothing");
        }
    }
}
