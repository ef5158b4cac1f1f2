//! The harness's findings: one row per fault and the invariants over the run.

use crate::{Fault, Profile};
use serde::Serialize;
use std::time::Instant;

/// One fault: how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Fault name.
    pub fault: String,
    /// What it is.
    pub what: String,
    /// Why it was not injected, when it was not.
    pub skipped: Option<String>,
    /// How long it lasted, seconds.
    pub hold_secs: f64,
    /// Transactions offered while it lasted (the fault patient's uploads included).
    pub offered: usize,
    /// Of those, answered 202 (or 200), whenever the answer came.
    pub accepted: usize,
    /// Blocks committed while it lasted.
    pub blocks_during: u64,
    /// From healing until every accepted transaction was committed and every
    /// validator and the ledger held the new tip, seconds (`None`: not within
    /// the profile's settle time).
    pub recover_secs: Option<f64>,
    /// From healing until the fault patient's caregiver had the email, seconds.
    pub alert_email_secs: Option<f64>,
    /// Transactions accepted while it lasted and never committed (must be 0).
    pub txs_lost: usize,
    /// Transactions accepted while it lasted and committed twice (must be 0).
    pub txs_duplicated: usize,
    /// Alerts raised for the fault patient.
    pub alerts_raised: usize,
    /// The caregiver got the email.
    pub alert_delivered: bool,
    /// Not yet emailed, but pending at the notifier.
    pub alert_pending: bool,
    /// The fault patient's alert neither raised nor delivered nor pending (must be 0).
    pub alerts_lost: usize,
    /// What the harness observed injecting and healing it.
    pub notes: Vec<String>,
    #[serde(skip)]
    pub(crate) window: Option<(Instant, Instant)>,
    #[serde(skip)]
    pub(crate) patient: Option<String>,
    #[serde(skip)]
    pub(crate) address: Option<String>,
}

impl Row {
    pub(crate) fn new(f: Fault) -> Self {
        Row {
            fault: f.name(),
            what: f.describe().into(),
            skipped: None,
            hold_secs: 0.0,
            offered: 0,
            accepted: 0,
            blocks_during: 0,
            recover_secs: None,
            alert_email_secs: None,
            txs_lost: 0,
            txs_duplicated: 0,
            alerts_raised: 0,
            alert_delivered: false,
            alert_pending: false,
            alerts_lost: 0,
            notes: Vec::new(),
            window: None,
            patient: None,
            address: None,
        }
    }

    /// Share of the offered load accepted while the fault lasted, percent.
    pub fn load_held_pct(&self) -> f64 {
        if self.offered == 0 { 0.0 } else { 100.0 * self.accepted as f64 / self.offered as f64 }
    }

    /// One line for progress output.
    pub fn summary(&self) -> String {
        if let Some(s) = &self.skipped {
            return format!("{}: skipped ({s})", self.fault);
        }
        format!(
            "{}: {} blocks during, recovered in {}, alert email after {}",
            self.fault,
            self.blocks_during,
            secs(self.recover_secs),
            secs(self.alert_email_secs)
        )
    }
}

fn secs(s: Option<f64>) -> String {
    s.map(|v| format!("{v:.1} s")).unwrap_or_else(|| "—".into())
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Load and durations.
    pub profile: Profile,
    /// One per fault.
    pub rows: Vec<Row>,
    /// Distinct transactions posted.
    pub submitted: usize,
    /// Of those, answered 202 (or 200).
    pub accepted: usize,
    /// Accepted and never committed (must be 0).
    pub lost: usize,
    /// Committed more than once (must be 0).
    pub duplicated: usize,
    /// Committed although no answer (or an error) reached the client: the
    /// answer was lost in a fault, the transaction was not.
    pub committed_unanswered: usize,
    /// Committed although neither the harness nor a service submitted them (must be 0).
    pub unrequested: usize,
    /// Committed transactions signed by the services themselves (alerts recorded on the chain).
    pub service_txs: usize,
    /// Heights at which two different blocks were published (must be empty).
    pub forks: Vec<u64>,
    /// The ledger's verified height.
    pub ledger_height: u64,
    /// Each validator's stored height after the run.
    pub validator_heights: Vec<usize>,
    /// Alert events raised over the run.
    pub alerts: usize,
    /// Alert events the notifier does not know (must be 0).
    pub alerts_unknown: usize,
    /// Every invariant that did not hold (must be empty).
    pub violations: Vec<String>,
}

impl Report {
    pub(crate) fn new(profile: Profile) -> Self {
        Report {
            profile,
            rows: Vec::new(),
            submitted: 0,
            accepted: 0,
            lost: 0,
            duplicated: 0,
            committed_unanswered: 0,
            unrequested: 0,
            service_txs: 0,
            forks: Vec::new(),
            ledger_height: 0,
            validator_heights: Vec::new(),
            alerts: 0,
            alerts_unknown: 0,
            violations: Vec::new(),
        }
    }

    /// The table of `docs/reliability.md` and the invariants, as Markdown.
    pub fn markdown(&self) -> String {
        let p = &self.profile;
        let mut out = format!(
            "Profile `{}`: {} readings/s offered, faults held {} s (SMTP {} s, PostgreSQL {} s), recovery awaited up to {} s.\n\n",
            p.name, p.rate, p.hold_secs, p.smtp_hold_secs, p.postgres_hold_secs, p.settle_secs
        );
        out += "| fault | held | load accepted during | blocks during | recovered after | alert email after heal | txs lost | alerts lost | notes |\n";
        out += "|---|---|---|---|---|---|---|---|---|\n";
        for r in &self.rows {
            if let Some(s) = &r.skipped {
                out += &format!("| {} | not run | | | | | | | {s} |\n", r.what);
                continue;
            }
            let alert = match (r.alert_delivered, r.alert_pending) {
                (true, _) => secs(r.alert_email_secs),
                (false, true) => "pending".into(),
                _ => "—".into(),
            };
            let notes: Vec<&str> = r.notes.iter().map(String::as_str).filter(|n| !n.is_empty()).collect();
            out += &format!(
                "| {} | {:.0} s | {:.0}% ({}/{}) | {} | {} | {} | {} | {} | {} |\n",
                r.what,
                r.hold_secs,
                r.load_held_pct(),
                r.accepted,
                r.offered,
                r.blocks_during,
                secs(r.recover_secs),
                alert,
                r.txs_lost + r.txs_duplicated,
                r.alerts_lost,
                notes.join("; ")
            );
        }
        out += &format!(
            "\nOver the run: {} transactions posted, {} accepted, {} lost, {} committed twice, {} committed \
             whose answer was lost in a fault, {} signed by the services, {} committed that nobody submitted; forks: {}; ledger verified \
             to height {}; validators' stored heights {:?}; {} alert events, {} unknown to the notifier.\n",
            self.submitted,
            self.accepted,
            self.lost,
            self.duplicated,
            self.committed_unanswered,
            self.service_txs,
            self.unrequested,
            if self.forks.is_empty() { "none".to_string() } else { format!("{:?}", self.forks) },
            self.ledger_height,
            self.validator_heights,
            self.alerts,
            self.alerts_unknown
        );
        if self.violations.is_empty() {
            out += "\nEvery invariant held.\n";
        } else {
            out += "\nViolations:\n";
            for v in &self.violations {
                out += &format!("- {v}\n");
            }
        }
        out
    }
}
