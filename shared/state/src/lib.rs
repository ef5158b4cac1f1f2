//! GlucoChain's ledger state machine: pure, deterministic rules that every
//! validator (and the contracts engine) runs on the same committed blocks to
//! reach the same state.
//!
//! * **Registry and roles**: who is registered, with which key and role, by
//!   whom; revocation takes effect from the block that commits it.
//! * **Admission** of a transaction ([`BlockExecution::admit`]): syntax,
//!   chain id, registered and unrevoked signer, signature with the registered
//!   key, the signer's role for the type, a creation time inside the window
//!   around the block time, no replayed nonce or hash, and the rules of the
//!   type (who may register whom, validator updates, the patient exists).
//! * **Validator set changes** (`validator.update`, admins only) take effect
//!   [`ConsensusParams::validator_update_delay`] blocks after the block that
//!   commits them, so every validator knows the set of a height in advance.
//! * **State root**: a hash chain over every block's effects (see
//!   [`LedgerState::root`]); a block header carries the root after its parent.
//!
//! Blocks are checked and applied with the same code: a
//! [`BlockExecution`] admits transactions one by one against the state plus
//! the effects of the transactions before them in the block, then
//! [`LedgerState::apply`] commits the effects.

use glucochain_crypto::{Hash32, PublicKey, RawBatchItem, sha256_parts, verify_batch_raw};
use glucochain_types::block::{Validator, ValidatorSet};
use glucochain_types::genesis::{ConsensusParams, Genesis};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{ParticipantRegister, ParticipantRevoke, TxBody, TxLimits, ValidatorUpdate};
use glucochain_types::{BlockHeader, ChainId, ParticipantId, Role, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashSet};

pub mod contracts;
pub use contracts::{
    Contracts, ReadDecision, decide_careplan_read, decide_read, emergency_profile_for, grantee_covers,
    service_may_append,
};

/// A transaction may be created at most this long before the block time.
pub const TX_MAX_AGE_MS: i64 = 60 * 60 * 1000;
/// A transaction may be created at most this long after the block time (clock skew).
pub const TX_MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

/// A registered participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Id (derived from the key).
    pub id: ParticipantId,
    /// Role.
    pub role: Role,
    /// Signing key.
    pub public_key: PublicKey,
    /// Institution it belongs to, if any.
    pub institution: Option<ParticipantId>,
    /// Who registered it (`None` for genesis participants and self-registered patients).
    pub registered_by: Option<ParticipantId>,
    /// Height of the block that registered it (0 = genesis).
    pub registered_at: u64,
    /// Time of the block that registered it (the genesis time for genesis participants).
    pub registered_ms: i64,
    /// Height of the block that revoked it.
    pub revoked_at: Option<u64>,
}

impl Participant {
    /// Whether it may act (registered and not revoked).
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Why a transaction is not admitted. `code` is stable (API problem types,
/// `TxRejected.code`); `reason` is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Rejection {
    /// Stable code, e.g. `unknown-signer`, `replay`, `forbidden`.
    pub code: &'static str,
    /// Explanation.
    pub reason: String,
}

impl Rejection {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Rejection { code, reason: reason.into() }
    }

    /// Whether the same transaction could be admitted later (only a time
    /// window that has not opened yet); all other rejections are final.
    pub fn is_retryable(&self) -> bool {
        self.code == "not-yet-valid"
    }
}

/// A transaction admitted into a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The parsed transaction.
    pub tx: Transaction,
}

/// The effects of a checked block, ready for [`LedgerState::apply`].
#[derive(Debug, Clone, Default)]
pub struct BlockEffects {
    registered: BTreeMap<ParticipantId, Participant>,
    revoked: BTreeSet<ParticipantId>,
    nonces: Vec<(ParticipantId, String, i64, Hash32)>,
    hashes: HashSet<Hash32>,
    nonce_set: HashSet<(ParticipantId, String)>,
    validator_updates: Vec<ValidatorUpdate>,
    bytes: u64,
    contracts: Contracts,
}

/// The committed ledger state after some height.
#[derive(Debug, Clone)]
pub struct LedgerState {
    chain_id: ChainId,
    params: ConsensusParams,
    limits: TxLimits,
    height: u64,
    last_block_hash: Hash32,
    last_block_time: Timestamp,
    root: Hash32,
    participants: BTreeMap<ParticipantId, Participant>,
    validators: ValidatorSet,
    scheduled: BTreeMap<u64, Vec<ValidatorUpdate>>,
    /// (signer, nonce) and tx hashes seen within the replay window, with their creation times.
    nonces: HashSet<(ParticipantId, String)>,
    hashes: HashSet<Hash32>,
    expiry: BTreeMap<(i64, u64), ((ParticipantId, String), Hash32)>,
    expiry_seq: u64,
    contracts: Contracts,
}

/// A header that does not follow the state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block header {field}: {reason}")]
pub struct HeaderError {
    /// The header field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn header_err(field: &'static str, reason: impl Into<String>) -> HeaderError {
    HeaderError { field, reason: reason.into() }
}

impl LedgerState {
    /// The state at genesis (height 0): admins and validators registered,
    /// the genesis validator set, root derived from the genesis hash.
    pub fn genesis(g: &Genesis) -> Self {
        let mut participants = BTreeMap::new();
        for (role, key) in g
            .admins
            .iter()
            .map(|a| (Role::Admin, a.public_key))
            .chain(g.validators.iter().map(|v| (Role::Validator, v.public_key)))
        {
            let id = ParticipantId::from_public_key(&key);
            participants.insert(
                id.clone(),
                Participant {
                    id,
                    role,
                    public_key: key,
                    institution: None,
                    registered_by: None,
                    registered_at: 0,
                    registered_ms: g.genesis_time.unix_ms(),
                    revoked_at: None,
                },
            );
        }
        let genesis_hash = g.hash();
        LedgerState {
            chain_id: g.chain_id.clone(),
            params: g.params.clone(),
            limits: TxLimits::default(),
            height: 0,
            last_block_hash: genesis_hash,
            last_block_time: g.genesis_time,
            root: sha256_parts(&[b"glucochain/v1/state\0genesis", &genesis_hash.0]),
            participants,
            validators: g.validator_set(),
            scheduled: BTreeMap::new(),
            nonces: HashSet::new(),
            hashes: HashSet::new(),
            expiry: BTreeMap::new(),
            expiry_seq: 0,
            contracts: Contracts::default(),
        }
    }

    /// Whether a transaction with this hash was committed within the replay
    /// window (older ones can no longer be admitted: they are expired).
    pub fn has_recent_tx(&self, hash: &Hash32) -> bool {
        self.hashes.contains(hash)
    }

    /// The last applied height (0 at genesis).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The chain id.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// Consensus parameters.
    pub fn params(&self) -> &ConsensusParams {
        &self.params
    }

    /// Hash of the last applied block (the genesis hash at height 0).
    pub fn last_block_hash(&self) -> Hash32 {
        self.last_block_hash
    }

    /// Time of the last applied block (genesis time at height 0).
    pub fn last_block_time(&self) -> Timestamp {
        self.last_block_time
    }

    /// The state root after the last applied block: the next block's header
    /// must carry it. It is a hash chain, `root_h = H(tag, root_{h-1}, h,
    /// block hash, effects)`, where the effects are the participants
    /// registered and revoked, the validator updates scheduled and the set
    /// that applies next: two validators agree on a root only if they agree
    /// on every block and every effect so far.
    pub fn root(&self) -> Hash32 {
        self.root
    }

    /// The validator set of the next height.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// A participant by id.
    pub fn participant(&self, id: &ParticipantId) -> Option<&Participant> {
        self.participants.get(id)
    }

    /// Contract state: consents, care plans, emergency profiles, consults, alerts.
    pub fn contracts(&self) -> &Contracts {
        &self.contracts
    }

    /// All participants.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    /// Starts checking the transactions of block `height + 1` at `time`.
    pub fn execute(&self, time: Timestamp) -> BlockExecution<'_> {
        BlockExecution { state: self, time, effects: BlockEffects::default() }
    }

    /// Checks a header against this state (the parent of the block):
    /// chain id, height, parent hash, time after the parent's, state root,
    /// validator set, and that `proposer` is in the set.
    pub fn check_header(&self, h: &BlockHeader) -> Result<(), HeaderError> {
        if h.chain_id != self.chain_id {
            return Err(header_err("chain_id", format!("{} is not this chain", h.chain_id)));
        }
        if h.height != self.height + 1 {
            return Err(header_err("height", format!("expected {}, got {}", self.height + 1, h.height)));
        }
        if h.prev_hash != self.last_block_hash {
            return Err(header_err("prev_hash", "does not match the parent block"));
        }
        if h.time <= self.last_block_time {
            return Err(header_err("time", "not after the parent block's time"));
        }
        if h.state_root != self.root {
            return Err(header_err("state_root", "does not match the state after the parent block"));
        }
        if h.validators_hash != self.validators.hash() {
            return Err(header_err("validators_hash", "does not match the validator set of this height"));
        }
        if self.validators.get(&h.proposer).is_none() {
            return Err(header_err("proposer", "not a validator of this height"));
        }
        Ok(())
    }

    /// Checks a whole block (header and every transaction, in order) and
    /// returns the execution to apply.
    pub fn check_block<'a, T: AsRef<[u8]>>(
        &'a self,
        header: &BlockHeader,
        txs: &[T],
    ) -> Result<BlockExecution<'a>, BlockError> {
        self.check_header(header).map_err(BlockError::Header)?;
        if txs.len() > self.params.max_block_txs as usize {
            return Err(BlockError::TooLarge);
        }
        let mut exec = self.execute(header.time);
        let parsed: Vec<Result<Transaction, Rejection>> = txs.iter().map(|t| exec.parse(t.as_ref())).collect();
        let verified = self.verify_signatures(&parsed);
        for (i, (tx, key)) in parsed.into_iter().zip(verified).enumerate() {
            tx.and_then(|tx| exec.admit_parsed(tx, key.as_ref()))
                .map_err(|r| BlockError::Tx { index: i, rejection: r })?;
        }
        if exec.effects.bytes > self.params.max_block_bytes {
            return Err(BlockError::TooLarge);
        }
        Ok(exec)
    }

    /// Checks the signatures of a block's transactions in one Ed25519 batch
    /// (about twice as fast per signature as one by one), with the keys the
    /// committed state holds for their signers (or the key a self-registration
    /// carries). Returns, per transaction, the key its signature verified with:
    /// none when the batch failed or the signer is not known yet (registered
    /// earlier in the same block); admission then checks those one by one with
    /// the strict check. The batch accepts every signature the strict check
    /// accepts; it can differ only for a signature its own key holder crafted
    /// with a small-order component. Its coefficients are derived from the
    /// batch's contents (ed25519-dalek 2), so every validator and follower,
    /// checking the same block against the same state, reaches the same
    /// verdict; ingest refuses such signatures at the door (strict check).
    fn verify_signatures(&self, txs: &[Result<Transaction, Rejection>]) -> Vec<Option<PublicKey>> {
        let mut keys: Vec<Option<PublicKey>> = txs
            .iter()
            .map(|t| {
                let tx = t.as_ref().ok()?;
                match &tx.payload.body {
                    TxBody::ParticipantRegister(r) if r.id == tx.signer && r.role == Role::Patient => {
                        Some(r.public_key)
                    }
                    _ => self.participants.get(&tx.signer).map(|p| p.public_key),
                }
            })
            .collect();
        let parts: Vec<Option<(&[u8], Vec<u8>)>> = txs
            .iter()
            .zip(&keys)
            .map(|(t, k)| k.as_ref().and(t.as_ref().ok()).and_then(|tx| tx.signed_parts()))
            .collect();
        let items: Vec<RawBatchItem> = parts
            .iter()
            .zip(&keys)
            .filter_map(|(p, k)| {
                let (input, signature) = p.as_ref()?;
                Some(RawBatchItem { key: k.as_ref()?, input, signature })
            })
            .collect();
        // The batch helper names failing items itself; any failure here leaves all to the single checks.
        if items.is_empty() || verify_batch_raw(&items).is_err() {
            return vec![None; txs.len()];
        }
        for (k, p) in keys.iter_mut().zip(&parts) {
            if p.is_none() {
                *k = None;
            }
        }
        keys
    }

    /// Applies a checked block's effects: the state moves to `header.height`.
    pub fn apply(&mut self, header: &BlockHeader, effects: BlockEffects) {
        let height = header.height;
        let block_hash = header.hash();
        let mut digest = Vec::new();
        for (id, p) in effects.registered {
            digest.extend_from_slice(format!("+{id}:{}\n", p.role.as_str()).as_bytes());
            self.participants.insert(id, p);
        }
        for id in effects.revoked {
            digest.extend_from_slice(format!("-{id}\n").as_bytes());
            if let Some(p) = self.participants.get_mut(&id) {
                p.revoked_at = Some(height);
            }
        }
        let activation = height + self.params.validator_update_delay.max(1);
        for u in effects.validator_updates {
            digest.extend_from_slice(format!("v{}:{}@{activation}\n", u.validator, u.power).as_bytes());
            self.scheduled.entry(activation).or_default().push(u);
        }
        for line in self.contracts.merge(effects.contracts) {
            digest.extend_from_slice(line.as_bytes());
            digest.push(b'\n');
        }
        // Nonces and hashes are remembered while a resubmission could still be admitted.
        for (signer, nonce, created, hash) in effects.nonces {
            self.nonces.insert((signer.clone(), nonce.clone()));
            self.hashes.insert(hash);
            self.expiry_seq += 1;
            self.expiry.insert((created, self.expiry_seq), ((signer, nonce), hash));
        }
        // Updates scheduled for the next height take effect now.
        if let Some(updates) = self.scheduled.remove(&(height + 1)) {
            let mut vals: BTreeMap<ParticipantId, Validator> =
                self.validators.validators().iter().map(|v| (v.id.clone(), v.clone())).collect();
            for u in updates {
                if u.power == 0 {
                    vals.remove(&u.validator);
                } else {
                    vals.insert(
                        u.validator.clone(),
                        Validator { id: u.validator.clone(), public_key: u.public_key, power: u.power },
                    );
                }
            }
            // An update that would leave no validator is ignored as a whole
            // (admission prevents it; this keeps the state total).
            if let Some(set) = ValidatorSet::new(vals.into_values().collect()) {
                self.validators = set;
            }
        }
        self.prune(header.time);
        self.root = sha256_parts(&[
            b"glucochain/v1/state\0",
            &self.root.0,
            &height.to_be_bytes(),
            &block_hash.0,
            &glucochain_crypto::sha256(&digest).0,
            &self.validators.hash().0,
        ]);
        self.height = height;
        self.last_block_hash = block_hash;
        self.last_block_time = header.time;
    }

    /// Forgets nonces and hashes of transactions too old to be admitted again.
    fn prune(&mut self, block_time: Timestamp) {
        let horizon = block_time.unix_ms() - TX_MAX_AGE_MS - TX_MAX_FUTURE_MS;
        let keep = self.expiry.split_off(&(horizon, 0));
        for (_, (nonce_key, hash)) in std::mem::replace(&mut self.expiry, keep) {
            self.nonces.remove(&nonce_key);
            self.hashes.remove(&hash);
        }
    }
}

/// A block whose transactions or header do not follow the state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The header.
    #[error(transparent)]
    Header(HeaderError),
    /// Too many transactions or bytes.
    #[error("block exceeds the size limits")]
    TooLarge,
    /// A transaction is not admissible.
    #[error("transaction {index}: {rejection}")]
    Tx {
        /// Its position.
        index: usize,
        /// Why.
        rejection: Rejection,
    },
}

/// Admission of the transactions of one block, in order.
pub struct BlockExecution<'a> {
    state: &'a LedgerState,
    time: Timestamp,
    effects: BlockEffects,
}

impl<'a> BlockExecution<'a> {
    /// Bytes of the admitted transactions.
    pub fn bytes(&self) -> u64 {
        self.effects.bytes
    }

    /// The effects to apply.
    pub fn finish(self) -> BlockEffects {
        self.effects
    }

    fn lookup(&self, id: &ParticipantId) -> Option<(&Participant, bool)> {
        if let Some(p) = self.effects.registered.get(id) {
            return Some((p, !self.effects.revoked.contains(id)));
        }
        self.state.participants.get(id).map(|p| (p, p.is_active() && !self.effects.revoked.contains(id)))
    }

    /// Admits `jws` if it passes every rule, recording its effects for the
    /// transactions after it. Checks, in order: syntax, chain id, signer
    /// registered and active, signature, role for the type, creation time
    /// window, duplicate, replayed nonce, then the rules of the type.
    pub fn admit(&mut self, jws: &[u8]) -> Result<Admitted, Rejection> {
        let tx = self.parse(jws)?;
        self.admit_parsed(tx, None)
    }

    fn parse(&self, jws: &[u8]) -> Result<Transaction, Rejection> {
        let text = std::str::from_utf8(jws).map_err(|_| Rejection::new("malformed", "not UTF-8"))?;
        Transaction::parse(text, &self.state.limits).map_err(|e| Rejection::new(e.code(), e.to_string()))
    }

    /// [`BlockExecution::admit`] of a parsed transaction whose signature was
    /// already checked with `verified` (if it is the key the rules pick).
    fn admit_parsed(&mut self, tx: Transaction, verified: Option<&PublicKey>) -> Result<Admitted, Rejection> {
        let check = |tx: &Transaction, key: &PublicKey| {
            if verified == Some(key) {
                return Ok(());
            }
            tx.verify_signature(key).map_err(|e| Rejection::new("bad-signature", e.to_string()))
        };
        tx.check_chain(&self.state.chain_id).map_err(|e| Rejection::new(e.code(), e.to_string()))?;
        let self_registration = matches!(&tx.payload.body,
            TxBody::ParticipantRegister(r) if r.id == tx.signer && r.role == Role::Patient);
        let signer_role = if self_registration {
            let TxBody::ParticipantRegister(r) = &tx.payload.body else { unreachable!() };
            check(&tx, &r.public_key)?;
            Role::Patient
        } else {
            let Some((signer, active)) = self.lookup(&tx.signer) else {
                return Err(Rejection::new("unknown-signer", format!("{} is not registered", tx.signer)));
            };
            if !active {
                return Err(Rejection::new("revoked-signer", format!("{} is revoked", tx.signer)));
            }
            check(&tx, &signer.public_key)?;
            signer.role
        };
        if !tx.role_may_sign(signer_role) {
            return Err(Rejection::new(
                "forbidden",
                format!("a {} may not sign {}", signer_role.as_str(), tx.payload.tx_type.as_str()),
            ));
        }
        let created = tx.payload.created_at.unix_ms();
        let now = self.time.unix_ms();
        if created > now + TX_MAX_FUTURE_MS {
            return Err(Rejection::new("not-yet-valid", "created_at is more than 5 minutes after the block time"));
        }
        if created < now - TX_MAX_AGE_MS {
            return Err(Rejection::new("expired", "created_at is more than an hour before the block time"));
        }
        if self.state.hashes.contains(&tx.hash) || self.effects.hashes.contains(&tx.hash) {
            return Err(Rejection::new("duplicate", "this transaction is already on the chain"));
        }
        let nonce_key = (tx.signer.clone(), tx.payload.nonce.clone());
        if self.state.nonces.contains(&nonce_key) || self.effects.nonce_set.contains(&nonce_key) {
            return Err(Rejection::new("replay", "the signer already used this nonce"));
        }
        if let Some(patient) = &tx.payload.patient {
            // A former patient keeps the right to erasure: an admin acts on
            // their verified request although their registration was revoked.
            let erasing_for_former = signer_role == Role::Admin && matches!(tx.payload.body, TxBody::RecordErase(_));
            match self.lookup(patient) {
                Some((p, active)) if p.role == Role::Patient && (active || erasing_for_former) => {}
                _ => return Err(Rejection::new("unknown-patient", format!("{patient} is not an active patient"))),
            }
            if signer_role == Role::Patient && patient != &tx.signer {
                return Err(Rejection::new("forbidden", "a patient signs only for their own records"));
            }
        }
        match &tx.payload.body {
            TxBody::ParticipantRegister(r) => self.register(&tx.signer, signer_role, self_registration, r)?,
            TxBody::ParticipantRevoke(r) => self.revoke(&tx.signer, signer_role, r)?,
            TxBody::ValidatorUpdate(u) => self.validator_update(u)?,
            _ => self.contract_rules(&tx, signer_role)?,
        }
        self.effects.hashes.insert(tx.hash);
        self.effects.nonce_set.insert(nonce_key);
        self.effects.nonces.push((tx.signer.clone(), tx.payload.nonce.clone(), created, tx.hash));
        self.effects.bytes += tx.jws.len() as u64;
        Ok(Admitted { tx })
    }

    fn register(
        &mut self,
        signer: &ParticipantId,
        signer_role: Role,
        self_registration: bool,
        r: &ParticipantRegister,
    ) -> Result<(), Rejection> {
        if self.lookup(&r.id).is_some() {
            return Err(Rejection::new("conflict", format!("{} is already registered", r.id)));
        }
        let allowed = match signer_role {
            Role::Admin => true,
            Role::Institution => {
                matches!(r.role, Role::Clinician | Role::Lab | Role::Patient) && r.institution.as_ref() == Some(signer)
            }
            Role::Patient if self_registration => r.institution.is_none(),
            Role::Patient => r.role == Role::Caregiver && r.institution.is_none(),
            _ => false,
        };
        if !allowed {
            let detail = if r.institution.is_some() && signer_role == Role::Patient {
                format!("a {} may not register a {} for an institution", signer_role.as_str(), r.role.as_str())
            } else {
                format!("a {} may not register a {}", signer_role.as_str(), r.role.as_str())
            };
            return Err(Rejection::new("forbidden", detail));
        }
        // Only staff and patients belong to an institution: a consent to it
        // covers its staff, so nobody else may name it.
        if r.institution.is_some() && !r.role.may_belong_to_institution() {
            return Err(Rejection::new(
                "forbidden",
                format!("a {} does not belong to an institution; leave institution out", r.role.as_str()),
            ));
        }
        if let Some(inst) = &r.institution {
            match self.lookup(inst) {
                Some((p, true)) if p.role == Role::Institution => {}
                _ => return Err(Rejection::new("unknown-institution", format!("{inst} is not an active institution"))),
            }
        }
        self.effects.registered.insert(
            r.id.clone(),
            Participant {
                id: r.id.clone(),
                role: r.role,
                public_key: r.public_key,
                institution: r.institution.clone(),
                registered_by: (!self_registration).then(|| signer.clone()),
                registered_at: self.state.height + 1,
                registered_ms: self.time.unix_ms(),
                revoked_at: None,
            },
        );
        Ok(())
    }

    fn revoke(&mut self, signer: &ParticipantId, signer_role: Role, r: &ParticipantRevoke) -> Result<(), Rejection> {
        let Some((target, active)) = self.lookup(&r.id) else {
            return Err(Rejection::new("unknown-participant", format!("{} is not registered", r.id)));
        };
        if !active {
            return Err(Rejection::new("conflict", format!("{} is already revoked", r.id)));
        }
        let allowed = match signer_role {
            Role::Admin => true,
            Role::Institution => target.institution.as_ref() == Some(signer),
            Role::Patient => target.role == Role::Caregiver && target.registered_by.as_ref() == Some(signer),
            _ => false,
        } && &r.id != signer;
        if !allowed {
            return Err(Rejection::new("forbidden", format!("{signer} may not revoke {}", r.id)));
        }
        if target.role == Role::Admin {
            let active_admins = self
                .state
                .participants
                .values()
                .filter(|p| p.role == Role::Admin && p.is_active() && !self.effects.revoked.contains(&p.id))
                .count();
            if active_admins <= 1 {
                return Err(Rejection::new("forbidden", "the last admin cannot be revoked"));
            }
        }
        self.effects.revoked.insert(r.id.clone());
        Ok(())
    }

    fn validator_update(&mut self, u: &ValidatorUpdate) -> Result<(), Rejection> {
        // The set after every update already scheduled or in this block must keep a validator.
        let mut vals: BTreeMap<&ParticipantId, u64> =
            self.state.validators.validators().iter().map(|v| (&v.id, v.power)).collect();
        for pending in self.state.scheduled.values().flatten().chain(&self.effects.validator_updates).chain([u]) {
            if pending.power == 0 {
                vals.remove(&pending.validator);
            } else {
                vals.insert(&pending.validator, pending.power);
            }
        }
        if vals.is_empty() {
            return Err(Rejection::new("forbidden", "the update would leave no validator"));
        }
        self.effects.validator_updates.push(u.clone());
        Ok(())
    }
}
