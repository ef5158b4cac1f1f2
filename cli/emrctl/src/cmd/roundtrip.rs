//! `emrctl roundtrip`: the cryptographic path end to end, offline.

use anyhow::{Context, ensure};
use glucochain_crypto::KeyPair;
use glucochain_crypto::merkle::MerkleTree;
use glucochain_types::block::{BlockHeader, CommitCertificate};
use glucochain_types::fhir::cgm_observation;
use glucochain_types::genesis::{ConsensusParams, GenesisAdmin, GenesisValidator};
use glucochain_types::proof::InclusionProof;
use glucochain_types::sealed::ObservationBody;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{TxLimits, TxPayload};
use glucochain_types::{ChainId, DataClass, Genesis, ParticipantId, Transaction};
use std::path::Path;
use std::process::ExitCode;

fn step(n: u32, text: &str) {
    println!("[{n}] {text}");
}

fn ok(text: &str) {
    println!("    ok: {text}");
}

fn new_key(dir: &Path, name: &str) -> anyhow::Result<KeyPair> {
    let kp = KeyPair::generate();
    kp.write_pem_file(&dir.join(format!("{name}.pem")), true)?;
    Ok(kp)
}

pub fn run(dir: &Path, n_validators: u8) -> anyhow::Result<ExitCode> {
    ensure!((1..=100).contains(&n_validators), "--validators must be 1..=100");
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).with_context(|| format!("create {}", keys_dir.display()))?;
    println!("GlucoChain offline round trip in {}\n", dir.display());

    step(1, &format!("keys: admin, patient, {n_validators} validators (PKCS#8 PEM, mode 0600)"));
    let admin = new_key(&keys_dir, "admin")?;
    let patient = new_key(&keys_dir, "patient")?;
    let validators: Vec<KeyPair> =
        (1..=n_validators).map(|i| new_key(&keys_dir, &format!("validator-{i}"))).collect::<Result<_, _>>()?;
    let patient_id = ParticipantId::from_public_key(&patient.public());
    ok(&format!("patient's secure id {patient_id}"));

    step(2, "genesis file");
    let genesis = Genesis {
        chain_id: ChainId::parse("glucochain-roundtrip")?,
        genesis_time: Timestamp::now(),
        validators: validators
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisValidator { name: format!("validator-{}", i + 1), public_key: k.public(), power: 10 })
            .collect(),
        admins: vec![GenesisAdmin { name: "admin".into(), public_key: admin.public() }],
        params: ConsensusParams::default(),
    };
    genesis.validate()?;
    let genesis_path = dir.join("genesis.json");
    std::fs::write(&genesis_path, serde_json::to_string_pretty(&genesis)? + "\n")?;
    ok(&format!("{} (hash {})", genesis_path.display(), genesis.hash()));

    step(3, "the patient signs 12 CGM readings (FHIR Observation, LOINC 99504-3) as one transaction");
    let start = Timestamp::now().unix_ms() - 60 * 60 * 1000;
    let observations = (0..12)
        .map(|i| {
            let mg = 140.0 - 6.0 * i as f64;
            cgm_observation(
                patient_id.as_str(),
                Timestamp::from_unix_ms(start + i * 5 * 60 * 1000),
                mg,
                Some(&format!("rt-{i}")),
            )
        })
        .collect();
    let payload = TxPayload::new(
        genesis.chain_id.clone(),
        super::random_nonce(),
        Timestamp::now(),
        Some(patient_id.clone()),
        ObservationBody::seal(observations, DataClass::Private).0,
    );
    let jws = payload.sign(&patient, &patient_id);
    std::fs::write(dir.join("tx.jws"), format!("{jws}\n"))?;
    let tx = Transaction::parse(&jws, &TxLimits::default())?;
    tx.verify_signature(&patient.public())?;
    tx.check_chain(&genesis.chain_id)?;
    ok(&format!("tx {} ({} bytes), signature verifies, strict parse passes", tx.hash, jws.len()));

    step(4, "a block holding it, committed by a quorum of the local validator keys");
    let set = genesis.validator_set();
    let tree = MerkleTree::from_entries(&[tx.hash.0]);
    let header = BlockHeader {
        chain_id: genesis.chain_id.clone(),
        height: 1,
        time: Timestamp::now(),
        prev_hash: genesis.hash(),
        tx_root: tree.root(),
        state_root: genesis.hash(),
        validators_hash: set.hash(),
        proposer: ParticipantId::from_public_key(&validators[0].public()),
        tx_count: 1,
    };
    let block_hash = header.hash();
    // The smallest number of equal-power validators that is more than 2/3.
    let quorum = (2 * n_validators as usize) / 3 + 1;
    let certificate = CommitCertificate {
        height: 1,
        round: 0,
        block_hash,
        signatures: validators
            .iter()
            .take(quorum)
            .map(|k| {
                CommitCertificate::sign_precommit(k, &ParticipantId::from_public_key(&k.public()), 1, 0, &block_hash)
            })
            .collect(),
    };
    ok(&format!("block 1 {block_hash}, {quorum} of {n_validators} precommits"));

    step(5, "inclusion proof, verified offline with only the genesis file");
    let proof = InclusionProof {
        tx_hash: tx.hash,
        jws: Some(jws.clone()),
        leaf_index: 0,
        audit_path: tree.inclusion_proof(0)?,
        header,
        certificate,
        validator_set: None,
    };
    let proof_path = dir.join("proof.json");
    std::fs::write(&proof_path, serde_json::to_string_pretty(&proof)? + "\n")?;
    let v = proof.verify(&genesis)?;
    ok(&format!("verified: height {}, {} of {} voting power signed", v.height, v.signed_power, v.total_power));

    step(6, "tampering is caught");
    let mut forged = proof.clone();
    forged.header.tx_root.0[0] ^= 1;
    ensure!(forged.verify(&genesis).is_err(), "a forged tx root verified");
    ok("a changed tx root is refused");
    if quorum > 1 {
        let mut weak = proof.clone();
        weak.certificate.signatures.truncate(quorum - 1);
        let err = weak.verify(&genesis).expect_err("a certificate below quorum verified");
        ok(&format!("{} signatures are refused: {err}", quorum - 1));
    }

    println!("\nAll steps passed. Check it yourself:");
    println!("  emrctl verify-tx {} --public-key {}", dir.join("tx.jws").display(), patient.public());
    println!("  emrctl verify-proof --proof {} --genesis {}", proof_path.display(), genesis_path.display());
    Ok(ExitCode::SUCCESS)
}
