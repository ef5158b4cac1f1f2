//! The vault is no less durable than the chain (issue 21, ADR 0016 §5):
//! every write and erasure is also made in the `VAULT` JetStream stream; a
//! vault whose database is lost is rebuilt from it, each body checked
//! against the commitment the chain holds; erased records stay erased in
//! the rebuilt vault; the stream holds nothing readable.

use glucochain_bus::Bus;
use glucochain_store::Store;
use glucochain_testkit::{NatsServer, PgTestDb};
use glucochain_vault::VaultError;
use glucochain_vault::commitment::{Salt, commit, verify};
use glucochain_vault::keys::FileKek;
use glucochain_vault::record_vault::{Lookup, RecordVault};
use glucochain_vault::replica::{Replica, VaultReader, Wanted};
use std::sync::Arc;

const CANARY: &str = "canary-medication-q7vx31";

/// A sealed submission as the chain commits to it: salt and body.
fn submission(n: usize) -> (Vec<u8>, glucochain_crypto::Hash32) {
    let salt = Salt::random();
    let body = format!("{{\"salt\":\"{}\",\"body\":{{\"medication\":\"{CANARY}-{n}\"}}}}", salt.to_b64());
    let c = commit(&salt, body.as_bytes());
    (body.into_bytes(), c)
}

/// `first` holds the vault and is lost; `second` is empty and rebuilt.
async fn exercise(first: Store, second: Store) {
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), "vault-replica-test").await.unwrap();
    let replica = Replica::new(bus.clone()).await.unwrap();
    let kek_text = FileKek::generate();
    let kek = || Arc::new(FileKek::parse(&kek_text).unwrap());
    let v = RecordVault::new(first.clone(), kek()).with_replica(replica.clone());

    // The chain's commitments, kept as a reader would find them on the chain.
    let mut chain = Vec::new();
    for (i, (patient, class)) in
        [("pa", "private"), ("pa", "private"), ("pa", "institution"), ("pb", "private"), ("pb", "private")]
            .into_iter()
            .enumerate()
    {
        let (body, c) = submission(i);
        let tx = format!("tx{i}");
        v.put(&tx, patient, class, &body, 1_000 + i as i64).await.unwrap();
        chain.push((tx, c, body));
    }
    // pa erases one record, pb its whole private class; pb writes again after.
    assert!(v.erase_record("tx1", "erase-1", 2_000).await.unwrap());
    assert_eq!(v.erase_class("pb", "private", "erase-2", 3_000).await.unwrap(), 2);
    let (after, c_after) = submission(9);
    v.put("tx9", "pb", "private", &after, 4_000).await.unwrap();
    chain.push(("tx9".into(), c_after, after));

    // A service that keeps no copy reads the replica by subject: bodies,
    // tombstones for erased records, nothing for what was never stored.
    let reader = VaultReader::new(&bus, kek()).await.unwrap();
    let want = |tx: &str, patient: &str, class: &str| Wanted {
        tx_hash: tx.into(),
        patient: patient.into(),
        class: class.into(),
    };
    let wanted = vec![
        want("tx0", "pa", "private"),
        want("tx1", "pa", "private"),
        want("tx2", "pa", "institution"),
        want("tx3", "pb", "private"),
        want("tx9", "pb", "private"),
        want("tx-unknown", "pa", "private"),
    ];
    let got = reader.get_many(&wanted).await.unwrap();
    assert_eq!(got[0], Lookup::Body(chain[0].2.clone()));
    assert_eq!(got[1], Lookup::Erased { by_tx: "erase-1".into(), at_ms: 2_000 });
    assert_eq!(got[2], Lookup::Body(chain[2].2.clone()));
    assert_eq!(got[3], Lookup::Erased { by_tx: "erase-2".into(), at_ms: 3_000 });
    assert_eq!(got[4], Lookup::Body(chain[5].2.clone()), "written after the class's erasure, under its new epoch");
    assert_eq!(got[5], Lookup::Missing);
    // Another deployment's KEK opens nothing.
    let stranger = VaultReader::new(&bus, Arc::new(FileKek::parse(&FileKek::generate()).unwrap())).await.unwrap();
    assert!(stranger.get(&wanted[0]).await.is_err(), "a reader under another KEK is refused");

    // The first vault's database is lost. A new one is rebuilt from the replica.
    drop(v);
    let applied = replica.restore(&second).await.unwrap();
    assert!(applied >= 6, "rows applied: {applied}");
    let w = RecordVault::new(second.clone(), kek());
    for (tx, c, body) in &chain {
        match w.get(tx).await.unwrap() {
            Lookup::Body(b) => {
                assert_eq!(&b, body, "{tx} restored whole");
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                let salt = Salt::from_b64(v["salt"].as_str().unwrap()).unwrap();
                verify(c, &salt, &b).expect("the restored body matches the chain's commitment");
            }
            Lookup::Erased { by_tx, .. } => {
                assert!(["tx1", "tx3", "tx4"].contains(&tx.as_str()), "{tx} erased by {by_tx}");
            }
            Lookup::Missing => panic!("{tx} missing after the restore"),
        }
    }
    assert_eq!(w.get("tx1").await.unwrap(), Lookup::Erased { by_tx: "erase-1".into(), at_ms: 2_000 });
    assert_eq!(w.get("tx3").await.unwrap(), Lookup::Erased { by_tx: "erase-2".into(), at_ms: 3_000 });
    assert_eq!(second.vault_epoch("pb", "private").await.unwrap(), 2, "the class's new epoch is restored");
    assert_eq!(
        second.vault_data_key("pb", "private", 1).await.unwrap(),
        None,
        "the erased class's key stays destroyed"
    );
    // Written again after the restore: the same epoch, a key the replica holds.
    w.put("tx10", "pb", "private", b"{\"note\":\"later\"}", 5_000).await.unwrap();
    assert_eq!(second.vault_record("tx10").await.unwrap().unwrap().epoch, 2);

    // Another deployment's KEK opens nothing restored from the replica.
    let stranger = RecordVault::new(second.clone(), Arc::new(FileKek::parse(&FileKek::generate()).unwrap()));
    assert!(matches!(stranger.get("tx0").await, Err(VaultError::OtherKek { .. })));

    // The stream holds ciphertexts only: no canary in any message, in clear
    // or base64, and none in the NATS store's files.
    let mut stream = bus.jetstream().get_stream("VAULT").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let needles = glucochain_testkit::canary::forms(CANARY);
    let mut seen = 0;
    for seq in 1..=last {
        let Ok(m) = stream.get_raw_message(seq).await else { continue };
        seen += 1;
        assert!(
            !needles.iter().any(|n| m.payload.windows(n.len()).any(|w| w == n.as_slice())),
            "a canary in VAULT message {seq}"
        );
    }
    assert!(seen >= 6);
    // The erased rows are purged from the stream, not only tombstoned.
    for gone in ["tx1", "tx3", "tx4"] {
        let subject = format!("emr.vault.rec.*.*.{gone}");
        assert!(stream.get_last_raw_message_by_subject(&subject).await.is_err(), "{gone} still in VAULT");
    }
    let mut nats = nats;
    nats.stop();
    assert!(glucochain_testkit::canary::files_holding(nats.store_dir(), CANARY).is_empty());
}

#[tokio::test]
async fn a_lost_vault_is_restored_from_the_replica_on_postgres() {
    let (a, b) = (PgTestDb::create().await.unwrap(), PgTestDb::create().await.unwrap());
    exercise(Store::connect(a.url()).await.unwrap(), Store::connect(b.url()).await.unwrap()).await;
}

#[tokio::test]
async fn a_lost_vault_is_restored_from_the_replica_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = |n: &str| format!("sqlite://{}", dir.path().join(format!("{n}.db")).display());
    exercise(Store::connect(&url("first")).await.unwrap(), Store::connect(&url("second")).await.unwrap()).await;
}

/// A committed erasure as every vault acts on it (ADR 0016 §4): by record
/// (only the erasure's patient's), by class, all; idempotent when replayed
/// from the chain at a restart, and finished when a crash interrupted it
/// between this database and the replica; a class erasure run again never
/// reaches records written after it.
#[tokio::test]
async fn committed_erasures_are_applied_once_and_finish_after_a_crash() {
    use glucochain_types::DataClass;
    use glucochain_types::tx::EraseScope;
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url()).await.unwrap();
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), "vault-erasure-test").await.unwrap();
    let replica = Replica::new(bus.clone()).await.unwrap();
    let kek: Arc<FileKek> = Arc::new(FileKek::parse(&FileKek::generate()).unwrap());
    let v = RecordVault::new(store.clone(), kek.clone()).with_replica(replica.clone());
    let reader = VaultReader::new(&bus, kek.clone()).await.unwrap();
    let hash = |n: u8| glucochain_crypto::sha256(&[n]).to_string();
    let want =
        |n: u8, patient: &str, class: &str| Wanted { tx_hash: hash(n), patient: patient.into(), class: class.into() };
    for (n, patient, class) in
        [(1, "pa", "private"), (2, "pa", "private"), (3, "pb", "private"), (4, "pa", "institution")]
    {
        v.put(&hash(n), patient, class, format!("body-{n}").as_bytes(), 1_000).await.unwrap();
    }
    let record = |n: u8| EraseScope::Record(glucochain_crypto::Hash32::from_hex(&hash(n)).unwrap());

    // pa names pb's record: nothing goes.
    assert_eq!(v.apply_erasure("e-foreign", "pa", &record(3), 2_000).await.unwrap(), 0);
    assert!(matches!(reader.get(&want(3, "pb", "private")).await.unwrap(), Lookup::Body(_)));
    // pa's own record, twice (a replay): erased once, in the replica too.
    assert_eq!(v.apply_erasure("e-1", "pa", &record(1), 2_000).await.unwrap(), 1);
    assert_eq!(v.apply_erasure("e-1", "pa", &record(1), 2_500).await.unwrap(), 0);
    assert_eq!(
        reader.get(&want(1, "pa", "private")).await.unwrap(),
        Lookup::Erased { by_tx: "e-1".into(), at_ms: 2_000 }
    );

    // A class erasure interrupted after this database: the replica still holds the body.
    let local = store.vault_erase_class("pa", "private", "e-2", 3_000).await.unwrap();
    assert_eq!(local.erased, vec![hash(2)]);
    assert!(matches!(reader.get(&want(2, "pa", "private")).await.unwrap(), Lookup::Body(_)), "half done");
    // pa writes again meanwhile, under the new epoch.
    v.put(&hash(5), "pa", "private", b"body-5", 3_500).await.unwrap();
    // The restart replays the erasure: it finishes, and leaves the later record alone.
    assert_eq!(v.apply_erasure("e-2", "pa", &EraseScope::Class(DataClass::Private), 4_000).await.unwrap(), 0);
    assert!(matches!(reader.get(&want(2, "pa", "private")).await.unwrap(), Lookup::Erased { .. }));
    assert_eq!(reader.get(&want(5, "pa", "private")).await.unwrap(), Lookup::Body(b"body-5".to_vec()));
    assert_eq!(v.apply_erasure("e-2", "pa", &EraseScope::Class(DataClass::Private), 5_000).await.unwrap(), 0);
    assert_eq!(reader.get(&want(5, "pa", "private")).await.unwrap(), Lookup::Body(b"body-5".to_vec()));

    // Everything of pa's: both classes; pb keeps theirs.
    assert_eq!(v.apply_erasure("e-3", "pa", &EraseScope::All, 6_000).await.unwrap(), 2);
    for (n, class) in [(4, "institution"), (5, "private")] {
        assert!(matches!(reader.get(&want(n, "pa", class)).await.unwrap(), Lookup::Erased { .. }), "{n}");
    }
    assert!(matches!(reader.get(&want(3, "pb", "private")).await.unwrap(), Lookup::Body(_)));
    assert_eq!(store.vault_data_key("pa", "private", 2).await.unwrap(), None, "the class's keys are destroyed");
}

/// A first record of a class written while the replica cannot take it
/// fails (the caller retries). Its data key is then already in the
/// database; the retry must put the key's row into the replica too, or
/// every record under that key stays unreadable to the replica's readers
/// (found by the fault harness after a NATS restart). Here the first
/// attempt's messages are lost for good (its NATS server never returns) and
/// the retry goes through another connection, as after ingest restarts.
#[tokio::test]
async fn a_data_key_made_while_the_replica_was_down_reaches_it_on_the_next_write() {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url()).await.unwrap();
    let kek_text = FileKek::generate();
    let kek = || Arc::new(FileKek::parse(&kek_text).unwrap());
    let (body, c) = submission(1);
    {
        let mut lost = NatsServer::start().unwrap();
        let bus = Bus::connect(&lost.url(), "vault-replica-lost").await.unwrap();
        let v = RecordVault::new(store.clone(), kek()).with_replica(Replica::new(bus).await.unwrap());
        lost.stop();
        let down =
            tokio::time::timeout(std::time::Duration::from_secs(30), v.put("tx-a", "pz", "private", &body, 1_000));
        assert!(!matches!(down.await, Ok(Ok(()))), "a write the replica did not take is not reported done");
    }
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), "vault-replica-retry").await.unwrap();
    let v = RecordVault::new(store.clone(), kek()).with_replica(Replica::new(bus.clone()).await.unwrap());
    v.put("tx-a", "pz", "private", &body, 2_000).await.unwrap();
    let reader = VaultReader::new(&bus, kek()).await.unwrap();
    let want = Wanted { tx_hash: "tx-a".into(), patient: "pz".into(), class: "private".into() };
    match reader.get(&want).await.unwrap() {
        Lookup::Body(b) => {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            verify(&c, &Salt::from_b64(v["salt"].as_str().unwrap()).unwrap(), &b).unwrap();
        }
        other => panic!("the replica's reader cannot open the record: {other:?}"),
    }
    store.close().await;
}

/// A care plan's clinical content (ADR 0016) opens from the replica joined
/// with its envelope; an envelope that commits to something else is
/// refused; once the patient erases the class, a reader finds none (and
/// the services fall back: default thresholds, no reminders).
#[tokio::test]
async fn a_care_plan_opens_joined_with_its_envelope_and_not_after_an_erasure() {
    use glucochain_types::sealed::RecordBody;
    use glucochain_types::time::Timestamp;
    use glucochain_types::tx::{CarePlan, GlucoseThresholds, MedicationSchedule, Term, TxBody, TxPayload};
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url()).await.unwrap();
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), "vault-careplan").await.unwrap();
    let kek_text = FileKek::generate();
    let kek = || Arc::new(FileKek::parse(&kek_text).unwrap());
    let v = RecordVault::new(store.clone(), kek()).with_replica(Replica::new(bus.clone()).await.unwrap());
    let patient =
        glucochain_types::ParticipantId::from_public_key(&glucochain_crypto::KeyPair::from_seed([4; 32]).public());
    let plan = CarePlan {
        plan_id: glucochain_types::ids::LocalId::parse("plan-1", "plan_id").unwrap(),
        version: 1,
        thresholds: GlucoseThresholds { low: 75.0, ..GlucoseThresholds::default() },
        alert_kinds: vec![],
        contacts: vec![],
        quiet_hours: None,
        medications: vec![MedicationSchedule { name: CANARY.into(), dose: "18 U".into(), times: vec!["22:00".into()] }],
        checkups: vec![],
        term: Term { start: Timestamp::from_unix_ms(1_000), end: Timestamp::from_unix_ms(2_000_000_000_000) },
        language: None,
        alert_repeat: None,
        insulin: None,
    };
    let (body, sealed) = plan.clone().seal();
    let TxBody::CareplanPropose(envelope) = &body else { unreachable!() };
    let payload = TxPayload::new(
        glucochain_types::ChainId::parse("glucochain-test").unwrap(),
        "nonce-plan-1".into(),
        Timestamp::from_unix_ms(1_000),
        Some(patient.clone()),
        body.clone(),
    );
    let (_, kept) = RecordBody::accept(&payload, &sealed, &Default::default()).unwrap();
    let tx = glucochain_crypto::sha256(b"the proposal's JWS");
    v.put(&tx.to_string(), patient.as_str(), "private", &kept, 1_000).await.unwrap();

    let reader = VaultReader::new(&bus, kek()).await.unwrap();
    assert_eq!(reader.careplan(&patient, &tx, envelope).await.unwrap(), Some(plan));
    let mut other = envelope.clone();
    other.body_commitment = glucochain_crypto::sha256(b"another body");
    let fresh = VaultReader::new(&bus, kek()).await.unwrap();
    assert!(matches!(fresh.careplan(&patient, &tx, &other).await, Err(VaultError::Commitment)));
    assert_eq!(fresh.careplan(&patient, &glucochain_crypto::sha256(b"never stored"), envelope).await.unwrap(), None);

    assert_eq!(v.erase_class(patient.as_str(), "private", "erase-plan", 2_000).await.unwrap(), 1);
    let after = VaultReader::new(&bus, kek()).await.unwrap();
    assert_eq!(after.careplan(&patient, &tx, envelope).await.unwrap(), None, "erased");
    // The reader that opened it a moment ago (and keeps it for a minute)
    // finds it erased at once, too.
    assert_eq!(reader.careplan(&patient, &tx, envelope).await.unwrap(), None, "erased, although kept");
    store.close().await;
}
