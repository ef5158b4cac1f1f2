//! The validator's event loop: one task owns the consensus node, the chain
//! and the mempool and handles, one at a time, messages from peers, timer
//! expiries, transactions from the `TXS` stream, block-sync replies and a
//! housekeeping tick. Helper tasks only move bytes (NATS subscriptions, the
//! sync server, publishing committed blocks) and never touch consensus state.

use crate::chain::{Chain, committed_range, decode_committed};
use crate::config::ValidatorConfig;
use crate::mempool::{Inserted, Mempool};
use anyhow::{Context as _, bail};
use async_nats::jetstream::message::Acker;
use bytes::Bytes;
use futures::StreamExt as _;
use glucochain_bus::streams::{ConsumerSpec, StreamSpec};
use glucochain_bus::{Bus, subjects};
use glucochain_consensus::block::Block;
use glucochain_consensus::codec::{ConsensusMessage, sign_part, sign_vote};
use glucochain_consensus::context::{Address, Height, PartContent, ProposalPart};
use glucochain_consensus::node::{Decision, DropReason, Node, NodeConfig, Output};
use glucochain_consensus::wal::FileWal;
use glucochain_crypto::{Hash32, KeyPair, sha256};
use glucochain_store::{Store, StoredEvidence};
use glucochain_types::block::BlockHeader;
use glucochain_types::genesis::Genesis;
use glucochain_types::time::Timestamp;
use glucochain_types::{ParticipantId, Transaction};
use glucochain_wire::v1 as wire;
use malachitebft_core_types::{NilOrVal, Round, Timeout};
use prost::Message as _;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Test-only misbehaviour (used by the `glucochain-validator-byzantine`
/// binary); a correct validator has every kind off ([`Misbehavior::NONE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Misbehavior {
    /// Sends a conflicting second vote for every vote, and a copy with a forged signature.
    pub equivocate: bool,
    /// Proposes blocks that each break one rule, in turn: a wrong
    /// `prev_hash`, `tx_root` or `state_root`, or a transaction that is not one.
    pub bad_proposals: bool,
    /// Publishes again, with everything it sends, consensus messages of
    /// earlier heights it received from the others.
    pub replay: bool,
    /// Sends undecodable messages and proposal streams for dozens of rounds
    /// ahead with everything it sends.
    pub flood: bool,
    /// While the chain is idle, keeps sending votes for the next height, as
    /// if it had started it (to make the others commit empty blocks).
    pub nudge: bool,
}

impl Misbehavior {
    /// A correct validator.
    pub const NONE: Misbehavior =
        Misbehavior { equivocate: false, bad_proposals: false, replay: false, flood: false, nudge: false };
    /// Every kind of misbehaviour at once.
    pub const ALL: Misbehavior =
        Misbehavior { equivocate: true, bad_proposals: true, replay: true, flood: true, nudge: true };

    /// Whether this is a correct validator.
    pub fn is_honest(&self) -> bool {
        *self == Misbehavior::NONE
    }
}

/// Consensus messages received from others, kept by a replaying validator.
type ReplayPool = Arc<std::sync::Mutex<VecDeque<(String, Bytes)>>>;

enum Event {
    Net(Box<ConsensusMessage>),
    Timer {
        height: u64,
        timeout: Timeout,
        epoch: u64,
    },
    Tx {
        hash: Hash32,
        jws: Vec<u8>,
        ack: Box<Acker>,
        traceparent: Option<String>,
    },
    /// Committed blocks from a peer, and the height of its own tip.
    SyncReply {
        blocks: Vec<wire::CommittedBlock>,
        tip: u64,
    },
    SyncFailed,
    VoteSetRequest {
        reply: async_nats::Subject,
        height: u64,
        round: u32,
    },
    VoteSet(Vec<wire::SignedConsensusMessage>),
    Tick,
    /// The least interval since the last commit has passed: start `height` if there is work.
    Wake {
        height: u64,
    },
}

/// Most blocks one sync reply carries.
const SYNC_BATCH: u64 = 32;

fn kind_of(msg: &ConsensusMessage) -> &'static str {
    match msg {
        ConsensusMessage::Vote(_) => "vote",
        ConsensusMessage::Proposal(_) => "proposal",
        ConsensusMessage::Part(..) => "part",
        ConsensusMessage::PolkaCertificate(..) | ConsensusMessage::RoundCertificate(..) => "certificate",
    }
}

/// A test-only byzantine proposer's block: one rule broken, each in turn.
fn broken(block: Block, nth: u64) -> Block {
    let Block { mut header, mut txs } = block;
    match nth % 4 {
        0 => header.prev_hash = sha256(b"byzantine: not the previous block"),
        1 => {
            let mut b = Block::new(header, txs);
            b.header.tx_root = sha256(b"byzantine: not these transactions");
            return b;
        }
        2 => header.state_root = sha256(b"byzantine: not the state"),
        _ => txs.push(b"byzantine: not a transaction".to_vec()),
    }
    Block::new(header, txs)
}

fn drop_label(r: DropReason) -> &'static str {
    match r {
        DropReason::UnknownSender => "unknown_sender",
        DropReason::BadSignature => "bad_signature",
        DropReason::InvalidPart => "invalid_part",
        DropReason::Flood => "flood",
        DropReason::Stale => "stale",
    }
}

struct Validator {
    cfg: ValidatorConfig,
    key: Arc<KeyPair>,
    me: ParticipantId,
    bus: Bus,
    chain: Chain,
    node: Node<FileWal>,
    mempool: Mempool<Acker>,
    events: mpsc::Sender<Event>,
    timers: HashMap<(u64, Timeout), u64>,
    epoch: u64,
    /// The next height, when the node waits for work to start it.
    idle_next: Option<u64>,
    idle_since: Instant,
    /// The next height starts no earlier than this (the least block interval),
    /// unless a peer has already started it.
    not_before: Instant,
    wake_scheduled: bool,
    last_commit: Instant,
    peer_height: u64,
    behind_since: Option<Instant>,
    sync_inflight: bool,
    /// Sync requests in a row that no peer answered (logged every tenth).
    sync_unanswered: u32,
    last_probe: Instant,
    /// Current (height, round) and since when.
    position: ((u64, i64), Instant),
    voteset_inflight: bool,
    misbehave: Misbehavior,
    /// What a replaying validator received (empty otherwise).
    replay_pool: ReplayPool,
    /// Broken blocks a byzantine proposer made so far (which rule it breaks next).
    bad_proposals_made: u64,
    /// Peers seen at the height this idle validator would start next.
    ahead: (u64, std::collections::BTreeSet<ParticipantId>),
    /// Most transaction bytes (with framing) in a block: the genesis limit, or
    /// less if NATS could not carry such a block as one `BLOCKS` message.
    block_bytes_cap: u64,
}

/// Runs a validator until a fatal error (a failed WAL write, a diverged
/// state, a lost store). Returns only with an error.
pub async fn run(
    cfg: ValidatorConfig,
    misbehave: Misbehavior,
    ready: glucochain_telemetry::http::Readiness,
) -> anyhow::Result<()> {
    let genesis = Genesis::read_file(&cfg.genesis).context("genesis")?;
    let key = Arc::new(glucochain_crypto::KeyPair::read_pem_file(&cfg.key).context("validator key")?);
    let me = ParticipantId::from_public_key(&key.public());
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("data dir {}", cfg.data_dir.display()))?;
    let store = Store::connect(&cfg.store_url()).await.context("block store")?;
    ready.set("store", true);
    let chain = Chain::open(store.clone(), &genesis).await.context("loading the stored chain")?;
    let height = chain.state().height() + 1;
    if chain.state().validators().get(&me).is_none() {
        tracing::warn!(validator = %me, height, "this key is not in the validator set; following without voting");
    }
    let bus = Bus::connect(&cfg.nats_url, &format!("validator-{me}")).await.context("nats")?;
    bus.ensure_stream(&StreamSpec::blocks()).await?;
    let txs_stream = bus.ensure_stream(&StreamSpec::txs()).await?;
    ready.set("nats", true);

    let wal = FileWal::open(&cfg.wal_path()).context("consensus WAL")?;
    let mut node_cfg = NodeConfig::new(key.clone());
    let p = chain.state().params();
    node_cfg.timeouts.propose = Duration::from_millis(p.timeout_propose_ms);
    node_cfg.timeouts.prevote = Duration::from_millis(p.timeout_prevote_ms);
    node_cfg.timeouts.precommit = Duration::from_millis(p.timeout_precommit_ms);
    node_cfg.max_block_bytes = p.max_block_bytes as usize;
    let (node, outputs) = Node::open_lazily(node_cfg, wal, height, chain.state().validators()).context("consensus")?;
    tracing::info!(validator = %me, height, "validator started");

    // A committed block travels as one NATS message: never build or accept one larger.
    let max_payload = bus.client().server_info().max_payload;
    let block_bytes_cap = p.max_block_bytes.min(max_payload.saturating_sub(BLOCK_MESSAGE_MARGIN) as u64);
    if block_bytes_cap < p.max_block_bytes {
        tracing::warn!(
            genesis_max_block_bytes = p.max_block_bytes,
            nats_max_payload = max_payload,
            block_bytes_cap,
            "blocks are capped below the genesis limit to fit a NATS message (raise max_payload to allow larger ones)"
        );
    }
    let (tx, mut rx) = mpsc::channel::<Event>(4096);
    let replay_pool = ReplayPool::default();
    spawn_consensus_listener(&bus, me.clone(), tx.clone(), misbehave.replay.then(|| replay_pool.clone())).await?;
    spawn_tx_consumer(&bus, &txs_stream, &me, tx.clone()).await?;
    spawn_sync_server(&bus, store.clone()).await?;
    spawn_voteset_listener(&bus, tx.clone()).await?;
    let tick = tx.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(200));
        loop {
            interval.tick().await;
            if tick.send(Event::Tick).await.is_err() {
                return;
            }
        }
    });

    let mut v = Validator {
        mempool: Mempool::new(cfg.mempool_max_txs),
        cfg,
        key,
        me,
        bus,
        chain,
        node,
        events: tx,
        timers: HashMap::new(),
        epoch: 0,
        idle_next: None,
        idle_since: Instant::now(),
        not_before: Instant::now(),
        wake_scheduled: false,
        last_commit: Instant::now(),
        peer_height: 0,
        behind_since: None,
        sync_inflight: false,
        sync_unanswered: 0,
        last_probe: Instant::now(),
        position: ((0, 0), Instant::now()),
        voteset_inflight: false,
        misbehave,
        replay_pool,
        bad_proposals_made: 0,
        ahead: (0, std::collections::BTreeSet::new()),
        block_bytes_cap,
    };
    metrics::gauge!("glucochain_consensus_height").set(v.chain.state().height() as f64);
    // Counters that alerts and dashboards watch exist from the start, at zero.
    metrics::counter!("glucochain_consensus_rounds_beyond_zero_total").increment(0);
    metrics::counter!("glucochain_evidence_total").increment(0);
    metrics::counter!("glucochain_consensus_refused_proposals_total").increment(0);
    if !v.node.is_started() {
        // Nothing in flight at this height: wait for work (a tx, a peer) to start it.
        v.idle_next = Some(height);
    }
    v.handle(outputs).await?;
    // A validator that was down may have missed blocks: ask at once.
    v.request_sync(v.idle_next.unwrap_or(v.node.height().0));
    ready.set("consensus", true);
    while let Some(ev) = rx.recv().await {
        v.on_event(ev).await?;
    }
    bail!("event channel closed")
}

async fn spawn_consensus_listener(
    bus: &Bus,
    me: ParticipantId,
    tx: mpsc::Sender<Event>,
    replay_pool: Option<ReplayPool>,
) -> anyhow::Result<()> {
    let mut sub = bus.client().subscribe(subjects::CONSENSUS_ALL).await.context("subscribe consensus")?;
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            match ConsensusMessage::decode(&m.payload) {
                Ok(msg) if msg.sender().0 == me => {}
                Ok(msg) => {
                    if let Some(pool) = &replay_pool {
                        let mut pool = pool.lock().expect("replay pool");
                        if pool.len() >= 512 {
                            pool.pop_front();
                        }
                        pool.push_back((m.subject.to_string(), m.payload.clone()));
                    }
                    if tx.send(Event::Net(Box::new(msg))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    metrics::counter!("glucochain_consensus_dropped_total", "reason" => "undecodable").increment(1);
                    tracing::debug!(error = %e, subject = %m.subject, "undecodable consensus message");
                }
            }
        }
    });
    Ok(())
}

async fn spawn_tx_consumer(
    bus: &Bus,
    stream: &async_nats::jetstream::stream::Stream,
    me: &ParticipantId,
    tx: mpsc::Sender<Event>,
) -> anyhow::Result<()> {
    let mut spec = ConsumerSpec::durable(&format!("validator-{me}"));
    // A tx stays unacknowledged until committed or rejected; redeliveries are
    // recognised by hash, so a short wait only costs a little traffic.
    spec.ack_wait = Duration::from_secs(60);
    // Declared now, so that a misconfiguration stops the start-up; read
    // through NATS restarts after that.
    bus.ensure_consumer(stream, &spec).await?;
    let mut messages = bus.durable_messages(glucochain_bus::streams::StreamSpec::txs(), spec);
    tokio::spawn(async move {
        loop {
            let (msg, ack) = messages.next().await.split();
            let jws = match wire::TxEnvelope::decode(msg.payload.as_ref()) {
                Ok(env) => env.jws,
                Err(_) => msg.payload.to_vec(),
            };
            let hash = sha256(&jws);
            // Only while spans are exported: a per-transaction span is the only use.
            let traceparent = glucochain_telemetry::exporting()
                .then(|| msg.headers.as_ref().and_then(|h| h.get("traceparent")).map(|v| v.to_string()))
                .flatten();
            if tx.send(Event::Tx { hash, jws, ack: Box::new(ack), traceparent }).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

async fn spawn_voteset_listener(bus: &Bus, tx: mpsc::Sender<Event>) -> anyhow::Result<()> {
    let mut sub = bus.client().subscribe(subjects::CONSENSUS_VOTESET).await.context("subscribe voteset")?;
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let (Some(reply), Ok(req)) = (m.reply.clone(), wire::VoteSetRequest::decode(m.payload.as_ref())) else {
                continue;
            };
            if tx.send(Event::VoteSetRequest { reply, height: req.height, round: req.round }).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Room kept in a NATS message beside a block's transactions: header,
/// certificate, protobuf framing and the trace headers.
const BLOCK_MESSAGE_MARGIN: usize = 64 * 1024;

/// Protobuf framing per transaction in a block message (field tag and length).
const TX_FRAMING_BYTES: u64 = 8;

async fn spawn_sync_server(bus: &Bus, store: Store) -> anyhow::Result<()> {
    let mut sub = bus.client().subscribe(subjects::SYNC_BLOCKS).await.context("subscribe sync")?;
    let client = bus.client().clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let (Some(reply), Ok(req)) = (m.reply.clone(), wire::BlockSyncRequest::decode(m.payload.as_ref())) else {
                continue;
            };
            let max = if req.to_height >= req.from_height && req.to_height > 0 {
                (req.to_height - req.from_height + 1).min(SYNC_BATCH)
            } else {
                SYNC_BATCH
            };
            let tip = store.latest_height().await.ok().flatten().unwrap_or(0);
            let max_bytes = client.server_info().max_payload.saturating_sub(BLOCK_MESSAGE_MARGIN);
            let blocks = match committed_range(&store, req.from_height.max(1), max, max_bytes).await {
                Ok(blocks) => blocks,
                Err(e) => {
                    tracing::warn!(error = %e, from = req.from_height, "cannot serve a block sync request");
                    continue;
                }
            };
            // Stay silent when we hold nothing new: another peer may.
            if blocks.is_empty() {
                continue;
            }
            let resp = wire::BlockSyncResponse { blocks, tip_height: tip };
            let _ = client.publish(reply, Bytes::from(resp.encode_to_vec())).await;
        }
    });
    Ok(())
}

impl Validator {
    async fn on_event(&mut self, ev: Event) -> anyhow::Result<()> {
        match ev {
            Event::Net(msg) => {
                let outs = self.node.on_message(*msg)?;
                self.handle(outs).await?;
            }
            Event::Timer { height, timeout, epoch } => {
                if self.timers.get(&(height, timeout)) == Some(&epoch) {
                    self.timers.remove(&(height, timeout));
                    let outs = self.node.on_timeout(Height(height), timeout)?;
                    self.handle(outs).await?;
                }
            }
            Event::Tx { hash, jws, ack, traceparent } => self.on_tx(hash, jws, *ack, traceparent).await?,
            Event::SyncReply { blocks, tip } => {
                self.sync_inflight = false;
                self.sync_unanswered = 0;
                self.peer_height = self.peer_height.max(tip);
                for c in blocks {
                    let (block, cert) = match decode_committed(&c) {
                        Ok(decoded) => decoded,
                        Err(e) => {
                            tracing::warn!(error = %e, "a synced block does not decode");
                            break;
                        }
                    };
                    // Idle after a commit, a validator starts the next height
                    // when there is work; a certified block for it is work
                    // (a no-op unless this is the height it waits to start).
                    self.start_height(block.header.height).await?;
                    if block.header.height != self.node.height().0 || self.node.is_awaiting_commit() {
                        continue;
                    }
                    match self.node.apply_synced(block, cert) {
                        Ok(outs) => self.handle(outs).await?,
                        Err(e) => {
                            tracing::warn!(error = %e, "refused a synced block");
                            break;
                        }
                    }
                }
            }
            Event::SyncFailed => {
                self.sync_inflight = false;
                self.sync_unanswered += 1;
                if self.sync_unanswered.is_multiple_of(10) {
                    tracing::warn!(
                        requests = self.sync_unanswered,
                        height = self.node.height().0,
                        peer_height = self.peer_height,
                        "block sync: no peer answered these requests in a row"
                    );
                }
            }
            Event::VoteSetRequest { reply, height, round } => {
                if height == self.node.height().0 {
                    let votes: Vec<wire::SignedConsensusMessage> =
                        self.node.votes(Round::new(round)).iter().map(ConsensusMessage::to_wire).collect();
                    if !votes.is_empty() {
                        let resp = wire::VoteSetResponse { votes };
                        let _ = self.bus.client().publish(reply, Bytes::from(resp.encode_to_vec())).await;
                    }
                }
            }
            Event::VoteSet(votes) => {
                self.voteset_inflight = false;
                for w in votes {
                    let Ok(msg) = ConsensusMessage::from_wire(&w) else { continue };
                    if msg.sender().0 == self.me {
                        continue;
                    }
                    let outs = self.node.on_message(msg)?;
                    self.handle(outs).await?;
                }
            }
            Event::Tick => self.on_tick().await?,
            Event::Wake { height } => {
                self.wake_scheduled = false;
                // A wake-up for an earlier height (started meanwhile by a peer)
                // reschedules for the current one.
                if let Some(next) = self.idle_next
                    && !self.mempool.is_empty()
                {
                    tracing::trace!(height, next, "wake");
                    self.start_when_due(next).await?;
                }
            }
        }
        Ok(())
    }

    async fn on_tx(
        &mut self,
        hash: Hash32,
        jws: Vec<u8>,
        ack: Acker,
        traceparent: Option<String>,
    ) -> anyhow::Result<()> {
        // Committed already (a redelivery after our ack was lost): just acknowledge.
        // Older committed ones are expired; the proposer checks the store before refusing those.
        if self.chain.state().has_recent_tx(&hash) {
            let _ = ack.ack().await;
            return Ok(());
        }
        // Refusals that do not depend on the state are final at once.
        let text = String::from_utf8_lossy(&jws).into_owned();
        let parsed = Transaction::parse(&text, &Default::default())
            .and_then(|t| t.check_chain(self.chain.state().chain_id()).map(|_| t));
        if let Err(e) = parsed {
            self.reject(hash, e.code(), &e.to_string()).await;
            let _ = ack.ack().await;
            return Ok(());
        }
        match self.mempool.insert(hash, jws, ack) {
            (Inserted::Full, _) => metrics::counter!("glucochain_mempool_full_total").increment(1),
            (Inserted::New, _) => {
                // The submitter's trace goes on: one span from admission to commit.
                if let Some(tp) = traceparent
                    && let Some(p) = self.mempool.get_mut(&hash)
                {
                    let span = tracing::info_span!("validator.tx_pending", tx = %hash, height = tracing::field::Empty, outcome = tracing::field::Empty);
                    glucochain_bus::trace::set_parent_traceparent(&span, &tp);
                    p.span = Some(span);
                }
            }
            (Inserted::Redelivered, old) => drop(old),
        }
        metrics::gauge!("glucochain_mempool_txs").set(self.mempool.len() as f64);
        if let Some(next) = self.idle_next {
            self.start_when_due(next).await?;
        }
        Ok(())
    }

    /// Starts `height` now, or once the least block interval since the last
    /// commit has passed (one wake-up is scheduled for it).
    async fn start_when_due(&mut self, height: u64) -> anyhow::Result<()> {
        let now = Instant::now();
        if now >= self.not_before {
            return self.start_height(height).await;
        }
        self.schedule_wake(height);
        Ok(())
    }

    /// Asks for an [`Event::Wake`] at `not_before` (once).
    fn schedule_wake(&mut self, height: u64) {
        if self.wake_scheduled {
            return;
        }
        self.wake_scheduled = true;
        let (events, after) = (self.events.clone(), self.not_before.saturating_duration_since(Instant::now()));
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = events.send(Event::Wake { height }).await;
        });
    }

    async fn reject(&self, hash: Hash32, code: &str, reason: &str) {
        metrics::counter!("glucochain_txs_rejected_total", "code" => code.to_string()).increment(1);
        tracing::info!(tx = %hash, code, "transaction rejected");
        let mut msg = wire::TxRejected {
            tx_hash: hash.0.to_vec(),
            code: code.to_string(),
            reason: reason.to_string(),
            height: self.chain.state().height(),
            validator: self.me.as_str().to_string(),
            signature: Vec::new(),
        };
        msg.signature = self.key.sign(glucochain_crypto::Domain::TxRejection, &msg.encode_to_vec()).to_vec();
        let _ = self.bus.publish_core(subjects::TX_REJECTED, Bytes::from(msg.encode_to_vec())).await;
    }

    async fn on_tick(&mut self) -> anyhow::Result<()> {
        if self.misbehave.nudge
            && let Some(next) = self.idle_next
        {
            let vote = glucochain_consensus::context::Vote {
                vote_type: malachitebft_core_types::VoteType::Prevote,
                height: Height(next),
                round: Round::new(0),
                value: NilOrVal::Nil,
                validator: Address(self.me.clone()),
                extension: None,
            };
            self.broadcast(&ConsensusMessage::Vote(sign_vote(&self.key, vote))).await;
        }
        if let (Some(next), Some(hb)) = (self.idle_next, self.cfg.heartbeat())
            && self.idle_since.elapsed() >= hb
        {
            self.start_height(next).await?;
        }
        // Behind peers for a second without catching up: ask for blocks. The
        // height this validator needs is the one it works on or, idle after a
        // commit, the next one (which it starts when a block for it arrives).
        let mine = self.node.height().0;
        match sync_from(self.idle_next, mine, self.node.is_awaiting_commit(), self.peer_height) {
            Some(from) => {
                let since = *self.behind_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_millis(800) && !self.sync_inflight {
                    self.request_sync(from);
                }
            }
            None => self.behind_since = None,
        }
        // No progress in this round for a while: ask peers for the votes we may have lost.
        let position = (self.node.height().0, self.node.round().as_i64());
        if position != self.position.0 {
            self.position = (position, Instant::now());
        } else if self.idle_next.is_none()
            && !self.node.is_awaiting_commit()
            && !self.voteset_inflight
            && self.position.1.elapsed() >= Duration::from_secs(2)
        {
            self.position.1 = Instant::now();
            self.request_voteset(position.0, position.1.max(0) as u32);
        }
        // A height running for a while without a decision may mean the others
        // are past it and idle (so nothing tells us): probe for newer blocks.
        if self.idle_next.is_none()
            && !self.node.is_awaiting_commit()
            && !self.sync_inflight
            && self.last_commit.elapsed() >= Duration::from_secs(3)
            && self.last_probe.elapsed() >= Duration::from_secs(3)
        {
            self.last_probe = Instant::now();
            self.request_sync(mine);
        }
        metrics::gauge!("glucochain_mempool_txs").set(self.mempool.len() as f64);
        metrics::gauge!("glucochain_mempool_bytes").set(self.mempool.bytes() as f64);
        Ok(())
    }

    fn request_voteset(&mut self, height: u64, round: u32) {
        self.voteset_inflight = true;
        metrics::counter!("glucochain_voteset_requests_total").increment(1);
        let client = self.bus.client().clone();
        let events = self.events.clone();
        let req = wire::VoteSetRequest { height, round };
        tokio::spawn(async move {
            let reply = tokio::time::timeout(
                Duration::from_secs(2),
                client.request(subjects::CONSENSUS_VOTESET, Bytes::from(req.encode_to_vec())),
            )
            .await;
            let votes = match reply {
                Ok(Ok(m)) => wire::VoteSetResponse::decode(m.payload.as_ref()).map(|r| r.votes).unwrap_or_default(),
                _ => Vec::new(),
            };
            let _ = events.send(Event::VoteSet(votes)).await;
        });
    }

    fn request_sync(&mut self, from: u64) {
        self.sync_inflight = true;
        metrics::counter!("glucochain_sync_requests_total").increment(1);
        let client = self.bus.client().clone();
        let events = self.events.clone();
        let req = wire::BlockSyncRequest { from_height: from, to_height: 0 };
        tokio::spawn(async move {
            let ev = match tokio::time::timeout(
                Duration::from_secs(3),
                client.request(subjects::SYNC_BLOCKS, Bytes::from(req.encode_to_vec())),
            )
            .await
            {
                Ok(Ok(m)) => match wire::BlockSyncResponse::decode(m.payload.as_ref()) {
                    Ok(r) => Event::SyncReply { blocks: r.blocks, tip: r.tip_height },
                    Err(_) => Event::SyncFailed,
                },
                _ => Event::SyncFailed,
            };
            let _ = events.send(ev).await;
        });
    }

    async fn start_height(&mut self, height: u64) -> anyhow::Result<()> {
        if self.idle_next != Some(height) {
            return Ok(());
        }
        self.idle_next = None;
        let set = self.chain.state().validators().clone();
        let outs = self.node.start_height(height, &set)?;
        self.handle(outs).await
    }

    async fn handle(&mut self, outputs: Vec<Output>) -> anyhow::Result<()> {
        let mut queue: VecDeque<Output> = outputs.into();
        while let Some(out) = queue.pop_front() {
            let more = match out {
                Output::Broadcast(msg) => {
                    self.broadcast(&msg).await;
                    Vec::new()
                }
                Output::ScheduleTimeout { height, timeout, after } => {
                    self.epoch += 1;
                    let epoch = self.epoch;
                    self.timers.insert((height.0, timeout), epoch);
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = events.send(Event::Timer { height: height.0, timeout, epoch }).await;
                    });
                    Vec::new()
                }
                Output::CancelTimeout { height, timeout } => {
                    self.timers.remove(&(height.0, timeout));
                    Vec::new()
                }
                Output::CancelAllTimeouts => {
                    self.timers.clear();
                    Vec::new()
                }
                Output::RoundStarted { height, round, proposer } => {
                    metrics::gauge!("glucochain_consensus_round").set(round.as_i64() as f64);
                    if round.as_i64() > 0 {
                        metrics::counter!("glucochain_consensus_rounds_beyond_zero_total").increment(1);
                    }
                    tracing::debug!(height = height.0, round = round.as_i64(), %proposer, "round started");
                    Vec::new()
                }
                Output::BuildBlock { height, round, .. } => {
                    let block = self.build_block(height.0).await;
                    self.node.propose_block(height, round, block)?
                }
                Output::ValidateBlock { round, proposer, block } => {
                    let valid = self.validate(&block);
                    self.node.block_validated(round, proposer, block.hash(), valid)?
                }
                Output::Decided(d) => self.commit(d).await?,
                Output::Evidence(e) => {
                    self.record_evidence(std::slice::from_ref(&e)).await?;
                    Vec::new()
                }
                Output::PeerAhead { peer, height } => {
                    self.peer_height = self.peer_height.max(height.0);
                    tracing::trace!(%peer, height = height.0, "peer ahead");
                    if self.idle_next == Some(height.0) && self.enough_ahead(height.0, peer.0) {
                        self.idle_next = None;
                        let set = self.chain.state().validators().clone();
                        self.node.start_height(height.0, &set)?
                    } else {
                        Vec::new()
                    }
                }
                Output::Dropped { sender, reason } => {
                    metrics::counter!("glucochain_consensus_dropped_total", "reason" => drop_label(reason))
                        .increment(1);
                    tracing::debug!(%sender, ?reason, "dropped a consensus message");
                    Vec::new()
                }
            };
            queue.extend(more);
        }
        Ok(())
    }

    async fn broadcast(&self, msg: &ConsensusMessage) {
        let subject = subjects::consensus(kind_of(msg), self.me.as_str());
        if let Err(e) = self.bus.client().publish(subject.clone(), Bytes::from(msg.encode())).await {
            tracing::warn!(error = %e, "consensus publish failed");
        }
        self.misbehave_after(msg, &subject).await;
    }

    /// Whether peers with more than a third of the voting power (so at
    /// least one correct validator) have been seen at `height`, counting
    /// `peer`: an idle validator starts a height for them, not for one peer
    /// alone, or a single faulty validator could make the chain commit
    /// empty blocks by sending messages for the next height.
    fn enough_ahead(&mut self, height: u64, peer: ParticipantId) -> bool {
        if self.ahead.0 != height {
            self.ahead = (height, std::collections::BTreeSet::new());
        }
        self.ahead.1.insert(peer);
        let set = self.chain.state().validators();
        let power: u64 = self.ahead.1.iter().filter_map(|p| set.get(p)).map(|v| v.power).sum();
        power as u128 * 3 > set.total_power() as u128
    }

    /// What a test-only byzantine validator sends besides each message.
    async fn misbehave_after(&self, msg: &ConsensusMessage, subject: &str) {
        let client = self.bus.client();
        if self.misbehave.replay {
            // The oldest messages received, sent again (and kept for later).
            let old: Vec<(String, Bytes)> = {
                let mut pool = self.replay_pool.lock().expect("replay pool");
                let n = pool.len().min(8);
                let taken: Vec<_> = pool.drain(..n).collect();
                pool.extend(taken.iter().cloned());
                taken
            };
            for (subject, payload) in old {
                let _ = client.publish(subject, payload).await;
            }
        }
        if self.misbehave.flood {
            for i in 0..16u8 {
                let _ = client.publish(subject.to_string(), Bytes::from(vec![0xff, i, 0x00, 0x7f])).await;
            }
            // Proposal streams for many rounds of the next height: more than
            // a validator buffers for one height.
            let height = Height(msg.height() + 1);
            let header = BlockHeader {
                chain_id: self.chain.state().chain_id().clone(),
                height: height.0,
                time: Timestamp::now(),
                prev_hash: Hash32::default(),
                tx_root: Hash32::default(),
                state_root: Hash32::default(),
                validators_hash: Hash32::default(),
                proposer: self.me.clone(),
                tx_count: 0,
            };
            // Rounds far ahead, so that its own real proposals are not among them.
            for round in 1000..1080u32 {
                let part = ProposalPart {
                    height,
                    round: Round::new(round),
                    proposer: Address(self.me.clone()),
                    sequence: 0,
                    content: PartContent::Header(header.clone()),
                };
                let m = sign_part(&self.key, part);
                let _ =
                    client.publish(subjects::consensus(kind_of(&m), self.me.as_str()), Bytes::from(m.encode())).await;
            }
        }
        if self.misbehave.equivocate
            && let ConsensusMessage::Vote(v) = msg
        {
            let mut other = v.message.clone();
            other.value = match other.value {
                NilOrVal::Nil => NilOrVal::Val(sha256(b"byzantine: a block nobody proposed")),
                NilOrVal::Val(_) => NilOrVal::Nil,
            };
            let conflicting = ConsensusMessage::Vote(sign_vote(&self.key, other));
            let mut forged = v.clone();
            forged.signature.0[0] ^= 0x55;
            for m in [conflicting, ConsensusMessage::Vote(forged)] {
                let _ = self.bus.client().publish(subject.to_string(), Bytes::from(m.encode())).await;
            }
        }
    }

    /// Takes valid transactions from the mempool, oldest first, up to the
    /// block limits; final refusals are published and acknowledged.
    async fn build_block(&mut self, height: u64) -> Block {
        let state = self.chain.state();
        let now = Timestamp::now().unix_ms().max(state.last_block_time().unix_ms() + 1);
        let time = Timestamp::from_unix_ms(now);
        let params = state.params().clone();
        let mut exec = state.execute(time);
        let mut txs = Vec::new();
        let mut refused = Vec::new();
        for (hash, p) in self.mempool.iter() {
            let framed = exec.bytes() + (txs.len() as u64 + 1) * TX_FRAMING_BYTES + p.jws.len() as u64;
            if txs.len() >= params.max_block_txs as usize || framed > self.block_bytes_cap {
                break;
            }
            match exec.admit(&p.jws) {
                Ok(_) => txs.push(p.jws.clone()),
                Err(r) if r.is_retryable() => {}
                Err(r) => refused.push((*hash, r)),
            }
        }
        let effects = exec.finish();
        let header = BlockHeader {
            chain_id: state.chain_id().clone(),
            height,
            time,
            prev_hash: state.last_block_hash(),
            tx_root: Hash32::default(),
            state_root: state.root(),
            validators_hash: state.validators().hash(),
            proposer: self.me.clone(),
            tx_count: 0,
        };
        let mut block = Block::new(header, txs);
        self.chain.built(&block, effects);
        if self.misbehave.bad_proposals {
            block = broken(block, self.bad_proposals_made);
            self.bad_proposals_made += 1;
        }
        for (hash, r) in refused {
            if let Some(p) = self.mempool.remove(&hash) {
                // A redelivery of a committed transaction is acknowledged, not refused.
                if matches!(r.code, "duplicate" | "expired")
                    && self.chain.store().transaction(&hash.0).await.ok().flatten().is_some()
                {
                    let _ = p.ack.ack().await;
                    continue;
                }
                if let Some(span) = &p.span {
                    span.record("outcome", r.code);
                }
                self.reject(hash, r.code, &r.reason).await;
                let _ = p.ack.ack().await;
            }
        }
        tracing::info!(height, txs = block.txs.len(), "proposing block");
        block
    }

    /// Whether a proposed block may be voted for; a refusal is counted
    /// against its proposer (`glucochain_consensus_refused_proposals_total`).
    fn validate(&mut self, block: &Block) -> bool {
        let valid = self.check_proposal(block);
        if !valid {
            metrics::counter!("glucochain_consensus_refused_proposals_total", "proposer" => block.header.proposer.to_string())
                .increment(1);
        }
        valid
    }

    fn check_proposal(&mut self, block: &Block) -> bool {
        let skew = self.cfg.max_clock_skew_secs as i64 * 1000;
        if block.header.time.unix_ms() > Timestamp::now().unix_ms() + skew {
            tracing::warn!(height = block.header.height, "proposed block time is in the future");
            return false;
        }
        let framed: u64 = block.txs.iter().map(|t| t.len() as u64 + TX_FRAMING_BYTES).sum();
        if framed > self.block_bytes_cap {
            tracing::warn!(
                height = block.header.height,
                bytes = framed,
                cap = self.block_bytes_cap,
                "proposed block too large to publish"
            );
            return false;
        }
        match self.chain.check(block) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(height = block.header.height, error = %e, "proposed block refused");
                false
            }
        }
    }

    /// Evidence of equivocation: stored (once), counted, logged.
    async fn record_evidence(&self, evidence: &[glucochain_consensus::node::Equivocation]) -> anyhow::Result<()> {
        for e in evidence {
            let kind = match e.kind {
                glucochain_consensus::node::EquivocationKind::Vote => "vote",
                glucochain_consensus::node::EquivocationKind::Proposal => "proposal",
            };
            let stored = StoredEvidence {
                hash: glucochain_crypto::sha256_parts(&[&e.first, &e.second]).0.to_vec(),
                validator: e.validator.as_str().to_string(),
                kind: kind.into(),
                height: e.height,
                round: e.round,
                first: e.first.clone(),
                second: e.second.clone(),
            };
            if self.chain.store().insert_evidence(&stored).await? {
                metrics::counter!("glucochain_evidence_total", "validator" => e.validator.as_str().to_string(), "kind" => kind)
                    .increment(1);
                tracing::warn!(validator = %e.validator, kind, height = e.height, round = e.round, "equivocation evidence recorded");
            }
        }
        Ok(())
    }

    async fn commit(&mut self, d: Decision) -> anyhow::Result<Vec<Output>> {
        let height = d.block.header.height;
        let committed = self.chain.commit(&d.block, &d.certificate).await.context("commit")?;
        self.record_evidence(&d.evidence).await?;
        // The committed transactions leave the pool; their traces ride on the block message.
        let mut headers = async_nats::HeaderMap::new();
        let mut traced = 0usize;
        for tx in &d.block.txs {
            let tx_hash = sha256(tx);
            if let Some(p) = self.mempool.remove(&tx_hash) {
                if let Some(span) = p.span {
                    span.record("height", height);
                    span.record("outcome", "committed");
                    let tp = glucochain_bus::trace::span_traceparent(&span);
                    match tp {
                        Some(tp) if traced < glucochain_bus::trace::MAX_TX_TRACES => {
                            glucochain_bus::trace::add_tx_trace(&mut headers, &tx_hash.to_string(), &tp);
                            traced += 1;
                        }
                        _ => metrics::counter!("glucochain_trace_contexts_dropped_total").increment(1),
                    }
                }
                let _ = p.ack.ack().await;
            }
        }
        // Every validator publishes; the stream keeps one copy per block hash.
        let bus = self.bus.clone();
        let hash = d.block.hash();
        tokio::spawn(async move {
            let payload = Bytes::from(committed.encode_to_vec());
            for attempt in 0..30u32 {
                match bus
                    .publish_with_headers(
                        subjects::BLOCK_COMMITTED,
                        &hash.to_string(),
                        headers.clone(),
                        payload.clone(),
                    )
                    .await
                {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, "publishing the committed block failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt.min(10) + 1))).await;
                    }
                }
            }
        });
        // Metrics: height, interval, size, who signed.
        let interval = self.last_commit.elapsed().as_secs_f64();
        self.last_commit = Instant::now();
        metrics::gauge!("glucochain_consensus_height").set(height as f64);
        metrics::histogram!("glucochain_block_interval_seconds").record(interval);
        metrics::histogram!("glucochain_block_txs").record(d.block.txs.len() as f64);
        metrics::gauge!("glucochain_mempool_txs").set(self.mempool.len() as f64);
        let signers: std::collections::HashSet<&ParticipantId> =
            d.certificate.signatures.iter().map(|s| &s.validator).collect();
        for v in self.node.validator_set().validators() {
            let label = v.id.as_str().to_string();
            if signers.contains(&v.id) {
                metrics::counter!("glucochain_votes_signed_total", "validator" => label).increment(1);
            } else {
                metrics::counter!("glucochain_votes_missed_total", "validator" => label).increment(1);
            }
        }
        tracing::info!(height, hash = %hash, txs = d.block.txs.len(), round = d.certificate.round, "committed block");

        let next = height + 1;
        self.not_before = self.last_commit + self.cfg.min_block_interval();
        let work = !self.mempool.is_empty() || self.peer_height >= next;
        if work && (self.peer_height >= next || self.cfg.min_block_interval().is_zero()) {
            let set = self.chain.state().validators().clone();
            Ok(self.node.start_height(next, &set)?)
        } else {
            self.idle_next = Some(next);
            self.idle_since = Instant::now();
            if work {
                self.schedule_wake(next);
            }
            Ok(Vec::new())
        }
    }
}

/// The height to ask peers for blocks from when this validator is behind
/// them (`peer_height` is the highest height it has seen a peer at): the
/// height it works on or, idle after a commit, the next one. `None` when it is
/// not behind, or while it commits a decision.
fn sync_from(idle_next: Option<u64>, height: u64, awaiting_commit: bool, peer_height: u64) -> Option<u64> {
    let needed = match idle_next {
        Some(next) => next,
        None if awaiting_commit => return None,
        None => height,
    };
    (peer_height > needed).then_some(needed)
}

#[cfg(test)]
mod tests {
    use super::sync_from;

    #[test]
    fn a_validator_behind_its_peers_syncs_from_the_height_it_needs() {
        // Working on 933 while peers are at 1077: from 933.
        assert_eq!(sync_from(None, 933, false, 1077), Some(933));
        // Idle after committing 933 (the node still reports 933 and awaits the
        // next start): from 934, the height it would start.
        assert_eq!(sync_from(Some(934), 933, true, 1077), Some(934));
        // Peers only at the height it works on or would start: not behind.
        assert_eq!(sync_from(None, 933, false, 933), None);
        assert_eq!(sync_from(Some(934), 933, true, 934), None);
        // Committing a decision: the commit comes first.
        assert_eq!(sync_from(None, 933, true, 1077), None);
    }
}
