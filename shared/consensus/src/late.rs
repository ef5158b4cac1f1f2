//! Equivocation that shows only after a height is decided.
//!
//! Malachite finds a double vote while the height runs. A slow validator's
//! votes, the conflicting pair included, can arrive after the others have
//! decided without it; Malachite then drops them as stale and the double
//! vote goes unrecorded (seen on a busy two-core machine, where a
//! byzantine validator that also floods is always the last to vote). So the
//! node keeps the votes it held for the height it just decided and compares
//! late ones against them, one height back, within a bound.

use crate::codec::ConsensusMessage;
use crate::context::{Address, GlucoContext, Height, ValidatorSet};
use crate::node::{Equivocation, EquivocationKind};
use glucochain_crypto::PublicKey;
use malachitebft_core_types::{Round, SignedVote, VoteType};
use std::collections::{HashMap, HashSet};

/// Rounds of one decided height kept per validator and vote type.
const ROUNDS_KEPT: usize = 64;

type Slot = (Round, VoteType, Address);

/// What became of a vote for the decided height.
#[derive(Debug)]
pub(crate) enum LateVote {
    /// Its sender was not a validator of that height.
    UnknownSender,
    /// The signature does not verify.
    BadSignature,
    /// It conflicts with a vote its sender signed before: evidence, once per slot.
    Conflict(Box<Equivocation>),
    /// Nothing to report (kept for later comparison, or a repeat).
    Stale,
}

/// The votes of the height this node decided last.
pub(crate) struct DecidedVotes {
    height: Height,
    keys: HashMap<Address, PublicKey>,
    votes: HashMap<Slot, SignedVote<GlucoContext>>,
    reported: HashSet<Slot>,
    cap: usize,
}

fn slot(v: &SignedVote<GlucoContext>) -> Slot {
    (v.message.round, v.message.vote_type, v.message.validator.clone())
}

impl DecidedVotes {
    /// The votes held for `height` when it was decided, with that height's
    /// validators; `reported` are the validators already reported per slot.
    pub(crate) fn new(
        height: Height,
        validators: &ValidatorSet,
        held: impl IntoIterator<Item = SignedVote<GlucoContext>>,
        reported: impl IntoIterator<Item = (Round, VoteType, Address)>,
    ) -> Self {
        let keys: HashMap<Address, PublicKey> =
            validators.validators().iter().map(|v| (v.address.clone(), v.public_key)).collect();
        let cap = keys.len() * 2 * ROUNDS_KEPT;
        let mut this =
            DecidedVotes { height, keys, votes: HashMap::new(), reported: reported.into_iter().collect(), cap };
        for v in held {
            if this.votes.len() < this.cap {
                this.votes.entry(slot(&v)).or_insert(v);
            }
        }
        this
    }

    /// The decided height.
    pub(crate) fn height(&self) -> Height {
        self.height
    }

    /// A vote for the decided height that arrived after the decision.
    pub(crate) fn on_vote(&mut self, vote: SignedVote<GlucoContext>) -> LateVote {
        let Some(key) = self.keys.get(&vote.message.validator) else { return LateVote::UnknownSender };
        let msg = ConsensusMessage::Vote(vote);
        if !msg.verify(key) {
            return LateVote::BadSignature;
        }
        let ConsensusMessage::Vote(vote) = msg else { unreachable!("built as a vote above") };
        let at = slot(&vote);
        match self.votes.get(&at) {
            Some(first) if first.message.value != vote.message.value => {
                if !self.reported.insert(at) {
                    return LateVote::Stale;
                }
                LateVote::Conflict(Box::new(Equivocation {
                    validator: vote.message.validator.0.clone(),
                    kind: EquivocationKind::Vote,
                    height: self.height.0,
                    round: vote.message.round.as_u32().unwrap_or(0),
                    first: ConsensusMessage::Vote(first.clone()).encode(),
                    second: ConsensusMessage::Vote(vote).encode(),
                }))
            }
            Some(_) => LateVote::Stale,
            None => {
                if self.votes.len() < self.cap {
                    self.votes.insert(at, vote);
                }
                LateVote::Stale
            }
        }
    }
}
