//! Signed workloads: patients registered by an admin, and CGM observation
//! transactions from them, signed ahead of time so that signing stays out of
//! what is measured.

use glucochain_crypto::{KeyPair, sha256};
use glucochain_types::fhir::cgm_observation;
use glucochain_types::genesis::{ConsensusParams, Genesis, GenesisAdmin, GenesisValidator};
use glucochain_types::sealed::{ObservationBody, Submission};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{ParticipantRegister, TxBody, TxPayload};
use glucochain_types::{ChainId, DataClass, ParticipantId, Role};

/// Someone who signs transactions, with their own nonce counter.
pub struct Signer {
    /// Key.
    pub key: KeyPair,
    /// Participant id (from the key).
    pub id: ParticipantId,
    nonce: u64,
    /// Distinguishes this run's nonces from an earlier run's with the same key.
    run: String,
}

impl Signer {
    /// A signer for `key`.
    pub fn new(key: KeyPair, run: &str) -> Self {
        let id = ParticipantId::from_public_key(&key.public());
        Signer { key, id, nonce: 0, run: run.to_string() }
    }

    /// Signs `body` with the next nonce.
    pub fn sign(&mut self, chain: &ChainId, at: Timestamp, patient: Option<&ParticipantId>, body: TxBody) -> String {
        self.nonce += 1;
        let payload =
            TxPayload::new(chain.clone(), format!("b{}-{}", self.run, self.nonce), at, patient.cloned(), body);
        payload.sign(&self.key, &self.id)
    }
}

/// A chain id, an admin and patients.
pub struct World {
    /// Chain.
    pub chain: ChainId,
    /// Registers the patients.
    pub admin: Signer,
    /// Patients, each signing their own readings.
    pub patients: Vec<Signer>,
    next: usize,
    reading: u64,
}

impl World {
    /// `patients` patients with keys derived from `seed` (the same seed gives
    /// the same patients).
    pub fn new(chain: ChainId, admin: KeyPair, patients: usize, seed: &str) -> Self {
        let patients = (0..patients)
            .map(|i| Signer::new(KeyPair::from_seed(sha256(format!("{seed}/patient/{i}").as_bytes()).0), seed))
            .collect();
        World { chain, admin: Signer::new(admin, seed), patients, next: 0, reading: 0 }
    }

    /// The admin's registration of every patient.
    pub fn registrations(&mut self, at: Timestamp) -> Vec<String> {
        let bodies: Vec<TxBody> = self
            .patients
            .iter()
            .map(|p| {
                TxBody::ParticipantRegister(ParticipantRegister {
                    id: p.id.clone(),
                    role: Role::Patient,
                    public_key: p.key.public(),
                    body_commitment: None,
                    institution: None,
                })
            })
            .collect();
        bodies.into_iter().map(|b| self.admin.sign(&self.chain, at, None, b)).collect()
    }

    /// `n` observation transactions (one CGM reading each), the patients in
    /// turn, created at `at`.
    pub fn observations(&mut self, n: usize, at: Timestamp) -> Vec<String> {
        self.observations_of(0..self.patients.len(), n, at)
    }

    /// `n` observation transactions from the patients in `patients` only, in
    /// turn, each as its client posts it: the JWS and the sealed body, in
    /// JSON ([`jws_of`] takes the transaction alone).
    pub fn observations_of(&mut self, patients: std::ops::Range<usize>, n: usize, at: Timestamp) -> Vec<String> {
        let count = patients.len().max(1);
        (0..n)
            .map(|_| {
                let i = patients.start + self.next % count;
                self.next += 1;
                self.reading += 1;
                let p = &mut self.patients[i];
                let mg = 80.0 + (self.reading % 120) as f64;
                let obs = cgm_observation(p.id.as_str(), at, mg, Some(&format!("r{}", self.reading)));
                let pid = p.id.clone();
                let (body, sealed) = ObservationBody::seal(vec![obs], DataClass::Private);
                submission(p.sign(&self.chain, at, Some(&pid), body), sealed)
            })
            .collect()
    }
}

impl World {
    /// A day of CGM readings (every 5 minutes until `now`, 288) of patient
    /// `i`, each its own transaction, signed now.
    pub fn day_of_readings(&mut self, i: usize, now: Timestamp) -> Vec<String> {
        let p = &mut self.patients[i];
        let pid = p.id.clone();
        (0..288i64)
            .map(|k| {
                let at = Timestamp::from_unix_ms(now.unix_ms() - (287 - k) * 5 * 60_000);
                let mg = 110.0 + 40.0 * ((k as f64) / 288.0 * std::f64::consts::TAU).sin();
                let obs = cgm_observation(pid.as_str(), at, mg, Some(&format!("day{k}")));
                let (body, sealed) = ObservationBody::seal(vec![obs], DataClass::Private);
                submission(p.sign(&self.chain, now, Some(&pid), body), sealed)
            })
            .collect()
    }
}

/// A genesis for in-process benchmarks: `validators` validators and `admin`.
pub fn genesis(chain: &ChainId, admin: &KeyPair, validators: &[KeyPair], time: Timestamp) -> Genesis {
    Genesis {
        chain_id: chain.clone(),
        genesis_time: time,
        validators: validators
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisValidator { name: format!("v{i}"), public_key: k.public(), power: 10 })
            .collect(),
        admins: vec![GenesisAdmin { name: "admin".into(), public_key: admin.public() }],
        params: ConsensusParams::default(),
    }
}

/// A record's transaction and sealed body as a client posts them (JSON).
fn submission(jws: String, sealed: glucochain_types::sealed::SealedBody) -> String {
    String::from_utf8(Submission::sealed(jws, sealed).to_json()).expect("JSON is UTF-8")
}

/// The transaction of what a client posts (a bare JWS, or the `jws` of a submission).
pub fn jws_of(posted: &str) -> String {
    match serde_json::from_str::<Submission>(posted) {
        Ok(s) => s.jws,
        Err(_) => posted.to_string(),
    }
}

/// The media type to post `body` with: JSON for a submission with a sealed body, JOSE for a bare JWS.
pub fn media_type(body: &str) -> &'static str {
    if body.starts_with('{') { "application/json" } else { "application/jose" }
}
