//! Self-contained inclusion proofs: everything needed to check, offline and
//! with only the genesis file, that a transaction is in a committed block.
//!
//! A proof holds the tx hash (and optionally the JWS itself), its position
//! and audit path in the block's RFC 9162 tree, the block header, and the
//! block's commit certificate. Verification recomputes the tx root from the
//! path, the block hash from the header, and checks the certificate's
//! signatures against the validator set. The set is the genesis set unless the
//! proof carries another one whose hash the header commits to; in that case
//! the set's legitimacy is established by verifying the chain (`emrctl
//! verify-chain`), which follows every validator update from genesis.

use crate::block::{BlockHeader, CertificateError, CommitCertificate, ValidatorSet};
use crate::genesis::Genesis;
use glucochain_crypto::merkle::{ProofError, leaf_hash, verify_inclusion};
use glucochain_crypto::{Hash32, sha256};
use serde::{Deserialize, Serialize};

/// An inclusion proof bundle (the JSON of `GET /v1/transactions/{hash}/proof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The transaction's hash.
    pub tx_hash: Hash32,
    /// The transaction itself (JWS), when the prover includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jws: Option<String>,
    /// Index of the transaction in the block.
    pub leaf_index: u64,
    /// RFC 9162 audit path, bottom-up.
    pub audit_path: Vec<Hash32>,
    /// The block header.
    pub header: BlockHeader,
    /// The block's commit certificate.
    pub certificate: CommitCertificate,
    /// The validator set of that height, when it is not the genesis set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_set: Option<ValidatorSet>,
}

/// What a verified proof establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedInclusion {
    /// Height of the block.
    pub height: u64,
    /// Hash of the block.
    pub block_hash: Hash32,
    /// Index in the block.
    pub leaf_index: u64,
    /// Voting power that signed.
    pub signed_power: u64,
    /// Total voting power.
    pub total_power: u64,
    /// Whether the validator set was the genesis set (else: verify the chain
    /// to establish the set).
    pub genesis_validator_set: bool,
}

/// Why a proof was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InclusionError {
    /// Another chain.
    #[error("proof is for chain {found}, the genesis file is for {expected}")]
    WrongChain {
        /// Genesis chain.
        expected: String,
        /// Proof chain.
        found: String,
    },
    /// The JWS does not hash to the tx hash.
    #[error("the included transaction does not hash to tx_hash")]
    TxHashMismatch,
    /// The Merkle path does not lead to the header's tx root.
    #[error("inclusion path: {0}")]
    Path(#[from] ProofError),
    /// The header does not commit to the validator set used.
    #[error("the header's validators_hash does not match the validator set")]
    ValidatorSetMismatch,
    /// The certificate does not commit this header.
    #[error("certificate: {0}")]
    Certificate(#[from] CertificateError),
}

impl InclusionProof {
    /// Verifies the proof against the genesis file.
    pub fn verify(&self, genesis: &Genesis) -> Result<VerifiedInclusion, InclusionError> {
        if self.header.chain_id != genesis.chain_id {
            return Err(InclusionError::WrongChain {
                expected: genesis.chain_id.to_string(),
                found: self.header.chain_id.to_string(),
            });
        }
        if let Some(jws) = &self.jws
            && sha256(jws.as_bytes()) != self.tx_hash
        {
            return Err(InclusionError::TxHashMismatch);
        }
        verify_inclusion(
            &leaf_hash(&self.tx_hash.0),
            self.leaf_index,
            self.header.tx_count as u64,
            &self.audit_path,
            &self.header.tx_root,
        )?;
        let genesis_set = genesis.validator_set();
        let set = self.validator_set.as_ref().unwrap_or(&genesis_set);
        if set.hash() != self.header.validators_hash {
            return Err(InclusionError::ValidatorSetMismatch);
        }
        let block_hash = self.header.hash();
        let signed_power = self.certificate.verify(self.header.height, &block_hash, set)?;
        Ok(VerifiedInclusion {
            height: self.header.height,
            block_hash,
            leaf_index: self.leaf_index,
            signed_power,
            total_power: set.total_power(),
            genesis_validator_set: set == &genesis_set,
        })
    }
}
