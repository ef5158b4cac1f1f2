//! The ledger rules, block by block, as validators apply them.

mod common;

use common::{Actor, Chain, T0};
use glucochain_crypto::{Hash32, KeyPair};
use glucochain_state::TX_MAX_AGE_MS;
use glucochain_types::block::BlockHeader;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{ParticipantRevoke, TxBody, ValidatorUpdate};
use glucochain_types::{ParticipantId, Role};

#[test]
fn registration_follows_the_roles() {
    let mut admin = Actor::new(1);
    let mut chain = Chain::new(&admin);
    let mut hospital = Actor::new(2);
    let clinician = Actor::new(3);
    let mut patient = Actor::new(4);
    let caregiver = Actor::new(5);
    let t = chain.now();
    chain.commit(vec![admin.register(t, &hospital, Role::Institution, None)]);
    assert_eq!(chain.state.participant(&hospital.id).unwrap().role, Role::Institution);

    // An institution registers its own clinicians, not another's, and no admins.
    let t = chain.now();
    let other = Actor::new(9);
    assert_eq!(chain.reject(vec![hospital.register(t, &clinician, Role::Clinician, Some(&other.id))]).1, "forbidden");
    let hid = hospital.id.clone();
    assert_eq!(chain.reject(vec![hospital.register(t, &other, Role::Admin, Some(&hid))]).1, "forbidden");
    chain.commit(vec![hospital.register(t, &clinician, Role::Clinician, Some(&hid))]);

    // A patient registers themself, then invites a caregiver.
    let t = chain.now();
    let me = Actor::new(4);
    chain.commit(vec![patient.register(t, &me, Role::Patient, None)]);
    let t = chain.now();
    chain.commit(vec![patient.register(t, &caregiver, Role::Caregiver, None)]);
    assert_eq!(chain.state.participant(&caregiver.id).unwrap().registered_by.as_ref(), Some(&patient.id));

    // Registering twice is a conflict; an unknown signer is refused.
    let t = chain.now();
    assert_eq!(chain.reject(vec![admin.register(t, &clinician, Role::Clinician, None)]).1, "conflict");
    let mut stranger = Actor::new(10);
    assert_eq!(chain.reject(vec![stranger.observe(t, &patient.id)]).1, "unknown-signer");
    // A caregiver may not register anyone.
    let mut cg = Actor::new(5);
    assert_eq!(chain.reject(vec![cg.register(t, &Actor::new(11), Role::Caregiver, None)]).1, "forbidden");
}

#[test]
fn replays_duplicates_and_stale_or_future_transactions_are_refused() {
    let mut admin = Actor::new(1);
    let mut chain = Chain::new(&admin);
    let mut patient = Actor::new(4);
    let t = chain.now();
    let me = Actor::new(4);
    chain.commit(vec![patient.register(t, &me, Role::Patient, None)]);

    let t = chain.now();
    let obs = patient.observe(t, &me.id);
    // The same tx twice in one block: the second is a duplicate.
    assert_eq!(chain.reject(vec![obs.clone(), obs.clone()]), (1, "duplicate"));
    chain.commit(vec![obs.clone()]);
    // Resubmitted in a later block: duplicate.
    assert_eq!(chain.reject(vec![obs]).1, "duplicate");
    // A different tx reusing a nonce: replay.
    patient.nonce -= 1;
    let t = chain.now();
    assert_eq!(chain.reject(vec![patient.observe(t, &me.id)]).1, "replay");
    // Too old, too far in the future.
    let t = chain.now();
    assert_eq!(chain.reject(vec![patient.observe(t - TX_MAX_AGE_MS - 10_000, &me.id)]).1, "expired");
    assert_eq!(chain.reject(vec![patient.observe(t + 10 * 60 * 1000, &me.id)]).1, "not-yet-valid");
    // A patient writes only their own records.
    let other = Actor::new(6);
    let mut other_signer = Actor::new(6);
    chain.commit(vec![other_signer.register(t, &other, Role::Patient, None)]);
    let t = chain.now();
    assert_eq!(chain.reject(vec![patient.observe(t, &other.id)]).1, "forbidden");
    let _ = &mut admin;
}

#[test]
fn revocation_applies_to_later_transactions_even_within_the_block() {
    let mut admin = Actor::new(1);
    let mut chain = Chain::new(&admin);
    let mut hospital = Actor::new(2);
    let mut clinician = Actor::new(3);
    let mut patient = Actor::new(4);
    let t = chain.now();
    let me = Actor::new(4);
    chain.commit(vec![
        admin.register(t, &hospital, Role::Institution, None),
        patient.register(t, &me, Role::Patient, None),
    ]);
    let t = chain.now();
    let hid = hospital.id.clone();
    chain.commit(vec![hospital.register(t, &clinician, Role::Clinician, Some(&hid))]);
    // The patient lets the clinician write private data.
    let t = chain.now();
    let grant = common::consent_body(
        "c1",
        &clinician.id,
        &[glucochain_types::tx::Access::Write],
        &[glucochain_types::DataClass::Private],
        None,
    );
    let pid = patient.id.clone();
    chain.commit(vec![patient.sign(t, Some(&pid), grant)]);
    let t = chain.now();
    let revoke = hospital.sign(
        t,
        None,
        TxBody::ParticipantRevoke(ParticipantRevoke { id: clinician.id.clone(), reason: "left the hospital".into() }),
    );
    let obs = clinician.observe(t, &patient.id);
    assert_eq!(chain.reject(vec![revoke.clone(), obs.clone()]), (1, "revoked-signer"));
    // In the opposite order the observation precedes the revocation and is admitted.
    chain.commit(vec![obs, revoke]);
    assert_eq!(chain.state.participant(&clinician.id).unwrap().revoked_at, Some(chain.state.height()));
    let t = chain.now();
    assert_eq!(chain.reject(vec![clinician.observe(t, &patient.id)]).1, "revoked-signer");
    // The last admin cannot be revoked, and nobody revokes themself.
    let self_revoke =
        admin.sign(t, None, TxBody::ParticipantRevoke(ParticipantRevoke { id: admin.id.clone(), reason: "x".into() }));
    assert_eq!(chain.reject(vec![self_revoke]).1, "forbidden");
}

#[test]
fn validator_updates_take_effect_after_the_delay() {
    let mut admin = Actor::new(1);
    let mut chain = Chain::new(&admin);
    let new_validator = KeyPair::from_seed([120; 32]);
    let vid = ParticipantId::from_public_key(&new_validator.public());
    let before = chain.state.validators().clone();
    let t = chain.now();
    let update = admin.sign(
        t,
        None,
        TxBody::ValidatorUpdate(ValidatorUpdate {
            validator: vid.clone(),
            public_key: new_validator.public(),
            power: 5,
        }),
    );
    chain.commit(vec![update]);
    let committed_at = chain.state.height();
    let delay = chain.state.params().validator_update_delay;
    while chain.state.height() + 1 < committed_at + delay {
        assert_eq!(chain.state.validators(), &before, "not yet at height {}", chain.state.height() + 1);
        chain.commit(vec![]);
    }
    assert_eq!(chain.state.validators().get(&vid).map(|v| v.power), Some(5));
    assert_eq!(chain.state.validators().total_power(), 45);

    // A non-admin cannot update validators; removing every validator is refused.
    let mut hospital = Actor::new(2);
    let t = chain.now();
    chain.commit(vec![admin.register(t, &hospital, Role::Institution, None)]);
    let t = chain.now();
    let forged = hospital.sign(
        t,
        None,
        TxBody::ValidatorUpdate(ValidatorUpdate {
            validator: vid.clone(),
            public_key: new_validator.public(),
            power: 0,
        }),
    );
    assert_eq!(chain.reject(vec![forged]).1, "forbidden");
    let all: Vec<Vec<u8>> = chain
        .state
        .validators()
        .validators()
        .to_vec()
        .iter()
        .map(|v| {
            admin.sign(
                t,
                None,
                TxBody::ValidatorUpdate(ValidatorUpdate {
                    validator: v.id.clone(),
                    public_key: v.public_key,
                    power: 0,
                }),
            )
        })
        .collect();
    let (index, code) = chain.reject(all);
    assert_eq!((index, code), (4, "forbidden"));
}

#[test]
fn headers_must_follow_the_parent_and_roots_are_deterministic() {
    let mut admin = Actor::new(1);
    let mut a = Chain::new(&admin);
    let mut b = Chain::new(&admin);
    let hospital = Actor::new(2);
    let t = a.now();
    let tx = admin.register(t, &hospital, Role::Institution, None);
    a.commit(vec![tx.clone()]);
    b.commit(vec![tx]);
    assert_eq!(a.state.root(), b.state.root(), "same blocks, same root");
    a.commit(vec![]);
    let other = Actor::new(3);
    let t = b.now();
    b.commit(vec![admin.register(t, &other, Role::Institution, None)]);
    assert_ne!(a.state.root(), b.state.root(), "different effects, different root");

    let good = a.header(&[]);
    for (field, mutate) in [
        ("height", Box::new(|h: &mut BlockHeader| h.height += 1) as Box<dyn Fn(&mut BlockHeader)>),
        ("prev_hash", Box::new(|h: &mut BlockHeader| h.prev_hash = Hash32::default())),
        ("time", Box::new(|h: &mut BlockHeader| h.time = Timestamp::from_unix_ms(T0))),
        ("state_root", Box::new(|h: &mut BlockHeader| h.state_root = Hash32::default())),
        ("validators_hash", Box::new(|h: &mut BlockHeader| h.validators_hash = Hash32::default())),
        (
            "proposer",
            Box::new(|h: &mut BlockHeader| {
                h.proposer = ParticipantId::from_public_key(&KeyPair::from_seed([7; 32]).public())
            }),
        ),
    ] {
        let mut h = good.clone();
        mutate(&mut h);
        assert_eq!(a.state.check_header(&h).unwrap_err().field, field);
    }
    a.state.check_header(&good).unwrap();
}

/// `jws` with the signature of `other` (valid base64url, wrong signature).
fn with_signature_of(jws: &[u8], other: &[u8]) -> Vec<u8> {
    let (input, _) = std::str::from_utf8(jws).unwrap().rsplit_once('.').unwrap();
    let (_, sig) = std::str::from_utf8(other).unwrap().rsplit_once('.').unwrap();
    format!("{input}.{sig}").into_bytes()
}

#[test]
fn block_signatures_are_checked_together_and_a_bad_one_is_named() {
    let mut admin = Actor::new(1);
    let mut chain = Chain::new(&admin);
    let mut patient = Actor::new(4);
    let me = Actor::new(4);
    let t = chain.now();
    chain.commit(vec![patient.register(t, &me, Role::Patient, None)]);

    // Many good signatures: one batch, all admitted.
    let t = chain.now();
    let good: Vec<Vec<u8>> = (0..40).map(|i| patient.observe(t + i, &me.id)).collect();
    chain.commit(good);

    // One forged among many: refused, and named by its index.
    let t = chain.now();
    let mut txs: Vec<Vec<u8>> = (0..12).map(|i| patient.observe(t + i, &me.id)).collect();
    txs[7] = with_signature_of(&txs[7], &txs[3]);
    assert_eq!(chain.reject(txs.clone()), (7, "bad-signature"));
    txs.remove(7);
    chain.commit(txs);

    // Signers registered earlier in the same block (not yet in the committed
    // state) are checked one by one: good ones pass, a forged one is refused.
    let mut hospital = Actor::new(2);
    let clinician = Actor::new(3);
    let t = chain.now();
    let hid = hospital.id.clone();
    let register_hospital = admin.register(t, &hospital, Role::Institution, None);
    let register_clinician = hospital.register(t, &clinician, Role::Clinician, Some(&hid));
    let forged = with_signature_of(&register_clinician, &register_hospital);
    assert_eq!(chain.reject(vec![register_hospital.clone(), forged]), (1, "bad-signature"));
    chain.commit(vec![register_hospital, register_clinician]);
    assert_eq!(chain.state.participant(&clinician.id).unwrap().role, Role::Clinician);
}
