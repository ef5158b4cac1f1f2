//! verify-proof.

use anyhow::Context;
use glucochain_types::Genesis;
use glucochain_types::proof::InclusionProof;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

pub fn verify_proof(proof: &Path, genesis: &Path) -> anyhow::Result<ExitCode> {
    let genesis = Genesis::read_file(genesis)?;
    let proof: InclusionProof =
        serde_json::from_slice(&super::read_input(proof)?).context("the proof is not an inclusion proof JSON")?;
    match proof.verify(&genesis) {
        Ok(v) => {
            super::print_json(&json!({
                "verified": true,
                "tx_hash": proof.tx_hash,
                "height": v.height,
                "block_hash": v.block_hash,
                "leaf_index": v.leaf_index,
                "signed_power": v.signed_power,
                "total_power": v.total_power,
                "validator_set": if v.genesis_validator_set { "genesis" } else { "from proof (verify the chain to trust it)" },
            }));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            super::print_json(&json!({ "verified": false, "tx_hash": proof.tx_hash, "error": e.to_string() }));
            Ok(ExitCode::from(1))
        }
    }
}
