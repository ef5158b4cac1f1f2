//! The record vault on real PostgreSQL and SQLite: what goes in comes out
//! only through the key hierarchy, nothing readable is in the database, and
//! erasure (by record, by class) leaves tombstones, destroys the class's
//! keys and touches no other patient or class.

use glucochain_store::Store;
use glucochain_testkit::PgTestDb;
use glucochain_vault::VaultError;
use glucochain_vault::keys::FileKek;
use glucochain_vault::record_vault::{Lookup, RecordVault};
use std::sync::Arc;

const CANARY: &str = "canary-allergy-7d3f91";

fn kek() -> Arc<FileKek> {
    Arc::new(FileKek::parse(&FileKek::generate()).unwrap())
}

/// Every value of the vault's tables, as the bytes the database holds.
async fn dump(store: &Store) -> Vec<u8> {
    use sqlx::Row;
    let mut out = Vec::new();
    let queries: [(&str, &[&str], &[&str]); 4] = [
        ("SELECT patient, class, kek_id, wrapped FROM vault_data_key", &["patient", "class", "kek_id"], &["wrapped"]),
        ("SELECT patient, class FROM vault_epoch", &["patient", "class"], &[]),
        (
            "SELECT tx_hash, patient, class, body, record_key FROM vault_record",
            &["tx_hash", "patient", "class"],
            &["body", "record_key"],
        ),
        ("SELECT tx_hash, patient, class, by_tx FROM vault_erased", &["tx_hash", "patient", "class", "by_tx"], &[]),
    ];
    for (q, texts, blobs) in queries {
        for r in sqlx::query(q).fetch_all(store.pool()).await.unwrap() {
            for c in texts {
                out.extend(r.try_get::<String, _>(*c).unwrap().into_bytes());
            }
            for c in blobs {
                out.extend(r.try_get::<Vec<u8>, _>(*c).unwrap());
            }
        }
    }
    assert!(!out.is_empty());
    out
}

async fn exercise(store: Store) {
    let k = kek();
    let v = RecordVault::new(store.clone(), k.clone());
    // A second writer (another ingest replica) over the same database,
    // remembering its own data keys.
    let w = RecordVault::new(store.clone(), k);
    let body = format!("{{\"allergy\":\"{CANARY}\"}}");
    v.put("tx-a1", "pat-a", "private", body.as_bytes(), 1_000).await.unwrap();
    v.put("tx-a1", "pat-a", "private", b"a second copy changes nothing", 1_001).await.unwrap();
    v.put("tx-a2", "pat-a", "private", b"{\"note\":\"two\"}", 1_002).await.unwrap();
    v.put("tx-a3", "pat-a", "institution", b"{\"glucose\":87.31}", 1_003).await.unwrap();
    v.put("tx-b1", "pat-b", "private", b"{\"note\":\"b\"}", 1_004).await.unwrap();
    w.put("tx-a5", "pat-a", "private", b"{\"note\":\"by w\"}", 1_005).await.unwrap();
    assert_eq!(v.get("tx-a1").await.unwrap(), Lookup::Body(body.clone().into_bytes()));
    assert_eq!(v.get("tx-none").await.unwrap(), Lookup::Missing);
    // Nothing readable in the database: not the canary, not in base64 either.
    let raw = dump(&store).await;
    for needle in [CANARY.to_string(), glucochain_crypto::jose::b64url_encode(body.as_bytes())] {
        assert!(!raw.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} in the vault's tables");
    }
    // Another deployment's key-encryption key opens nothing and says why.
    let other = RecordVault::new(store.clone(), kek());
    assert!(matches!(other.get("tx-a1").await, Err(VaultError::OtherKek { .. })));

    // One record erased: a tombstone, the others untouched.
    assert!(v.erase_record("tx-a2", "tx-erase-1", 2_000).await.unwrap());
    assert!(!v.erase_record("tx-a2", "tx-erase-1", 2_001).await.unwrap(), "once");
    assert_eq!(v.get("tx-a2").await.unwrap(), Lookup::Erased { by_tx: "tx-erase-1".into(), at_ms: 2_000 });
    assert!(matches!(v.get("tx-a1").await.unwrap(), Lookup::Body(_)));

    // The class erased: its keys go, every record of it answers erased, other
    // classes and patients are untouched, and new records start a new epoch.
    assert_eq!(v.erase_class("pat-a", "private", "tx-erase-2", 3_000).await.unwrap(), 2);
    assert_eq!(v.get("tx-a5").await.unwrap(), Lookup::Erased { by_tx: "tx-erase-2".into(), at_ms: 3_000 });
    // The other writer still remembers the destroyed key: its next record
    // is not sealed under it but under the new epoch's, and opens.
    w.put("tx-a6", "pat-a", "private", b"{\"note\":\"w after\"}", 3_500).await.unwrap();
    assert_eq!(v.get("tx-a6").await.unwrap(), Lookup::Body(b"{\"note\":\"w after\"}".to_vec()));
    assert_eq!(store.vault_record("tx-a6").await.unwrap().unwrap().epoch, 2);
    assert_eq!(v.get("tx-a1").await.unwrap(), Lookup::Erased { by_tx: "tx-erase-2".into(), at_ms: 3_000 });
    assert_eq!(v.get("tx-a3").await.unwrap(), Lookup::Body(b"{\"glucose\":87.31}".to_vec()));
    assert_eq!(v.get("tx-b1").await.unwrap(), Lookup::Body(b"{\"note\":\"b\"}".to_vec()));
    assert_eq!(store.vault_data_key("pat-a", "private", 1).await.unwrap(), None, "the class's data key is destroyed");
    assert_eq!(store.vault_epoch("pat-a", "private").await.unwrap(), 2);
    v.put("tx-a4", "pat-a", "private", b"{\"note\":\"after\"}", 4_000).await.unwrap();
    assert_eq!(v.get("tx-a4").await.unwrap(), Lookup::Body(b"{\"note\":\"after\"}".to_vec()));
    assert!(store.vault_data_key("pat-a", "private", 2).await.unwrap().is_some());
    let raw = dump(&store).await;
    assert!(!raw.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()));

    // Bodies in one group: of a class the writer remembers, of one it never
    // wrote, a repeat, and a new patient's; every one opens afterwards, and
    // the repeat keeps its first body.
    use glucochain_vault::record_vault::NewRecord;
    let group = [
        NewRecord { tx_hash: "tx-a7", patient: "pat-a", class: "private", body: b"a7" },
        NewRecord { tx_hash: "tx-b2", patient: "pat-b", class: "private", body: b"b2" },
        NewRecord { tx_hash: "tx-a6", patient: "pat-a", class: "private", body: b"not the first" },
        NewRecord { tx_hash: "tx-c1", patient: "pat-c", class: "institution", body: b"c1" },
    ];
    w.put_many(&group, 5_000).await.unwrap();
    for (h, body) in [("tx-a7", &b"a7"[..]), ("tx-b2", b"b2"), ("tx-a6", b"{\"note\":\"w after\"}"), ("tx-c1", b"c1")] {
        assert_eq!(v.get(h).await.unwrap(), Lookup::Body(body.to_vec()), "{h}");
    }

    // Through the group writer, many at once from many tasks: all stored, all open.
    let writer = glucochain_vault::writer::VaultWriter::start(w.clone());
    let puts = (0..40).map(|i| {
        let writer = writer.clone();
        async move {
            let (h, p) = (format!("tx-g{i}"), format!("pat-g{}", i % 5));
            let body = format!("g{i}");
            writer.put(NewRecord { tx_hash: &h, patient: &p, class: "private", body: body.as_bytes() }, 6_000).await
        }
    });
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    for i in 0..40 {
        assert_eq!(v.get(&format!("tx-g{i}")).await.unwrap(), Lookup::Body(format!("g{i}").into_bytes()));
    }
}

#[tokio::test]
async fn record_vault_on_postgres() {
    let db = PgTestDb::create().await.unwrap();
    exercise(Store::connect(db.url()).await.unwrap()).await;
}

#[tokio::test]
async fn record_vault_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    exercise(Store::connect(&url).await.unwrap()).await;
}
