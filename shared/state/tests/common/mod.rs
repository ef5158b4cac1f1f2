//! Helpers for the ledger rule tests: actors that sign, and a chain that
//! checks and applies blocks with the real rules.

#![allow(dead_code)]

use glucochain_crypto::{Hash32, KeyPair};
use glucochain_state::{BlockError, LedgerState};
use glucochain_types::block::BlockHeader;
use glucochain_types::fhir::cgm_observation;
use glucochain_types::genesis::{ConsensusParams, Genesis, GenesisAdmin, GenesisValidator};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{ParticipantRegister, TxBody, TxPayload};
use glucochain_types::{ChainId, DataClass, ParticipantId, Role};

pub const T0: i64 = 1_790_000_000_000;

pub struct Actor {
    pub key: KeyPair,
    pub id: ParticipantId,
    pub nonce: u32,
}

impl Actor {
    pub fn new(seed: u8) -> Self {
        let key = KeyPair::from_seed([seed; 32]);
        let id = ParticipantId::from_public_key(&key.public());
        Actor { key, id, nonce: 0 }
    }

    pub fn sign(&mut self, at: i64, patient: Option<&ParticipantId>, body: TxBody) -> Vec<u8> {
        self.nonce += 1;
        let payload = TxPayload::new(
            ChainId::parse("glucochain-test").unwrap(),
            format!("nonce-{:04}", self.nonce),
            Timestamp::from_unix_ms(at),
            patient.cloned(),
            body,
        );
        payload.sign(&self.key, &self.id).into_bytes()
    }

    pub fn register(&mut self, at: i64, who: &Actor, role: Role, institution: Option<&ParticipantId>) -> Vec<u8> {
        self.sign(
            at,
            None,
            TxBody::ParticipantRegister(ParticipantRegister {
                id: who.id.clone(),
                role,
                public_key: who.key.public(),
                body_commitment: None,
                institution: institution.cloned(),
            }),
        )
    }

    pub fn observe(&mut self, at: i64, patient: &ParticipantId) -> Vec<u8> {
        let obs =
            cgm_observation(patient.as_str(), Timestamp::from_unix_ms(at), 120.0, Some(&format!("r{}", self.nonce)));
        self.sign(at, Some(patient), glucochain_types::sealed::ObservationBody::seal(vec![obs], DataClass::Private).0)
    }
}

pub struct Chain {
    pub state: LedgerState,
    pub validators: Vec<KeyPair>,
    pub time: i64,
}

impl Chain {
    pub fn new(admin: &Actor) -> Self {
        let validators: Vec<KeyPair> = (0..4u8).map(|i| KeyPair::from_seed([100 + i; 32])).collect();
        let genesis = Genesis {
            chain_id: ChainId::parse("glucochain-test").unwrap(),
            genesis_time: Timestamp::from_unix_ms(T0),
            validators: validators
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisValidator { name: format!("v{i}"), public_key: k.public(), power: 10 })
                .collect(),
            admins: vec![GenesisAdmin { name: "admin".into(), public_key: admin.key.public() }],
            params: ConsensusParams::default(),
        };
        genesis.validate().unwrap();
        Chain { state: LedgerState::genesis(&genesis), validators, time: T0 }
    }

    pub fn header(&mut self, txs: &[Vec<u8>]) -> BlockHeader {
        self.time += 1000;
        let hashes: Vec<Hash32> = txs.iter().map(|t| glucochain_crypto::sha256(t)).collect();
        BlockHeader {
            chain_id: self.state.chain_id().clone(),
            height: self.state.height() + 1,
            time: Timestamp::from_unix_ms(self.time),
            prev_hash: self.state.last_block_hash(),
            tx_root: glucochain_types::block::tx_root(&hashes),
            state_root: self.state.root(),
            validators_hash: self.state.validators().hash(),
            proposer: ParticipantId::from_public_key(&self.validators[0].public()),
            tx_count: txs.len() as u32,
        }
    }

    /// Commits a block of `txs`, all of which must be admitted.
    pub fn commit(&mut self, txs: Vec<Vec<u8>>) {
        let header = self.header(&txs);
        let exec = self.state.check_block(&header, &txs).unwrap_or_else(|e| panic!("{e}"));
        let effects = exec.finish();
        self.state.apply(&header, effects);
    }

    /// The rejection code of `tx` in the next block.
    pub fn reject(&mut self, txs: Vec<Vec<u8>>) -> (usize, &'static str) {
        let header = self.header(&txs);
        self.time -= 1000;
        match self.state.check_block(&header, &txs) {
            Err(BlockError::Tx { index, rejection }) => (index, rejection.code),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("admitted"),
        }
    }

    pub fn now(&self) -> i64 {
        self.time + 500
    }
}

/// A consent body: `grantee` may `access` the given classes, for treatment.
pub fn consent_body(
    id: &str,
    grantee: &ParticipantId,
    access: &[glucochain_types::tx::Access],
    classes: &[DataClass],
    until: Option<i64>,
) -> TxBody {
    TxBody::ConsentGrant(glucochain_types::tx::ConsentGrant {
        consent_id: glucochain_types::ids::LocalId::parse(id, "consent_id").unwrap(),
        grantee: grantee.clone(),
        scope: glucochain_types::tx::ConsentScope {
            data_classes: classes.to_vec(),
            record_types: vec![],
            codes: vec![],
            access: access.to_vec(),
        },
        purpose: glucochain_types::tx::Purpose::Treat,
        valid_from: None,
        valid_until: until.map(Timestamp::from_unix_ms),
    })
}

/// A consent body narrowed to `record_types` (empty: all kinds) of private data, with `access`, for `purpose`.
pub fn scoped_consent(
    id: &str,
    grantee: &ParticipantId,
    record_types: &[glucochain_types::tx::RecordType],
    access: &[glucochain_types::tx::Access],
    purpose: glucochain_types::tx::Purpose,
) -> TxBody {
    TxBody::ConsentGrant(glucochain_types::tx::ConsentGrant {
        consent_id: glucochain_types::ids::LocalId::parse(id, "consent_id").unwrap(),
        grantee: grantee.clone(),
        scope: glucochain_types::tx::ConsentScope {
            data_classes: vec![DataClass::Private],
            record_types: record_types.to_vec(),
            codes: vec![],
            access: access.to_vec(),
        },
        purpose,
        valid_from: None,
        valid_until: None,
    })
}
