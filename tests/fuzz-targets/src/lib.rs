//! The fuzz targets' bodies: each takes arbitrary bytes as they would arrive
//! at one boundary of the system and must never panic (or hang), whatever
//! they are. `fuzz/` runs them under libFuzzer (`cargo fuzz`); the tests here
//! replay every kept input (`fuzz/corpus/<target>`, `fuzz/regressions/<target>`)
//! and a seeded batch of mutations of them on every `cargo test`.

use glucochain_crypto::KeyPair;
use glucochain_crypto::jose::{TokenPolicy, parse_compact, verify_token};
use glucochain_types::Transaction;
use glucochain_types::tx::TxLimits;
use glucochain_wire::v1 as wire;
use prost::Message as _;

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target, by name (the names of `fuzz/fuzz_targets/*.rs`).
pub const TARGETS: [(&str, Body); 5] =
    [("tx", tx), ("token", token), ("wire", wire_messages), ("fhir", fhir), ("cgm_csv", cgm_csv)];

fn key() -> KeyPair {
    KeyPair::from_seed([7; 32])
}

/// A transaction as ingest and the validators receive it (a compact JWS).
pub fn tx(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(tx) = Transaction::parse(text, &TxLimits::default()) {
        let _ = tx.verify_signature(&key().public());
        // What parses has a type, a body that validates and a signer id.
        assert_eq!(tx.payload.tx_type.as_str(), tx.payload.body.tx_type().as_str());
    }
}

/// A read token (a compact JWS carrying JWT claims) in `Authorization`.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = parse_compact(text, 8192) {
        let _ = parsed.kid();
        let _ = verify_token(
            &parsed,
            &key().public(),
            &TokenPolicy::new(glucochain_crypto::jose::LEDGER_AUDIENCE, "glucochain-test"),
            1_790_000_000,
        );
    }
}

/// Every protobuf message that crosses NATS, decoded from the same bytes,
/// and what the services build from them.
pub fn wire_messages(data: &[u8]) {
    let _ = wire::TxEnvelope::decode(data);
    let _ = wire::TxRejected::decode(data);
    if let Ok(c) = wire::CommittedBlock::decode(data) {
        if let Some(b) = c.block.as_ref() {
            let _ = glucochain_consensus::block::Block::from_wire(b);
        }
        if let Some(cert) = c.certificate.as_ref() {
            let _ = glucochain_types::block::CommitCertificate::from_wire(cert);
        }
    }
    let _ = glucochain_consensus::codec::ConsensusMessage::decode(data);
    let _ = wire::VoteSetRequest::decode(data);
    let _ = wire::VoteSetResponse::decode(data);
    let _ = wire::BlockSyncRequest::decode(data);
    let _ = wire::BlockSyncResponse::decode(data);
    let _ = wire::Alert::decode(data);
    let _ = wire::Reminder::decode(data);
    let _ = wire::NotificationStatus::decode(data);
    let _ = wire::AuthzRequest::decode(data);
    let _ = wire::AuthzDecision::decode(data);
    let _ = glucochain_consensus::wal::decode_record(data);
}

/// A FHIR R4 Observation as a client sends it inside a transaction.
pub fn fhir(data: &[u8]) {
    if let Ok(o) = serde_json::from_slice::<glucochain_types::fhir::Observation>(data) {
        let _ = o.validate("pzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
        let _ = o.glucose_mg_dl();
        let _ = serde_json::to_vec(&o);
    }
}

/// A CGM CSV import, then the detector over every trace it holds.
pub fn cgm_csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(traces) = glucochain_detect::csv::parse_cgm_csv(text) {
        let cfg = glucochain_detect::DetectorConfig::default();
        for readings in traces.values() {
            let _ = glucochain_detect::run_trace(&cfg, readings);
        }
    }
}

/// Valid inputs for `target`, to start fuzzing from (`fuzz-seeds` writes
/// them to `fuzz/corpus/<target>`; the smoke test mutates them).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    use glucochain_types::fhir::cgm_observation;
    use glucochain_types::sealed::ObservationBody;
    use glucochain_types::time::Timestamp;
    use glucochain_types::tx::{TxBody, TxPayload};
    use glucochain_types::{ChainId, DataClass, ParticipantId};
    let k = key();
    let me = ParticipantId::from_public_key(&k.public());
    let at = Timestamp::from_unix_ms(1_790_000_000_000);
    let obs = cgm_observation(me.as_str(), at, 63.0, Some("r1"));
    match target {
        "tx" => {
            // The envelope a record's transaction carries (its body is off the chain).
            let body = TxBody::ObservationRecord(
                ObservationBody { observations: vec![obs] }
                    .envelope(DataClass::Private, glucochain_crypto::sha256(b"fuzz seed body")),
            );
            let chain = ChainId::parse("glucochain-fuzz").expect("chain id");
            vec![TxPayload::new(chain, "nonce-0001".into(), at, Some(me.clone()), body).sign(&k, &me).into_bytes()]
        }
        "token" => {
            vec![
                glucochain_crypto::jose::issue_token(
                    &k,
                    me.as_str(),
                    glucochain_crypto::jose::LEDGER_AUDIENCE,
                    "glucochain-test",
                    1_790_000_000,
                    120,
                    "j1",
                )
                .into_bytes(),
            ]
        }
        "wire" => {
            let env = wire::TxEnvelope::received_now(b"a.b.c".to_vec(), vec![7; 32], "observation.record", 9);
            let alert = wire::Alert {
                alert_id: "a-1".into(),
                patient: me.to_string(),
                reason: "glucose 50".into(),
                recent: vec![wire::GlucosePoint { at_ms: 1, mg_dl: 50.0 }],
                ..Default::default()
            };
            vec![env.encode_to_vec(), alert.encode_to_vec(), wire::AuthzRequest::default().encode_to_vec()]
        }
        "fhir" => vec![serde_json::to_vec(&obs).expect("observation serializes")],
        "cgm_csv" => vec![
            b"patient_id,timestamp,glucose_mg_dl\np1,2026-11-30T10:00:00Z,120\np1,2026-11-30T10:05:00Z,90\n\
              p1,2026-11-30T10:10:00Z,60\np1,2026-11-30T10:15:00Z,48\n"
                .to_vec(),
        ],
        _ => Vec::new(),
    }
}
