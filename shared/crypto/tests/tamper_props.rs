//! Property tests: changing any byte of a signed message, its signature, a
//! JWS, or a Merkle proof makes verification fail.

use glucochain_crypto::jose::{parse_compact, sign_compact};
use glucochain_crypto::merkle::{MerkleTree, leaf_hash, verify_inclusion};
use glucochain_crypto::{Domain, KeyPair, sha256};
use proptest::prelude::*;
use std::sync::OnceLock;

fn key() -> &'static KeyPair {
    static K: OnceLock<KeyPair> = OnceLock::new();
    K.get_or_init(|| KeyPair::from_seed([42; 32]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn changed_message_or_signature_byte_fails(msg in proptest::collection::vec(any::<u8>(), 1..512),
                                               pos in any::<prop::sample::Index>(),
                                               flip in 1u8..=255,
                                               in_sig in any::<bool>()) {
        let kp = key();
        let mut sig = kp.sign(Domain::Vote, &msg);
        let mut m = msg.clone();
        if in_sig { sig[pos.index(64)] ^= flip; } else { let i = pos.index(m.len()); m[i] ^= flip; }
        prop_assert!(kp.public().verify(Domain::Vote, &m, &sig).is_err());
    }

    #[test]
    fn changed_jws_byte_fails(payload in proptest::collection::vec(any::<u8>(), 0..300),
                              pos in any::<prop::sample::Index>(),
                              replacement in any::<u8>()) {
        let kp = key();
        let jws = sign_compact(kp, Domain::Tx, "p-test", &payload);
        let mut bytes = jws.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        // Either it is no longer a parseable JWS, or it does not verify.
        let verified = match std::str::from_utf8(&bytes) {
            Ok(s) => match parse_compact(s, 1 << 20) {
                Ok(p) => p.verify(&kp.public(), Domain::Tx).is_ok(),
                Err(_) => false,
            },
            Err(_) => false,
        };
        prop_assert!(!verified, "tampered JWS verified: byte {} of {}", i, jws);
    }

    #[test]
    fn changed_proof_or_leaf_byte_fails(n in 1usize..200,
                                        leaf in any::<prop::sample::Index>(),
                                        which in any::<prop::sample::Index>(),
                                        byte in 0usize..32,
                                        flip in 1u8..=255) {
        let entries: Vec<Vec<u8>> = (0..n).map(|i| sha256(&i.to_le_bytes()).0.to_vec()).collect();
        let tree = MerkleTree::from_entries(&entries);
        let idx = leaf.index(n);
        let mut proof = tree.inclusion_proof(idx as u64).unwrap();
        let mut lh = leaf_hash(&entries[idx]);
        let mut root = tree.root();
        // Tamper with one of: the leaf hash, a proof hash, the root.
        let slots = proof.len() + 2;
        match which.index(slots) {
            0 => lh.0[byte] ^= flip,
            1 => root.0[byte] ^= flip,
            k => proof[k - 2].0[byte] ^= flip,
        }
        prop_assert!(verify_inclusion(&lh, idx as u64, n as u64, &proof, &root).is_err());
    }
}
