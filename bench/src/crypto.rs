//! The physical ceiling: how many Ed25519 signatures one core signs and
//! verifies per second (singly and in batches, as validators and ingest do),
//! and how fast it hashes. Each committed transaction costs at least one
//! verification at ingest and one per validator.

use glucochain_crypto::domain::BatchItem;
use glucochain_crypto::{Domain, KeyPair, sha256, verify_batch};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Operations per second on one core.
#[derive(Debug, Clone, Serialize)]
pub struct CryptoLimits {
    /// Ed25519 signatures made.
    pub sign_per_sec: f64,
    /// Ed25519 signatures verified one by one (strict).
    pub verify_per_sec: f64,
    /// Signatures verified per second in batches of 64.
    pub batch64_verify_per_sec: f64,
    /// Signatures verified per second in batches of 256.
    pub batch256_verify_per_sec: f64,
    /// SHA-256 of a 1 KiB transaction, per second.
    pub sha256_1k_per_sec: f64,
    /// SHA-256 throughput, MiB/s (64 KiB inputs).
    pub sha256_mib_per_sec: f64,
}

/// Runs `op` repeatedly for about `budget`; returns operations per second,
/// where each call counts `per_call` operations.
fn rate(budget: Duration, per_call: f64, mut op: impl FnMut()) -> f64 {
    // Warm up, then measure whole calls.
    for _ in 0..3 {
        op();
    }
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        op();
        calls += 1;
    }
    calls as f64 * per_call / start.elapsed().as_secs_f64()
}

/// Measures the limits, spending about `budget` on each figure.
pub fn measure(budget: Duration) -> CryptoLimits {
    let keys: Vec<KeyPair> = (0..256u32).map(|i| KeyPair::from_seed(sha256(&i.to_be_bytes()).0)).collect();
    let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
    // Messages the size of a CGM observation transaction.
    let messages: Vec<Vec<u8>> = (0..256u32).map(|i| vec![(i % 251) as u8; 900]).collect();
    let sigs: Vec<[u8; 64]> = keys.iter().zip(&messages).map(|(k, m)| k.sign(Domain::Tx, m)).collect();
    let mut i = 0usize;
    let sign_per_sec = rate(budget, 1.0, || {
        std::hint::black_box(keys[i % 256].sign(Domain::Tx, &messages[i % 256]));
        i += 1;
    });
    let verify_per_sec = rate(budget, 1.0, || {
        let k = i % 256;
        publics[k].verify(Domain::Tx, &messages[k], &sigs[k]).expect("valid signature");
        i += 1;
    });
    let items: Vec<BatchItem<'_>> = (0..256)
        .map(|k| BatchItem { key: &publics[k], domain: Domain::Tx, message: &messages[k], signature: &sigs[k] })
        .collect();
    let batch64_verify_per_sec = rate(budget, 64.0, || verify_batch(&items[..64]).expect("valid batch"));
    let batch256_verify_per_sec = rate(budget, 256.0, || verify_batch(&items).expect("valid batch"));
    let tx = vec![7u8; 1024];
    let sha256_1k_per_sec = rate(budget, 1.0, || {
        std::hint::black_box(sha256(std::hint::black_box(&tx)));
    });
    let big = vec![9u8; 64 * 1024];
    let sha256_mib_per_sec = rate(budget, 1.0 / 16.0, || {
        std::hint::black_box(sha256(std::hint::black_box(&big)));
    });
    CryptoLimits {
        sign_per_sec,
        verify_per_sec,
        batch64_verify_per_sec,
        batch256_verify_per_sec,
        sha256_1k_per_sec,
        sha256_mib_per_sec,
    }
}

impl CryptoLimits {
    /// Transactions per second `cores` can verify as the code stands: one
    /// strict verification at ingest and one by each validator.
    pub fn tx_ceiling(&self, validators: usize, cores: usize) -> f64 {
        cores as f64 * self.verify_per_sec / (1 + validators) as f64
    }

    /// The same with the validators verifying in batches of 64.
    pub fn tx_ceiling_batched(&self, validators: usize, cores: usize) -> f64 {
        let secs_per_tx = 1.0 / self.verify_per_sec + validators as f64 / self.batch64_verify_per_sec;
        cores as f64 / secs_per_tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_count_one_verification_at_ingest_and_one_per_validator() {
        let l = CryptoLimits {
            sign_per_sec: 0.0,
            verify_per_sec: 10_000.0,
            batch64_verify_per_sec: 20_000.0,
            batch256_verify_per_sec: 0.0,
            sha256_1k_per_sec: 0.0,
            sha256_mib_per_sec: 0.0,
        };
        // 5 verifications at 10000/s: 2000 tx/s per core.
        assert!((l.tx_ceiling(4, 2) - 4000.0).abs() < 1e-6);
        // 1/10000 + 4/20000 = 0.0003 s per tx per core.
        assert!((l.tx_ceiling_batched(4, 2) - 2.0 / 0.0003).abs() < 1e-6);
    }
}
