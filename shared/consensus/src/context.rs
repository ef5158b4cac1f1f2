//! GlucoChain's Malachite [`Context`](mt::Context): heights, rounds, validator
//! addresses and voting power, Ed25519 signing through our crypto crate,
//! proposals and votes, and values = blocks (identified by their hash; the
//! block itself travels as streamed proposal parts).

use glucochain_crypto::{Hash32, KeyPair, PublicKey};
use glucochain_types::block::BlockHeader;
use glucochain_types::{ParticipantId, ValidatorSet as TypesValidatorSet};
use malachitebft_core_types::{self as mt, NilOrVal, Round, SignedExtension, VoteType};
use std::fmt;
use std::sync::Arc;

/// A block height (1 = first block after genesis).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its participant id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub ParticipantId);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mt::Address for Address {}

/// The value consensus decides on: a block, by its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockRef(pub Hash32);

impl mt::Value for BlockRef {
    type Id = Hash32;

    fn id(&self) -> Hash32 {
        self.0
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<Hash32>,
    /// The voter.
    pub validator: Address,
    /// Vote extension (unused: GlucoChain runs without extensions).
    pub extension: Option<SignedExtension<GlucoContext>>,
}

impl mt::Vote<GlucoContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<Hash32> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<Hash32> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<GlucoContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<GlucoContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<GlucoContext>) -> Self {
        Vote { extension: Some(extension), ..self }
    }
}

/// A proposal: the proposer commits to a block hash for a height and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The proposed block.
    pub value: BlockRef,
    /// Proof-of-lock round, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
}

impl mt::Proposal<GlucoContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockRef {
        &self.value
    }
    fn take_value(self) -> BlockRef {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// What one streamed proposal part carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartContent {
    /// First part: the block header.
    Header(BlockHeader),
    /// Transactions, in order.
    Txs(Vec<Vec<u8>>),
    /// Last part: how many parts were sent and the block hash.
    Fin {
        /// Number of parts including this one.
        parts: u32,
        /// Hash of the block.
        block_hash: Hash32,
    },
}

/// One part of a streamed block proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalPart {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The proposer (the signer of every part).
    pub proposer: Address,
    /// Position in the stream, from 0.
    pub sequence: u32,
    /// Content.
    pub content: PartContent,
}

impl mt::ProposalPart<GlucoContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self.content, PartContent::Header(_))
    }
    fn is_last(&self) -> bool {
        matches!(self.content, PartContent::Fin { .. })
    }
}

/// A validator as consensus sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Address.
    pub address: Address,
    /// Consensus key.
    pub public_key: PublicKey,
    /// Voting power.
    pub power: u64,
}

impl mt::Validator<GlucoContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.power
    }
}

/// The validator set of a height, sorted by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: u64,
}

impl ValidatorSet {
    /// From the data model's validator set.
    pub fn from_types(set: &TypesValidatorSet) -> Self {
        let validators: Vec<Validator> = set
            .validators()
            .iter()
            .map(|v| Validator { address: Address(v.id.clone()), public_key: v.public_key, power: v.power })
            .collect();
        let total = validators.iter().map(|v| v.power).sum();
        ValidatorSet { validators, total }
    }

    /// The validators.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }
}

impl mt::ValidatorSet<GlucoContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.total
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.binary_search_by(|v| v.address.cmp(address)).ok().map(|i| &self.validators[i])
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// A 64-byte Ed25519 signature.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 64]);

/// Ed25519 through `glucochain_crypto` (domain-separated, strict verification).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl mt::SigningScheme for Ed25519 {
    type DecodingError = String;
    type Signature = Signature;
    type PublicKey = PublicKey;
    type PrivateKey = Arc<KeyPair>;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, String> {
        bytes.try_into().map(Signature).map_err(|_| format!("a signature is 64 bytes, got {}", bytes.len()))
    }
    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, String> {
        PublicKey::from_bytes(bytes).map_err(|e| e.to_string())
    }
    fn encode_public_key(public_key: &PublicKey) -> Vec<u8> {
        public_key.as_bytes().to_vec()
    }
}

/// Timeouts: Malachite's linear schedule (base + delta × round, capped).
pub type Timeouts = mt::LinearTimeouts;

/// The context tying the types together.
#[derive(Clone, Debug, Default)]
pub struct GlucoContext;

impl mt::Context for GlucoContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = Timeouts;
    type Value = BlockRef;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(&self, set: &'a ValidatorSet, height: Height, round: Round) -> &'a Validator {
        let seq = height.0.wrapping_add(round.as_u32().unwrap_or(0) as u64);
        &set.validators[proposer_index(&set.validators.iter().map(|v| v.power).collect::<Vec<_>>(), seq)]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockRef,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal { height, round, value, pol_round, proposer: address }
    }

    fn new_prevote(&self, height: Height, round: Round, value: NilOrVal<Hash32>, address: Address) -> Vote {
        Vote { vote_type: VoteType::Prevote, height, round, value, validator: address, extension: None }
    }

    fn new_precommit(&self, height: Height, round: Round, value: NilOrVal<Hash32>, address: Address) -> Vote {
        Vote { vote_type: VoteType::Precommit, height, round, value, validator: address, extension: None }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Weighted proposer rotation: step `seq` of smooth weighted round robin
/// over `powers` (each validator proposes in proportion to its power, spread
/// out rather than in runs). Deterministic in `(powers, seq)`. The schedule
/// repeats with period Σ(power / gcd); periods above 4096 are computed on
/// powers scaled to 4096 in total.
pub fn proposer_index(powers: &[u64], seq: u64) -> usize {
    assert!(!powers.is_empty(), "a validator set is never empty");
    let g = powers.iter().fold(0, |a, &p| gcd(a, p)).max(1);
    let mut weights: Vec<u64> = powers.iter().map(|p| p / g).collect();
    let mut period: u64 = weights.iter().sum();
    if period > 4096 {
        let total: u64 = powers.iter().sum();
        weights = powers.iter().map(|&p| ((p as u128 * 4096 / total as u128) as u64).max(1)).collect();
        period = weights.iter().sum();
    }
    let steps = seq % period;
    let mut current = vec![0i128; weights.len()];
    let mut pick = 0;
    for _ in 0..=steps {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += *w as i128;
        }
        pick = (0..current.len()).max_by_key(|&i| (current[i], std::cmp::Reverse(i))).expect("non-empty");
        current[pick] -= period as i128;
    }
    pick
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_power_rotates_one_by_one() {
        let picks: Vec<usize> = (0..8).map(|s| proposer_index(&[10, 10, 10, 10], s)).collect();
        assert_eq!(picks, vec![0, 1, 2, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn weighted_rotation_is_proportional_and_spread() {
        let powers = [30, 10, 10, 10];
        let picks: Vec<usize> = (0..6).map(|s| proposer_index(&powers, s)).collect();
        let count0 = picks.iter().filter(|&&p| p == 0).count();
        assert_eq!(count0, 3, "{picks:?}");
        // Never three in a row for the heavy validator.
        assert!(picks.windows(3).all(|w| !(w[0] == 0 && w[1] == 0 && w[2] == 0)), "{picks:?}");
        // Large, coprime powers still work and stay proportional.
        let big = [1_000_003, 999_999];
        let n = 4096;
        let c0 = (0..n).filter(|&s| proposer_index(&big, s) == 0).count();
        assert!((2000..=2100).contains(&c0), "{c0}");
    }
}
