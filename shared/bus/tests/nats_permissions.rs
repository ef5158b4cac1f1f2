//! The NATS permission table against a real nats-server: without a key
//! nothing connects; with one, each service can do what it needs and no
//! more — only the contracts engine hears access requests, only the detector
//! (and the contracts engine) put alerts in ALERTS, and only the detector's
//! filtered consumer reads observations from TXS besides the validators.

use bytes::Bytes;
use futures::StreamExt as _;
use glucochain_bus::Bus;
use glucochain_bus::access::{NatsUser, authorization_config, new_user_nkey};
use glucochain_bus::streams::{ConsumerSpec, StreamSpec};
use glucochain_testkit::NatsServer;
use std::collections::HashMap;
use std::time::Duration;

struct Users {
    seeds: HashMap<&'static str, String>,
    nats: NatsServer,
}

impl Users {
    fn start() -> Self {
        let mut seeds = HashMap::new();
        let mut users = Vec::new();
        for u in NatsUser::ALL {
            let (public, seed) = new_user_nkey();
            seeds.insert(u.name(), seed);
            users.push((u, public));
        }
        let nats = NatsServer::start_with_config(&authorization_config(&users)).unwrap();
        Users { seeds, nats }
    }

    async fn connect(&self, user: NatsUser) -> Bus {
        Bus::connect_with_seed(&self.nats.url(), user.name(), Some(self.seeds[user.name()].clone())).await.unwrap()
    }
}

#[tokio::test]
async fn each_service_user_can_do_its_work_and_nothing_beyond_it() {
    let users = Users::start();
    // No key, or an unknown one: no connection at all.
    assert!(Bus::connect_with_seed(&users.nats.url(), "anyone", None).await.is_err());
    let (_, stranger) = new_user_nkey();
    assert!(Bus::connect_with_seed(&users.nats.url(), "stranger", Some(stranger)).await.is_err());

    let operator = users.connect(NatsUser::Operator).await;
    operator.ensure_all_streams().await.unwrap();
    let (contracts, ledger, detector, ingest) = (
        users.connect(NatsUser::Contracts).await,
        users.connect(NatsUser::Ledger).await,
        users.connect(NatsUser::Detector).await,
        users.connect(NatsUser::Ingest).await,
    );

    // Audit entries of reads elsewhere: the contracts engine's reach the
    // ledger; nobody else's can (a forged entry would put words in a reader's mouth).
    let mut appends = ledger.client().queue_subscribe("emr.audit.append", "ledger".into()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Until the subscription is live on the server.
        contracts.client().publish("emr.audit.append", Bytes::from_static(b"contracts")).await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), appends.next()).await {
            assert_eq!(m.payload.as_ref(), b"contracts");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the ledger never heard the contracts engine");
    }
    while tokio::time::timeout(Duration::from_millis(300), appends.next()).await.is_ok() {}
    for bus in [&ingest, &detector] {
        let _ = bus.client().publish("emr.audit.append", Bytes::from_static(b"forged")).await;
        bus.client().flush().await.unwrap();
    }
    contracts.client().publish("emr.audit.append", Bytes::from_static(b"contracts again")).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), appends.next()).await.unwrap().unwrap();
    assert_eq!(next.payload.as_ref(), b"contracts again", "only the contracts engine appends audit entries");
    // The detector and the notifier append their openings of bodies on a
    // subject each of their own (the ledger takes only that service's own
    // entries from it); nobody else may publish there.
    let notifier = users.connect(NatsUser::Notifier).await;
    for (own, subject, others) in [
        (&detector, "emr.audit.append.detector", [&ingest, &contracts, &notifier]),
        (&notifier, "emr.audit.append.notifier", [&ingest, &contracts, &detector]),
    ] {
        let mut from_own = ledger.client().queue_subscribe(subject, "ledger".into()).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            own.client().publish(subject, Bytes::from_static(b"own")).await.unwrap();
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), from_own.next()).await {
                assert_eq!(m.payload.as_ref(), b"own");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the ledger never heard {subject}");
        }
        while tokio::time::timeout(Duration::from_millis(300), from_own.next()).await.is_ok() {}
        for bus in others {
            let _ = bus.client().publish(subject, Bytes::from_static(b"forged")).await;
            bus.client().flush().await.unwrap();
        }
        own.client().publish(subject, Bytes::from_static(b"own again")).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), from_own.next()).await.unwrap().unwrap();
        assert_eq!(next.payload.as_ref(), b"own again", "only its service appends on {subject}");
    }

    // Access decisions: the contracts engine answers; the ledger, which
    // would like to answer its own requests, is not allowed to hear them.
    let mut engine = contracts.client().queue_subscribe("emr.authz.decide", "contracts".into()).await.unwrap();
    let mut impostor = ledger.client().subscribe("emr.authz.decide").await.unwrap();
    let answering = tokio::spawn({
        let c = contracts.client().clone();
        async move {
            while let Some(m) = engine.next().await {
                c.publish(m.reply.unwrap(), Bytes::from_static(b"contracts")).await.unwrap();
            }
        }
    });
    let impostor_heard = tokio::spawn(async move { impostor.next().await.is_some() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let answer = ledger.client().request("emr.authz.decide", Bytes::from_static(b"may I?")).await.unwrap();
        assert_eq!(answer.payload.as_ref(), b"contracts");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!impostor_heard.is_finished() || !impostor_heard.await.unwrap(), "the ledger heard an access request");
    answering.abort();

    // Alerts: the detector's reach ALERTS; ingest's do not.
    detector.ensure_stream(&StreamSpec::alerts()).await.unwrap();
    detector.publish("emr.alert.low", "a-1", Bytes::from_static(b"low")).await.unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        ingest.publish("emr.alert.low", "a-2", Bytes::from_static(b"forged")),
    )
    .await;
    assert!(!matches!(refused, Ok(Ok(_))), "ingest stored an alert");
    let alerts = operator.jetstream().get_stream("ALERTS").await.unwrap().info().await.unwrap().state.messages;
    assert_eq!(alerts, 1);

    // Transactions: ingest writes them; the detector reads observations only
    // through its own filtered consumer; the ledger cannot read them at all.
    let txs = ingest.ensure_stream(&StreamSpec::txs()).await.unwrap();
    ingest.publish("emr.tx.observation.record", "t-1", Bytes::from_static(b"reading")).await.unwrap();
    let mine = ConsumerSpec { filter_subject: "emr.tx.observation.record".into(), ..ConsumerSpec::durable("detector") };
    let detector_txs = detector.ensure_stream(&StreamSpec::txs()).await.unwrap();
    let consumer = detector.ensure_consumer(&detector_txs, &mine).await.unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.payload.as_ref(), b"reading");
    m.ack().await.unwrap();
    let quick = |bus: &Bus| {
        let mut js = bus.jetstream().clone();
        js.set_timeout(Duration::from_millis(1500));
        js
    };
    let quick_txs = quick(&detector).get_stream("TXS").await.unwrap();
    assert!(
        quick_txs
            .get_or_create_consumer(
                "everything",
                async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("everything".into()),
                    ..Default::default()
                }
            )
            .await
            .is_err()
    );
    let ledger_txs = quick(&ledger).get_stream("TXS").await.unwrap();
    assert!(
        ledger_txs
            .get_or_create_consumer(
                "ledger",
                async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("ledger".into()),
                    ..Default::default()
                }
            )
            .await
            .is_err()
    );
    drop(txs);

    // Issue 19, M9: BLOCKS is read by each service through its own durable
    // (or, for ingest, ordered consumers); nobody deletes or borrows another's.
    let validator = users.connect(NatsUser::Validator).await;
    validator.ensure_stream(&StreamSpec::blocks()).await.unwrap();
    validator.publish("emr.block.committed", "b-1", Bytes::from_static(b"block 1")).await.unwrap();
    let ledger_blocks = ledger.ensure_stream(&StreamSpec::blocks()).await.unwrap();
    ledger.ensure_consumer(&ledger_blocks, &ConsumerSpec::durable("ledger")).await.unwrap();
    let mut ordered = ingest.ordered_messages(StreamSpec::blocks());
    let first = tokio::time::timeout(Duration::from_secs(10), ordered.next()).await.expect("ingest reads BLOCKS");
    assert_eq!(first.payload.as_ref(), b"block 1");
    // A refused request is never answered: wait for it briefly.
    let quick = |bus: &Bus| {
        let mut js = bus.jetstream().clone();
        js.set_timeout(Duration::from_millis(1500));
        js
    };
    for bus in [&notifier, &ingest] {
        let blocks = quick(bus).get_stream("BLOCKS").await.unwrap();
        let borrowed = blocks
            .get_or_create_consumer(
                "ledger",
                async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("ledger".into()),
                    ..Default::default()
                },
            )
            .await;
        assert!(borrowed.is_err(), "a service reads through the ledger's consumer");
    }
    for bus in [&ingest, &notifier, &validator, &detector] {
        let r = quick(bus).delete_consumer_from_stream("ledger", "BLOCKS").await;
        assert!(r.is_err(), "a service deleted the ledger's consumer");
    }
    assert!(operator.jetstream().get_stream("BLOCKS").await.unwrap().consumer_info("ledger").await.is_ok());
    // The record vault (ADR 0016): ingest writes it; the ledger, the
    // detector, the contracts engine (emergency profiles) and the notifier
    // (contacts' addresses) fetch a row by subject, directly; nobody else
    // (the validators) reads it, and nobody else writes it.
    ingest.ensure_stream(&StreamSpec::vault()).await.unwrap();
    let row = "emr.vault.rec.pabc.private.ff";
    ingest.publish(row, "perm-test-row", Bytes::from_static(b"{}")).await.unwrap();
    for (bus, reads) in [(&ledger, true), (&detector, true), (&contracts, true), (&notifier, true), (&validator, false)]
    {
        let vault = quick(bus).get_stream_no_info("VAULT").await.unwrap();
        let got = vault.direct_get_last_for_subject(row).await;
        assert_eq!(got.is_ok(), reads, "direct get of a VAULT row: {got:?}");
        if !reads {
            assert!(vault.get_last_raw_message_by_subject(row).await.is_err(), "a non-reader got a VAULT row");
        }
    }
    for bus in [&ledger, &detector, &contracts, &notifier] {
        let r =
            tokio::time::timeout(Duration::from_secs(3), bus.publish(row, "forged", Bytes::from_static(b"{}"))).await;
        assert!(!matches!(r, Ok(Ok(_))), "a service other than ingest wrote VAULT");
    }
    // Stream settings: only the operator changes them.
    let mut wider = StreamSpec::blocks();
    wider.max_age = Duration::from_secs(30 * 24 * 3600);
    let mut config = operator.jetstream().get_stream("BLOCKS").await.unwrap().info().await.unwrap().config.clone();
    config.max_age = wider.max_age;
    assert!(quick(&validator).update_stream(config.clone()).await.is_err(), "a validator changed BLOCKS");
    operator.jetstream().update_stream(config).await.map(|_| ()).unwrap();
}

/// The Helm chart renders the server's authorization from a copy of the
/// table; it must be the table (`emrctl nats permissions` writes it).
#[test]
fn the_helm_charts_copy_of_the_permission_table_is_current() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/glucochain/files/nats-permissions.json");
    let copy = std::fs::read_to_string(&path).unwrap();
    assert!(
        copy == glucochain_bus::access::permissions_json(),
        "{} is stale: run `emrctl nats permissions > helm/glucochain/files/nats-permissions.json`",
        path.display()
    );
}
