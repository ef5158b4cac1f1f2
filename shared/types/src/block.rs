//! Block headers, validator sets and commit certificates.
//!
//! The block hash is SHA-256 of the header's canonical protobuf encoding
//! (`glucochain.v1.BlockHeader`, fields in number order, defaults omitted). A
//! commit certificate holds precommit signatures of validators with more than
//! two thirds of the voting power; each signature covers the domain-separated
//! canonical encoding of `Vote { PRECOMMIT, height, round, block hash,
//! validator }`, so anyone holding the validator set can check a block alone.

use crate::ids::{ChainId, ParticipantId};
use crate::time::Timestamp;
use glucochain_crypto::domain::BatchItem;
use glucochain_crypto::merkle::MerkleTree;
use glucochain_crypto::{Domain, Hash32, KeyPair, PublicKey, sha256, sha256_parts, verify_batch};
use glucochain_wire::v1 as wire;
use prost::Message;
use serde::{Deserialize, Serialize};

/// A block header (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockHeader {
    /// Chain id.
    pub chain_id: ChainId,
    /// Height (1 = first block after genesis).
    pub height: u64,
    /// Block time chosen by the proposer.
    pub time: Timestamp,
    /// Hash of the previous header; the genesis hash at height 1.
    pub prev_hash: Hash32,
    /// RFC 9162 root over the block's tx hashes.
    pub tx_root: Hash32,
    /// Hash of the state after the previous block.
    pub state_root: Hash32,
    /// Hash of the validator set that signs this block.
    pub validators_hash: Hash32,
    /// The proposer.
    pub proposer: ParticipantId,
    /// Number of transactions (binds the Merkle tree's size).
    pub tx_count: u32,
}

/// Malformed wire data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {field}: {reason}")]
pub struct WireError {
    /// Field.
    pub field: &'static str,
    /// Reason.
    pub reason: String,
}

fn hash_field(field: &'static str, b: &[u8]) -> Result<Hash32, WireError> {
    Hash32::from_slice(b).map_err(|e| WireError { field, reason: e.to_string() })
}

impl BlockHeader {
    /// The protobuf form.
    pub fn to_wire(&self) -> wire::BlockHeader {
        wire::BlockHeader {
            chain_id: self.chain_id.as_str().into(),
            height: self.height,
            time_ms: self.time.unix_ms(),
            prev_hash: self.prev_hash.0.to_vec(),
            tx_root: self.tx_root.0.to_vec(),
            state_root: self.state_root.0.to_vec(),
            validators_hash: self.validators_hash.0.to_vec(),
            proposer: self.proposer.as_str().into(),
            tx_count: self.tx_count,
        }
    }

    /// From the protobuf form, validating every field.
    pub fn from_wire(w: &wire::BlockHeader) -> Result<Self, WireError> {
        Ok(BlockHeader {
            chain_id: ChainId::parse(&w.chain_id)
                .map_err(|e| WireError { field: "chain_id", reason: e.to_string() })?,
            height: w.height,
            time: Timestamp::from_unix_ms(w.time_ms),
            prev_hash: hash_field("prev_hash", &w.prev_hash)?,
            tx_root: hash_field("tx_root", &w.tx_root)?,
            state_root: hash_field("state_root", &w.state_root)?,
            validators_hash: hash_field("validators_hash", &w.validators_hash)?,
            proposer: ParticipantId::parse(&w.proposer)
                .map_err(|e| WireError { field: "proposer", reason: e.to_string() })?,
            tx_count: w.tx_count,
        })
    }

    /// The canonical encoding that is hashed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// The block hash.
    pub fn hash(&self) -> Hash32 {
        sha256(&self.canonical_bytes())
    }
}

/// The `tx_root` of a block whose transactions have these hashes, in order.
pub fn tx_root(tx_hashes: &[Hash32]) -> Hash32 {
    MerkleTree::from_entries(&tx_hashes.iter().map(|h| h.0).collect::<Vec<_>>()).root()
}

/// One validator: identity, key and voting power.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// Participant id (derived from the key).
    pub id: ParticipantId,
    /// Consensus key.
    pub public_key: PublicKey,
    /// Voting power (> 0).
    pub power: u64,
}

/// The validators of a height, sorted by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// A set from validators (sorted by id; zero-power entries dropped).
    /// Returns `None` when ids repeat or no power remains.
    pub fn new(mut validators: Vec<Validator>) -> Option<Self> {
        validators.retain(|v| v.power > 0);
        validators.sort_by(|a, b| a.id.cmp(&b.id));
        if validators.is_empty() || validators.windows(2).any(|w| w[0].id == w[1].id) {
            return None;
        }
        Some(ValidatorSet { validators })
    }

    /// The validators, sorted by id.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// A validator by id.
    pub fn get(&self, id: &ParticipantId) -> Option<&Validator> {
        self.validators.binary_search_by(|v| v.id.cmp(id)).ok().map(|i| &self.validators[i])
    }

    /// Sum of voting power.
    pub fn total_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }

    /// Whether `power` is more than two thirds of the total (a quorum).
    pub fn is_quorum(&self, power: u64) -> bool {
        (power as u128) * 3 > (self.total_power() as u128) * 2
    }

    /// Hash committing to ids, keys and powers, in order.
    pub fn hash(&self) -> Hash32 {
        let mut buf = Vec::with_capacity(self.validators.len() * 80);
        for v in &self.validators {
            buf.extend_from_slice(&(v.id.as_str().len() as u32).to_be_bytes());
            buf.extend_from_slice(v.id.as_str().as_bytes());
            buf.extend_from_slice(v.public_key.as_bytes());
            buf.extend_from_slice(&v.power.to_be_bytes());
        }
        sha256_parts(&[b"glucochain/v1/validator-set\0", &buf])
    }
}

/// One precommit signature in a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitSig {
    /// Validator id.
    pub validator: ParticipantId,
    /// Signature, unpadded base64url.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// Precommits of more than 2/3 of the voting power for one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitCertificate {
    /// Height.
    pub height: u64,
    /// Round in which the block was decided.
    pub round: u32,
    /// The block hash.
    pub block_hash: Hash32,
    /// The signatures.
    pub signatures: Vec<CommitSig>,
}

/// Why a certificate was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    /// The certificate is for another block or height.
    #[error("certificate is for height {cert_height} block {cert_hash}, not height {height} block {hash}")]
    WrongBlock {
        /// Certificate height.
        cert_height: u64,
        /// Certificate block.
        cert_hash: Hash32,
        /// Expected height.
        height: u64,
        /// Expected block.
        hash: Hash32,
    },
    /// A signer is not in the validator set.
    #[error("signer {0} is not a validator at this height")]
    UnknownValidator(ParticipantId),
    /// A validator signed twice.
    #[error("validator {0} appears twice")]
    Duplicate(ParticipantId),
    /// Signatures that do not verify.
    #[error("signature of {0} does not verify")]
    BadSignature(ParticipantId),
    /// Not enough power.
    #[error("signers hold {signed} of {total} voting power; more than two thirds is needed")]
    NoQuorum {
        /// Power that signed.
        signed: u64,
        /// Total power.
        total: u64,
    },
}

/// The canonical bytes of a vote (before the domain tag), shared by the
/// validators that sign votes and everyone who checks certificates.
pub fn vote_bytes(
    kind: wire::VoteType,
    height: u64,
    round: u32,
    value_id: Option<&Hash32>,
    validator: &ParticipantId,
) -> Vec<u8> {
    wire::Vote {
        r#type: kind as i32,
        height,
        round,
        value_id: value_id.map(|h| h.0.to_vec()).unwrap_or_default(),
        validator: validator.as_str().into(),
    }
    .encode_to_vec()
}

impl CommitCertificate {
    /// Signs a precommit for a block, as a validator does.
    pub fn sign_precommit(
        key: &KeyPair,
        validator: &ParticipantId,
        height: u64,
        round: u32,
        block: &Hash32,
    ) -> CommitSig {
        let bytes = vote_bytes(wire::VoteType::Precommit, height, round, Some(block), validator);
        CommitSig { validator: validator.clone(), signature: key.sign(Domain::Vote, &bytes).to_vec() }
    }

    /// Verifies the certificate for the block `hash` at `height` against
    /// `set`; returns the voting power that signed.
    pub fn verify(&self, height: u64, hash: &Hash32, set: &ValidatorSet) -> Result<u64, CertificateError> {
        if self.height != height || &self.block_hash != hash {
            return Err(CertificateError::WrongBlock {
                cert_height: self.height,
                cert_hash: self.block_hash,
                height,
                hash: *hash,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut signed = 0u64;
        let mut msgs = Vec::with_capacity(self.signatures.len());
        let mut keys = Vec::with_capacity(self.signatures.len());
        for s in &self.signatures {
            let v = set.get(&s.validator).ok_or_else(|| CertificateError::UnknownValidator(s.validator.clone()))?;
            if !seen.insert(&s.validator) {
                return Err(CertificateError::Duplicate(s.validator.clone()));
            }
            signed += v.power;
            msgs.push(vote_bytes(
                wire::VoteType::Precommit,
                self.height,
                self.round,
                Some(&self.block_hash),
                &s.validator,
            ));
            keys.push(v.public_key);
        }
        let items: Vec<BatchItem> = self
            .signatures
            .iter()
            .zip(&msgs)
            .zip(&keys)
            .map(|((s, m), k)| BatchItem { key: k, domain: Domain::Vote, message: m, signature: &s.signature })
            .collect();
        if let Err(glucochain_crypto::SignatureError::BatchInvalid(bad)) = verify_batch(&items) {
            return Err(CertificateError::BadSignature(self.signatures[bad[0]].validator.clone()));
        }
        if !set.is_quorum(signed) {
            return Err(CertificateError::NoQuorum { signed, total: set.total_power() });
        }
        Ok(signed)
    }

    /// The protobuf form.
    pub fn to_wire(&self) -> wire::CommitCertificate {
        wire::CommitCertificate {
            height: self.height,
            round: self.round,
            block_hash: self.block_hash.0.to_vec(),
            signatures: self
                .signatures
                .iter()
                .map(|s| wire::CommitSignature {
                    validator: s.validator.as_str().into(),
                    signature: s.signature.clone(),
                })
                .collect(),
        }
    }

    /// From the protobuf form.
    pub fn from_wire(w: &wire::CommitCertificate) -> Result<Self, WireError> {
        let signatures = w
            .signatures
            .iter()
            .map(|s| {
                Ok(CommitSig {
                    validator: ParticipantId::parse(&s.validator)
                        .map_err(|e| WireError { field: "signatures.validator", reason: e.to_string() })?,
                    signature: s.signature.clone(),
                })
            })
            .collect::<Result<_, WireError>>()?;
        Ok(CommitCertificate {
            height: w.height,
            round: w.round,
            block_hash: hash_field("block_hash", &w.block_hash)?,
            signatures,
        })
    }
}

/// Serde helper: bytes as unpadded base64url.
pub mod b64 {
    use glucochain_crypto::jose::{b64url_decode as decode, b64url_encode as encode};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(b))
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode(&s).map_err(|_| serde::de::Error::custom("expected unpadded base64url"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn validators(n: usize) -> (Vec<KeyPair>, ValidatorSet) {
        let keys: Vec<KeyPair> = (0..n).map(|i| KeyPair::from_seed([i as u8 + 10; 32])).collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator {
                    id: ParticipantId::from_public_key(&k.public()),
                    public_key: k.public(),
                    power: 10,
                })
                .collect(),
        )
        .unwrap();
        (keys, set)
    }

    fn header() -> BlockHeader {
        BlockHeader {
            chain_id: ChainId::parse("glucochain-test").unwrap(),
            height: 5,
            time: Timestamp::from_unix_ms(1_700_000_000_000),
            prev_hash: sha256(b"prev"),
            tx_root: tx_root(&[sha256(b"a"), sha256(b"b")]),
            state_root: sha256(b"state"),
            validators_hash: sha256(b"vals"),
            proposer: ParticipantId::from_public_key(&KeyPair::from_seed([1; 32]).public()),
            tx_count: 2,
        }
    }

    #[test]
    fn header_hash_is_canonical_and_covers_every_field() {
        let h = header();
        let back = BlockHeader::from_wire(&wire::BlockHeader::decode(h.canonical_bytes().as_slice()).unwrap()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.hash(), h.hash());
        let mut variants = vec![];
        let mut x = h.clone();
        x.height += 1;
        variants.push(x);
        let mut x = h.clone();
        x.time = Timestamp::from_unix_ms(1);
        variants.push(x);
        let mut x = h.clone();
        x.prev_hash = sha256(b"other");
        variants.push(x);
        let mut x = h.clone();
        x.tx_root = sha256(b"other");
        variants.push(x);
        let mut x = h.clone();
        x.state_root = sha256(b"other");
        variants.push(x);
        let mut x = h.clone();
        x.validators_hash = sha256(b"other");
        variants.push(x);
        let mut x = h.clone();
        x.tx_count = 3;
        variants.push(x);
        let mut x = h.clone();
        x.chain_id = ChainId::parse("glucochain-other").unwrap();
        variants.push(x);
        for v in variants {
            assert_ne!(v.hash(), h.hash(), "{v:?}");
        }
    }

    fn certificate(keys: &[KeyPair], signers: &[usize], hash: &Hash32) -> CommitCertificate {
        CommitCertificate {
            height: 5,
            round: 1,
            block_hash: *hash,
            signatures: signers
                .iter()
                .map(|&i| {
                    let id = ParticipantId::from_public_key(&keys[i].public());
                    CommitCertificate::sign_precommit(&keys[i], &id, 5, 1, hash)
                })
                .collect(),
        }
    }

    #[test]
    fn certificate_needs_more_than_two_thirds() {
        let (keys, set) = validators(4);
        let hash = header().hash();
        assert_eq!(certificate(&keys, &[0, 1, 2], &hash).verify(5, &hash, &set), Ok(30));
        assert_eq!(certificate(&keys, &[0, 1, 2, 3], &hash).verify(5, &hash, &set), Ok(40));
        assert_eq!(
            certificate(&keys, &[0, 1], &hash).verify(5, &hash, &set),
            Err(CertificateError::NoQuorum { signed: 20, total: 40 })
        );
        assert!(!set.is_quorum(26) && set.is_quorum(27));
        // Exactly two thirds is not enough: 2 of 3 equal validators hold 20 of 30.
        let (keys3, set3) = validators(3);
        let hash3 = header().hash();
        assert_eq!(
            certificate(&keys3, &[0, 1], &hash3).verify(5, &hash3, &set3),
            Err(CertificateError::NoQuorum { signed: 20, total: 30 })
        );
        assert_eq!(certificate(&keys3, &[0, 1, 2], &hash3).verify(5, &hash3, &set3), Ok(30));
        let c = certificate(&keys, &[0, 1, 0], &hash);
        assert!(matches!(c.verify(5, &hash, &set), Err(CertificateError::Duplicate(_))));
        let other = sha256(b"other block");
        assert!(matches!(
            certificate(&keys, &[0, 1, 2], &hash).verify(5, &other, &set),
            Err(CertificateError::WrongBlock { .. })
        ));
        assert!(matches!(
            certificate(&keys, &[0, 1, 2], &hash).verify(6, &hash, &set),
            Err(CertificateError::WrongBlock { .. })
        ));
        // A signature for another round does not count.
        let mut c = certificate(&keys, &[0, 1, 2], &hash);
        c.round = 2;
        assert!(matches!(c.verify(5, &hash, &set), Err(CertificateError::BadSignature(_))));
        // An outsider's signature is refused.
        let outsider = KeyPair::from_seed([99; 32]);
        let oid = ParticipantId::from_public_key(&outsider.public());
        let mut c = certificate(&keys, &[0, 1, 2], &hash);
        c.signatures.push(CommitCertificate::sign_precommit(&outsider, &oid, 5, 1, &hash));
        assert_eq!(c.verify(5, &hash, &set), Err(CertificateError::UnknownValidator(oid)));
        // Wire round trip.
        let c = certificate(&keys, &[3, 1, 2], &hash);
        assert_eq!(CommitCertificate::from_wire(&c.to_wire()).unwrap(), c);
    }

    #[test]
    fn validator_set_rules() {
        let (_, set) = validators(4);
        assert_eq!(set.total_power(), 40);
        let mut dup = set.validators().to_vec();
        dup.push(dup[0].clone());
        assert!(ValidatorSet::new(dup).is_none());
        let mut reweighted = set.validators().to_vec();
        reweighted[0].power = 11;
        assert_ne!(ValidatorSet::new(reweighted).unwrap().hash(), set.hash());
    }
}
