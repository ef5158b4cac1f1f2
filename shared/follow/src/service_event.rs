//! Events a registered service publishes on NATS (the detector's alerts),
//! signed with the service's own key and checked by the receiver against the
//! chain: the signer must be an active participant with role `service`, and
//! the signature must verify with its registered key in the
//! [`Domain::ServiceEvent`] domain. Anything else on NATS that merely knows
//! the subject can no longer make the notifier email a caregiver.

use glucochain_crypto::{Domain, KeyPair};
use glucochain_state::LedgerState;
use glucochain_types::{ParticipantId, Role};
use glucochain_wire::v1 as wire;
use prost::Message as _;

/// Why an event was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventRefused {
    /// No signer or no signature.
    #[error("the event is not signed")]
    Unsigned,
    /// The signer is not a registered participant (in this view).
    #[error("the signer {0} is not registered")]
    UnknownSigner(String),
    /// The signer is registered but revoked, or not a service.
    #[error("the signer {0} is not an active service")]
    NotAService(String),
    /// The signature does not verify with the signer's registered key.
    #[error("the signature does not verify with {0}'s registered key")]
    BadSignature(String),
}

impl EventRefused {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            EventRefused::Unsigned => "unsigned",
            EventRefused::UnknownSigner(_) => "unknown-signer",
            EventRefused::NotAService(_) => "not-a-service",
            EventRefused::BadSignature(_) => "bad-signature",
        }
    }
}

/// The bytes signed for `alert`: its encoding with `signature` empty.
fn signed_bytes(alert: &wire::Alert) -> Vec<u8> {
    let mut unsigned = alert.clone();
    unsigned.signature.clear();
    unsigned.encode_to_vec()
}

/// Signs `alert` as the service holding `key` (sets `signer` and `signature`).
pub fn sign_alert(alert: &mut wire::Alert, key: &KeyPair) {
    alert.signer = ParticipantId::from_public_key(&key.public()).to_string();
    alert.signature = key.sign(Domain::ServiceEvent, &signed_bytes(alert)).to_vec();
}

/// Checks that `alert` was signed by an active detector registered in
/// `state` (no other service, and no other key, raises alerts).
pub fn verify_alert(alert: &wire::Alert, state: &LedgerState) -> Result<ParticipantId, EventRefused> {
    if alert.signer.is_empty() || alert.signature.is_empty() {
        return Err(EventRefused::Unsigned);
    }
    let id = ParticipantId::parse(&alert.signer).map_err(|_| EventRefused::UnknownSigner(alert.signer.clone()))?;
    let p = state.participant(&id).ok_or_else(|| EventRefused::UnknownSigner(id.to_string()))?;
    if p.role != Role::Detector || !p.is_active() {
        return Err(EventRefused::NotAService(id.to_string()));
    }
    p.public_key
        .verify(Domain::ServiceEvent, &signed_bytes(alert), &alert.signature)
        .map_err(|_| EventRefused::BadSignature(id.to_string()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_crypto::sha256;
    use glucochain_types::block::{BlockHeader, tx_root};
    use glucochain_types::genesis::{ConsensusParams, Genesis, GenesisAdmin, GenesisValidator};
    use glucochain_types::time::Timestamp;
    use glucochain_types::tx::{ParticipantRegister, TxBody, TxPayload};
    use glucochain_types::{ChainId, Role};

    const T0: i64 = 1_790_000_000_000;

    /// A chain whose first block registers a detector, a patient and a notifier.
    fn state(service: &KeyPair, patient: &KeyPair, notifier: &KeyPair) -> LedgerState {
        let admin = KeyPair::from_seed([1; 32]);
        let validator = KeyPair::from_seed([2; 32]);
        let chain_id = ChainId::parse("glucochain-test").unwrap();
        let genesis = Genesis {
            chain_id: chain_id.clone(),
            genesis_time: Timestamp::from_unix_ms(T0),
            validators: vec![GenesisValidator { name: "v0".into(), public_key: validator.public(), power: 10 }],
            admins: vec![GenesisAdmin { name: "admin".into(), public_key: admin.public() }],
            params: ConsensusParams::default(),
        };
        let mut state = LedgerState::genesis(&genesis);
        let admin_id = ParticipantId::from_public_key(&admin.public());
        let txs: Vec<Vec<u8>> = [(service, Role::Detector), (patient, Role::Patient), (notifier, Role::Notifier)]
            .iter()
            .enumerate()
            .map(|(i, (k, role))| {
                let body = TxBody::ParticipantRegister(ParticipantRegister {
                    id: ParticipantId::from_public_key(&k.public()),
                    role: *role,
                    public_key: k.public(),
                    institution: None,
                    body_commitment: None,
                });
                TxPayload::new(chain_id.clone(), format!("nonce-{i:04}"), Timestamp::from_unix_ms(T0 + 500), None, body)
                    .sign(&admin, &admin_id)
                    .into_bytes()
            })
            .collect();
        let header = BlockHeader {
            chain_id,
            height: 1,
            time: Timestamp::from_unix_ms(T0 + 1000),
            prev_hash: state.last_block_hash(),
            tx_root: tx_root(&txs.iter().map(|t| sha256(t)).collect::<Vec<_>>()),
            state_root: state.root(),
            validators_hash: state.validators().hash(),
            proposer: ParticipantId::from_public_key(&validator.public()),
            tx_count: txs.len() as u32,
        };
        let effects = state.check_block(&header, &txs).unwrap().finish();
        state.apply(&header, effects);
        state
    }

    fn alert() -> wire::Alert {
        wire::Alert { alert_id: "a-1".into(), patient: "p".into(), reason: "glucose 50".into(), ..Default::default() }
    }

    #[test]
    fn an_alert_signed_by_a_registered_service_verifies_and_every_forgery_is_refused() {
        let (service, patient, stranger, notifier) = (
            KeyPair::from_seed([7; 32]),
            KeyPair::from_seed([8; 32]),
            KeyPair::from_seed([9; 32]),
            KeyPair::from_seed([10; 32]),
        );
        let state = state(&service, &patient, &notifier);
        let mut a = alert();
        sign_alert(&mut a, &service);
        assert_eq!(verify_alert(&a, &state), Ok(ParticipantId::from_public_key(&service.public())));

        assert_eq!(verify_alert(&alert(), &state), Err(EventRefused::Unsigned));
        // Any field changed after signing.
        let mut changed = a.clone();
        changed.reason = "glucose 250".into();
        assert!(matches!(verify_alert(&changed, &state), Err(EventRefused::BadSignature(_))));
        let mut moved = a.clone();
        moved.chain_height = 99;
        assert!(matches!(verify_alert(&moved, &state), Err(EventRefused::BadSignature(_))));
        // Signed by a key nobody registered, or by a registered non-service.
        let mut b = alert();
        sign_alert(&mut b, &stranger);
        assert!(matches!(verify_alert(&b, &state), Err(EventRefused::UnknownSigner(_))));
        let mut c = alert();
        sign_alert(&mut c, &patient);
        assert!(matches!(verify_alert(&c, &state), Err(EventRefused::NotAService(_))));
        // Issue 19, M4: another service's key raises no alert either.
        let mut n = alert();
        sign_alert(&mut n, &notifier);
        assert!(matches!(verify_alert(&n, &state), Err(EventRefused::NotAService(_))));
        // The service's name on another key's signature.
        let mut d = alert();
        sign_alert(&mut d, &stranger);
        d.signer = a.signer.clone();
        assert!(matches!(verify_alert(&d, &state), Err(EventRefused::BadSignature(_))));
    }
}
