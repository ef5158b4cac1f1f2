//! Domain-separated Ed25519 signatures.
//!
//! Every signed message kind has its own [`Domain`]. For the binary messages
//! (consensus votes, proposals, blocks, ...) the signed bytes are
//! `"glucochain/v1/<kind>" || 0x00 || message`, so a signature for one kind
//! never verifies as another. The prefix holds a `/` and a NUL byte, neither of
//! which can occur in a JWS signing input (base64url and `.` only), so binary
//! signatures and JOSE signatures cannot be confused either. For the JOSE kinds
//! (transactions and read tokens) the separation is the JWS `typ` header, which
//! is part of the signed input and checked exactly on verification (see
//! [`crate::jose`]).
//!
//! Validity is Ed25519 with the strict rules of `ed25519-dalek`'s
//! `verify_strict` (canonical `S`, no small-order `R` or public key), which
//! RFC 8032's test vectors satisfy.

use crate::keys::{KeyPair, PublicKey};
use ed25519_dalek::{Signature, Signer};

/// The kind of message a signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A transaction (JWS, `typ: emr-tx+jws`).
    Tx,
    /// A short-lived read token (JWT, `typ: emr-auth+jwt`).
    Token,
    /// A consensus proposal.
    Proposal,
    /// One part of a streamed proposal.
    ProposalPart,
    /// A consensus prevote or precommit.
    Vote,
    /// A block header (e.g. a signed block announcement).
    Block,
    /// Evidence of misbehaviour reported by a validator.
    Evidence,
    /// A vote certificate (polka or round) relayed by a validator.
    Certificate,
    /// A block-sync request or response between validators.
    Sync,
    /// A notifier's single-use acknowledge link.
    NotifyLink,
    /// An event a registered service publishes on NATS (an alert for the
    /// notifier), signed with the service's key.
    ServiceEvent,
    /// A web session cookie a service issues after a signed sign-in.
    WebSession,
    /// A proof that a clinician holds a patient's emergency card, signed by
    /// the card's own key (see `glucochain_types::emergency`).
    EmergencyCard,
    /// A validator's report that it refused a transaction (for ingest's status).
    TxRejection,
}

impl Domain {
    /// The tag prepended (with a NUL separator) to binary messages of this kind.
    pub const fn tag(self) -> &'static str {
        match self {
            Domain::Tx => "glucochain/v1/tx",
            Domain::Token => "glucochain/v1/token",
            Domain::Proposal => "glucochain/v1/proposal",
            Domain::ProposalPart => "glucochain/v1/proposal-part",
            Domain::Vote => "glucochain/v1/vote",
            Domain::Block => "glucochain/v1/block",
            Domain::Evidence => "glucochain/v1/evidence",
            Domain::Certificate => "glucochain/v1/certificate",
            Domain::Sync => "glucochain/v1/sync",
            Domain::NotifyLink => "glucochain/v1/notify-link",
            Domain::ServiceEvent => "glucochain/v1/service-event",
            Domain::WebSession => "glucochain/v1/web-session",
            Domain::EmergencyCard => "glucochain/v1/emergency-card",
            Domain::TxRejection => "glucochain/v1/tx-rejection",
        }
    }

    /// The JWS `typ` header that carries this domain in JOSE form, if any.
    pub const fn jose_typ(self) -> Option<&'static str> {
        match self {
            Domain::Tx => Some("emr-tx+jws"),
            Domain::Token => Some("emr-auth+jwt"),
            _ => None,
        }
    }

    /// The exact bytes signed for `message` in this domain.
    pub fn signing_bytes(self, message: &[u8]) -> Vec<u8> {
        let tag = self.tag().as_bytes();
        let mut v = Vec::with_capacity(tag.len() + 1 + message.len());
        v.extend_from_slice(tag);
        v.push(0);
        v.extend_from_slice(message);
        v
    }
}

/// Why a signature did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The signature is not 64 bytes.
    #[error("a signature is 64 bytes, got {0}")]
    Length(usize),
    /// The signature does not verify for this key, domain and message.
    #[error("signature does not verify")]
    Invalid,
    /// Batch verification: these items (by index) did not verify.
    #[error("{} of the batch's signatures do not verify (first at index {})", .0.len(), .0[0])]
    BatchInvalid(Vec<usize>),
}

impl KeyPair {
    /// Signs `message` in `domain`.
    pub fn sign(&self, domain: Domain, message: &[u8]) -> [u8; 64] {
        self.signing_key().sign(&domain.signing_bytes(message)).to_bytes()
    }

    /// Signs `message` exactly as RFC 8032 does, with no domain tag. Only for
    /// test vectors and interoperability checks; GlucoChain messages use
    /// [`KeyPair::sign`] or a JWS.
    pub fn sign_rfc8032(&self, message: &[u8]) -> [u8; 64] {
        self.sign_raw(message)
    }

    /// Signs raw bytes with no domain tag. Only for standards that fix the
    /// signed input themselves (JWS); everything else uses [`KeyPair::sign`].
    pub(crate) fn sign_raw(&self, input: &[u8]) -> [u8; 64] {
        self.signing_key().sign(input).to_bytes()
    }
}

impl PublicKey {
    /// Verifies `signature` over `message` in `domain` (strict Ed25519).
    pub fn verify(&self, domain: Domain, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        self.verify_raw(&domain.signing_bytes(message), signature)
    }

    /// Verifies a signature over raw bytes (strict Ed25519), no domain tag.
    pub fn verify_raw(&self, input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let sig = to_signature(signature)?;
        self.verifying_key().verify_strict(input, &sig).map_err(|_| SignatureError::Invalid)
    }
}

fn to_signature(b: &[u8]) -> Result<Signature, SignatureError> {
    let arr: [u8; 64] = b.try_into().map_err(|_| SignatureError::Length(b.len()))?;
    Ok(Signature::from_bytes(&arr))
}

/// One item of a batch: who signed what, in which domain.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signer's key.
    pub key: &'a PublicKey,
    /// The message's domain.
    pub domain: Domain,
    /// The message (without domain tag).
    pub message: &'a [u8],
    /// The 64-byte signature.
    pub signature: &'a [u8],
}

/// Verifies many signatures at once (Ed25519 batch verification, about twice
/// as fast per signature as one by one). When the batch fails, every item is
/// checked alone and the error lists the indices that do not verify, so a
/// caller can reject exactly the bad ones. Weak (small-order) public keys are
/// refused before the batch. A signature its own key holder crafted with a
/// small-order component in `R` may pass the batch where the strict single
/// check fails (nobody else can make one); the batch's coefficients come from
/// its contents, so the verdict on the same items is always the same.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Result<(), SignatureError> {
    let messages: Vec<Vec<u8>> = items.iter().map(|it| it.domain.signing_bytes(it.message)).collect();
    let raw: Vec<RawBatchItem> = items
        .iter()
        .zip(&messages)
        .map(|(it, m)| RawBatchItem { key: it.key, input: m, signature: it.signature })
        .collect();
    verify_batch_raw(&raw)
}

/// One item of a batch over raw bytes (no domain tag), such as a JWS signing input.
#[derive(Debug, Clone, Copy)]
pub struct RawBatchItem<'a> {
    /// The signer's key.
    pub key: &'a PublicKey,
    /// The exact signed bytes.
    pub input: &'a [u8],
    /// The 64-byte signature.
    pub signature: &'a [u8],
}

/// [`verify_batch`] over raw signed bytes: the same batch equation, the same
/// fallback to strict single checks naming the items that fail.
pub fn verify_batch_raw(items: &[RawBatchItem<'_>]) -> Result<(), SignatureError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    let mut malformed = false;
    for it in items {
        match to_signature(it.signature) {
            Ok(sig) if !it.key.verifying_key().is_weak() => {
                messages.push(it.input);
                signatures.push(sig);
                keys.push(*it.key.verifying_key());
            }
            _ => malformed = true,
        }
    }
    if !malformed && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    // Find exactly which items fail, with the strict single check.
    let bad: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.key.verify_raw(it.input, it.signature).is_err())
        .map(|(i, _)| i)
        .collect();
    if bad.is_empty() { Ok(()) } else { Err(SignatureError::BatchInvalid(bad)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_distinct_and_prefix_free() {
        let all = [
            Domain::Tx,
            Domain::Token,
            Domain::Proposal,
            Domain::ProposalPart,
            Domain::Vote,
            Domain::Block,
            Domain::Evidence,
            Domain::Certificate,
            Domain::Sync,
            Domain::NotifyLink,
            Domain::ServiceEvent,
            Domain::WebSession,
            Domain::EmergencyCard,
            Domain::TxRejection,
        ];
        for a in all {
            for b in all {
                if a != b {
                    // With the NUL separator no tag's signed prefix is a prefix of another's.
                    let pa = a.signing_bytes(b"");
                    let pb = b.signing_bytes(b"");
                    assert!(!pb.starts_with(&pa), "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn signature_does_not_cross_domains() {
        let kp = KeyPair::generate();
        let msg = b"height=7 round=0";
        let sig = kp.sign(Domain::Vote, msg);
        let pk = kp.public();
        assert!(pk.verify(Domain::Vote, msg, &sig).is_ok());
        assert_eq!(pk.verify(Domain::Proposal, msg, &sig), Err(SignatureError::Invalid));
        assert_eq!(pk.verify(Domain::Block, msg, &sig), Err(SignatureError::Invalid));
        assert_eq!(pk.verify_raw(msg, &sig), Err(SignatureError::Invalid));
        assert_eq!(pk.verify(Domain::Vote, msg, &sig[..63]), Err(SignatureError::Length(63)));
    }

    #[test]
    fn batch_finds_the_bad_items() {
        let keys: Vec<KeyPair> = (0..20).map(|_| KeyPair::generate()).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
        let msgs: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 40]).collect();
        let mut sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(Domain::Vote, m)).collect();
        let items = |sigs: &Vec<[u8; 64]>| -> Vec<(usize, [u8; 64])> { sigs.iter().copied().enumerate().collect() };
        let check = |sigs: &Vec<[u8; 64]>| {
            let v = items(sigs);
            let batch: Vec<BatchItem> = v
                .iter()
                .map(|(i, s)| BatchItem { key: &pubs[*i], domain: Domain::Vote, message: &msgs[*i], signature: s })
                .collect();
            // `batch` borrows `v`; verify before `v` drops.
            verify_batch(&batch)
        };
        assert_eq!(check(&sigs), Ok(()));
        sigs[3][10] ^= 1;
        sigs[17][0] ^= 0x80;
        assert_eq!(check(&sigs), Err(SignatureError::BatchInvalid(vec![3, 17])));
        assert_eq!(verify_batch(&[]), Ok(()));
    }
}
