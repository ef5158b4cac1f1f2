//! The fault-injection harness's short profile (docs/reliability.md): a
//! devnet of four validators on PostgreSQL under steady load, every fault
//! injected, held and healed in turn, and the invariants checked over the
//! whole run — no accepted transaction lost or committed twice, nothing
//! committed that nobody submitted, no fork, identical blocks in every
//! validator, the ledger verifying from genesis, every fault patient's
//! alert delivered or visibly pending.

mod common;

use glucochain_faults::{Fault, Options, Profile, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_heals_without_losing_a_transaction_or_an_alert() {
    let work = tempfile::tempdir().unwrap();
    let bins = common::bin_dir(work.path());
    let admin = glucochain_testkit::postgres::admin_url();
    let o = Options {
        dir: work.path().join("devnet"),
        emrctl: bins.join("emrctl"),
        bin_dir: bins,
        postgres: admin.trim_end_matches("/postgres").to_string(),
        profile: Profile::short(),
        faults: Fault::ALL.to_vec(),
    };
    let report = run(&o).await.expect("the harness ran");
    println!("{}", report.markdown());
    assert!(report.violations.is_empty(), "invariants broken:\n{}", report.markdown());
    assert_eq!(report.rows.len(), Fault::ALL.len());
    assert!(report.accepted > 0 && report.lost == 0 && report.duplicated == 0);
    assert_eq!(report.validator_heights.iter().min(), report.validator_heights.iter().max());
    assert!(report.validator_heights[0] as u64 >= report.ledger_height);
    for row in &report.rows {
        // Faults that need this machine's help may be skipped only for a
        // stated reason; everything else must have run.
        if let Some(why) = &row.skipped {
            assert!(
                matches!(row.fault.as_str(), "postgres-restart" | "clock-skew" | "disk-full"),
                "{} skipped: {why}",
                row.fault
            );
            continue;
        }
        assert!(row.recover_secs.is_some(), "{} did not recover:\n{}", row.fault, report.markdown());
        assert!(row.alert_delivered, "{}: the caregiver never got the email:\n{}", row.fault, report.markdown());
        let fault = Fault::ALL.iter().find(|f| f.name() == row.fault).unwrap();
        if fault.keeps_writes() {
            assert!(row.accepted > 0, "{}: no load accepted while it lasted", row.fault);
        }
        if fault.halts() {
            // No quorum: at most the block already decided when it began.
            assert!(row.blocks_during <= 1, "{} committed {} blocks without a quorum", row.fault, row.blocks_during);
        } else if row.fault.contains("validator") || row.fault.starts_with("partition") || row.fault == "clock-skew" {
            assert!(row.blocks_during > 0, "{}: three validators of four must go on committing", row.fault);
        }
    }
}
