//! Deterministic network simulation of GlucoChain validators running the
//! real consensus node (Malachite underneath) on a virtual clock.
//!
//! The network delays, loses, duplicates and reorders messages, partitions
//! validators for a while, crashes and restarts them on their write-ahead
//! logs, and can host a byzantine validator that double-votes. Every run is
//! fully determined by its seed. After each run the checks are:
//! * agreement: no two validators decide different blocks at one height;
//! * validity: every decided block is hash-linked to its parent, well formed,
//!   carries a commit certificate of more than 2/3 of the voting power, and
//!   holds only client transactions, each at most once in the chain;
//! * progress: after the network heals, every correct validator advances.

use glucochain_consensus::block::Block;
use glucochain_consensus::codec::{ConsensusMessage, sign_vote};
use glucochain_consensus::context::{Address, Height};
use glucochain_consensus::node::{Decision, EquivocationKind, Node, NodeConfig, Output};
use glucochain_consensus::wal::MemWal;
use glucochain_crypto::{Hash32, KeyPair, sha256, sha256_parts};
use glucochain_types::block::{BlockHeader, CommitCertificate, Validator, ValidatorSet};
use glucochain_types::time::Timestamp;
use glucochain_types::{ChainId, ParticipantId};
use malachitebft_core_types::{NilOrVal, Round, Timeout};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const GENESIS_MS: i64 = 1_790_000_000_000;

/// What can go wrong in a run.
#[derive(Clone, Debug)]
struct Faults {
    /// Probability a message is lost.
    loss: f64,
    /// Probability a message is delivered twice.
    duplicate: f64,
    /// Delay range, ms (messages overtake each other within it).
    delay_ms: (u64, u64),
    /// Validators cut off from the others during `[from, to)` ms.
    partition: Option<(Vec<usize>, u64, u64)>,
    /// Validator crashed at `at` ms and restarted at `restart` ms.
    crash: Option<(usize, u64, u64)>,
    /// A validator that double-votes.
    byzantine: Option<usize>,
    /// A validator whose messages all take this many ms more to arrive.
    slow: Option<(usize, u64)>,
}

impl Faults {
    fn none() -> Self {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            delay_ms: (1, 20),
            partition: None,
            crash: None,
            byzantine: None,
            slow: None,
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Deliver { to: usize, bytes: Vec<u8> },
    Timer { node: usize, epoch: u64, height: u64, timeout: TimeoutKey },
    Crash { node: usize },
    Restart { node: usize },
    SyncRequest { from: usize, to: usize, height: u64 },
    SyncReply { to: usize, blocks: Vec<(Vec<u8>, Vec<u8>)> },
    Tick,
}

/// `Timeout` as an ordered key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct TimeoutKey(u8, i64, u64);

fn key_of(t: &Timeout) -> TimeoutKey {
    use malachitebft_core_types::TimeoutKind::*;
    let (k, d) = match t.kind {
        Propose => (0, 0),
        Prevote => (1, 0),
        Precommit => (2, 0),
        Rebroadcast => (3, 0),
        FinalizeHeight(d) => (4, d.as_millis() as u64),
    };
    TimeoutKey(k, t.round.as_i64(), d)
}

fn timeout_of(k: TimeoutKey) -> Timeout {
    let round = if k.1 < 0 { Round::Nil } else { Round::new(k.1 as u32) };
    match k.0 {
        0 => Timeout::propose(round),
        1 => Timeout::prevote(round),
        2 => Timeout::precommit(round),
        3 => Timeout::rebroadcast(round),
        _ => Timeout::finalize_height(round, Duration::from_millis(k.2)),
    }
}

struct Validator_ {
    key: Arc<KeyPair>,
    node: Option<Node<MemWal>>,
    wal: MemWal,
    chain: Vec<(Block, CommitCertificate)>,
    /// Timers: (height, timeout) -> epoch of the live one.
    timers: HashMap<(u64, TimeoutKey), u64>,
    sync_pending: bool,
    evidence: Vec<glucochain_consensus::node::Equivocation>,
}

struct Sim {
    rng: SmallRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    vals: Vec<Validator_>,
    set: ValidatorSet,
    chain_id: ChainId,
    faults: Faults,
    /// Transactions clients submitted, in order.
    submitted: Vec<Vec<u8>>,
    /// Height -> decided block hash, across all validators.
    decided: BTreeMap<u64, Hash32>,
    epoch: u64,
}

fn cfg(key: Arc<KeyPair>) -> NodeConfig {
    let mut c = NodeConfig::new(key);
    c.timeouts.propose = Duration::from_millis(400);
    c.timeouts.propose_delta = Duration::from_millis(100);
    c.timeouts.prevote = Duration::from_millis(200);
    c.timeouts.prevote_delta = Duration::from_millis(100);
    c.timeouts.precommit = Duration::from_millis(200);
    c.timeouts.precommit_delta = Duration::from_millis(100);
    c.timeouts.rebroadcast = Duration::from_millis(800);
    c.timeouts.max_timeout = Duration::from_secs(5);
    c.txs_per_part = 3;
    c
}

fn genesis_hash(chain_id: &ChainId) -> Hash32 {
    sha256_parts(&[b"sim-genesis", chain_id.as_str().as_bytes()])
}

/// The state after a block: a hash chain over all transactions (what a real
/// state machine would compute from its state).
fn next_state_root(prev: &Hash32, tx_root: &Hash32) -> Hash32 {
    sha256_parts(&[&prev.0, &tx_root.0])
}

impl Sim {
    fn new(seed: u64, n: usize, powers: Option<Vec<u64>>, faults: Faults) -> Self {
        let keys: Vec<Arc<KeyPair>> = (0..n)
            .map(|i| {
                let mut seed_bytes = [0u8; 32];
                seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
                seed_bytes[8] = i as u8;
                Arc::new(KeyPair::from_seed(seed_bytes))
            })
            .collect();
        let powers = powers.unwrap_or_else(|| vec![10; n]);
        let set = ValidatorSet::new(
            keys.iter()
                .zip(&powers)
                .map(|(k, &p)| Validator {
                    id: ParticipantId::from_public_key(&k.public()),
                    public_key: k.public(),
                    power: p,
                })
                .collect(),
        )
        .expect("validator set");
        let vals = keys
            .into_iter()
            .map(|key| Validator_ {
                key,
                node: None,
                wal: MemWal::default(),
                chain: Vec::new(),
                timers: HashMap::new(),
                sync_pending: false,
                evidence: Vec::new(),
            })
            .collect();
        Sim {
            rng: SmallRng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            vals,
            set,
            chain_id: ChainId::parse("glucochain-sim").unwrap(),
            faults,
            submitted: Vec::new(),
            decided: BTreeMap::new(),
            epoch: 0,
        }
    }

    fn push(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn address(&self, i: usize) -> Address {
        Address(ParticipantId::from_public_key(&self.vals[i].key.public()))
    }

    fn index_of(&self, a: &Address) -> Option<usize> {
        (0..self.vals.len()).find(|&i| &self.address(i) == a)
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        match &self.faults.partition {
            Some((group, from, to)) if self.now >= *from && self.now < *to => group.contains(&a) != group.contains(&b),
            _ => false,
        }
    }

    fn start_node(&mut self, i: usize) {
        let height = self.vals[i].chain.len() as u64 + 1;
        let (node, outputs) = Node::start(cfg(self.vals[i].key.clone()), self.vals[i].wal.clone(), height, &self.set)
            .expect("start node");
        self.vals[i].node = Some(node);
        self.vals[i].timers.clear();
        self.handle_outputs(i, outputs);
    }

    fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        if self.partitioned(from, to) || self.rng.gen_bool(self.faults.loss) {
            return;
        }
        let copies = if self.rng.gen_bool(self.faults.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let (lo, hi) = self.faults.delay_ms;
            let lag = match self.faults.slow {
                Some((slow, ms)) if slow == from => ms,
                _ => 0,
            };
            let at = self.now + lag + self.rng.gen_range(lo..=hi);
            self.push(at, Event::Deliver { to, bytes: bytes.clone() });
        }
    }

    fn broadcast(&mut self, from: usize, msg: &ConsensusMessage) {
        let bytes = msg.encode();
        for to in 0..self.vals.len() {
            if to != from {
                self.send(from, to, bytes.clone());
            }
        }
        // A byzantine validator also signs a conflicting vote and sends it to everyone.
        if self.faults.byzantine == Some(from)
            && let ConsensusMessage::Vote(v) = msg
        {
            let mut other = v.message.clone();
            other.value = match other.value {
                NilOrVal::Nil => NilOrVal::Val(sha256(b"a block that does not exist")),
                NilOrVal::Val(_) => NilOrVal::Nil,
            };
            let conflicting = ConsensusMessage::Vote(sign_vote(&self.vals[from].key, other)).encode();
            for to in 0..self.vals.len() {
                if to != from {
                    self.send(from, to, conflicting.clone());
                }
            }
        }
    }

    fn last_hash_and_state(&self, i: usize) -> (Hash32, Hash32, i64) {
        match self.vals[i].chain.last() {
            Some((b, _)) => (b.hash(), b.header.state_root, b.header.time.unix_ms()),
            None => (genesis_hash(&self.chain_id), Hash32::default(), GENESIS_MS),
        }
    }

    fn committed_txs(&self, i: usize) -> HashSet<Hash32> {
        self.vals[i].chain.iter().flat_map(|(b, _)| b.txs.iter().map(|t| sha256(t))).collect()
    }

    fn build_block(&mut self, i: usize, height: u64) -> Block {
        let (prev_hash, prev_state, prev_time) = self.last_hash_and_state(i);
        let done = self.committed_txs(i);
        let txs: Vec<Vec<u8>> = self.submitted.iter().filter(|t| !done.contains(&sha256(t))).take(7).cloned().collect();
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height,
            time: Timestamp::from_unix_ms((GENESIS_MS + self.now as i64).max(prev_time + 1)),
            prev_hash,
            tx_root: Hash32::default(),
            state_root: Hash32::default(),
            validators_hash: self.set.hash(),
            proposer: self.address(i).0,
            tx_count: 0,
        };
        let mut block = Block::new(header, txs);
        block.header.state_root = next_state_root(&prev_state, &block.header.tx_root);
        block
    }

    /// The application's check of a proposed block, from validator `i`'s view.
    fn valid_block(&self, i: usize, block: &Block) -> Result<(), String> {
        let (prev_hash, prev_state, prev_time) = self.last_hash_and_state(i);
        let h = &block.header;
        let known: HashSet<Hash32> = self.submitted.iter().map(|t| sha256(t)).collect();
        let done = self.committed_txs(i);
        let mut seen = HashSet::new();
        if h.chain_id != self.chain_id {
            return Err("chain id".into());
        }
        if h.height != self.vals[i].chain.len() as u64 + 1 {
            return Err(format!("height {}", h.height));
        }
        if h.prev_hash != prev_hash {
            return Err("prev_hash".into());
        }
        if h.time.unix_ms() <= prev_time {
            return Err("time".into());
        }
        if h.validators_hash != self.set.hash() {
            return Err("validators_hash".into());
        }
        if !block.is_well_formed() {
            return Err("tx_root".into());
        }
        if h.state_root != next_state_root(&prev_state, &h.tx_root) {
            return Err("state_root".into());
        }
        for t in &block.txs {
            let th = sha256(t);
            if !known.contains(&th) || done.contains(&th) || !seen.insert(th) {
                return Err("tx not submitted or repeated".into());
            }
        }
        Ok(())
    }

    fn handle_outputs(&mut self, i: usize, outputs: Vec<Output>) {
        let mut queue: std::collections::VecDeque<Output> = outputs.into();
        while let Some(out) = queue.pop_front() {
            if self.vals[i].node.is_none() {
                return;
            }
            let more = match out {
                Output::Broadcast(msg) => {
                    self.broadcast(i, &msg);
                    vec![]
                }
                Output::ScheduleTimeout { height, timeout, after } => {
                    self.epoch += 1;
                    let k = key_of(&timeout);
                    self.vals[i].timers.insert((height.0, k), self.epoch);
                    let at = self.now + after.as_millis() as u64;
                    let epoch = self.epoch;
                    self.push(at, Event::Timer { node: i, epoch, height: height.0, timeout: k });
                    vec![]
                }
                Output::CancelTimeout { height, timeout } => {
                    self.vals[i].timers.remove(&(height.0, key_of(&timeout)));
                    vec![]
                }
                Output::CancelAllTimeouts => {
                    self.vals[i].timers.clear();
                    vec![]
                }
                Output::RoundStarted { .. } | Output::Dropped { .. } => vec![],
                Output::BuildBlock { height, round, .. } => {
                    let block = self.build_block(i, height.0);
                    self.node(i).propose_block(height, round, block).expect("propose")
                }
                Output::ValidateBlock { round, proposer, block } => {
                    let ok = self.valid_block(i, &block).is_ok();
                    self.node(i).block_validated(round, proposer, block.hash(), ok).expect("validated")
                }
                Output::Decided(d) => self.on_decided(i, d),
                Output::Evidence(e) => {
                    self.vals[i].evidence.push(e);
                    vec![]
                }
                Output::PeerAhead { peer, height } => {
                    let mine = self.node(i).height().0;
                    if height.0 > mine && !self.vals[i].sync_pending {
                        self.vals[i].sync_pending = true;
                        let to = self.index_of(&peer).expect("known peer");
                        self.push(self.now + 50, Event::SyncRequest { from: i, to, height: mine });
                    }
                    vec![]
                }
            };
            queue.extend(more);
        }
    }

    fn node(&mut self, i: usize) -> &mut Node<MemWal> {
        self.vals[i].node.as_mut().expect("running node")
    }

    fn on_decided(&mut self, i: usize, d: Decision) -> Vec<Output> {
        let height = d.block.header.height;
        assert_eq!(height, self.vals[i].chain.len() as u64 + 1, "validator {i} decided out of order");
        let hash = d.block.hash();
        // Agreement.
        if let Some(other) = self.decided.get(&height) {
            assert_eq!(*other, hash, "two different blocks decided at height {height}");
        } else {
            self.decided.insert(height, hash);
        }
        // Validity.
        self.valid_block(i, &d.block).unwrap_or_else(|e| panic!("decided an invalid block at {height}: {e}"));
        let power = d.certificate.verify(height, &hash, &self.set).expect("decided with a valid certificate");
        assert!(self.set.is_quorum(power));
        self.vals[i].evidence.extend(d.evidence);
        self.vals[i].chain.push((d.block, d.certificate));
        self.vals[i].sync_pending = false;
        let set = self.set.clone();
        self.node(i).start_height(height + 1, &set).expect("start next height")
    }

    fn run_until(&mut self, end: u64) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > end {
                break;
            }
            let Reverse((at, _, ev)) = self.queue.pop().expect("peeked");
            self.now = at;
            self.step(ev);
        }
        self.now = end;
    }

    fn step(&mut self, ev: Event) {
        match ev {
            Event::Deliver { to, bytes } => {
                if self.vals[to].node.is_none() {
                    return;
                }
                let msg = ConsensusMessage::decode(&bytes).expect("peers send valid encodings");
                let outs = self.node(to).on_message(msg).expect("message");
                self.handle_outputs(to, outs);
            }
            Event::Timer { node, epoch, height, timeout } => {
                if self.vals[node].node.is_none() || self.vals[node].timers.get(&(height, timeout)) != Some(&epoch) {
                    return;
                }
                self.vals[node].timers.remove(&(height, timeout));
                let outs = self.node(node).on_timeout(Height(height), timeout_of(timeout)).expect("timeout");
                self.handle_outputs(node, outs);
            }
            Event::Crash { node } => {
                self.vals[node].node = None;
                self.vals[node].timers.clear();
                self.vals[node].sync_pending = false;
            }
            Event::Restart { node } => self.start_node(node),
            Event::SyncRequest { from, to, height } => {
                if self.partitioned(from, to) || self.vals[to].node.is_none() {
                    self.vals[from].sync_pending = false;
                    return;
                }
                // Up to 32 blocks from `height` on, as the validator's sync reply does.
                let blocks: Vec<(Vec<u8>, Vec<u8>)> = self.vals[to]
                    .chain
                    .iter()
                    .skip(height as usize - 1)
                    .take(32)
                    .map(|(b, c)| {
                        (prost::Message::encode_to_vec(&b.to_wire()), prost::Message::encode_to_vec(&c.to_wire()))
                    })
                    .collect();
                if blocks.is_empty() {
                    self.vals[from].sync_pending = false;
                } else {
                    self.push(self.now + 20, Event::SyncReply { to: from, blocks });
                }
            }
            Event::SyncReply { to, blocks } => {
                self.vals[to].sync_pending = false;
                for (block, cert) in blocks {
                    if self.vals[to].node.is_none() {
                        return;
                    }
                    let block = Block::from_wire(&prost::Message::decode(block.as_slice()).unwrap()).unwrap();
                    let cert = CommitCertificate::from_wire(&prost::Message::decode(cert.as_slice()).unwrap()).unwrap();
                    match self.node(to).apply_synced(block, cert) {
                        Ok(outs) => self.handle_outputs(to, outs),
                        Err(_) => break,
                    }
                }
            }
            Event::Tick => {
                // Clients submit a transaction every tick.
                let n = self.submitted.len();
                self.submitted.push(format!("tx-{n}-{}", self.rng.r#gen::<u32>()).into_bytes());
                self.push(self.now + 100, Event::Tick);
            }
        }
    }

    fn run(&mut self, end: u64) {
        for i in 0..self.vals.len() {
            self.start_node(i);
        }
        self.push(0, Event::Tick);
        if let Some((node, at, restart)) = self.faults.crash {
            self.push(at, Event::Crash { node });
            self.push(restart, Event::Restart { node });
        }
        self.run_until(end);
    }

    fn heights(&self) -> Vec<usize> {
        self.vals.iter().map(|v| v.chain.len()).collect()
    }

    /// Every pair of validators holds the same block at every common height.
    fn assert_chains_agree(&self) {
        // Correct validators (crashed and restarted ones included) never equivocate.
        for v in &self.vals {
            for e in &v.evidence {
                let culprit = (0..self.vals.len()).find(|&i| self.address(i).0 == e.validator);
                assert_eq!(culprit, self.faults.byzantine, "a correct validator equivocated: {e:?}");
            }
        }
        for v in &self.vals {
            for (h, (b, _)) in v.chain.iter().enumerate() {
                assert_eq!(self.decided.get(&(h as u64 + 1)), Some(&b.hash()));
                if h > 0 {
                    assert_eq!(b.header.prev_hash, v.chain[h - 1].0.hash(), "hash link at {}", h + 1);
                }
            }
        }
    }
}

fn random_faults(rng: &mut SmallRng, n: usize) -> Faults {
    let f = (n - 1) / 3;
    let mut faults = Faults::none();
    faults.loss = rng.gen_range(0.0..0.08);
    faults.duplicate = rng.gen_range(0.0..0.05);
    faults.delay_ms = (1, rng.gen_range(5..120));
    let mut members: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        members.swap(i, rng.gen_range(0..=i));
    }
    match rng.gen_range(0..3) {
        // A minority cut off.
        0 => faults.partition = Some((members[..f].to_vec(), 2_000, 6_000)),
        // An even split: nobody has a quorum.
        1 => faults.partition = Some((members[..n / 2].to_vec(), 2_000, 6_000)),
        // A crash and restart on the WAL.
        _ => faults.crash = Some((members[0], 2_000, 5_000)),
    }
    faults
}

#[test]
fn healthy_network_commits_every_transaction_in_order() {
    let mut sim = Sim::new(1, 4, None, Faults::none());
    sim.run(10_000);
    sim.assert_chains_agree();
    let heights = sim.heights();
    assert!(heights.iter().all(|&h| h >= 20), "{heights:?}");
    // Every transaction submitted well before the end is committed exactly once.
    let chain = &sim.vals[0].chain;
    let committed: Vec<Hash32> = chain.iter().flat_map(|(b, _)| b.txs.iter().map(|t| sha256(t))).collect();
    let unique: HashSet<_> = committed.iter().collect();
    assert_eq!(unique.len(), committed.len(), "a transaction was committed twice");
    for t in &sim.submitted[..sim.submitted.len() - 20] {
        assert!(unique.contains(&sha256(t)), "submitted tx never committed");
    }
    // Weighted rotation: every validator proposed some blocks.
    let proposers: HashSet<_> = chain.iter().map(|(b, _)| b.header.proposer.clone()).collect();
    assert_eq!(proposers.len(), 4);
}

#[test]
fn many_seeds_with_loss_partitions_and_crashes_keep_agreement_and_progress() {
    let seeds: u64 = std::env::var("GLUCOCHAIN_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24);
    for seed in 0..seeds {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
        let n = if seed % 4 == 3 { 7 } else { 4 };
        let faults = random_faults(&mut rng, n);
        let mut sim = Sim::new(seed, n, None, faults.clone());
        sim.run(6_000);
        let at_heal = sim.heights();
        sim.run_until(20_000);
        sim.assert_chains_agree();
        let end = sim.heights();
        for (i, (&before, &after)) in at_heal.iter().zip(&end).enumerate() {
            assert!(after >= before + 3, "seed {seed} ({faults:?}): validator {i} stuck at {after} (was {before})");
        }
    }
}

#[test]
fn no_quorum_means_no_commit_and_no_fork() {
    // Two of four validators cut off from the other two for the whole run.
    let mut faults = Faults::none();
    faults.partition = Some((vec![0, 1], 0, u64::MAX));
    let mut sim = Sim::new(7, 4, None, faults);
    sim.run(8_000);
    assert_eq!(sim.heights(), vec![0, 0, 0, 0]);
    // Healing the partition resumes the chain.
    sim.faults.partition = None;
    sim.run_until(16_000);
    sim.assert_chains_agree();
    assert!(sim.heights().iter().all(|&h| h >= 5), "{:?}", sim.heights());
}

#[test]
fn a_crashed_validator_replays_its_wal_and_catches_up() {
    let mut faults = Faults::none();
    faults.crash = Some((2, 3_000, 6_000));
    let mut sim = Sim::new(11, 4, None, faults);
    sim.run(5_900);
    let down = sim.heights()[2];
    let others = sim.heights()[0];
    assert!(others > down + 5, "the others kept committing while it was down");
    sim.run_until(12_000);
    sim.assert_chains_agree();
    let h = sim.heights();
    assert!(h[2] + 2 >= h[0], "the restarted validator caught up: {h:?}");
    // It also votes again: its precommits appear in recent certificates.
    let me = sim.address(2).0;
    let recent = &sim.vals[0].chain[sim.vals[0].chain.len() - 3..];
    assert!(recent.iter().any(|(_, c)| c.signatures.iter().any(|s| s.validator == me)));
}

#[test]
fn a_double_voting_validator_cannot_fork_and_is_caught() {
    let mut faults = Faults::none();
    faults.byzantine = Some(3);
    faults.delay_ms = (1, 60);
    let mut sim = Sim::new(21, 4, None, faults);
    sim.run(10_000);
    sim.assert_chains_agree();
    assert!(sim.heights()[..3].iter().all(|&h| h >= 10), "{:?}", sim.heights());
    let byz = sim.address(3).0;
    let caught = sim.vals[..3]
        .iter()
        .flat_map(|v| &v.evidence)
        .filter(|e| e.validator == byz && e.kind == EquivocationKind::Vote)
        .count();
    assert!(caught > 0, "equivocation evidence recorded");
    // The evidence holds two different votes that both verify with the byzantine key.
    let e = sim.vals[0].evidence.iter().chain(&sim.vals[1].evidence).find(|e| e.validator == byz).unwrap();
    let a = ConsensusMessage::decode(&e.first).unwrap();
    let b = ConsensusMessage::decode(&e.second).unwrap();
    let key = sim.vals[3].key.public();
    assert!(a.verify(&key) && b.verify(&key));
    assert_ne!(a, b);
}

#[test]
fn a_double_voter_slower_than_the_quorum_is_caught_after_the_decision() {
    // Its votes, the conflicting ones included, reach the others only after
    // the three honest validators have decided each height without it.
    let mut faults = Faults::none();
    faults.byzantine = Some(3);
    faults.slow = Some((3, 150));
    let mut sim = Sim::new(23, 4, None, faults);
    sim.run(10_000);
    sim.assert_chains_agree();
    assert!(sim.heights()[..3].iter().all(|&h| h >= 10), "{:?}", sim.heights());
    let byz = sim.address(3).0;
    let key = sim.vals[3].key.public();
    let mut caught = 0;
    for v in &sim.vals[..3] {
        for e in &v.evidence {
            assert_eq!(e.validator, byz, "only the double voter is reported");
            let a = ConsensusMessage::decode(&e.first).unwrap();
            let b = ConsensusMessage::decode(&e.second).unwrap();
            assert!(a.verify(&key) && b.verify(&key), "both votes carry its signature");
            assert_eq!((a.height(), a.round()), (b.height(), b.round()));
            assert_ne!(a, b);
            caught += 1;
        }
        // Once per double vote, however often the pair is delivered.
        let distinct: HashSet<_> = v.evidence.iter().map(|e| (e.height, e.round, e.first.clone())).collect();
        assert_eq!(distinct.len(), v.evidence.len(), "a double vote reported twice");
    }
    let heights: HashSet<u64> = sim.vals[..3].iter().flat_map(|v| v.evidence.iter().map(|e| e.height)).collect();
    // Every height it double-voted in is on record (Malachite alone, dropping
    // the late votes as stale, caught a quarter of them).
    let decided = sim.heights()[0];
    assert_eq!(heights.len(), decided, "heights with evidence ({caught} records)");
}

#[test]
fn weighted_voting_power_decides_with_the_heavy_validators() {
    // 40 + 25 of 100: the two heavy validators together are not a quorum
    // (65 is not more than 66.6...), but with any third they are.
    let mut faults = Faults::none();
    faults.partition = Some((vec![2, 3], 0, 5_000));
    let mut sim = Sim::new(5, 4, Some(vec![40, 25, 20, 15]), faults);
    sim.run(5_000);
    assert_eq!(sim.heights(), vec![0, 0, 0, 0], "65 of 100 is not more than two thirds");
    sim.run_until(12_000);
    sim.assert_chains_agree();
    assert!(sim.heights().iter().all(|&h| h >= 5), "{:?}", sim.heights());
}
