//! Criterion micro-benchmarks of the hot pure functions: transaction parse
//! and verify, block build (admission of every transaction), Merkle root and
//! proof, state apply, the vault's per-record sealing, detector step.
//!
//! `cargo bench -p glucochain-bench --bench micro`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use glucochain_bench::world::{World, genesis, jws_of};
use glucochain_crypto::merkle::{MerkleTree, verify_inclusion};
use glucochain_crypto::{Hash32, KeyPair, sha256};
use glucochain_detect::{DetectorConfig, MIN, PatientDetector, Reading};
use glucochain_state::LedgerState;
use glucochain_types::block::{BlockHeader, tx_root};
use glucochain_types::time::Timestamp;
use glucochain_types::{ChainId, ParticipantId, Transaction};
use glucochain_vault::commitment::{Salt, commit};
use glucochain_vault::keys::{DataKeyId, FileKek, RecordPlace, new_data_key, open_data_key, open_record, seal_record};
use std::hint::black_box;

const T0: i64 = 1_790_000_000_000;
const BLOCK: usize = 1000;

/// A state with 200 registered patients and `BLOCK` of their readings, signed.
struct Fixture {
    state: LedgerState,
    txs: Vec<Vec<u8>>,
    validators: Vec<KeyPair>,
}

fn header(state: &LedgerState, txs: &[Vec<u8>], at: i64, proposer: &KeyPair) -> BlockHeader {
    let hashes: Vec<Hash32> = txs.iter().map(|t| sha256(t)).collect();
    BlockHeader {
        chain_id: state.chain_id().clone(),
        height: state.height() + 1,
        time: Timestamp::from_unix_ms(at),
        prev_hash: state.last_block_hash(),
        tx_root: tx_root(&hashes),
        state_root: state.root(),
        validators_hash: state.validators().hash(),
        proposer: ParticipantId::from_public_key(&proposer.public()),
        tx_count: txs.len() as u32,
    }
}

fn fixture() -> Fixture {
    let chain = ChainId::parse("glucochain-bench").unwrap();
    let admin = KeyPair::from_seed([1; 32]);
    let validators: Vec<KeyPair> = (0..4u8).map(|i| KeyPair::from_seed([10 + i; 32])).collect();
    let mut state = LedgerState::genesis(&genesis(&chain, &admin, &validators, Timestamp::from_unix_ms(T0)));
    let mut world = World::new(chain, admin, 200, "micro");
    let regs: Vec<Vec<u8>> =
        world.registrations(Timestamp::from_unix_ms(T0 + 500)).into_iter().map(String::into_bytes).collect();
    let h = header(&state, &regs, T0 + 1000, &validators[0]);
    let exec = state.check_block(&h, &regs).expect("registrations admitted");
    let effects = exec.finish();
    state.apply(&h, effects);
    let txs =
        world.observations(BLOCK, Timestamp::from_unix_ms(T0 + 1500)).iter().map(|p| jws_of(p).into_bytes()).collect();
    Fixture { state, txs, validators }
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let at = T0 + 2000;

    let mut g = c.benchmark_group("tx");
    g.throughput(Throughput::Elements(1));
    let one = std::str::from_utf8(&f.txs[0]).unwrap().to_string();
    let key = f.state.participant(&Transaction::parse(&one, &Default::default()).unwrap().signer).unwrap().public_key;
    g.bench_function("parse+verify", |b| {
        b.iter(|| {
            let tx = Transaction::parse(black_box(&one), &Default::default()).unwrap();
            tx.verify_signature(&key).unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(BLOCK as u64));
    g.sample_size(10);
    g.bench_function("build_1000_txs", |b| {
        b.iter(|| {
            let mut exec = f.state.execute(Timestamp::from_unix_ms(at));
            for t in &f.txs {
                exec.admit(t).unwrap();
            }
            black_box(exec.finish())
        })
    });
    let h = header(&f.state, &f.txs, at, &f.validators[0]);
    // What validators and followers do with a proposed or committed block: signatures in one batch, then the rules.
    g.bench_function("check_1000_txs", |b| b.iter(|| black_box(f.state.check_block(&h, &f.txs).unwrap().finish())));
    let effects = f.state.check_block(&h, &f.txs).unwrap().finish();
    g.bench_function("apply_1000_txs", |b| {
        b.iter_batched(
            || (f.state.clone(), effects.clone()),
            |(mut s, e)| {
                s.apply(&h, e);
                s
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("merkle");
    let leaves: Vec<Hash32> = f.txs.iter().map(|t| sha256(t)).collect();
    g.throughput(Throughput::Elements(BLOCK as u64));
    g.bench_function("root_1000", |b| b.iter(|| black_box(tx_root(black_box(&leaves)))));
    let tree = MerkleTree::from_entries(&f.txs);
    let root = tree.root();
    g.throughput(Throughput::Elements(1));
    g.bench_function("inclusion_proof_1000", |b| b.iter(|| black_box(tree.inclusion_proof(black_box(517)).unwrap())));
    let proof = tree.inclusion_proof(517).unwrap();
    let leaf = tree.leaf(517).unwrap();
    g.bench_function("verify_inclusion_1000", |b| {
        b.iter(|| verify_inclusion(black_box(&leaf), 517, BLOCK as u64, &proof, &root).unwrap())
    });
    g.finish();

    // Issue 21's per-record cost: what ingest adds to write a body off the
    // chain (salt, commitment, record key, two AEAD seals under a cached data
    // key), what a reader adds to open it, and a data-key unwrap on a cache miss.
    let mut g = c.benchmark_group("vault");
    g.throughput(Throughput::Elements(1));
    let parsed = Transaction::parse(&one, &Default::default()).unwrap();
    let body = serde_json::to_vec(&parsed.payload.body).unwrap();
    let kek = FileKek::parse(&FileKek::generate()).unwrap();
    let id = DataKeyId {
        patient: parsed.payload.patient.as_ref().map(|p| p.as_str().to_string()).unwrap_or_default(),
        class: "institution".into(),
        epoch: 0,
    };
    let (data_key, wrapped) = new_data_key(&kek, &id);
    let place = RecordPlace { tx_hash: sha256(one.as_bytes()).to_string(), key: id.clone() };
    g.bench_function("commit+seal_observation", |b| {
        b.iter(|| {
            let salt = Salt::random();
            let c = commit(&salt, black_box(&body));
            black_box((c, seal_record(&data_key, &place, &body)))
        })
    });
    let sealed = seal_record(&data_key, &place, &body);
    g.bench_function("open_observation", |b| b.iter(|| black_box(open_record(&data_key, &place, &sealed).unwrap())));
    g.bench_function("unwrap_data_key", |b| b.iter(|| black_box(open_data_key(&kek, &id, &wrapped).unwrap())));
    g.finish();

    let mut g = c.benchmark_group("detector");
    // A day of readings every 5 minutes, a slow sine with a dip.
    let day: Vec<Reading> = (0..288)
        .map(|i| {
            let t = i as f64 / 288.0 * std::f64::consts::TAU;
            Reading {
                at_ms: T0 + i * 5 * MIN,
                mg_dl: 130.0 + 60.0 * t.sin() - if (100..110).contains(&i) { 50.0 } else { 0.0 },
            }
        })
        .collect();
    g.throughput(Throughput::Elements(day.len() as u64));
    g.bench_function("step_day_of_readings", |b| {
        b.iter(|| {
            let mut d = PatientDetector::new(DetectorConfig::default());
            let mut n = 0;
            for r in &day {
                n += d.push(*r).len();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(micro, benches);
criterion_main!(micro);
