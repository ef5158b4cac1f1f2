//! Clinical reminders from active care plans, computed by a pure function
//! of the contract state, the patient's records and a time window, so the
//! service can run it on a real or a fake clock and never lose or repeat a
//! reminder: the same schedule slot always yields the same id.

use glucochain_state::contracts::{CareplanVersion, Contracts};
use glucochain_types::ParticipantId;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::CarePlan;
use std::collections::HashMap;

/// A check-up is overdue this long after it fell due without a matching record.
pub const OVERDUE_GRACE_MS: i64 = 14 * 86_400_000;
/// After a long outage, reminders older than this are not sent any more (only counted).
pub const MAX_CATCH_UP_MS: i64 = 2 * 86_400_000;

const DAY_MS: i64 = 86_400_000;

/// What a reminder is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReminderKind {
    /// Take a medication.
    Medication,
    /// A check-up falls due.
    Checkup,
    /// A check-up is overdue (no matching record after the grace period).
    CheckupOverdue,
}

impl ReminderKind {
    /// Subject suffix: `emr.reminder.<kind>`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReminderKind::Medication => "medication",
            ReminderKind::Checkup => "checkup",
            ReminderKind::CheckupOverdue => "checkup_overdue",
        }
    }
}

/// One reminder due.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    /// Stable id of the schedule slot.
    pub id: String,
    /// The patient.
    pub patient: ParticipantId,
    /// Kind.
    pub kind: ReminderKind,
    /// The care plan.
    pub plan_id: String,
    /// Medication name or check-up code.
    pub subject: String,
    /// Text for people.
    pub text: String,
    /// When it is due.
    pub due: Timestamp,
}

fn parse_hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    Some(h.parse::<i64>().ok()? * 3_600_000 + m.parse::<i64>().ok()? * 60_000)
}

/// The accepted (active) version of every patient's care plan, as the chain
/// holds it: what [`due_reminders`] needs once each is opened.
pub fn active_versions(contracts: &Contracts) -> Vec<(ParticipantId, CareplanVersion)> {
    contracts
        .careplans
        .values()
        .filter_map(|plan| {
            let version = plan.active_version.and_then(|v| plan.versions.get(&v))?;
            Some((plan.patient.clone(), version.clone()))
        })
        .collect()
}

/// Reminders due in `(from, to]`, for every patient's care plan in force at
/// the due time. `last_record` gives the newest record time per (patient,
/// code), for check-ups. Windows longer than [`MAX_CATCH_UP_MS`] are cut to
/// their most recent part.
pub fn due_reminders(
    plans: &[(ParticipantId, CarePlan)],
    last_record: &HashMap<(ParticipantId, String), Timestamp>,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Reminder> {
    let from = from.unix_ms().max(to.unix_ms() - MAX_CATCH_UP_MS);
    let to = to.unix_ms();
    let mut out = Vec::new();
    if to <= from {
        return out;
    }
    for (patient, p) in plans {
        let (start, end) = (p.term.start.unix_ms(), p.term.end.unix_ms());
        let in_force = |t: i64| t >= start && t < end;
        // Local time of the patient: the quiet-hours offset, else UTC.
        let offset_ms = p.quiet_hours.as_ref().map(|q| q.utc_offset_minutes as i64 * 60_000).unwrap_or(0);
        for med in &p.medications {
            for time in &med.times {
                let Some(at) = parse_hhmm(time) else { continue };
                // Slots: local midnight + at, converted to UTC, for each day touching the window.
                let first_day = (from + offset_ms).div_euclid(DAY_MS);
                let last_day = (to + offset_ms).div_euclid(DAY_MS);
                for day in first_day..=last_day {
                    let due = day * DAY_MS + at - offset_ms;
                    if due > from && due <= to && in_force(due) {
                        out.push(Reminder {
                            id: format!("med:{}:{}:v{}:{}:{}", patient, p.plan_id, p.version, med.name, due),
                            patient: patient.clone(),
                            kind: ReminderKind::Medication,
                            plan_id: p.plan_id.to_string(),
                            subject: med.name.clone(),
                            text: format!("Time for {} ({}).", med.name, med.dose),
                            due: Timestamp::from_unix_ms(due),
                        });
                    }
                }
            }
        }
        for c in &p.checkups {
            let every = c.every_days.max(1) as i64 * DAY_MS;
            let last = last_record.get(&(patient.clone(), c.code.clone())).map(|t| t.unix_ms());
            let due = last.unwrap_or(start) + every;
            for (kind, at, text) in [
                (ReminderKind::Checkup, due, format!("{} is due.", c.display)),
                (ReminderKind::CheckupOverdue, due + OVERDUE_GRACE_MS, format!("{} is overdue.", c.display)),
            ] {
                if at > from && at <= to && in_force(at) {
                    out.push(Reminder {
                        id: format!("{}:{}:{}:{}:{}", kind.as_str(), patient, p.plan_id, c.code, at),
                        patient: patient.clone(),
                        kind,
                        plan_id: p.plan_id.to_string(),
                        subject: c.code.clone(),
                        text,
                        due: Timestamp::from_unix_ms(at),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| (a.due, &a.id).cmp(&(b.due, &b.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_types::ids::LocalId;
    use glucochain_types::tx::{CheckupSchedule, GlucoseThresholds, MedicationSchedule, QuietHours, Term};
    use std::collections::HashSet;

    const T0: i64 = 1_790_000_000_000 - 1_790_000_000_000 % DAY_MS; // a UTC midnight

    fn patient() -> ParticipantId {
        ParticipantId::from_public_key(&glucochain_crypto::KeyPair::from_seed([5; 32]).public())
    }

    fn contracts(offset_minutes: i32) -> Vec<(ParticipantId, CarePlan)> {
        let plan = CarePlan {
            plan_id: LocalId::parse("plan-1", "plan_id").unwrap(),
            version: 1,
            thresholds: GlucoseThresholds::default(),
            alert_kinds: vec![],
            contacts: vec![],
            quiet_hours: Some(QuietHours {
                start: "22:00".into(),
                end: "07:00".into(),
                utc_offset_minutes: offset_minutes,
            }),
            medications: vec![MedicationSchedule {
                name: "metformin".into(),
                dose: "500 mg".into(),
                times: vec!["08:00".into(), "20:00".into()],
            }],
            checkups: vec![CheckupSchedule { code: "4548-4".into(), display: "HbA1c".into(), every_days: 90 }],
            term: Term { start: Timestamp::from_unix_ms(T0), end: Timestamp::from_unix_ms(T0 + 365 * DAY_MS) },
            language: None,
            alert_repeat: None,
            insulin: None,
        };
        vec![(patient(), plan)]
    }

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(ms)
    }

    #[test]
    fn medication_times_are_local_to_the_patient() {
        // UTC+1: 08:00 local is 07:00 UTC.
        let c = contracts(60);
        let r = due_reminders(&c, &HashMap::new(), ts(T0), ts(T0 + DAY_MS));
        let meds: Vec<i64> =
            r.iter().filter(|r| r.kind == ReminderKind::Medication).map(|r| r.due.unix_ms() - T0).collect();
        assert_eq!(meds, vec![7 * 3_600_000, 19 * 3_600_000]);
        assert!(r[0].text.contains("metformin"));
    }

    #[test]
    fn consecutive_windows_neither_lose_nor_repeat_a_reminder() {
        let c = contracts(-300);
        let end = T0 + 200 * DAY_MS;
        let whole: Vec<String> = {
            let mut all = Vec::new();
            let mut t = T0;
            while t < end {
                let next = (t + DAY_MS).min(end);
                all.extend(due_reminders(&c, &HashMap::new(), ts(t), ts(next)).into_iter().map(|r| r.id));
                t = next;
            }
            all
        };
        // Irregular windows (a service ticking at odd intervals, restarting) give the same set.
        let mut pieces = Vec::new();
        let mut t = T0;
        let mut step = 3_600_000 * 7 + 13;
        while t < end {
            let next = (t + step).min(end);
            pieces.extend(due_reminders(&c, &HashMap::new(), ts(t), ts(next)).into_iter().map(|r| r.id));
            t = next;
            step = step * 3 % (DAY_MS * 2) + 1;
        }
        assert_eq!(pieces.len(), whole.len(), "no reminder repeated");
        assert_eq!(pieces.iter().collect::<HashSet<_>>(), whole.iter().collect::<HashSet<_>>(), "none lost");
        assert_eq!(whole.iter().filter(|i| i.starts_with("med:")).count(), 400, "two a day for 200 days");
    }

    #[test]
    fn checkups_fall_due_from_the_last_record_and_become_overdue() {
        let c = contracts(0);
        let mut records = HashMap::new();
        // A service ticking through the period, one day at a time.
        let window = |records: &HashMap<_, _>, from: i64, to: i64| {
            let mut out = Vec::new();
            let mut t = from;
            while t < to {
                let next = (t + DAY_MS).min(to);
                out.extend(
                    due_reminders(&c, records, ts(t), ts(next))
                        .into_iter()
                        .filter(|r| r.kind != ReminderKind::Medication),
                );
                t = next;
            }
            out
        };
        // Without an HbA1c on record: due 90 days after the plan starts, overdue 14 days later.
        let r = window(&records, T0, T0 + 120 * DAY_MS);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].kind, r[0].due.unix_ms()), (ReminderKind::Checkup, T0 + 90 * DAY_MS));
        assert_eq!((r[1].kind, r[1].due.unix_ms()), (ReminderKind::CheckupOverdue, T0 + 104 * DAY_MS));
        // A result on day 95 moves the next one to day 185 and cancels the overdue notice.
        records.insert((patient(), "4548-4".to_string()), ts(T0 + 95 * DAY_MS));
        let r = window(&records, T0 + 95 * DAY_MS, T0 + 190 * DAY_MS);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].due.unix_ms(), T0 + 185 * DAY_MS);
    }

    #[test]
    fn after_a_long_outage_only_recent_reminders_are_sent_and_nothing_outside_the_term() {
        let c = contracts(0);
        let r = due_reminders(&c, &HashMap::new(), ts(T0), ts(T0 + 30 * DAY_MS));
        assert!(r.iter().all(|r| r.due.unix_ms() > T0 + 28 * DAY_MS), "at most two days of catch-up");
        let after = due_reminders(&c, &HashMap::new(), ts(T0 + 366 * DAY_MS), ts(T0 + 367 * DAY_MS));
        assert!(after.is_empty(), "the plan's term is over");
    }
}
