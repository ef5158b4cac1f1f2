//! Consensus messages survive the wire unchanged, and any change to their
//! bytes is caught by decoding or by the sender's signature.

use glucochain_consensus::block::Block;
use glucochain_consensus::codec::{self, ConsensusMessage};
use glucochain_consensus::context::{Address, BlockRef, GlucoContext, Height};
use glucochain_crypto::{Hash32, KeyPair, sha256};
use glucochain_types::block::BlockHeader;
use glucochain_types::time::Timestamp;
use glucochain_types::{ChainId, ParticipantId};
use malachitebft_core_types::{Context as _, NilOrVal, PolkaCertificate, PolkaSignature, Round};
use proptest::prelude::*;

fn key() -> KeyPair {
    KeyPair::from_seed([42; 32])
}

fn me(k: &KeyPair) -> Address {
    Address(ParticipantId::from_public_key(&k.public()))
}

fn block(k: &KeyPair) -> Block {
    let header = BlockHeader {
        chain_id: ChainId::parse("glucochain-codec").unwrap(),
        height: 9,
        time: Timestamp::from_unix_ms(1_790_000_000_123),
        prev_hash: sha256(b"prev"),
        tx_root: Hash32::default(),
        state_root: sha256(b"state"),
        validators_hash: sha256(b"vals"),
        proposer: me(k).0,
        tx_count: 0,
    };
    Block::new(header, vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()])
}

fn samples() -> Vec<ConsensusMessage> {
    let k = key();
    let b = block(&k);
    let h = b.hash();
    let mut out = vec![
        ConsensusMessage::Vote(codec::sign_vote(
            &k,
            GlucoContext.new_prevote(Height(9), Round::new(2), NilOrVal::Val(h), me(&k)),
        )),
        ConsensusMessage::Vote(codec::sign_vote(
            &k,
            GlucoContext.new_precommit(Height(9), Round::new(0), NilOrVal::Nil, me(&k)),
        )),
        ConsensusMessage::Proposal(codec::sign_proposal(
            &k,
            GlucoContext.new_proposal(Height(9), Round::new(3), BlockRef(h), Round::new(1), me(&k)),
        )),
    ];
    for p in codec::block_parts(&b, Height(9), Round::new(3), &me(&k), 2) {
        out.push(codec::sign_part(&k, p));
    }
    let sig =
        codec::sign_vote(&k, GlucoContext.new_prevote(Height(9), Round::new(2), NilOrVal::Val(h), me(&k))).signature;
    let polka = PolkaCertificate {
        height: Height(9),
        round: Round::new(2),
        value_id: h,
        polka_signatures: vec![PolkaSignature::new(me(&k), sig)],
    };
    out.push(ConsensusMessage::sign_polka(&k, me(&k), polka));
    out
}

#[test]
fn every_kind_round_trips_and_verifies() {
    let k = key();
    let msgs = samples();
    assert_eq!(msgs.len(), 3 + 4 + 1, "vote, vote, proposal, header + 2 tx chunks + fin, polka");
    for m in msgs {
        let decoded = ConsensusMessage::decode(&m.encode()).unwrap();
        assert_eq!(decoded, m);
        assert!(decoded.verify(&k.public()));
        assert!(!decoded.verify(&KeyPair::from_seed([1; 32]).public()), "another key does not verify it");
    }
}

#[test]
fn a_signature_of_one_kind_is_not_valid_for_another() {
    // Same key, a proposal signature moved onto a vote envelope: refused.
    let k = key();
    let msgs = samples();
    let (ConsensusMessage::Vote(v), ConsensusMessage::Proposal(p)) = (&msgs[0], &msgs[2]) else { panic!() };
    let mut forged = v.clone();
    forged.signature = p.signature.clone();
    assert!(!ConsensusMessage::Vote(forged).verify(&k.public()));
}

#[test]
fn sender_must_be_the_author() {
    let k = key();
    let other = KeyPair::from_seed([7; 32]);
    let mut w = samples()[0].to_wire();
    w.sender = me(&other).0.as_str().into();
    assert!(matches!(ConsensusMessage::from_wire(&w), Err(codec::CodecError::SenderMismatch { .. })));
    let _ = k;
}

#[test]
fn a_relayed_certificate_cannot_be_reattributed() {
    // Found by the property test below: the relayer must be covered by the signature.
    let k = key();
    let mut w = samples()[7].to_wire();
    w.sender = me(&KeyPair::from_seed([8; 32])).0.as_str().into();
    let m = ConsensusMessage::from_wire(&w).unwrap();
    assert!(!m.verify(&k.public()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_changed_byte_is_caught(which in 0usize..8, pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let k = key();
        let m = &samples()[which];
        let mut bytes = m.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        match ConsensusMessage::decode(&bytes) {
            Err(_) => {}
            Ok(d) => prop_assert!(&d == m || !d.verify(&k.public()), "a changed message still verifies"),
        }
    }
}
