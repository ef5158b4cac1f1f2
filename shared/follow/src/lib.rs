//! Following the committed chain, for every service that needs the ledger
//! state without taking part in consensus (ingest's registry, the ledger
//! store): committed blocks are decoded, checked — the commit certificate
//! against the validator set of that height, the hash link to the parent,
//! the ledger rules for every transaction — and only then applied, in
//! order. A gap is filled by asking the validators (`emr.sync.blocks`),
//! never skipped.

pub mod audit;
pub mod service_event;

use glucochain_bus::{Bus, subjects};
use glucochain_consensus::block::Block;
use glucochain_crypto::{Hash32, sha256};
use glucochain_state::{BlockEffects, LedgerState};
use glucochain_store::{StoredBlock, StoredTx};
use glucochain_types::Transaction;
use glucochain_types::block::{BlockHeader, CommitCertificate};
use glucochain_types::genesis::Genesis;
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::time::Duration;

/// A committed block that does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FollowError {
    /// Not decodable.
    #[error("committed block is malformed: {0}")]
    Malformed(String),
    /// Not the next height.
    #[error("expected height {expected}, got {got}")]
    OutOfOrder {
        /// Next height.
        expected: u64,
        /// Offered.
        got: u64,
    },
    /// Body does not match the header.
    #[error("block {0}: transactions do not match tx_root/tx_count")]
    Body(u64),
    /// Certificate does not prove a quorum of that height's set.
    #[error("block {height}: certificate: {reason}")]
    Certificate {
        /// Height.
        height: u64,
        /// Why.
        reason: String,
    },
    /// Header or transactions break the ledger rules.
    #[error("block {height}: {reason}")]
    Rules {
        /// Height.
        height: u64,
        /// Why.
        reason: String,
    },
    /// Block sync failed.
    #[error("block sync: {0}")]
    Sync(String),
}

/// A block that passed every check, ready to apply.
#[derive(Debug)]
pub struct Verified {
    /// The block.
    pub block: Block,
    /// Its certificate.
    pub certificate: CommitCertificate,
    /// Hashes of its transactions, in order.
    pub tx_hashes: Vec<Hash32>,
    effects: BlockEffects,
}

/// The protobuf form published on `BLOCKS` and served by block sync.
pub fn committed_wire(block: &Block, cert: &CommitCertificate) -> wire::CommittedBlock {
    wire::CommittedBlock {
        block: Some(block.to_wire()),
        certificate: Some(cert.to_wire()),
        results: block
            .txs
            .iter()
            .map(|t| wire::TxResult {
                tx_hash: sha256(t).0.to_vec(),
                ok: true,
                code: String::new(),
                reason: String::new(),
            })
            .collect(),
    }
}

/// Decodes a committed block (nothing verified yet).
pub fn decode_committed(c: &wire::CommittedBlock) -> Result<(Block, CommitCertificate), FollowError> {
    let block = c
        .block
        .as_ref()
        .and_then(Block::from_wire)
        .ok_or_else(|| FollowError::Malformed("block or header missing or invalid".into()))?;
    let cert = c
        .certificate
        .as_ref()
        .ok_or_else(|| FollowError::Malformed("certificate missing".into()))
        .and_then(|w| CommitCertificate::from_wire(w).map_err(|e| FollowError::Malformed(e.to_string())))?;
    Ok((block, cert))
}

/// The ledger state, advanced only by verified blocks.
pub struct Follower {
    state: LedgerState,
}

impl Follower {
    /// At genesis.
    pub fn new(genesis: &Genesis) -> Self {
        Follower { state: LedgerState::genesis(genesis) }
    }

    /// The state after the last applied block.
    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    /// The next height expected.
    pub fn next_height(&self) -> u64 {
        self.state.height() + 1
    }

    /// Checks a decoded block as the next one.
    pub fn verify(&self, block: Block, certificate: CommitCertificate) -> Result<Verified, FollowError> {
        let height = block.header.height;
        if height != self.next_height() {
            return Err(FollowError::OutOfOrder { expected: self.next_height(), got: height });
        }
        if !block.is_well_formed() {
            return Err(FollowError::Body(height));
        }
        certificate
            .verify(height, &block.hash(), self.state.validators())
            .map_err(|e| FollowError::Certificate { height, reason: e.to_string() })?;
        let exec = self
            .state
            .check_block(&block.header, &block.txs)
            .map_err(|e| FollowError::Rules { height, reason: e.to_string() })?;
        let effects = exec.finish();
        let tx_hashes = block.txs.iter().map(|t| sha256(t)).collect();
        Ok(Verified { block, certificate, tx_hashes, effects })
    }

    /// Applies a verified block (it must still be the next one).
    pub fn apply(&mut self, v: Verified) -> (Block, CommitCertificate) {
        assert_eq!(v.block.header.height, self.next_height(), "verified against another state");
        self.state.apply(&v.block.header, v.effects);
        (v.block, v.certificate)
    }
}

/// Asks the validators for committed blocks from `from` (up to their batch size).
pub async fn fetch_blocks(bus: &Bus, from: u64) -> Result<Vec<wire::CommittedBlock>, FollowError> {
    let req = wire::BlockSyncRequest { from_height: from, to_height: 0 };
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        bus.client().request(subjects::SYNC_BLOCKS, bytes::Bytes::from(req.encode_to_vec())),
    )
    .await
    .map_err(|_| FollowError::Sync(format!("no validator answered for height {from}")))?
    .map_err(|e| FollowError::Sync(e.to_string()))?;
    let resp = wire::BlockSyncResponse::decode(reply.payload.as_ref()).map_err(|e| FollowError::Sync(e.to_string()))?;
    Ok(resp.blocks)
}

/// A stored block back as block and certificate (checks body and hash).
pub fn from_stored(s: &StoredBlock) -> Result<(Block, CommitCertificate), FollowError> {
    let bad = |e: String| FollowError::Malformed(format!("stored block {}: {e}", s.height));
    let header = wire::BlockHeader::decode(s.header.as_slice()).map_err(|e| bad(e.to_string()))?;
    let header = BlockHeader::from_wire(&header).map_err(|e| bad(e.to_string()))?;
    let cert = wire::CommitCertificate::decode(s.certificate.as_slice()).map_err(|e| bad(e.to_string()))?;
    let cert = CommitCertificate::from_wire(&cert).map_err(|e| bad(e.to_string()))?;
    let block = Block { header, txs: s.txs.iter().map(|t| t.jws.clone().into_bytes()).collect() };
    if !block.is_well_formed() || block.hash().0.as_slice() != s.hash.as_slice() {
        return Err(bad("transactions or hash do not match the header".into()));
    }
    Ok((block, cert))
}

/// A block and its certificate as stored (transactions indexed by type, signer, patient).
pub fn to_stored(block: &Block, cert: &CommitCertificate) -> Result<StoredBlock, FollowError> {
    let h = block.header.height;
    let mut txs = Vec::with_capacity(block.txs.len());
    for (i, jws) in block.txs.iter().enumerate() {
        let bad = |e: String| FollowError::Malformed(format!("block {h} tx {i}: {e}"));
        let text = std::str::from_utf8(jws).map_err(|e| bad(e.to_string()))?;
        let tx = Transaction::parse(text, &Default::default()).map_err(|e| bad(e.to_string()))?;
        txs.push(StoredTx {
            hash: tx.hash.0.to_vec(),
            height: h,
            index: i as u32,
            tx_type: tx.payload.tx_type.as_str().to_string(),
            signer: tx.signer.as_str().to_string(),
            patient: tx.payload.patient.as_ref().map(|p| p.as_str().to_string()),
            jws: text.to_string(),
            ok: true,
            code: String::new(),
        });
    }
    Ok(StoredBlock {
        height: h,
        hash: block.hash().0.to_vec(),
        prev_hash: block.header.prev_hash.0.to_vec(),
        header: block.header.to_wire().encode_to_vec(),
        certificate: cert.to_wire().encode_to_vec(),
        time_ms: block.header.time.unix_ms(),
        txs,
    })
}

/// The verified view of a stored chain: the state and the validator set of every height.
pub struct ChainView {
    follower: Follower,
    sets: std::collections::BTreeMap<u64, glucochain_types::block::ValidatorSet>,
}

impl ChainView {
    fn new(genesis: &Genesis) -> Self {
        let follower = Follower::new(genesis);
        let mut sets = std::collections::BTreeMap::new();
        sets.insert(1, follower.state().validators().clone());
        ChainView { follower, sets }
    }

    /// The committed state.
    pub fn state(&self) -> &LedgerState {
        self.follower.state()
    }

    /// The validator set that certified `height`.
    pub fn validators_at(&self, height: u64) -> Option<&glucochain_types::block::ValidatorSet> {
        self.sets.range(..=height).next_back().map(|(_, s)| s)
    }

    fn apply(&mut self, v: Verified) -> Block {
        let (block, _) = self.follower.apply(v);
        let next = self.follower.next_height();
        let current = self.follower.state().validators();
        if self.sets.values().next_back() != Some(current) {
            self.sets.insert(next, current.clone());
        }
        block
    }
}

/// A chain kept in a database by a follower (the ledger, the contracts
/// engine): every block verified before it is stored, in one database
/// transaction, then applied; rebuilt from the database at start.
pub struct StoredChain {
    /// The database.
    pub store: glucochain_store::Store,
    /// The verified view.
    pub view: std::sync::RwLock<ChainView>,
    /// The applied height, for tasks that wait until the view has reached
    /// the height an event was based on ([`StoredChain::caught_up`]).
    applied: tokio::sync::watch::Sender<u64>,
}

fn store_err(e: impl std::fmt::Display) -> FollowError {
    FollowError::Sync(format!("database: {e}"))
}

impl StoredChain {
    /// Opens `store` and re-verifies every stored block from genesis.
    pub async fn open(store: glucochain_store::Store, genesis: &Genesis) -> Result<Self, FollowError> {
        let mut view = ChainView::new(genesis);
        let latest = store.latest_height().await.map_err(store_err)?.unwrap_or(0);
        for h in 1..=latest {
            let stored = store
                .block(h)
                .await
                .map_err(store_err)?
                .ok_or_else(|| FollowError::Malformed(format!("block {h} missing from the database")))?;
            let (block, cert) = from_stored(&stored)?;
            let v = view.follower.verify(block, cert)?;
            view.apply(v);
        }
        let (applied, _) = tokio::sync::watch::channel(view.state().height());
        Ok(StoredChain { store, view: std::sync::RwLock::new(view), applied })
    }

    /// The committed height.
    pub fn height(&self) -> u64 {
        self.view.read().expect("view lock").state().height()
    }

    /// The verified state, for a caller that extends the chain itself (a validator).
    pub fn into_state(self) -> LedgerState {
        self.view.into_inner().expect("view lock").follower.state
    }

    /// Verifies, stores and applies a committed block. Returns the block when
    /// it is new; a block at or below the height must be the stored one.
    pub async fn ingest(&self, c: &wire::CommittedBlock) -> Result<Option<Block>, FollowError> {
        let (block, cert) = decode_committed(c)?;
        let height = block.header.height;
        let next = self.view.read().expect("view lock").follower.next_height();
        if height < next {
            let stored = self.store.block(height).await.map_err(store_err)?;
            let same = stored.is_some_and(|s| s.hash == block.hash().0.to_vec());
            return if same {
                Ok(None)
            } else {
                Err(FollowError::Malformed(format!("a different block at stored height {height}")))
            };
        }
        let verified = self.view.read().expect("view lock").follower.verify(block, cert)?;
        let stored = to_stored(&verified.block, &verified.certificate)?;
        self.store.insert_block(&stored).await.map_err(store_err)?;
        let block = self.view.write().expect("view lock").apply(verified);
        self.applied.send_replace(block.header.height);
        Ok(Some(block))
    }

    /// Waits until the view holds `height` (true at once when it does),
    /// for at most `patience`. An event based on a chain state (a reading
    /// accepted by ingest at its height, an alert raised under a care plan)
    /// is judged on a view at least that recent, never an older one that
    /// lacks, say, the care plan committed just before it. False when the
    /// view is still behind after `patience`.
    pub async fn caught_up(&self, height: u64, patience: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        let reached = tokio::time::timeout(patience, rx.wait_for(|h| *h >= height)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Fetches and applies blocks from the validators until `height - 1`
    /// (a gap is filled, never skipped). Calls `on_new` for each new block.
    pub async fn fill_gap(
        &self,
        bus: &Bus,
        height: u64,
        on_new: &mut (dyn FnMut(&Block) + Send),
    ) -> Result<(), FollowError> {
        while self.height() + 1 < height {
            let from = self.height() + 1;
            let blocks = fetch_blocks(bus, from).await?;
            if blocks.is_empty() {
                return Err(FollowError::Sync(format!("validators returned no block from {from}")));
            }
            for b in &blocks {
                if let Some(block) = self.ingest(b).await? {
                    on_new(&block);
                }
            }
        }
        Ok(())
    }
}

/// Follows `BLOCKS` with the durable consumer `durable`: each block is
/// verified and stored before it is acknowledged (a failure is retried); a
/// gap is filled first. `on_new` sees every newly applied block, in order.
pub async fn follow_stored(
    chain: std::sync::Arc<StoredChain>,
    bus: Bus,
    durable: &str,
    mut on_new: Box<dyn FnMut(&Block) + Send>,
) -> Result<(), FollowError> {
    let mut messages = bus.durable_messages(
        glucochain_bus::streams::StreamSpec::blocks(),
        glucochain_bus::streams::ConsumerSpec::durable(durable),
    );
    loop {
        let m = messages.next().await;
        let Ok(c) = wire::CommittedBlock::decode(m.payload.as_ref()) else {
            tracing::error!("undecodable message on BLOCKS; acknowledged and skipped");
            let _ = m.ack().await;
            continue;
        };
        let height = c.block.as_ref().and_then(|b| b.header.as_ref()).map(|h| h.height).unwrap_or(0);
        // Each traced transaction's trace goes on through this follower.
        let spans: Vec<tracing::Span> = if glucochain_telemetry::exporting() {
            glucochain_bus::trace::tx_traces(m.headers.as_ref())
                .into_iter()
                .map(|(tx, cx)| {
                    let span = tracing::info_span!("follow.block_stored", consumer = durable, tx, height);
                    glucochain_bus::trace::set_parent(&span, cx);
                    span
                })
                .collect()
        } else {
            Vec::new()
        };
        let result = async {
            chain.fill_gap(&bus, height, on_new.as_mut()).await?;
            if let Some(block) = chain.ingest(&c).await? {
                on_new(&block);
            }
            Ok::<(), FollowError>(())
        }
        .await;
        drop(spans);
        match result {
            Ok(()) => {
                let _ = m.ack().await;
            }
            Err(e) => {
                tracing::warn!(height, error = %e, "block not stored yet; will retry");
                let _ = m.ack_with(async_nats::jetstream::AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}
