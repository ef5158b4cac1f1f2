//! Validators' rejections of transactions, counted before they are believed.
//! Each rejection is signed by the validator that made it (domain
//! `glucochain/v1/tx-rejection`); ingest marks a transaction `rejected` only
//! once validators holding more than a third of the voting power reported
//! it — so at least one correct validator refused it, and one faulty
//! validator cannot make a client give up on a transaction the chain would take.

use glucochain_crypto::Domain;
use glucochain_types::ParticipantId;
use glucochain_types::block::ValidatorSet;
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Most transactions tallied at once (the oldest are forgotten first).
const MAX_TALLIED: usize = 100_000;

/// Why a rejection report is not counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportRefused {
    /// Not from a validator of the current set.
    #[error("{0} is not a validator")]
    NotAValidator(String),
    /// The signature does not verify.
    #[error("the rejection's signature does not verify")]
    BadSignature,
}

#[derive(Debug, Default)]
struct Votes {
    by: BTreeSet<ParticipantId>,
    power: u64,
    decided: bool,
}

/// Rejections reported per transaction.
#[derive(Debug, Default)]
pub struct RejectionTally {
    votes: HashMap<Vec<u8>, Votes>,
    order: VecDeque<Vec<u8>>,
}

impl RejectionTally {
    /// Counts a report against `set`; returns true the first time the
    /// transaction's reporters hold more than a third of the power.
    pub fn add(&mut self, r: &wire::TxRejected, set: &ValidatorSet) -> Result<bool, ReportRefused> {
        let who = ParticipantId::parse(&r.validator).map_err(|_| ReportRefused::NotAValidator(r.validator.clone()))?;
        let v = set.get(&who).ok_or_else(|| ReportRefused::NotAValidator(r.validator.clone()))?;
        let mut unsigned = r.clone();
        unsigned.signature.clear();
        v.public_key
            .verify(Domain::TxRejection, &unsigned.encode_to_vec(), &r.signature)
            .map_err(|_| ReportRefused::BadSignature)?;
        if !self.votes.contains_key(&r.tx_hash) {
            if self.order.len() >= MAX_TALLIED
                && let Some(old) = self.order.pop_front()
            {
                self.votes.remove(&old);
            }
            self.order.push_back(r.tx_hash.clone());
        }
        let votes = self.votes.entry(r.tx_hash.clone()).or_default();
        if votes.by.insert(who) {
            votes.power += v.power;
        }
        if !votes.decided && u128::from(votes.power) * 3 > u128::from(set.total_power()) {
            votes.decided = true;
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_crypto::KeyPair;
    use glucochain_types::block::Validator;

    fn report(key: &KeyPair, hash: u8) -> wire::TxRejected {
        let mut r = wire::TxRejected {
            tx_hash: vec![hash; 32],
            code: "forbidden".into(),
            reason: "no consent".into(),
            height: 3,
            validator: ParticipantId::from_public_key(&key.public()).to_string(),
            signature: Vec::new(),
        };
        r.signature = key.sign(Domain::TxRejection, &r.encode_to_vec()).to_vec();
        r
    }

    #[test]
    fn m9_a_rejection_counts_only_signed_by_validators_with_more_than_a_third_of_the_power() {
        let keys: Vec<KeyPair> = (1..=4u8).map(|i| KeyPair::from_seed([i; 32])).collect();
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
        let mut t = RejectionTally::default();
        // One validator of four (a third at most) is not enough, however often it says so.
        assert_eq!(t.add(&report(&keys[0], 1), &set), Ok(false));
        assert_eq!(t.add(&report(&keys[0], 1), &set), Ok(false));
        // A second one makes it more than a third: decided once.
        assert_eq!(t.add(&report(&keys[1], 1), &set), Ok(true));
        assert_eq!(t.add(&report(&keys[2], 1), &set), Ok(false), "decided already");
        // Unsigned, forged, altered or from outside the set: not counted.
        let outsider = KeyPair::from_seed([9; 32]);
        assert!(matches!(t.add(&report(&outsider, 2), &set), Err(ReportRefused::NotAValidator(_))));
        let mut unsigned = report(&keys[0], 2);
        unsigned.signature.clear();
        assert_eq!(t.add(&unsigned, &set), Err(ReportRefused::BadSignature));
        let mut altered = report(&keys[0], 2);
        altered.tx_hash = vec![3; 32];
        assert_eq!(t.add(&altered, &set), Err(ReportRefused::BadSignature));
        let mut claimed = report(&outsider, 2);
        claimed.validator = ParticipantId::from_public_key(&keys[1].public()).to_string();
        assert_eq!(t.add(&claimed, &set), Err(ReportRefused::BadSignature), "a validator's name on another key");
    }
}
