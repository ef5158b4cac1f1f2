//! What the harness sees of the system from outside: every committed block
//! and every alert event, read from their JetStream streams from the first
//! message on. The readers survive NATS restarts (they resume after the last
//! stream sequence they saw).

use glucochain_bus::Bus;
use glucochain_bus::streams::StreamSpec;
use glucochain_crypto::{Hash32, sha256};
use glucochain_types::Transaction;
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Committed blocks as published on `BLOCKS`.
#[derive(Default)]
pub struct Blocks {
    /// Transaction hashes of each height (the first copy published).
    pub txs: BTreeMap<u64, Vec<Hash32>>,
    /// Encoded header of each height, to tell a second, different block at
    /// the same height (a fork) from a copy.
    headers: BTreeMap<u64, Vec<u8>>,
    /// Heights at which two different blocks were published.
    pub forks: Vec<u64>,
    /// When each height was first seen.
    pub seen_at: BTreeMap<u64, Instant>,
    /// Height of each committed transaction, and how many blocks hold it.
    pub committed: HashMap<Hash32, (u64, u32)>,
    /// Who signed each committed transaction.
    pub signers: HashMap<Hash32, String>,
}

impl Blocks {
    /// The newest height seen (0 before the first block).
    pub fn tip(&self) -> u64 {
        self.txs.keys().next_back().copied().unwrap_or(0)
    }

    fn add(&mut self, data: &[u8]) {
        let Ok(cb) = wire::CommittedBlock::decode(data) else { return };
        let Some(block) = cb.block else { return };
        let Some(header) = block.header else { return };
        let height = header.height;
        let encoded = header.encode_to_vec();
        if let Some(known) = self.headers.get(&height) {
            if *known != encoded && !self.forks.contains(&height) {
                self.forks.push(height);
            }
            return;
        }
        self.headers.insert(height, encoded);
        self.seen_at.insert(height, Instant::now());
        let hashes: Vec<Hash32> = block.txs.iter().map(|t| sha256(t)).collect();
        let limits = glucochain_types::tx::TxLimits::default();
        for (h, t) in hashes.iter().zip(&block.txs) {
            if let Ok(tx) =
                std::str::from_utf8(t).map_err(|_| ()).and_then(|t| Transaction::parse(t, &limits).map_err(|_| ()))
            {
                self.signers.insert(*h, tx.signer.to_string());
            }
        }
        for h in &hashes {
            let e = self.committed.entry(*h).or_insert((height, 0));
            e.1 += 1;
        }
        self.txs.insert(height, hashes);
    }
}

/// One alert event.
#[derive(Debug, Clone)]
pub struct AlertSeen {
    /// Alert id.
    pub id: String,
    /// Patient.
    pub patient: String,
    /// A resolution rather than a new alert.
    pub resolved: bool,
    /// When the harness saw it.
    pub at: Instant,
}

/// Alert events as published on `ALERTS`.
#[derive(Default)]
pub struct Alerts {
    /// Every event, in order.
    pub events: Vec<AlertSeen>,
}

/// Follows `BLOCKS` from its first message.
pub async fn blocks(bus: &Bus) -> anyhow::Result<Arc<Mutex<Blocks>>> {
    let out = Arc::new(Mutex::new(Blocks::default()));
    let o = out.clone();
    follow(bus, StreamSpec::blocks(), move |data| o.lock().expect("blocks").add(data)).await?;
    Ok(out)
}

/// Follows `ALERTS` from its first message.
pub async fn alerts(bus: &Bus) -> anyhow::Result<Arc<Mutex<Alerts>>> {
    let out = Arc::new(Mutex::new(Alerts::default()));
    let o = out.clone();
    follow(bus, StreamSpec::alerts(), move |data| {
        if let Ok(a) = wire::Alert::decode(data) {
            o.lock().expect("alerts").events.push(AlertSeen {
                id: a.alert_id,
                patient: a.patient,
                resolved: a.resolved,
                at: Instant::now(),
            });
        }
    })
    .await?;
    Ok(out)
}

/// Reads `stream` in order from its first message (through NATS restarts:
/// [`Bus::ordered_messages`]), handing each message to `on`.
async fn follow(bus: &Bus, stream: StreamSpec, mut on: impl FnMut(&[u8]) + Send + 'static) -> anyhow::Result<()> {
    // Fail now, not in the background, if the stream is missing.
    bus.jetstream().get_stream(stream.name).await?;
    let mut messages = bus.ordered_messages(stream);
    tokio::spawn(async move {
        loop {
            on(&messages.next().await.payload);
        }
    });
    Ok(())
}
