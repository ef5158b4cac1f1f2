//! Group commit of record bodies: the bodies that arrive while one write is
//! in flight go together in the next ([`RecordVault::put_many`]: one
//! conditional multi-row insert and one commit, the replica's publishes
//! together), as ingest's pending statuses do, so the database commits once
//! per group rather than once per record.

use crate::VaultError;
use crate::record_vault::{NewRecord, RecordVault};
use tokio::sync::{mpsc, oneshot};

/// At most this many bodies go in one group.
pub const MAX_GROUP: usize = 64;

struct Job {
    tx_hash: String,
    patient: String,
    class: String,
    body: Vec<u8>,
    now_ms: i64,
    done: oneshot::Sender<Result<(), VaultError>>,
}

/// A handle on the group writer of one [`RecordVault`].
#[derive(Clone, Debug)]
pub struct VaultWriter {
    queue: mpsc::Sender<Job>,
}

impl VaultWriter {
    /// Starts the writer task of `vault` (on the current Tokio runtime).
    pub fn start(vault: RecordVault) -> Self {
        let (queue, jobs) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(write_groups(vault, jobs));
        VaultWriter { queue }
    }

    /// Seals and stores a body with the group being formed; returns once
    /// the group is committed and replicated (or failed: then nothing of
    /// this body is promised stored, and the caller refuses the record).
    pub async fn put(&self, record: NewRecord<'_>, now_ms: i64) -> Result<(), VaultError> {
        let (done, result) = oneshot::channel();
        let job = Job {
            tx_hash: record.tx_hash.into(),
            patient: record.patient.into(),
            class: record.class.into(),
            body: record.body.to_vec(),
            now_ms,
            done,
        };
        let gone = || VaultError::Store("the vault writer stopped".into());
        self.queue.send(job).await.map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

async fn write_groups(vault: RecordVault, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let records: Vec<NewRecord<'_>> = group
            .iter()
            .map(|j| NewRecord { tx_hash: &j.tx_hash, patient: &j.patient, class: &j.class, body: &j.body })
            .collect();
        let now_ms = group.iter().map(|j| j.now_ms).max().unwrap_or_default();
        let result = vault.put_many(&records, now_ms).await;
        drop(records);
        for j in group {
            let _ = j.done.send(result.clone());
        }
    }
}
