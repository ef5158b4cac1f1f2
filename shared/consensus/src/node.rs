//! A deterministic, I/O-free validator node around Malachite's consensus
//! state machine.
//!
//! The runtime (the validator service, or the network simulation in the
//! tests) feeds the node messages, timer expiries, built blocks and block
//! verdicts; the node answers with [`Output`]s to carry out: broadcasts,
//! timers, requests to build or validate a block, and decisions to commit.
//! Only the write-ahead log is touched directly, synchronously, so a vote is
//! on stable storage before the output that sends it exists.
//!
//! Heights advance only when the runtime says so ([`Node::start_height`])
//! after it has persisted a [`Decision`]: the runtime chooses when (at once
//! when there is work, or at a slow heartbeat), which keeps an idle chain
//! silent.

use crate::block::Block;
use crate::codec::{self, ConsensusMessage, vote_sign_bytes};
use crate::context::{Address, BlockRef, GlucoContext, Height, PartContent, Timeouts, ValidatorSet, Vote};
use crate::late::{DecidedVotes, LateVote};
use crate::wal::{Wal, decode_record, encode_record};
use glucochain_crypto::{Domain, Hash32, KeyPair, PublicKey};
use glucochain_types::ParticipantId;
use glucochain_types::block::{CommitCertificate, CommitSig, ValidatorSet as TypesValidatorSet};
use malachitebft_core_consensus::{
    ConsensusMsg, Effect, Input, LivenessMsg, LocallyProposedValue, MisbehaviorEvidence, Params, ProposedValue,
    Resumable, SignedConsensusMsg, State, process,
};
use malachitebft_core_types::{
    self as mt, CertificateError, Context as _, NilOrVal, PolkaCertificate, Round, RoundCertificate,
    RoundCertificateType, ThresholdParam, ThresholdParams, Timeout, TimeoutKind, Validator as _, ValidatorSet as _,
    Validity, ValueOrigin, ValuePayload, VoteExtensionPolicy, VoteType,
};
use malachitebft_metrics::Metrics;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Decided heights whose votes are kept to catch late double votes (a
/// validator a few heights behind the quorum is still caught).
const DECIDED_HEIGHTS_KEPT: usize = 8;

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This validator's consensus key.
    pub key: Arc<KeyPair>,
    /// Consensus timeouts.
    pub timeouts: Timeouts,
    /// Transactions per streamed proposal part.
    pub txs_per_part: usize,
    /// Largest block (sum of tx bytes) accepted from a peer's part stream.
    pub max_block_bytes: usize,
    /// Most part streams buffered per height from any one proposer (bounds
    /// memory under flooding). Counted per proposer, so that a flooding
    /// validator fills only its own share and never crowds out the honest
    /// proposer's stream (a per-height cap let one byzantine validator stall
    /// the chain; found by the byzantine cluster test).
    pub max_streams_per_proposer: usize,
}

impl NodeConfig {
    /// Defaults for `key`: 3 s propose, 1 s prevote/precommit (+0.5 s per round), 64 txs per part.
    pub fn new(key: Arc<KeyPair>) -> Self {
        let timeouts = Timeouts {
            propose: Duration::from_millis(3000),
            propose_delta: Duration::from_millis(500),
            prevote: Duration::from_millis(1000),
            prevote_delta: Duration::from_millis(500),
            precommit: Duration::from_millis(1000),
            precommit_delta: Duration::from_millis(500),
            rebroadcast: Duration::from_millis(5000),
            max_timeout: Duration::from_secs(30),
        };
        NodeConfig { key, timeouts, txs_per_part: 64, max_block_bytes: 8 << 20, max_streams_per_proposer: 16 }
    }
}

/// Why a message from a peer was dropped (for metrics and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The sender is not in the validator set.
    UnknownSender,
    /// The sender's signature does not verify.
    BadSignature,
    /// A proposal part that does not fit its stream (wrong proposer, height, size, hash).
    InvalidPart,
    /// Too many streams buffered for the height.
    Flood,
    /// For a height already decided here (late, or replayed).
    Stale,
}

/// What kind of message a validator signed twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EquivocationKind {
    /// Two different votes of one type for one height and round.
    Vote,
    /// Two different proposals for one height and round.
    Proposal,
}

/// Proof that a validator signed two conflicting messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    /// The validator.
    pub validator: ParticipantId,
    /// Vote or proposal.
    pub kind: EquivocationKind,
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// The first message, as encoded `SignedConsensusMessage` (anyone can verify it).
    pub first: Vec<u8>,
    /// The conflicting one.
    pub second: Vec<u8>,
}

/// A decided block, ready to be committed by the runtime.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The block.
    pub block: Block,
    /// Precommits of more than 2/3 of the voting power for it.
    pub certificate: CommitCertificate,
    /// Equivocations seen while deciding this height.
    pub evidence: Vec<Equivocation>,
}

/// Something the runtime must do for the node.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send to every other validator.
    Broadcast(ConsensusMessage),
    /// Call [`Node::on_timeout`] with these after `after`.
    ScheduleTimeout {
        /// Height the timer belongs to.
        height: Height,
        /// The timeout.
        timeout: Timeout,
        /// Delay.
        after: Duration,
    },
    /// Cancel one timer.
    CancelTimeout {
        /// Height.
        height: Height,
        /// The timeout.
        timeout: Timeout,
    },
    /// Cancel every timer.
    CancelAllTimeouts,
    /// A new round began.
    RoundStarted {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Its proposer.
        proposer: Address,
    },
    /// This node proposes: build a block and hand it to [`Node::propose_block`].
    BuildBlock {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// The block is useless after this long.
        within: Duration,
    },
    /// A peer's block arrived whole: check it and answer with [`Node::block_validated`].
    ValidateBlock {
        /// Round it was proposed in.
        round: Round,
        /// Its proposer.
        proposer: Address,
        /// The block.
        block: Block,
    },
    /// The height is decided: persist, then call [`Node::start_height`].
    Decided(Decision),
    /// A peer sent a message for a later height: this node may be behind.
    PeerAhead {
        /// The peer.
        peer: Address,
        /// Its height.
        height: Height,
    },
    /// A double vote for the height decided last, seen only after the
    /// decision (a slow validator's votes, or ones that came in while the
    /// runtime committed): store it like a [`Decision`]'s evidence.
    Evidence(Equivocation),
    /// A message was dropped.
    Dropped {
        /// Its sender as claimed.
        sender: Address,
        /// Why.
        reason: DropReason,
    },
}

/// A failure that must stop the validator (continuing could double-sign).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The write-ahead log could not be read or written.
    #[error("write-ahead log: {0}")]
    Wal(#[from] std::io::Error),
    /// A WAL record does not decode.
    #[error("write-ahead log record: {0}")]
    WalRecord(codec::CodecError),
    /// The WAL holds a later height than the one asked to start: the block store lost blocks.
    #[error("the write-ahead log is at height {wal} but the node was asked to start height {start}")]
    WalAhead {
        /// WAL height.
        wal: u64,
        /// Requested height.
        start: u64,
    },
    /// Malachite reported an internal error.
    #[error("consensus: {0}")]
    Consensus(String),
    /// A height was started out of order.
    #[error("cannot start height {requested} at height {current}")]
    HeightOrder {
        /// Current height.
        current: u64,
        /// Requested.
        requested: u64,
    },
    /// The decided block is unknown to this node (should never happen).
    #[error("decided block {0} is not known")]
    MissingDecidedBlock(Hash32),
}

/// Why a block from block sync was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    /// Not the height this node needs.
    #[error("block is for height {got}, this node needs {want}")]
    WrongHeight {
        /// Needed.
        want: u64,
        /// Offered.
        got: u64,
    },
    /// `tx_root`/`tx_count` do not match the transactions.
    #[error("block body does not match its header")]
    Malformed,
    /// The certificate does not prove a quorum for this block.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The node already decided this height and waits for the commit.
    #[error("height already decided")]
    AlreadyDecided,
}

#[derive(Default)]
struct PartStream {
    parts: BTreeMap<u32, ConsensusMessage>,
    fin: Option<(u32, Hash32)>,
    bytes: usize,
    done: bool,
}

struct Host<W: Wal> {
    cfg: NodeConfig,
    address: Address,
    wal: W,
    height: Height,
    types_set: TypesValidatorSet,
    validators: ValidatorSet,
    replaying: bool,
    blocks: HashMap<Hash32, Block>,
    verdicts: HashMap<Hash32, bool>,
    value_parts: HashMap<Hash32, Vec<ConsensusMessage>>,
    own_proposals: HashSet<Round>,
    streams: BTreeMap<(Height, Round, Address), PartStream>,
    decided: Option<CommitCertificate>,
    awaiting_commit: bool,
    outputs: Vec<Output>,
    fatal: Option<NodeError>,
    /// Signature of the message being processed, already verified by `on_message`.
    preverified: Option<crate::context::Signature>,
    /// Whether consensus runs at `height` (false while a lazily opened node waits).
    started: bool,
    /// Messages received before the height started.
    stash: Vec<ConsensusMessage>,
    /// Slots (round, vote type, validator) of the double votes reported in
    /// this height's decision.
    reported: Vec<(Round, VoteType, Address)>,
    /// The votes of the heights decided last, newest last, to catch double
    /// votes that arrive late.
    previous: std::collections::VecDeque<DecidedVotes>,
}

/// One validator's consensus.
pub struct Node<W: Wal> {
    state: State<GlucoContext>,
    metrics: Metrics,
    host: Host<W>,
}

fn params(address: Address) -> Params<GlucoContext> {
    Params {
        address,
        threshold_params: ThresholdParams::default(),
        value_payload: ValuePayload::ProposalAndParts,
        enabled: true,
    }
}

impl<W: Wal> Node<W> {
    /// Starts consensus at `height` with `validators`, replaying the WAL if it
    /// holds this height (a restart), so the node re-sends exactly the votes
    /// it sent before and never signs a conflicting one.
    pub fn start(
        cfg: NodeConfig,
        wal: W,
        height: u64,
        validators: &TypesValidatorSet,
    ) -> Result<(Self, Vec<Output>), NodeError> {
        Self::open(cfg, wal, height, validators, false)
    }

    /// Like [`Node::start`], but when the WAL holds nothing for `height` the
    /// height is not started until [`Node::start_height`] is called for it
    /// (when there is work), so a restarted idle chain stays idle. Messages
    /// for the height that arrive meanwhile are verified, kept, and announced
    /// with [`Output::PeerAhead`]; they are processed once the height starts.
    pub fn open_lazily(
        cfg: NodeConfig,
        wal: W,
        height: u64,
        validators: &TypesValidatorSet,
    ) -> Result<(Self, Vec<Output>), NodeError> {
        Self::open(cfg, wal, height, validators, true)
    }

    fn open(
        cfg: NodeConfig,
        mut wal: W,
        height: u64,
        validators: &TypesValidatorSet,
        lazy: bool,
    ) -> Result<(Self, Vec<Output>), NodeError> {
        let address = Address(ParticipantId::from_public_key(&cfg.key.public()));
        let ctx_set = ValidatorSet::from_types(validators);
        let state = State::new(GlucoContext, Height(height), ctx_set.clone(), params(address.clone()), 4096, 1024);
        let wal_height = wal.height();
        if wal_height > height {
            return Err(NodeError::WalAhead { wal: wal_height, start: height });
        }
        let mut replay = Vec::new();
        let mut blocks = HashMap::new();
        let mut own_proposals = HashSet::new();
        if wal_height == height {
            for bytes in wal.entries()? {
                let entry = decode_record(&bytes).map_err(NodeError::WalRecord)?;
                if let Input::ProposedValue(pv, _) = &entry.input
                    && pv.proposer == address
                {
                    own_proposals.insert(pv.round);
                }
                if let Some(block) = entry.block {
                    blocks.insert(block.hash(), block);
                }
                replay.push(entry.input);
            }
        } else {
            wal.reset(height)?;
        }
        let host = Host {
            cfg,
            address,
            wal,
            height: Height(height),
            types_set: validators.clone(),
            validators: ctx_set.clone(),
            replaying: false,
            blocks,
            verdicts: HashMap::new(),
            value_parts: HashMap::new(),
            own_proposals,
            streams: BTreeMap::new(),
            decided: None,
            awaiting_commit: false,
            outputs: Vec::new(),
            fatal: None,
            preverified: None,
            started: true,
            stash: Vec::new(),
            reported: Vec::new(),
            previous: Default::default(),
        };
        let mut node = Node { state, metrics: Metrics::new(), host };
        let restart = !replay.is_empty();
        if lazy && !restart {
            node.host.started = false;
            return Ok((node, Vec::new()));
        }
        node.process(Input::StartHeight(Height(height), ctx_set, restart, None, VoteExtensionPolicy::Disabled))?;
        if restart {
            tracing::info!(height, records = replay.len(), "replaying the consensus WAL");
            node.state.index_wal_entries(replay.iter());
            node.host.replaying = true;
            let result = replay.into_iter().try_for_each(|input| node.process(input));
            node.host.replaying = false;
            node.state.reset_entries_index();
            result?;
        }
        let outputs = node.take_outputs()?;
        Ok((node, outputs))
    }

    /// This validator's address.
    pub fn address(&self) -> &Address {
        &self.host.address
    }

    /// The height being decided (or, once decided, awaiting commit).
    pub fn height(&self) -> Height {
        self.host.height
    }

    /// The current round.
    pub fn round(&self) -> Round {
        self.state.round()
    }

    /// Whether the height is decided and the node waits for [`Node::start_height`].
    pub fn is_awaiting_commit(&self) -> bool {
        self.host.awaiting_commit
    }

    /// Every signed vote this node holds for `round` of the current height
    /// (its own and those received), to answer a vote-set request.
    pub fn votes(&self, round: Round) -> Vec<ConsensusMessage> {
        self.state
            .driver
            .votes()
            .per_round(round)
            .map(|r| r.received_votes().iter().cloned().map(ConsensusMessage::Vote).collect())
            .unwrap_or_default()
    }

    /// The validator set of the current height.
    pub fn validator_set(&self) -> &TypesValidatorSet {
        &self.host.types_set
    }

    fn process(&mut self, input: Input<GlucoContext>) -> Result<(), NodeError> {
        let host = &mut self.host;
        let result = process!(
            input: input,
            state: &mut self.state,
            metrics: &self.metrics,
            with: effect => host.handle(effect)
        );
        if let Err(e) = result {
            tracing::warn!(error = ?e, "consensus input not processed");
            if matches!(e, malachitebft_core_consensus::Error::ReplayDivergence(..)) {
                return Err(NodeError::Consensus(format!("{e:?}")));
            }
        }
        match self.host.fatal.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn take_outputs(&mut self) -> Result<Vec<Output>, NodeError> {
        if let Some(e) = self.host.fatal.take() {
            return Err(e);
        }
        Ok(std::mem::take(&mut self.host.outputs))
    }

    /// A message from a peer (signature checked here or by consensus).
    pub fn on_message(&mut self, msg: ConsensusMessage) -> Result<Vec<Output>, NodeError> {
        let sender = msg.sender().clone();
        let height = Height(msg.height());
        if let Some(previous) = self.host.previous.iter_mut().find(|p| p.height() == height)
            && let ConsensusMessage::Vote(v) = msg
        {
            let out = match previous.on_vote(v) {
                LateVote::UnknownSender => Output::Dropped { sender, reason: DropReason::UnknownSender },
                LateVote::BadSignature => Output::Dropped { sender, reason: DropReason::BadSignature },
                LateVote::Conflict(e) => Output::Evidence(*e),
                LateVote::Stale => Output::Dropped { sender, reason: DropReason::Stale },
            };
            self.host.outputs.push(out);
            return self.take_outputs();
        }
        let Some(key) = self.host.validators.validators().iter().find(|v| v.address == sender).map(|v| v.public_key)
        else {
            self.host.outputs.push(Output::Dropped { sender, reason: DropReason::UnknownSender });
            return self.take_outputs();
        };
        if height < self.host.height {
            self.host.outputs.push(Output::Dropped { sender, reason: DropReason::Stale });
            return self.take_outputs();
        }
        if height > self.host.height {
            self.host.outputs.push(Output::PeerAhead { peer: sender.clone(), height });
        }
        // Every message is checked against its sender's key here, so forged
        // ones are counted; consensus then skips re-verifying the same signature.
        if !msg.verify(&key) {
            self.host.outputs.push(Output::Dropped { sender, reason: DropReason::BadSignature });
            return self.take_outputs();
        }
        if !self.host.started {
            if self.host.stash.len() < 4096 {
                self.host.stash.push(msg);
            }
            if height == self.host.height {
                self.host.outputs.push(Output::PeerAhead { peer: sender, height });
            }
            return self.take_outputs();
        }
        self.host.preverified = Some(msg.signature().clone());
        let result = match msg {
            ConsensusMessage::Vote(v) => self.process(Input::Vote(v)),
            ConsensusMessage::Proposal(p) => self.process(Input::Proposal(p)),
            ConsensusMessage::Part(..) => self.on_part(msg),
            ConsensusMessage::PolkaCertificate(c, ..) => self.process(Input::PolkaCertificate(c)),
            ConsensusMessage::RoundCertificate(c, ..) => self.process(Input::RoundCertificate(c)),
        };
        self.host.preverified = None;
        result?;
        self.take_outputs()
    }

    fn on_part(&mut self, msg: ConsensusMessage) -> Result<(), NodeError> {
        let ConsensusMessage::Part(part, _) = &msg else { return Ok(()) };
        let key = (part.height, part.round, part.proposer.clone());
        let host = &mut self.host;
        if part.height > Height(host.height.0 + 2) {
            return Ok(());
        }
        let from_proposer = host.streams.keys().filter(|(h, _, p)| *h == part.height && *p == part.proposer).count();
        if !host.streams.contains_key(&key) && from_proposer >= host.cfg.max_streams_per_proposer {
            host.outputs.push(Output::Dropped { sender: part.proposer.clone(), reason: DropReason::Flood });
            return Ok(());
        }
        let stream = host.streams.entry(key.clone()).or_default();
        if stream.done || stream.parts.contains_key(&part.sequence) {
            return Ok(());
        }
        let size = match &part.content {
            PartContent::Txs(txs) => txs.iter().map(Vec::len).sum(),
            PartContent::Header(_) => 0,
            PartContent::Fin { parts, block_hash } => {
                stream.fin = Some((*parts, *block_hash));
                0
            }
        };
        stream.bytes += size;
        if stream.bytes > host.cfg.max_block_bytes || part.sequence > 1 + (host.cfg.max_block_bytes as u32) {
            stream.done = true;
            stream.parts.clear();
            host.outputs.push(Output::Dropped { sender: part.proposer.clone(), reason: DropReason::InvalidPart });
            return Ok(());
        }
        stream.parts.insert(part.sequence, msg.clone());
        if key.0 == host.height {
            self.try_assemble(&key);
        }
        Ok(())
    }

    fn try_assemble(&mut self, key: &(Height, Round, Address)) {
        let host = &mut self.host;
        let Some(stream) = host.streams.get_mut(key) else { return };
        let Some((count, hash)) = stream.fin else { return };
        if stream.done || stream.parts.len() as u32 != count {
            return;
        }
        stream.done = true;
        let parts: Vec<ConsensusMessage> = std::mem::take(&mut stream.parts).into_values().collect();
        let (height, round, proposer) = key.clone();
        let mut header = None;
        let mut txs = Vec::new();
        let mut in_order = true;
        for (i, m) in parts.iter().enumerate() {
            let ConsensusMessage::Part(p, _) = m else { unreachable!("streams hold parts only") };
            in_order &= p.sequence == i as u32;
            match &p.content {
                PartContent::Header(h) if i == 0 => header = Some(h.clone()),
                PartContent::Txs(chunk) if i > 0 && i + 1 < parts.len() => txs.extend(chunk.iter().cloned()),
                PartContent::Fin { .. } if i + 1 == parts.len() => {}
                _ => in_order = false,
            }
        }
        let expected_proposer = GlucoContext.select_proposer(&host.validators, height, round).address.clone();
        let block = match header {
            Some(h) if in_order => Block { header: h, txs },
            _ => {
                host.outputs.push(Output::Dropped { sender: proposer, reason: DropReason::InvalidPart });
                return;
            }
        };
        if proposer != expected_proposer
            || block.header.height != height.0
            || block.header.proposer != proposer.0
            || !block.is_well_formed()
            || block.hash() != hash
        {
            host.outputs.push(Output::Dropped { sender: proposer, reason: DropReason::InvalidPart });
            return;
        }
        host.value_parts.entry(hash).or_insert(parts);
        if host.verdicts.contains_key(&hash) || host.blocks.contains_key(&hash) && proposer == host.address {
            return;
        }
        host.blocks.insert(hash, block.clone());
        host.outputs.push(Output::ValidateBlock { round, proposer, block });
    }

    /// A consensus timer fired.
    pub fn on_timeout(&mut self, height: Height, timeout: Timeout) -> Result<Vec<Output>, NodeError> {
        if height == self.host.height && !self.host.awaiting_commit && self.host.started {
            self.process(Input::TimeoutElapsed(timeout))?;
        }
        self.take_outputs()
    }

    /// The block this node proposes for `height`/`round` (answer to [`Output::BuildBlock`]).
    pub fn propose_block(&mut self, height: Height, round: Round, block: Block) -> Result<Vec<Output>, NodeError> {
        if height != self.host.height
            || !self.host.started
            || self.host.awaiting_commit
            || self.host.own_proposals.contains(&round)
        {
            return self.take_outputs();
        }
        let hash = block.hash();
        self.host.own_proposals.insert(round);
        self.host.blocks.insert(hash, block.clone());
        self.host.verdicts.insert(hash, true);
        self.process(Input::Propose(LocallyProposedValue::new(height, round, BlockRef(hash))))?;
        let address = self.host.address.clone();
        let parts: Vec<ConsensusMessage> =
            codec::block_parts(&block, height, round, &address, self.host.cfg.txs_per_part)
                .into_iter()
                .map(|p| codec::sign_part(&self.host.cfg.key, p))
                .collect();
        self.host.value_parts.insert(hash, parts.clone());
        self.host.outputs.extend(parts.into_iter().map(Output::Broadcast));
        self.take_outputs()
    }

    /// The runtime's verdict on a block from [`Output::ValidateBlock`].
    pub fn block_validated(
        &mut self,
        round: Round,
        proposer: Address,
        block_hash: Hash32,
        valid: bool,
    ) -> Result<Vec<Output>, NodeError> {
        if !self.host.blocks.contains_key(&block_hash) || self.host.verdicts.contains_key(&block_hash) {
            return self.take_outputs();
        }
        self.host.verdicts.insert(block_hash, valid);
        let pv = ProposedValue {
            height: self.host.height,
            round,
            valid_round: Round::Nil,
            proposer,
            value: BlockRef(block_hash),
            validity: if valid { Validity::Valid } else { Validity::Invalid },
        };
        self.process(Input::ProposedValue(pv, ValueOrigin::Consensus))?;
        self.take_outputs()
    }

    /// A decided block fetched from a peer (block sync), for the current
    /// height: accepted only with a valid commit certificate.
    pub fn apply_synced(&mut self, block: Block, certificate: CommitCertificate) -> Result<Vec<Output>, SyncError> {
        if self.host.awaiting_commit {
            return Err(SyncError::AlreadyDecided);
        }
        let want = self.host.height.0;
        if block.header.height != want || certificate.height != want {
            return Err(SyncError::WrongHeight { want, got: block.header.height });
        }
        if !block.is_well_formed() {
            return Err(SyncError::Malformed);
        }
        certificate
            .verify(want, &block.hash(), &self.host.types_set)
            .map_err(|e| SyncError::Certificate(e.to_string()))?;
        self.host.awaiting_commit = true;
        self.host.outputs.push(Output::CancelAllTimeouts);
        self.host.outputs.push(Output::Decided(Decision { block, certificate, evidence: Vec::new() }));
        Ok(std::mem::take(&mut self.host.outputs))
    }

    /// Starts the next height once the runtime has committed the decision,
    /// with the validator set that applies to it.
    pub fn start_height(&mut self, height: u64, validators: &TypesValidatorSet) -> Result<Vec<Output>, NodeError> {
        let first = !self.host.started && height == self.host.height.0;
        if height <= self.host.height.0 && !first {
            return Err(NodeError::HeightOrder { current: self.host.height.0, requested: height });
        }
        let height = Height(height);
        if self.host.wal.height() != height.0 {
            self.host.wal.reset(height.0)?;
        }
        if height > self.host.height {
            self.keep_decided_votes();
        }
        let host = &mut self.host;
        host.height = height;
        host.types_set = validators.clone();
        host.validators = ValidatorSet::from_types(validators);
        host.blocks.clear();
        host.verdicts.clear();
        host.value_parts.clear();
        host.own_proposals.clear();
        host.decided = None;
        host.awaiting_commit = false;
        host.streams.retain(|(h, ..), _| *h >= height);
        let set = host.validators.clone();
        self.process(Input::StartHeight(height, set, false, None, VoteExtensionPolicy::Disabled))?;
        self.host.started = true;
        let ready: Vec<_> = self.host.streams.keys().filter(|(h, ..)| *h == height).cloned().collect();
        for key in ready {
            self.try_assemble(&key);
        }
        let mut outputs = self.take_outputs()?;
        for msg in std::mem::take(&mut self.host.stash) {
            if msg.height() >= height.0 {
                outputs.extend(self.on_message(msg)?);
            }
        }
        Ok(outputs)
    }

    /// Before the next height starts: reports double votes that reached the
    /// vote keeper after the decision, and keeps the height's votes to compare
    /// late ones with.
    fn keep_decided_votes(&mut self) {
        let keeper = self.state.driver.votes();
        let reported: HashSet<_> = self.host.reported.drain(..).collect();
        let mut slots = reported.clone();
        for (_, pairs) in keeper.evidence().iter() {
            for (first, second) in pairs {
                let at = (first.message.round, first.message.vote_type, first.message.validator.clone());
                if reported.contains(&at) || !slots.insert(at) {
                    continue;
                }
                self.host.outputs.push(Output::Evidence(Equivocation {
                    validator: first.message.validator.0.clone(),
                    kind: EquivocationKind::Vote,
                    height: first.message.height.0,
                    round: first.message.round.as_u32().unwrap_or(0),
                    first: ConsensusMessage::Vote(first.clone()).encode(),
                    second: ConsensusMessage::Vote(second.clone()).encode(),
                }));
            }
        }
        let held: Vec<_> = keeper.all_rounds().values().flat_map(|r| r.received_votes().iter().cloned()).collect();
        if self.host.previous.len() == DECIDED_HEIGHTS_KEPT {
            self.host.previous.pop_front();
        }
        self.host.previous.push_back(DecidedVotes::new(self.host.height, &self.host.validators, held, slots));
    }

    /// Whether consensus runs (false while a lazily opened node waits for work).
    pub fn is_started(&self) -> bool {
        self.host.started
    }
}

impl<W: Wal> Host<W> {
    fn emit(&mut self, output: Output) {
        if self.fatal.is_none() {
            self.outputs.push(output);
        }
    }

    fn handle(
        &mut self,
        effect: Effect<GlucoContext>,
    ) -> Result<malachitebft_core_consensus::Resume<GlucoContext>, ()> {
        use Effect::*;
        Ok(match effect {
            CancelAllTimeouts(r) => {
                self.emit(Output::CancelAllTimeouts);
                r.resume_with(())
            }
            CancelTimeout(timeout, r) => {
                self.emit(Output::CancelTimeout { height: self.height, timeout });
                r.resume_with(())
            }
            ScheduleTimeout(timeout, r) => {
                let after = match timeout.kind {
                    TimeoutKind::FinalizeHeight(d) => d,
                    _ => self.cfg.timeouts.duration_for(timeout),
                };
                self.emit(Output::ScheduleTimeout { height: self.height, timeout, after });
                r.resume_with(())
            }
            StartRound(height, round, proposer, _role, r) => {
                self.emit(Output::RoundStarted { height, round, proposer });
                r.resume_with(())
            }
            PublishConsensusMsg(msg, r) => {
                let m = match msg {
                    SignedConsensusMsg::Vote(v) => ConsensusMessage::Vote(v),
                    SignedConsensusMsg::Proposal(p) => ConsensusMessage::Proposal(p),
                };
                self.emit(Output::Broadcast(m));
                r.resume_with(())
            }
            PublishLivenessMsg(msg, r) => {
                let m = match msg {
                    LivenessMsg::Vote(v) => ConsensusMessage::Vote(v),
                    LivenessMsg::PolkaCertificate(c) => {
                        ConsensusMessage::sign_polka(&self.cfg.key, self.address.clone(), c)
                    }
                    LivenessMsg::SkipRoundCertificate(c) => {
                        ConsensusMessage::sign_round(&self.cfg.key, self.address.clone(), c)
                    }
                };
                self.emit(Output::Broadcast(m));
                r.resume_with(())
            }
            RepublishVote(v, r) => {
                self.emit(Output::Broadcast(ConsensusMessage::Vote(v)));
                r.resume_with(())
            }
            RepublishRoundCertificate(c, r) => {
                let m = ConsensusMessage::sign_round(&self.cfg.key, self.address.clone(), c);
                self.emit(Output::Broadcast(m));
                r.resume_with(())
            }
            GetValue(height, round, timeout, r) => {
                if !self.own_proposals.contains(&round) {
                    let within = self.cfg.timeouts.duration_for(timeout);
                    self.emit(Output::BuildBlock { height, round, within });
                }
                r.resume_with(())
            }
            RestreamProposal(_h, _round, _valid_round, _proposer, value_id, r) => {
                match self.value_parts.get(&value_id) {
                    Some(parts) => {
                        for p in parts.clone() {
                            self.emit(Output::Broadcast(p));
                        }
                    }
                    None => tracing::warn!(value = %value_id, "asked to restream a proposal this node does not hold"),
                }
                r.resume_with(())
            }
            CertVerifiedSyncValue(_, _, r) => r.resume_with(()),
            CertRejectedSyncValue(_, _, _, r) => r.resume_with(()),
            Decide(cert, _extensions, r) => {
                self.decided = Some(to_types_certificate(&cert));
                r.resume_with(())
            }
            SignVote(vote, r) => r.resume_with(codec::sign_vote(&self.cfg.key, vote)),
            SignProposal(proposal, r) => r.resume_with(codec::sign_proposal(&self.cfg.key, proposal)),
            VerifySignature(signed, key, r) => {
                if self.preverified.as_ref() == Some(&signed.signature) {
                    return Ok(r.resume_with(true));
                }
                let ok = match &signed.message {
                    ConsensusMsg::Vote(v) => key.verify(Domain::Vote, &vote_sign_bytes(v), &signed.signature.0).is_ok(),
                    ConsensusMsg::Proposal(p) => {
                        key.verify(Domain::Proposal, &codec::proposal_sign_bytes(p), &signed.signature.0).is_ok()
                    }
                };
                r.resume_with(ok)
            }
            VerifyCommitCertificate(cert, set, th, r) => {
                let votes = cert.commit_signatures.iter().map(|s| {
                    (s.address.clone(), VoteType::Precommit, NilOrVal::Val(cert.value_id), s.signature.clone())
                });
                let res = verify_votes(&set, cert.height, cert.round, votes, th.quorum, |s| {
                    CertificateError::InvalidCommitSignature(mt::CommitSignature::new(s.0, s.3))
                });
                r.resume_with(res)
            }
            VerifyExtendedCommitCertificate(_, _, _, _, r) => {
                r.resume_with(Err(CertificateError::VerificationError(None)))
            }
            VerifyPolkaCertificate(cert, set, th, r) => r.resume_with(verify_polka(&cert, &set, th)),
            VerifyRoundCertificate(cert, set, th, r) => r.resume_with(verify_round(&cert, &set, th)),
            WalAppend(height, input, r) => {
                if !self.replaying && height == self.height && self.fatal.is_none() {
                    let block = match &input {
                        Input::ProposedValue(pv, _) => self.blocks.get(&pv.value.0),
                        _ => None,
                    };
                    if let Some(record) = encode_record(height, &input, block)
                        && let Err(e) = self.wal.append(&record)
                    {
                        tracing::error!(error = %e, "WAL append failed; stopping consensus");
                        self.fatal = Some(NodeError::Wal(e));
                    }
                }
                r.resume_with(())
            }
            ExtendVote(_, _, _, _, r) => r.resume_with(None),
            VerifyVoteExtension(_, _, _, _, _, _, r) => r.resume_with(Ok(())),
            Finalize(cert, _extensions, evidence, r) => {
                let certificate = self.decided.take().unwrap_or_else(|| to_types_certificate(&cert));
                match self.blocks.get(&cert.value_id) {
                    Some(block) => {
                        let evidence = collect_evidence(&evidence);
                        self.reported.extend(evidence.iter().filter_map(slot_of));
                        let decision = Decision { block: block.clone(), certificate, evidence };
                        self.awaiting_commit = true;
                        self.emit(Output::Decided(decision));
                    }
                    None => self.fatal = Some(NodeError::MissingDecidedBlock(cert.value_id)),
                }
                r.resume_with(())
            }
        })
    }
}

type SignedVoteTuple = (Address, VoteType, NilOrVal<Hash32>, crate::context::Signature);

#[allow(clippy::result_large_err)] // the error type is Malachite's
fn verify_votes(
    set: &ValidatorSet,
    height: Height,
    round: Round,
    votes: impl Iterator<Item = SignedVoteTuple>,
    threshold: ThresholdParam,
    invalid: impl Fn(SignedVoteTuple) -> CertificateError<GlucoContext>,
) -> Result<(), CertificateError<GlucoContext>> {
    let mut seen = HashSet::new();
    let mut signed: u64 = 0;
    for vote in votes {
        let (address, vote_type, value, sig) = &vote;
        let Some(validator) = set.get_by_address(address) else {
            return Err(CertificateError::UnknownValidator(address.clone()));
        };
        if !seen.insert(address.clone()) {
            return Err(CertificateError::DuplicateVote(address.clone()));
        }
        let v =
            Vote { vote_type: *vote_type, height, round, value: *value, validator: address.clone(), extension: None };
        let key: &PublicKey = validator.public_key();
        if key.verify(Domain::Vote, &vote_sign_bytes(&v), &sig.0).is_err() {
            return Err(invalid(vote));
        }
        signed = signed.saturating_add(validator.voting_power());
    }
    let total = set.total_voting_power();
    if threshold.is_met(signed, total) {
        Ok(())
    } else {
        Err(CertificateError::NotEnoughVotingPower { signed, total, expected: threshold.min_expected(total) })
    }
}

#[allow(clippy::result_large_err)] // the error type is Malachite's
fn verify_polka(
    cert: &PolkaCertificate<GlucoContext>,
    set: &ValidatorSet,
    th: ThresholdParams,
) -> Result<(), CertificateError<GlucoContext>> {
    let votes = cert
        .polka_signatures
        .iter()
        .map(|s| (s.address.clone(), VoteType::Prevote, NilOrVal::Val(cert.value_id), s.signature.clone()));
    verify_votes(set, cert.height, cert.round, votes, th.quorum, |s| {
        CertificateError::InvalidPolkaSignature(mt::PolkaSignature::new(s.0, s.3))
    })
}

#[allow(clippy::result_large_err)] // the error type is Malachite's
fn verify_round(
    cert: &RoundCertificate<GlucoContext>,
    set: &ValidatorSet,
    th: ThresholdParams,
) -> Result<(), CertificateError<GlucoContext>> {
    let threshold = match cert.cert_type {
        RoundCertificateType::Skip => th.honest,
        RoundCertificateType::Precommit => {
            if let Some(s) = cert.round_signatures.iter().find(|s| s.vote_type != VoteType::Precommit) {
                return Err(CertificateError::InvalidVoteType(s.address.clone()));
            }
            th.quorum
        }
    };
    let votes = cert.round_signatures.iter().map(|s| (s.address.clone(), s.vote_type, s.value_id, s.signature.clone()));
    verify_votes(set, cert.height, cert.round, votes, threshold, |s| {
        CertificateError::InvalidRoundSignature(mt::RoundSignature::new(s.1, s.2, s.0, s.3))
    })
}

fn to_types_certificate(cert: &mt::CommitCertificate<GlucoContext>) -> CommitCertificate {
    CommitCertificate {
        height: cert.height.0,
        round: cert.round.as_u32().unwrap_or(0),
        block_hash: cert.value_id,
        signatures: cert
            .commit_signatures
            .iter()
            .map(|s| CommitSig { validator: s.address.0.clone(), signature: s.signature.0.to_vec() })
            .collect(),
    }
}

/// The (round, vote type, validator) of a vote equivocation.
fn slot_of(e: &Equivocation) -> Option<(Round, VoteType, Address)> {
    match (e.kind, ConsensusMessage::decode(&e.first)) {
        (EquivocationKind::Vote, Ok(ConsensusMessage::Vote(v))) => {
            Some((v.message.round, v.message.vote_type, v.message.validator))
        }
        _ => None,
    }
}

fn collect_evidence(evidence: &MisbehaviorEvidence<GlucoContext>) -> Vec<Equivocation> {
    let as_record = |address: &Address, kind, a: ConsensusMessage, b: ConsensusMessage| Equivocation {
        validator: address.0.clone(),
        kind,
        height: a.height(),
        round: a.round().as_u32().unwrap_or(0),
        first: a.encode(),
        second: b.encode(),
    };
    let votes = evidence.votes.iter().flat_map(|(address, pairs)| {
        pairs.iter().map(move |(a, b)| {
            let (a, b) = (ConsensusMessage::Vote(a.clone()), ConsensusMessage::Vote(b.clone()));
            as_record(address, EquivocationKind::Vote, a, b)
        })
    });
    let proposals = evidence.proposals.iter().flat_map(|(address, pairs)| {
        pairs.iter().map(move |(a, b)| {
            let (a, b) = (ConsensusMessage::Proposal(a.clone()), ConsensusMessage::Proposal(b.clone()));
            as_record(address, EquivocationKind::Proposal, a, b)
        })
    });
    votes.chain(proposals).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_types::block::Validator as TypesValidator;
    use malachitebft_core_types::{PolkaSignature, RoundSignature};

    fn setup() -> (Vec<KeyPair>, ValidatorSet) {
        let keys: Vec<KeyPair> = (0..4u8).map(|i| KeyPair::from_seed([i + 7; 32])).collect();
        let set = TypesValidatorSet::new(
            keys.iter()
                .map(|k| TypesValidator {
                    id: ParticipantId::from_public_key(&k.public()),
                    public_key: k.public(),
                    power: 1,
                })
                .collect(),
        )
        .unwrap();
        (keys, ValidatorSet::from_types(&set))
    }

    fn addr(k: &KeyPair) -> Address {
        Address(ParticipantId::from_public_key(&k.public()))
    }

    fn vote(k: &KeyPair, vt: VoteType, value: NilOrVal<Hash32>) -> crate::context::Signature {
        let v =
            Vote { vote_type: vt, height: Height(3), round: Round::new(1), value, validator: addr(k), extension: None };
        codec::sign_vote(k, v).signature
    }

    fn polka(keys: &[&KeyPair], value: Hash32) -> PolkaCertificate<GlucoContext> {
        PolkaCertificate {
            height: Height(3),
            round: Round::new(1),
            value_id: value,
            polka_signatures: keys
                .iter()
                .map(|k| PolkaSignature::new(addr(k), vote(k, VoteType::Prevote, NilOrVal::Val(value))))
                .collect(),
        }
    }

    #[test]
    fn polka_certificate_needs_a_quorum_of_valid_distinct_signers() {
        let (keys, set) = setup();
        let th = ThresholdParams::default();
        let v = glucochain_crypto::sha256(b"block");
        assert_eq!(verify_polka(&polka(&[&keys[0], &keys[1], &keys[2]], v), &set, th), Ok(()));
        assert!(matches!(
            verify_polka(&polka(&[&keys[0], &keys[1]], v), &set, th),
            Err(CertificateError::NotEnoughVotingPower { signed: 2, total: 4, expected: 3 })
        ));
        assert!(matches!(
            verify_polka(&polka(&[&keys[0], &keys[1], &keys[1]], v), &set, th),
            Err(CertificateError::DuplicateVote(_))
        ));
        let stranger = KeyPair::from_seed([1; 32]);
        assert!(matches!(
            verify_polka(&polka(&[&keys[0], &keys[1], &stranger], v), &set, th),
            Err(CertificateError::UnknownValidator(_))
        ));
        // A signature over another value does not count for this one.
        let mut forged = polka(&[&keys[0], &keys[1], &keys[2]], v);
        forged.polka_signatures[2].signature =
            vote(&keys[2], VoteType::Prevote, NilOrVal::Val(glucochain_crypto::sha256(b"other")));
        assert!(matches!(verify_polka(&forged, &set, th), Err(CertificateError::InvalidPolkaSignature(_))));
        // A prevote signature is not a precommit signature (distinct sign bytes).
        let mut as_commit = polka(&[&keys[0], &keys[1], &keys[2]], v);
        as_commit.polka_signatures[0].signature = vote(&keys[0], VoteType::Precommit, NilOrVal::Val(v));
        assert!(verify_polka(&as_commit, &set, th).is_err());
    }

    #[test]
    fn round_certificates_use_the_right_threshold_and_vote_type() {
        let (keys, set) = setup();
        let th = ThresholdParams::default();
        let sig = |k: &KeyPair, vt| RoundSignature::new(vt, NilOrVal::Nil, addr(k), vote(k, vt, NilOrVal::Nil));
        let cert = |t, sigs: Vec<RoundSignature<GlucoContext>>| RoundCertificate {
            height: Height(3),
            round: Round::new(1),
            cert_type: t,
            round_signatures: sigs,
        };
        // Skip: f+1 = 2 of 4 suffice, 1 does not.
        let two = vec![sig(&keys[0], VoteType::Prevote), sig(&keys[1], VoteType::Precommit)];
        assert_eq!(verify_round(&cert(RoundCertificateType::Skip, two.clone()), &set, th), Ok(()));
        assert!(verify_round(&cert(RoundCertificateType::Skip, two[..1].to_vec()), &set, th).is_err());
        // Precommit: a quorum of precommits, prevotes refused.
        let three: Vec<_> = keys[..3].iter().map(|k| sig(k, VoteType::Precommit)).collect();
        assert_eq!(verify_round(&cert(RoundCertificateType::Precommit, three.clone()), &set, th), Ok(()));
        assert!(verify_round(&cert(RoundCertificateType::Precommit, two), &set, th).is_err());
        let mut mixed = three;
        mixed[2] = sig(&keys[2], VoteType::Prevote);
        assert!(matches!(
            verify_round(&cert(RoundCertificateType::Precommit, mixed), &set, th),
            Err(CertificateError::InvalidVoteType(_))
        ));
    }
}
