//! The genesis file: chain id, the first validators with their voting power,
//! the first admins, and consensus parameters. Its hash is the `prev_hash` of
//! block 1, so every block commits to it.

use crate::block::{Validator, ValidatorSet};
use crate::ids::{ChainId, ParticipantId};
use crate::time::Timestamp;
use glucochain_crypto::{Hash32, PublicKey, sha256_parts};
use serde::{Deserialize, Serialize};

/// A genesis validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// Operator-facing name (e.g. `st-mary-1`).
    pub name: String,
    /// Consensus key.
    pub public_key: PublicKey,
    /// Voting power (> 0).
    pub power: u64,
}

/// A genesis admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAdmin {
    /// Name.
    pub name: String,
    /// Key.
    pub public_key: PublicKey,
}

/// Consensus and block-building parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusParams {
    /// Most transactions per block.
    pub max_block_txs: u32,
    /// Most bytes of transactions per block.
    pub max_block_bytes: u64,
    /// Propose timeout, ms (grows per round).
    pub timeout_propose_ms: u64,
    /// Prevote timeout, ms.
    pub timeout_prevote_ms: u64,
    /// Precommit timeout, ms.
    pub timeout_precommit_ms: u64,
    /// Blocks between a `validator.update` commit and its effect.
    pub validator_update_delay: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            max_block_txs: 5000,
            max_block_bytes: 16 * 1024 * 1024,
            timeout_propose_ms: 3000,
            timeout_prevote_ms: 1000,
            timeout_precommit_ms: 1000,
            validator_update_delay: 2,
        }
    }
}

/// The genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id.
    pub chain_id: ChainId,
    /// Genesis time; block 1's time must be later.
    pub genesis_time: Timestamp,
    /// Initial validators.
    pub validators: Vec<GenesisValidator>,
    /// Initial admins.
    pub admins: Vec<GenesisAdmin>,
    /// Parameters.
    #[serde(default)]
    pub params: ConsensusParams,
}

/// A genesis file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Not the JSON we accept.
    #[error("genesis file: {0}")]
    Json(String),
    /// Inconsistent content.
    #[error("genesis file: {0}")]
    Invalid(String),
}

impl Genesis {
    /// Parses and validates genesis JSON.
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        let g: Genesis = serde_json::from_str(text).map_err(|e| GenesisError::Json(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    /// Reads a genesis file.
    pub fn read_file(path: &std::path::Path) -> Result<Self, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|e| GenesisError::Json(format!("{}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// Checks the rules: at least one validator, positive power, no key
    /// used twice, at least one admin, sane parameters.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Invalid(m));
        if self.validators.is_empty() {
            return bad("at least one validator is needed".into());
        }
        if self.admins.is_empty() {
            return bad("at least one admin is needed".into());
        }
        let mut keys = std::collections::BTreeSet::new();
        for v in &self.validators {
            if v.power == 0 || v.power > 1_000_000 {
                return bad(format!("validator {:?}: power must be 1..=1000000", v.name));
            }
            if v.name.trim().is_empty() {
                return bad("validator names must not be empty".into());
            }
            if !keys.insert(*v.public_key.as_bytes()) {
                return bad(format!("validator {:?}: key used twice", v.name));
            }
        }
        for a in &self.admins {
            if !keys.insert(*a.public_key.as_bytes()) {
                return bad(format!("admin {:?}: key already used by another genesis participant", a.name));
            }
        }
        let p = &self.params;
        if p.max_block_txs == 0 || p.max_block_bytes < 1024 || p.timeout_propose_ms == 0 {
            return bad("params: max_block_txs, max_block_bytes (>= 1024) and timeouts must be positive".into());
        }
        Ok(())
    }

    /// The genesis hash: SHA-256 over a tag and the file's canonical JSON
    /// (field order fixed by the types).
    pub fn hash(&self) -> Hash32 {
        let json = serde_json::to_vec(self).expect("genesis serializes");
        sha256_parts(&[b"glucochain/v1/genesis\0", &json])
    }

    /// The initial validator set.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet::new(
            self.validators
                .iter()
                .map(|v| Validator {
                    id: ParticipantId::from_public_key(&v.public_key),
                    public_key: v.public_key,
                    power: v.power,
                })
                .collect(),
        )
        .expect("validated genesis has a non-empty set without duplicates")
    }

    /// Ids of the initial admins.
    pub fn admin_ids(&self) -> Vec<ParticipantId> {
        self.admins.iter().map(|a| ParticipantId::from_public_key(&a.public_key)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_crypto::KeyPair;

    pub(crate) fn genesis(n: usize) -> Genesis {
        Genesis {
            chain_id: ChainId::parse("glucochain-test").unwrap(),
            genesis_time: Timestamp::parse("2026-11-25T00:00:00Z").unwrap(),
            validators: (0..n)
                .map(|i| GenesisValidator {
                    name: format!("v{i}"),
                    public_key: KeyPair::from_seed([i as u8 + 10; 32]).public(),
                    power: 10,
                })
                .collect(),
            admins: vec![GenesisAdmin { name: "admin".into(), public_key: KeyPair::from_seed([200; 32]).public() }],
            params: ConsensusParams::default(),
        }
    }

    #[test]
    fn round_trip_and_hash() {
        let g = genesis(4);
        let text = serde_json::to_string_pretty(&g).unwrap();
        let back = Genesis::from_json(&text).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.hash(), g.hash());
        assert_eq!(g.validator_set().total_power(), 40);
        let mut g2 = g.clone();
        g2.validators[0].power = 11;
        assert_ne!(g2.hash(), g.hash());
    }

    #[test]
    fn invalid_files_are_explained() {
        let mut g = genesis(2);
        g.validators[1].public_key = g.validators[0].public_key;
        assert!(g.validate().unwrap_err().to_string().contains("key used twice"));
        let mut g = genesis(2);
        g.validators.clear();
        assert!(g.validate().unwrap_err().to_string().contains("at least one validator"));
        let mut v = serde_json::to_value(genesis(1)).unwrap();
        v["surprise"] = 1.into();
        assert!(Genesis::from_json(&v.to_string()).unwrap_err().to_string().contains("unknown field"));
    }
}
