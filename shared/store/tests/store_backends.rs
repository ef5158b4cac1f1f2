//! The same repository behaviour on SQLite and on a real PostgreSQL.

use glucochain_store::{
    AuditRow, Backend, CommittedTxStatus, InsertOutcome, MAX_ROWS_PER_WRITE, NewTxStatus, Store, StoreError,
    StoredBlock, StoredEvidence, StoredTx, TxState,
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
    let mine = store.audit_for_patient("pa", 10, None).await.unwrap();
    assert_eq!(mine.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 1]);
    // Issue 19, M7: the access log comes in pages, newest first.
    let first = store.audit_for_patient("pa", 1, None).await.unwrap();
    assert_eq!(first.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3]);
    let next = store.audit_for_patient("pa", 1, Some(3)).await.unwrap();
    assert_eq!(next.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
    assert!(store.audit_for_patient("pa", 1, Some(1)).await.unwrap().is_empty());
    assert_eq!(store.audit_range(2, 3).await.unwrap().len(), 2);
    store.insert_audit_checkpoint(3, &[3; 32], &[9; 32]).await.unwrap();
    assert_eq!(store.last_audit_checkpoint().await.unwrap(), Some((3, vec![3; 32])));
    assert_eq!(store.audit_checkpoints(5).await.unwrap(), vec![(3, vec![3; 32], vec![9; 32])]);

    // Status: pending, then rejected; committed always wins and is never downgraded.
    let pending = |hash: &'static [u8]| NewTxStatus { hash, tx_type: "observation.record", signer: "ps" };
    store.tx_pending(&[pending(&[1; 32])]).await.unwrap();
    store.tx_pending(&[pending(&[1; 32]), pending(&[3; 32])]).await.unwrap();
    assert_eq!(store.tx_status(&[1; 32]).await.unwrap().unwrap().state, TxState::Pending);
    assert!(store.tx_rejected(&[1; 32], "forbidden", "no").await.unwrap());
    assert!(matches!(store.tx_status(&[1; 32]).await.unwrap().unwrap().state, TxState::Rejected { .. }));
    let at =
        |hash: &'static [u8], index| CommittedTxStatus { hash, tx_type: "observation.record", signer: "ps", index };
    store.tx_committed(7, &[5; 32], &[at(&[3; 32], 0), at(&[1; 32], 2)]).await.unwrap();
    assert!(!store.tx_rejected(&[1; 32], "late", "x").await.unwrap());
    assert_eq!(
        store.tx_status(&[1; 32]).await.unwrap().unwrap().state,
        TxState::Committed { height: 7, index: 2, block_hash: vec![5; 32] }
    );
    assert_eq!(
        store.tx_status(&[3; 32]).await.unwrap().unwrap().state,
        TxState::Committed { height: 7, index: 0, block_hash: vec![5; 32] }
    );
    assert_eq!(store.tx_status(&[2; 32]).await.unwrap(), None);
    // Batches larger than one statement: every row lands, pending then committed.
    let hashes: Vec<[u8; 32]> = (0..(MAX_ROWS_PER_WRITE as u32 + 7))
        .map(|i| {
            let mut h = [0xAB; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            h
        })
        .collect();
    let rows: Vec<NewTxStatus> =
        hashes.iter().map(|h| NewTxStatus { hash: h, tx_type: "observation.record", signer: "ps" }).collect();
    store.tx_pending(&rows).await.unwrap();
    assert_eq!(store.tx_status(hashes.last().unwrap()).await.unwrap().unwrap().state, TxState::Pending);
    let rows: Vec<CommittedTxStatus> = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| CommittedTxStatus { hash: h, tx_type: "observation.record", signer: "ps", index: i as u32 })
        .collect();
    store.tx_committed(8, &[6; 32], &rows).await.unwrap();
    for (i, h) in hashes.iter().enumerate().step_by(337) {
        assert_eq!(
            store.tx_status(h).await.unwrap().unwrap().state,
            TxState::Committed { height: 8, index: i as u32, block_hash: vec![6; 32] }
        );
    }
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

/// A block of more transactions than one multi-row statement holds, stored and read back in order.
async fn exercise_large_block(store: &Store) {
    let mut big = block(1, 10, 0);
    big.txs = (0..2 * MAX_ROWS_PER_WRITE + 3)
        .map(|i| StoredTx {
            hash: sha2_like(i),
            height: 1,
            index: i as u32,
            tx_type: "observation.record".into(),
            signer: format!("psigner{}", i % 7),
            patient: (i % 3 == 0).then(|| format!("ppatient{i}")),
            jws: format!("jws-1-{i}"),
            ok: i % 11 != 0,
            code: if i % 11 == 0 { "consent.denied".into() } else { String::new() },
        })
        .collect();
    assert_eq!(store.insert_block(&big).await.unwrap(), InsertOutcome::Inserted);
    assert_eq!(store.block(1).await.unwrap().unwrap(), big);
    assert_eq!(store.insert_block(&big).await.unwrap(), InsertOutcome::AlreadyPresent);
}

fn sha2_like(i: usize) -> Vec<u8> {
    let mut h = vec![0x5A; 32];
    h[..8].copy_from_slice(&(i as u64).to_be_bytes());
    h
}

#[tokio::test]
async fn large_blocks_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::connect(&format!("sqlite://{}", dir.path().join("big.db").display())).await.unwrap();
    exercise_large_block(&sqlite).await;
    let db = PgTestDb::create().await.unwrap();
    let pg = Store::connect(db.url()).await.unwrap();
    exercise_large_block(&pg).await;
    pg.close().await;
}

/// Issue 19, M2: one sign-in token opens one session; signing out ends it at once.
async fn exercise_sessions(store: &Store) {
    let (now, later) = (1_000_000, 1_000_000 + 30 * 60_000);
    assert_eq!(
        store.create_web_session("palice", "jti-1", now + 120_000, b"session-1", now, later).await.unwrap(),
        Ok(())
    );
    assert_eq!(store.web_session(b"session-1", now + 1).await.unwrap(), Some(("palice".to_string(), later)));
    // The same token again opens nothing (a replayed sign-in); another participant's jti is theirs.
    assert_eq!(
        store.create_web_session("palice", "jti-1", now + 120_000, b"session-2", now + 5, later).await.unwrap(),
        Err(glucochain_store::SessionRefused::TokenReused)
    );
    assert_eq!(store.web_session(b"session-2", now + 6).await.unwrap(), None);
    assert_eq!(
        store.create_web_session("pbob", "jti-1", now + 120_000, b"session-3", now, later).await.unwrap(),
        Ok(())
    );
    // Unknown, expired and ended sessions are not live.
    assert_eq!(store.web_session(b"nope", now).await.unwrap(), None);
    assert_eq!(store.web_session(b"session-1", later).await.unwrap(), None, "expired");
    assert!(store.end_web_session(b"session-1", now + 10).await.unwrap());
    assert_eq!(store.web_session(b"session-1", now + 11).await.unwrap(), None, "ended");
    assert!(!store.end_web_session(b"session-1", now + 12).await.unwrap(), "ended once");
    assert_eq!(store.web_session(b"session-3", now + 11).await.unwrap(), Some(("pbob".to_string(), later)));
    // A spent token is forgotten only after it could no longer be presented.
    assert_eq!(
        store.create_web_session("palice", "jti-1", now + 500_000, b"session-4", now + 120_001, later).await.unwrap(),
        Ok(()),
        "the first jti-1 expired at now + 120 s"
    );
}

#[tokio::test]
async fn web_sessions_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::connect(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap();
    exercise_sessions(&sqlite).await;
    let db = PgTestDb::create().await.unwrap();
    let pg = Store::connect(db.url()).await.unwrap();
    exercise_sessions(&pg).await;
    pg.close().await;
}
