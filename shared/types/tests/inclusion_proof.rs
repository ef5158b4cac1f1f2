//! End-to-end check of offline inclusion proofs: a block of signed
//! transactions, a certificate from 3 of 4 validators, and proofs for every
//! transaction that verify with only the genesis file, and fail when any part
//! is tampered with.

use glucochain_crypto::merkle::MerkleTree;
use glucochain_crypto::{Hash32, KeyPair};
use glucochain_types::block::{BlockHeader, CommitCertificate, tx_root};
use glucochain_types::genesis::{ConsensusParams, GenesisAdmin, GenesisValidator};
use glucochain_types::proof::{InclusionError, InclusionProof};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{MedicationTaken, TxBody, TxPayload};
use glucochain_types::{ChainId, Genesis, ParticipantId};

struct Fixture {
    genesis: Genesis,
    keys: Vec<KeyPair>,
    jws: Vec<String>,
    header: BlockHeader,
    tree: MerkleTree,
}

fn fixture() -> Fixture {
    let keys: Vec<KeyPair> = (0..4).map(|i| KeyPair::from_seed([50 + i; 32])).collect();
    let genesis = Genesis {
        chain_id: ChainId::parse("glucochain-test").unwrap(),
        genesis_time: Timestamp::parse("2026-11-25T00:00:00Z").unwrap(),
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisValidator { name: format!("v{i}"), public_key: k.public(), power: 10 })
            .collect(),
        admins: vec![GenesisAdmin { name: "admin".into(), public_key: KeyPair::from_seed([1; 32]).public() }],
        params: ConsensusParams::default(),
    };
    let patient = KeyPair::from_seed([77; 32]);
    let pid = ParticipantId::from_public_key(&patient.public());
    let jws: Vec<String> = (0..11)
        .map(|i| {
            TxPayload::new(
                genesis.chain_id.clone(),
                format!("nonce-{i:04}"),
                Timestamp::from_unix_ms(1_764_000_000_000 + i),
                Some(pid.clone()),
                TxBody::MedicationTaken(MedicationTaken {
                    taken_at: Timestamp::from_unix_ms(1_764_000_000_000),
                    body_commitment: glucochain_crypto::sha256(format!("dose {i}").as_bytes()),
                }),
            )
            .sign(&patient, &pid)
        })
        .collect();
    let hashes: Vec<Hash32> = jws.iter().map(|j| glucochain_crypto::sha256(j.as_bytes())).collect();
    let tree = MerkleTree::from_entries(&hashes.iter().map(|h| h.0).collect::<Vec<_>>());
    assert_eq!(tree.root(), tx_root(&hashes));
    let header = BlockHeader {
        chain_id: genesis.chain_id.clone(),
        height: 1,
        time: Timestamp::parse("2026-11-25T00:00:01Z").unwrap(),
        prev_hash: genesis.hash(),
        tx_root: tree.root(),
        state_root: genesis.hash(),
        validators_hash: genesis.validator_set().hash(),
        proposer: ParticipantId::from_public_key(&keys[0].public()),
        tx_count: jws.len() as u32,
    };
    Fixture { genesis, keys, jws, header, tree }
}

fn proof(f: &Fixture, index: usize, signers: &[usize]) -> InclusionProof {
    let hash = f.header.hash();
    InclusionProof {
        tx_hash: glucochain_crypto::sha256(f.jws[index].as_bytes()),
        jws: Some(f.jws[index].clone()),
        leaf_index: index as u64,
        audit_path: f.tree.inclusion_proof(index as u64).unwrap(),
        header: f.header.clone(),
        certificate: CommitCertificate {
            height: 1,
            round: 0,
            block_hash: hash,
            signatures: signers
                .iter()
                .map(|&i| {
                    let id = ParticipantId::from_public_key(&f.keys[i].public());
                    CommitCertificate::sign_precommit(&f.keys[i], &id, 1, 0, &hash)
                })
                .collect(),
        },
        validator_set: None,
    }
}

#[test]
fn every_transaction_is_provable_offline() {
    let f = fixture();
    for i in 0..f.jws.len() {
        let p = proof(&f, i, &[0, 2, 3]);
        // Through JSON, as a client would receive it.
        let p: InclusionProof = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        let v = p.verify(&f.genesis).unwrap();
        assert_eq!((v.height, v.leaf_index, v.signed_power, v.total_power), (1, i as u64, 30, 40));
        assert!(v.genesis_validator_set);
    }
}

#[test]
fn tampered_proofs_fail() {
    let f = fixture();
    let good = proof(&f, 4, &[0, 1, 2]);
    good.verify(&f.genesis).unwrap();

    let mut p = good.clone();
    p.leaf_index = 5;
    assert!(matches!(p.verify(&f.genesis), Err(InclusionError::Path(_))));

    let mut p = good.clone();
    p.jws = Some(f.jws[5].clone());
    assert_eq!(p.verify(&f.genesis), Err(InclusionError::TxHashMismatch));

    let mut p = good.clone();
    p.header.state_root = glucochain_crypto::sha256(b"forged state");
    assert!(matches!(p.verify(&f.genesis), Err(InclusionError::Certificate(_))));

    let mut p = good.clone();
    p.header.tx_count += 1;
    assert!(p.verify(&f.genesis).is_err());

    let p = proof(&f, 4, &[0, 1]);
    assert!(matches!(p.verify(&f.genesis), Err(InclusionError::Certificate(_))));

    let mut other = f.genesis.clone();
    other.chain_id = ChainId::parse("glucochain-other").unwrap();
    assert!(matches!(good.verify(&other), Err(InclusionError::WrongChain { .. })));

    // Another genesis with the same chain id but other validators refuses it.
    let mut other = f.genesis.clone();
    other.validators[0].public_key = KeyPair::from_seed([9; 32]).public();
    assert_eq!(good.verify(&other), Err(InclusionError::ValidatorSetMismatch));
}
