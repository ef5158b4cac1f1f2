//! Four validator processes on a real nats-server: transactions are
//! committed; a validator killed with SIGKILL does not stop the others and,
//! restarted, catches up and votes again; with two of four stopped nothing
//! is committed (and nothing forks) until one returns; a byzantine validator
//! that double-votes and forges signatures neither forks nor stalls the
//! chain, and its equivocation is recorded.

mod common;

use common::Cluster;
use glucochain_crypto::Hash32;
use glucochain_types::block::CommitCertificate;
use std::time::Duration;

/// Every committed block on BLOCKS carries a quorum certificate, follows its
/// parent, and every validator store holds the same hashes.
async fn check_consistent(c: &Cluster, bus: &glucochain_bus::Bus, running: &[usize]) {
    let blocks = c.blocks_from_stream(bus).await;
    let mut prev: Option<Hash32> = None;
    for (h, cb) in &blocks {
        let block = glucochain_consensus::block::Block::from_wire(cb.block.as_ref().unwrap()).unwrap();
        let cert = CommitCertificate::from_wire(cb.certificate.as_ref().unwrap()).unwrap();
        assert_eq!(block.header.height, *h);
        assert!(block.is_well_formed());
        if let Some(p) = prev {
            assert_eq!(block.header.prev_hash, p, "hash link at {h}");
        }
        assert_eq!(cert.block_hash, block.hash());
        assert!(cert.signatures.len() >= 3, "quorum of 4 at {h}");
        prev = Some(block.hash());
    }
    let chains: Vec<Vec<Vec<u8>>> = futures::future::join_all(running.iter().map(|&i| c.chain_of(i))).await;
    for (k, chain) in chains.iter().enumerate() {
        for (j, hash) in chain.iter().enumerate() {
            let on_stream = blocks.get(&(j as u64 + 1)).map(|b| {
                glucochain_consensus::block::Block::from_wire(b.block.as_ref().unwrap()).unwrap().hash().0.to_vec()
            });
            if let Some(s) = on_stream {
                assert_eq!(&s, hash, "validator {} differs at height {}", running[k], j + 1);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_survives_a_crash_and_the_restarted_validator_catches_up_and_votes() {
    let mut c = Cluster::start(4, &[]);
    c.wait_ready().await;
    let bus = c.bus().await;

    let txs: Vec<Vec<u8>> = (0..12).map(|_| c.registration()).collect();
    let hashes = c.submit(&bus, &txs).await;
    c.wait_committed(&bus, &hashes, Duration::from_secs(60)).await;

    // SIGKILL one validator: the other three keep committing.
    c.kill(3);
    let txs: Vec<Vec<u8>> = (0..12).map(|_| c.registration()).collect();
    let hashes = c.submit(&bus, &txs).await;
    let blocks = c.wait_committed(&bus, &hashes, Duration::from_secs(60)).await;
    let top = *blocks.keys().last().unwrap();

    // Restarted, it replays its WAL, syncs the missing blocks and votes again.
    c.start_validator(3);
    c.wait_ready().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while (c.chain_of(3).await.len() as u64) < top {
        assert!(std::time::Instant::now() < deadline, "validator 3 did not catch up\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut voted_again = false;
    for _ in 0..10 {
        let txs: Vec<Vec<u8>> = (0..3).map(|_| c.registration()).collect();
        let hashes = c.submit(&bus, &txs).await;
        let blocks = c.wait_committed(&bus, &hashes, Duration::from_secs(60)).await;
        let last = blocks.values().last().unwrap();
        let cert = CommitCertificate::from_wire(last.certificate.as_ref().unwrap()).unwrap();
        if cert.signatures.iter().any(|s| s.validator == c.validators[3].id) {
            voted_again = true;
            break;
        }
    }
    assert!(voted_again, "the restarted validator's precommit appears in a new certificate\n{}", c.logs());
    check_consistent(&c, &bus, &[0, 1, 2, 3]).await;
    assert!(c.metric(0, "glucochain_consensus_height", "").await >= top as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_four_down_halts_without_fork_and_resumes_when_one_returns() {
    let mut c = Cluster::start(4, &[]);
    c.wait_ready().await;
    let bus = c.bus().await;
    let txs: Vec<Vec<u8>> = (0..4).map(|_| c.registration()).collect();
    let hashes = c.submit(&bus, &txs).await;
    let before = c.wait_committed(&bus, &hashes, Duration::from_secs(60)).await;
    let top = *before.keys().last().unwrap();

    c.kill(2);
    c.kill(3);
    let txs: Vec<Vec<u8>> = (0..4).map(|_| c.registration()).collect();
    let hashes = c.submit(&bus, &txs).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = c.blocks_from_stream(&bus).await;
    assert_eq!(*during.keys().last().unwrap(), top, "no block without a quorum");
    for i in [0, 1] {
        assert_eq!(c.chain_of(i).await.len() as u64, top, "validator {i} committed without a quorum");
    }

    c.start_validator(2);
    c.wait_committed(&bus, &hashes, Duration::from_secs(90)).await;
    check_consistent(&c, &bus, &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_validator_neither_forks_nor_stalls_and_is_recorded() {
    // Validator 3 double-votes, forges signatures, replays the others' old
    // messages and floods junk and proposal streams for rounds far ahead.
    let mut c = Cluster::start_configured(4, 0, &[3], &[("GLUCOCHAIN_MISBEHAVE", "equivocate,replay,flood")]);
    c.wait_ready().await;
    let bus = c.bus().await;
    for _ in 0..5 {
        let txs: Vec<Vec<u8>> = (0..5).map(|_| c.registration()).collect();
        let hashes = c.submit(&bus, &txs).await;
        c.wait_committed(&bus, &hashes, Duration::from_secs(90)).await;
    }
    check_consistent(&c, &bus, &[0, 1, 2]).await;
    // Honest validators stored evidence against validator 3 and counted its forged signatures.
    let byz = c.validators[3].id.as_str().to_string();
    let mut recorded = 0;
    for i in 0..3 {
        let store = c.store(i).await;
        let ev = store.evidence().await.unwrap();
        assert!(ev.iter().all(|e| e.validator == byz), "evidence only against the byzantine validator");
        recorded += ev.len();
        store.close().await;
    }
    assert!(recorded > 0, "equivocation evidence recorded\n{}", c.logs());
    let forged: f64 = c.metric(0, "glucochain_consensus_dropped_total", "bad_signature").await;
    assert!(forged > 0.0, "forged signatures counted");
    let counted = c.metric(0, "glucochain_evidence_total", &byz).await;
    assert!(counted > 0.0, "evidence visible in metrics");
    // Replayed old messages are dropped as stale; the junk and the flood of
    // proposal streams are dropped and counted.
    assert!(c.metric(0, "glucochain_consensus_dropped_total", "stale").await > 0.0, "replays counted");
    assert!(c.metric(0, "glucochain_consensus_dropped_total", "undecodable").await > 0.0, "junk counted");
    assert!(c.metric(0, "glucochain_consensus_dropped_total", "\"flood\"").await > 0.0, "stream flood counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_validator_voting_for_the_next_height_cannot_make_an_idle_chain_commit_empty_blocks() {
    // Validator 3 keeps voting for the next height while the chain is idle.
    // The others start a height for peers with more than a third of the
    // power (at least one correct validator), not for it alone.
    let mut c = Cluster::start_configured(4, 0, &[3], &[("GLUCOCHAIN_MISBEHAVE", "nudge")]);
    c.wait_ready().await;
    let bus = c.bus().await;
    let txs: Vec<Vec<u8>> = (0..3).map(|_| c.registration()).collect();
    let hashes = c.submit(&bus, &txs).await;
    c.wait_committed(&bus, &hashes, Duration::from_secs(90)).await;
    let top = *c.blocks_from_stream(&bus).await.keys().last().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let blocks = c.blocks_from_stream(&bus).await;
    assert_eq!(*blocks.keys().last().unwrap(), top, "blocks committed on an idle chain\n{}", c.logs());
    // And work still gets done.
    let txs: Vec<Vec<u8>> = (0..3).map(|_| c.registration()).collect();
    let hashes = c.submit(&bus, &txs).await;
    c.wait_committed(&bus, &hashes, Duration::from_secs(90)).await;
    for (h, cb) in c.blocks_from_stream(&bus).await {
        assert!(!cb.block.as_ref().unwrap().txs.is_empty(), "empty block {h} committed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_that_break_the_rules_are_refused_and_counted_against_their_proposer() {
    // Validator 3 proposes, in turn, blocks with a wrong prev_hash, tx_root
    // or state_root, or with a transaction that is not one.
    let mut c = Cluster::start_configured(4, 0, &[3], &[("GLUCOCHAIN_MISBEHAVE", "bad-proposals")]);
    c.wait_ready().await;
    let bus = c.bus().await;
    // Enough heights for it to propose each kind of broken block.
    for _ in 0..12 {
        let txs: Vec<Vec<u8>> = (0..3).map(|_| c.registration()).collect();
        let hashes = c.submit(&bus, &txs).await;
        c.wait_committed(&bus, &hashes, Duration::from_secs(90)).await;
    }
    // None of its blocks was committed: every stored block checks out and
    // the honest validators agree.
    check_consistent(&c, &bus, &[0, 1, 2]).await;
    let byz = c.validators[3].id.as_str().to_string();
    for (h, cb) in c.blocks_from_stream(&bus).await {
        let proposer = &cb.block.as_ref().unwrap().header.as_ref().unwrap().proposer;
        assert_ne!(proposer, &byz, "block {h}, proposed by the byzantine validator, was committed");
    }
    for i in 0..3 {
        let refused = c.metric(i, "glucochain_consensus_refused_proposals_total", &byz).await;
        assert!(
            refused >= 2.0,
            "validator {i} counted the byzantine proposer's broken blocks ({refused})\n{}",
            c.logs()
        );
        let all_refused = c.metric(i, "glucochain_consensus_refused_proposals_total", "proposer=").await;
        assert_eq!(all_refused, refused, "validator {i} refused only the byzantine proposer's blocks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_validator_which_votes_from_a_later_height() {
    // Four genesis validators and a fifth process that only follows.
    let mut c = Cluster::start_with_followers(4, 1, &[]);
    c.wait_ready().await;
    let bus = c.bus().await;
    let update = c.validator_update(4, 10);
    let hashes = c.submit(&bus, &[update]).await;
    let blocks = c.wait_committed(&bus, &hashes, Duration::from_secs(60)).await;
    let at = *blocks.keys().last().unwrap();
    let newcomer = c.validators[4].id.clone();
    // Until the update takes effect (2 blocks later by default) it does not sign;
    // afterwards certificates need 4 of 5 and it takes part.
    let mut signed_from = None;
    for _ in 0..12 {
        let txs: Vec<Vec<u8>> = (0..2).map(|_| c.registration()).collect();
        let hashes = c.submit(&bus, &txs).await;
        let blocks = c.wait_committed(&bus, &hashes, Duration::from_secs(60)).await;
        for (h, b) in &blocks {
            let cert = CommitCertificate::from_wire(b.certificate.as_ref().unwrap()).unwrap();
            let signed = cert.signatures.iter().any(|s| s.validator == newcomer);
            if *h <= at + 1 {
                assert!(!signed, "validator 4 signed at height {h}, before its update took effect");
            }
            if signed && signed_from.is_none() {
                signed_from = Some(*h);
            }
        }
        if signed_from.is_some() {
            break;
        }
    }
    let from = signed_from.unwrap_or_else(|| panic!("the new validator never signed\n{}", c.logs()));
    assert!(from >= at + 2, "signed from {from}, update committed at {at}");
    check_consistent(&c, &bus, &[0, 1, 2, 3, 4]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chain_makes_no_blocks() {
    let mut c = Cluster::start(4, &[]);
    c.wait_ready().await;
    let bus = c.bus().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(c.blocks_from_stream(&bus).await.is_empty(), "no block without transactions");
    let tx = c.registration();
    let hashes = c.submit(&bus, &[tx]).await;
    let blocks = c.wait_committed(&bus, &hashes, Duration::from_secs(60)).await;
    assert_eq!(blocks.len(), 1, "one transaction, one block");
    // Restarting a validator does not make empty blocks either.
    c.kill(1);
    c.start_validator(1);
    c.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.blocks_from_stream(&bus).await.len(), 1, "still one block\n{}", c.logs());
    assert_eq!(c.chain_of(1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_arriving_within_the_least_block_interval_share_a_block() {
    const INTERVAL_MS: i64 = 600;
    let interval = INTERVAL_MS.to_string();
    let mut c = Cluster::start_configured(4, 0, &[], &[("GLUCOCHAIN_MIN_BLOCK_INTERVAL_MS", &interval)]);
    c.wait_ready().await;
    let bus = c.bus().await;
    // 24 transactions, one every 50 ms: without the interval most would get a block of their own.
    let mut hashes = Vec::new();
    for _ in 0..24 {
        let tx = c.registration();
        hashes.extend(c.submit(&bus, &[tx]).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let blocks = c.wait_committed(&bus, &hashes, Duration::from_secs(90)).await;
    let times: Vec<i64> = blocks.values().map(|b| b.block.as_ref().unwrap().header.as_ref().unwrap().time_ms).collect();
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= INTERVAL_MS, "blocks {} ms apart (least {INTERVAL_MS}): {times:?}", w[1] - w[0]);
    }
    let txs: usize = blocks.values().map(|b| b.block.as_ref().unwrap().txs.len()).sum();
    assert_eq!(txs, 24);
    assert!(blocks.len() < 12, "{} blocks for 24 transactions over ~1.2 s", blocks.len());
    check_consistent(&c, &bus, &[0, 1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_stay_small_enough_to_publish_and_sync_on_nats() {
    // NATS takes messages of at most 80 KiB here (16 KiB of transactions
    // beside the validators' 64 KiB margin): a backlog of ~150 KiB must be cut
    // into blocks that each fit one BLOCKS message.
    const MAX_PAYLOAD: usize = 80 * 1024;
    let nats = glucochain_testkit::NatsServer::start_with_max_payload(MAX_PAYLOAD).unwrap();
    let mut c = Cluster::start_on(nats, 4, 0, &[], &[("GLUCOCHAIN_MIN_BLOCK_INTERVAL_MS", "300")]);
    c.wait_ready().await;
    let bus = c.bus().await;
    // Validator 3 is down while the backlog commits; it must catch up by sync.
    c.kill(3);
    let txs: Vec<Vec<u8>> = (0..220).map(|_| c.registration()).collect();
    let bytes: usize = txs.iter().map(Vec::len).sum();
    let hashes = c.submit(&bus, &txs).await;
    let blocks = c.wait_committed(&bus, &hashes, Duration::from_secs(120)).await;
    let heights: Vec<u64> = blocks.keys().copied().collect();
    assert_eq!(heights, (1..=heights.len() as u64).collect::<Vec<_>>(), "every height on BLOCKS");
    assert!(bytes > MAX_PAYLOAD, "the backlog ({bytes} bytes) exceeds one message");
    assert!(blocks.len() as f64 >= bytes as f64 / (16.0 * 1024.0), "{} blocks for {bytes} bytes", blocks.len());
    for b in blocks.values() {
        assert!(prost::Message::encoded_len(b) <= MAX_PAYLOAD);
    }
    c.start_validator(3);
    c.wait_ready().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.chain_of(3).await.len() < blocks.len() {
        assert!(std::time::Instant::now() < deadline, "validator 3 did not sync\n{}", c.log_tail(3));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    check_consistent(&c, &bus, &[0, 1, 2, 3]).await;
}
