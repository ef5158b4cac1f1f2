//! The same repository behaviour on SQLite and on a real PostgreSQL.

use glucochain_store::{
    AuditRow, Backend, InsertOutcome, Store, StoreError, StoredBlock, StoredEvidence, StoredTx, TxState,
};
use glucochain_testkit::PgTestDb;

fn block(height: u64, salt: u8, ntx: usize) -> StoredBlock {
    StoredBlock {
        height,
        hash: vec![salt; 32],
        prev_hash: vec![salt.wrapping_sub(1); 32],
        header: vec![1, 2, 3, salt],
        certificate: vec![4, 5, 6],
        time_ms: 1_764_000_000_000 + height as i64,
        txs: (0..ntx)
            .map(|i| StoredTx {
                hash: vec![salt ^ (i as u8 + 1); 32].into_iter().enumerate().map(|(k, b)| b ^ k as u8).collect(),
                height,
                index: i as u32,
                tx_type: "observation.record".into(),
                signer: "psigner".into(),
                patient: if i % 2 == 0 { Some("ppatient".into()) } else { None },
                jws: format!("jws-{height}-{i}"),
                ok: i != 1,
                code: if i == 1 { "consent.denied".into() } else { String::new() },
            })
            .collect(),
    }
}

async fn exercise(store: &Store) {
    assert_eq!(store.latest_height().await.unwrap(), None);
    let b1 = block(1, 10, 3);
    assert_eq!(store.insert_block(&b1).await.unwrap(), InsertOutcome::Inserted);
    // Redelivery is harmless.
    assert_eq!(store.insert_block(&b1).await.unwrap(), InsertOutcome::AlreadyPresent);
    // Another block at the same height is a conflict, never an overwrite.
    let fork = block(1, 99, 1);
    assert!(matches!(store.insert_block(&fork).await, Err(StoreError::Conflict { height: 1 })));
    let b2 = block(2, 20, 2);
    store.insert_block(&b2).await.unwrap();
    assert_eq!(store.latest_height().await.unwrap(), Some(2));
    assert_eq!(store.block(1).await.unwrap().unwrap(), b1);
    assert_eq!(store.block(3).await.unwrap(), None);

    let t = &b1.txs[1];
    let got = store.transaction(&t.hash).await.unwrap().unwrap();
    assert_eq!(&got, t);
    assert!(!got.ok);
    assert_eq!(store.transaction(&[0u8; 32]).await.unwrap(), None);

    let all = store.patient_transactions("ppatient", None, 100).await.unwrap();
    assert_eq!(all.iter().map(|t| (t.height, t.index)).collect::<Vec<_>>(), vec![(1, 0), (1, 2), (2, 0)]);
    let page = store.patient_transactions("ppatient", Some((1, 0)), 1).await.unwrap();
    assert_eq!(page.iter().map(|t| (t.height, t.index)).collect::<Vec<_>>(), vec![(1, 2)]);

    // A failed block insert leaves nothing half-way: a tx hash clash aborts it all.
    let mut clash = block(3, 30, 2);
    clash.txs[1].hash = b1.txs[0].hash.clone();
    assert!(store.insert_block(&clash).await.is_err());
    assert_eq!(store.block(3).await.unwrap(), None);
    assert_eq!(store.latest_height().await.unwrap(), Some(2));

    assert_eq!(store.cursor("contracts").await.unwrap(), None);
    store.set_cursor("contracts", 5).await.unwrap();
    store.set_cursor("contracts", 6).await.unwrap();
    assert_eq!(store.cursor("contracts").await.unwrap(), Some(6));
    assert!(store.ping().await);

    let e = StoredEvidence {
        hash: vec![7; 32],
        validator: "pbyzantine".into(),
        kind: "vote".into(),
        height: 2,
        round: 1,
        first: vec![1, 2],
        second: vec![3, 4],
    };
    assert!(store.insert_evidence(&e).await.unwrap());
    assert!(!store.insert_evidence(&e).await.unwrap(), "recording twice is harmless");
    assert_eq!(store.evidence().await.unwrap(), vec![e]);

    assert_eq!(store.audit_head().await.unwrap(), None);
    let entry = |seq: u64, patient: &str| AuditRow {
        seq,
        at_ms: 1_000 + seq as i64,
        reader: "preader".into(),
        reader_role: "clinician".into(),
        patient: Some(patient.into()),
        action: "search".into(),
        resource: "/v1/patients/x/records".into(),
        purpose: "TREAT".into(),
        outcome: "granted".into(),
        reason: "consent c1".into(),
        prev_hash: vec![seq as u8 - 1; 32],
        entry_hash: vec![seq as u8; 32],
    };
    store.insert_audit(&entry(1, "pa")).await.unwrap();
    store.insert_audit(&entry(2, "pb")).await.unwrap();
    store.insert_audit(&entry(3, "pa")).await.unwrap();
    assert!(store.insert_audit(&entry(3, "pa")).await.is_err(), "a sequence number is used once");
    assert_eq!(store.audit_head().await.unwrap().unwrap().seq, 3);
    let mine = store.audit_for_patient("pa", 10).await.unwrap();
    assert_eq!(mine.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 1]);
    assert_eq!(store.audit_range(2, 3).await.unwrap().len(), 2);
    store.insert_audit_checkpoint(3, &[3; 32], &[9; 32]).await.unwrap();
    assert_eq!(store.last_audit_checkpoint().await.unwrap(), Some((3, vec![3; 32])));

    // Status: pending, then rejected; committed always wins and is never downgraded.
    store.tx_pending(&[1; 32], "observation.record", "ps").await.unwrap();
    store.tx_pending(&[1; 32], "observation.record", "ps").await.unwrap();
    assert_eq!(store.tx_status(&[1; 32]).await.unwrap().unwrap().state, TxState::Pending);
    assert!(store.tx_rejected(&[1; 32], "forbidden", "no").await.unwrap());
    assert!(matches!(store.tx_status(&[1; 32]).await.unwrap().unwrap().state, TxState::Rejected { .. }));
    store.tx_committed(&[1; 32], "observation.record", "ps", 7, 2, &[5; 32]).await.unwrap();
    assert!(!store.tx_rejected(&[1; 32], "late", "x").await.unwrap());
    assert_eq!(
        store.tx_status(&[1; 32]).await.unwrap().unwrap().state,
        TxState::Committed { height: 7, index: 2, block_hash: vec![5; 32] }
    );
    assert_eq!(store.tx_status(&[2; 32]).await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chain.db").display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    exercise(&store).await;
    store.close().await;
    // Reopening keeps the data and does not re-run migrations.
    let again = Store::connect(&url).await.unwrap();
    assert_eq!(again.latest_height().await.unwrap(), Some(2));
}

#[tokio::test]
async fn postgres_backend() {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url()).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    exercise(&store).await;
    store.close().await;
    let again = Store::connect(db.url()).await.unwrap();
    assert_eq!(again.latest_height().await.unwrap(), Some(2));
    again.close().await;
}

#[tokio::test]
async fn bad_urls_are_explained() {
    let err = Store::connect("mysql://root@localhost/x").await.unwrap_err();
    assert!(err.to_string().contains("unsupported database URL"), "{err}");
}
