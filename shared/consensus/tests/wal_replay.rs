//! A validator restarted on its write-ahead log re-sends exactly the votes
//! it sent before the crash and never signs a conflicting one; without the
//! log it would (the control case), which is what the WAL is for.

use glucochain_consensus::block::Block;
use glucochain_consensus::codec::{self, ConsensusMessage};
use glucochain_consensus::context::{Address, BlockRef, GlucoContext, Height, ValidatorSet as CtxSet};
use glucochain_consensus::node::{Node, NodeConfig, Output};
use glucochain_consensus::wal::{FileWal, MemWal, Wal};
use glucochain_crypto::{Hash32, KeyPair};
use glucochain_types::block::{BlockHeader, Validator, ValidatorSet};
use glucochain_types::time::Timestamp;
use glucochain_types::{ChainId, ParticipantId};
use malachitebft_core_types::{Context as _, NilOrVal, Round, Timeout, VoteType};
use std::io::Write as _;
use std::sync::Arc;

struct Net {
    keys: Vec<Arc<KeyPair>>,
    set: ValidatorSet,
}

impl Net {
    fn new() -> Self {
        let keys: Vec<Arc<KeyPair>> = (0..4u8).map(|i| Arc::new(KeyPair::from_seed([i + 1; 32]))).collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator {
                    id: ParticipantId::from_public_key(&k.public()),
                    public_key: k.public(),
                    power: 1,
                })
                .collect(),
        )
        .unwrap();
        Net { keys, set }
    }

    fn addr(&self, i: usize) -> Address {
        Address(ParticipantId::from_public_key(&self.keys[i].public()))
    }

    fn proposer(&self, round: u32) -> usize {
        let p =
            GlucoContext.select_proposer(&CtxSet::from_types(&self.set), Height(1), Round::new(round)).address.clone();
        (0..4).find(|&i| self.addr(i) == p).unwrap()
    }

    /// The proposer's signed proposal and parts for a block at height 1.
    fn proposal(&self, round: u32) -> (Hash32, Vec<ConsensusMessage>) {
        let p = self.proposer(round);
        let header = BlockHeader {
            chain_id: ChainId::parse("glucochain-wal").unwrap(),
            height: 1,
            time: Timestamp::from_unix_ms(1_790_000_000_000),
            prev_hash: Hash32::default(),
            tx_root: Hash32::default(),
            state_root: Hash32::default(),
            validators_hash: self.set.hash(),
            proposer: self.addr(p).0,
            tx_count: 0,
        };
        let block = Block::new(header, vec![b"tx-1".to_vec(), b"tx-2".to_vec()]);
        let hash = block.hash();
        let proposal =
            GlucoContext.new_proposal(Height(1), Round::new(round), BlockRef(hash), Round::Nil, self.addr(p));
        let mut msgs = vec![ConsensusMessage::Proposal(codec::sign_proposal(&self.keys[p], proposal))];
        for part in codec::block_parts(&block, Height(1), Round::new(round), &self.addr(p), 1) {
            msgs.push(codec::sign_part(&self.keys[p], part));
        }
        (hash, msgs)
    }
}

/// Prevotes and precommits in `outputs` signed by `me`.
fn own_votes(outputs: &[Output], me: &Address) -> Vec<ConsensusMessage> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(m @ ConsensusMessage::Vote(v)) if &v.message.validator == me => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// Runs the node under test until it prevotes for the proposed block.
fn prevote_for_block<W: Wal>(net: &Net, me: usize, wal: W) -> (Node<W>, ConsensusMessage, Hash32) {
    let (mut node, mut outputs) = Node::start(NodeConfig::new(net.keys[me].clone()), wal, 1, &net.set).unwrap();
    let (hash, msgs) = net.proposal(0);
    for m in msgs {
        outputs.extend(node.on_message(m).unwrap());
    }
    let (round, proposer, block) = outputs
        .iter()
        .find_map(|o| match o {
            Output::ValidateBlock { round, proposer, block } => Some((*round, proposer.clone(), block.clone())),
            _ => None,
        })
        .expect("the assembled block is handed over for validation");
    assert_eq!(block.hash(), hash);
    let outputs = node.block_validated(round, proposer, hash, true).unwrap();
    let votes = own_votes(&outputs, &net.addr(me));
    assert_eq!(votes.len(), 1, "{outputs:?}");
    let ConsensusMessage::Vote(v) = &votes[0] else { unreachable!() };
    assert_eq!((v.message.vote_type, v.message.value), (VoteType::Prevote, NilOrVal::Val(hash)));
    (node, votes[0].clone(), hash)
}

/// After a restart on `wal`, the node's votes for height 1 round 0 once the
/// propose timeout fires.
fn votes_after_restart<W: Wal>(net: &Net, me: usize, wal: W) -> Vec<ConsensusMessage> {
    let (mut node, mut outputs) = Node::start(NodeConfig::new(net.keys[me].clone()), wal, 1, &net.set).unwrap();
    outputs.extend(node.on_timeout(Height(1), Timeout::propose(Round::new(0))).unwrap());
    own_votes(&outputs, &net.addr(me))
        .into_iter()
        .filter(|m| matches!(m, ConsensusMessage::Vote(v) if v.message.round == Round::new(0)))
        .collect()
}

fn not_proposer(net: &Net) -> usize {
    (0..4).find(|&i| i != net.proposer(0)).unwrap()
}

#[test]
fn restart_on_the_wal_repeats_the_same_prevote() {
    let net = Net::new();
    let me = not_proposer(&net);
    let wal = MemWal::default();
    let (node, prevote, _) = prevote_for_block(&net, me, wal.clone());
    drop(node); // crash
    let votes = votes_after_restart(&net, me, wal);
    assert!(!votes.is_empty(), "the replayed prevote is re-sent");
    for v in &votes {
        assert_eq!(v, &prevote, "a restarted validator sent a vote that conflicts with its first one");
    }
}

#[test]
fn control_without_the_wal_the_restarted_node_would_equivocate() {
    let net = Net::new();
    let me = not_proposer(&net);
    let (node, prevote, _) = prevote_for_block(&net, me, MemWal::default());
    drop(node);
    let votes = votes_after_restart(&net, me, MemWal::default());
    assert!(votes.iter().any(|v| v != &prevote), "without its WAL the node prevotes nil: {votes:?}");
}

#[test]
fn file_wal_survives_a_restart_and_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consensus.wal");
    let net = Net::new();
    let me = not_proposer(&net);
    let (node, prevote, _) = prevote_for_block(&net, me, FileWal::open(&path).unwrap());
    drop(node);
    // A crash in the middle of the next append leaves a partial record.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0, 0, 0, 0, 0, 0, 0, 0, 40, 1, 2]).unwrap();
    drop(f);
    let mut wal = FileWal::open(&path).unwrap();
    assert_eq!(wal.height(), 1);
    let records = wal.entries().unwrap();
    assert!(records.len() >= 3, "proposal, proposed value and own prevote are logged");
    let votes = votes_after_restart(&net, me, wal);
    assert!(!votes.is_empty());
    assert!(votes.iter().all(|v| v == &prevote));
}

#[test]
fn a_wal_ahead_of_the_block_store_refuses_to_start() {
    let net = Net::new();
    let mut wal = MemWal::default();
    wal.reset(5).unwrap();
    let err = Node::start(NodeConfig::new(net.keys[0].clone()), wal, 3, &net.set).err().expect("refused");
    assert!(err.to_string().contains("height 5"), "{err}");
}

#[test]
fn decided_height_yields_one_decision_with_a_quorum_certificate() {
    // Drive one node with the other three validators' votes.
    let net = Net::new();
    let me = not_proposer(&net);
    let (mut node, _prevote, hash) = prevote_for_block(&net, me, MemWal::default());
    let mut outputs = Vec::new();
    for vt in [VoteType::Prevote, VoteType::Precommit] {
        for i in (0..4).filter(|&i| i != me) {
            let vote = match vt {
                VoteType::Prevote => {
                    GlucoContext.new_prevote(Height(1), Round::new(0), NilOrVal::Val(hash), net.addr(i))
                }
                VoteType::Precommit => {
                    GlucoContext.new_precommit(Height(1), Round::new(0), NilOrVal::Val(hash), net.addr(i))
                }
            };
            outputs.extend(node.on_message(ConsensusMessage::Vote(codec::sign_vote(&net.keys[i], vote))).unwrap());
        }
    }
    let decisions: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Decided(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0];
    assert_eq!(d.block.hash(), hash);
    let power = d.certificate.verify(1, &hash, &net.set).unwrap();
    assert!(net.set.is_quorum(power));
    assert!(node.is_awaiting_commit());
    // The votes it holds for the round (its own and received) answer a vote-set request.
    let held = node.votes(Round::new(0));
    assert_eq!(held.len(), 8, "4 prevotes and 4 precommits");
    assert!(held.iter().all(|m| matches!(m, ConsensusMessage::Vote(_))));
    // A vote from a member with a forged signature is dropped and reported.
    let mut forged = codec::sign_vote(
        &net.keys[(me + 1) % 4],
        GlucoContext.new_prevote(Height(1), Round::new(1), NilOrVal::Nil, net.addr((me + 1) % 4)),
    );
    forged.signature.0[5] ^= 1;
    let out = node.on_message(ConsensusMessage::Vote(forged)).unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Dropped { reason: glucochain_consensus::node::DropReason::BadSignature, .. }))
    );
    // A vote signed by a key outside the set is dropped and reported.
    let stranger = KeyPair::from_seed([99; 32]);
    let vote = GlucoContext.new_prevote(
        Height(1),
        Round::new(0),
        NilOrVal::Nil,
        Address(ParticipantId::from_public_key(&stranger.public())),
    );
    let out = node.on_message(ConsensusMessage::Vote(codec::sign_vote(&stranger, vote))).unwrap();
    assert!(out.iter().any(|o| matches!(o, Output::Dropped { .. })));
}

#[test]
fn a_lazily_opened_node_waits_for_work_and_keeps_early_messages() {
    let net = Net::new();
    let me = not_proposer(&net);
    let (mut node, outputs) =
        Node::open_lazily(NodeConfig::new(net.keys[me].clone()), MemWal::default(), 1, &net.set).unwrap();
    assert!(outputs.is_empty(), "an idle node sends nothing and sets no timer: {outputs:?}");
    assert!(!node.is_started());
    let (hash, msgs) = net.proposal(0);
    let mut early = Vec::new();
    for m in msgs {
        early.extend(node.on_message(m).unwrap());
    }
    assert!(early.iter().any(|o| matches!(o, Output::PeerAhead { height: Height(1), .. })));
    assert!(!early.iter().any(|o| matches!(o, Output::ValidateBlock { .. } | Output::Broadcast(_))));
    // Started (because a peer is at this height), it processes what it kept.
    let outputs = node.start_height(1, &net.set).unwrap();
    assert!(node.is_started());
    assert!(
        outputs.iter().any(|o| matches!(o, Output::ValidateBlock { block, .. } if block.hash() == hash)),
        "{outputs:?}"
    );
    // A node restarted with WAL records for its height resumes at once, even lazily.
    let wal = MemWal::default();
    let (node, _, _) = prevote_for_block(&net, me, wal.clone());
    drop(node);
    let (node, outputs) = Node::open_lazily(NodeConfig::new(net.keys[me].clone()), wal, 1, &net.set).unwrap();
    assert!(node.is_started());
    assert!(!own_votes(&outputs, &net.addr(me)).is_empty(), "re-sends its prevote");
}
