//! Scoring an alert stream against ground-truth events, by the rules of the
//! CGM test set's README: an event is detected when an alert of its family
//! falls in [onset − 60 min, end], timely when that first alert comes no
//! later than onset + 5 min (lead = onset − first alert); an alert is false
//! when it lies in no window [onset − 60 min, end + 30 min] of an event its
//! kind can announce (signal-loss alerts are judged against signal-loss
//! artefacts).

use glucochain_types::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const MIN: i64 = 60_000;

/// Event kinds, in report order.
pub const EVENT_KINDS: [&str; 6] = ["hypo_l2", "hypo_l1", "hyper_l2", "hyper_l1", "rapid_fall", "rapid_rise"];

/// Alert kinds that announce an event kind.
pub fn family(event: &str) -> &'static [&'static str] {
    match event {
        "hypo_l2" | "hypo_l1" => &["urgent_low", "low", "predicted_low", "rapid_fall", "anomaly"],
        "hyper_l2" | "hyper_l1" => &["very_high", "high", "rapid_rise", "anomaly"],
        "rapid_fall" => &["rapid_fall", "predicted_low", "anomaly"],
        "rapid_rise" => &["rapid_rise", "anomaly"],
        _ => &[],
    }
}

/// A labelled event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// Event kind.
    pub kind: String,
    /// Onset.
    pub onset: String,
    /// End.
    pub end: String,
}

/// A sensor artefact.
#[derive(Debug, Clone, Deserialize)]
pub struct Artifact {
    /// `signal_loss` or `compression_low`.
    pub kind: String,
    /// Start.
    pub start: String,
    /// End.
    pub end: String,
}

/// One patient's labels.
#[derive(Debug, Clone, Deserialize)]
pub struct PatientLabels {
    /// Events.
    pub events: Vec<Event>,
    /// Artefacts.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// Start of the trace.
    pub start: String,
    /// End of the trace.
    pub end: String,
}

/// The labels file.
#[derive(Debug, Clone, Deserialize)]
pub struct Labels {
    /// By patient id.
    pub patients: BTreeMap<String, PatientLabels>,
}

/// One alert as scored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoredAlert {
    /// Patient.
    pub patient_id: String,
    /// RFC 3339.
    pub timestamp: String,
    /// Alert kind.
    pub kind: String,
}

/// Figures for one event kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EventScore {
    /// Number of events.
    pub events: usize,
    /// Detected share.
    pub sensitivity: Option<f64>,
    /// Timely share.
    pub timely: Option<f64>,
    /// Median lead, minutes (the upper median, as the reference scorer).
    pub median_lead_min: Option<f64>,
}

/// The scorer's report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Patient-days covered.
    pub patient_days: f64,
    /// Alerts in all.
    pub alerts: usize,
    /// Alerts per patient-day.
    pub alerts_per_patient_day: f64,
    /// False alerts.
    pub false_alerts: usize,
    /// False alerts per patient-day.
    pub false_alerts_per_patient_day: f64,
    /// False alerts by kind.
    pub false_by_kind: BTreeMap<String, usize>,
    /// By event kind.
    pub events: BTreeMap<String, EventScore>,
}

fn ms(s: &str) -> Result<i64, String> {
    Timestamp::parse(s).map(|t| t.unix_ms())
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Scores `alerts` against `labels`.
pub fn score(labels: &Labels, alerts: &[ScoredAlert]) -> Result<Report, String> {
    let mut by_patient: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
    for a in alerts {
        by_patient.entry(a.patient_id.as_str()).or_default().push((ms(&a.timestamp)?, a.kind.as_str()));
    }
    let mut counts: BTreeMap<&str, (usize, usize, usize, Vec<f64>)> =
        EVENT_KINDS.iter().map(|k| (*k, (0, 0, 0, Vec::new()))).collect();
    let (mut false_alerts, mut total, mut days) = (0usize, 0usize, 0.0f64);
    let mut false_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (pid, p) in &labels.patients {
        days += (ms(&p.end)? - ms(&p.start)?) as f64 / (86_400_000.0);
        let mut mine = by_patient.get(pid.as_str()).cloned().unwrap_or_default();
        mine.sort();
        total += mine.len();
        let events: Vec<(&str, i64, i64)> = p
            .events
            .iter()
            .map(|e| Ok((e.kind.as_str(), ms(&e.onset)?, ms(&e.end)?)))
            .collect::<Result<_, String>>()?;
        for (kind, onset, end) in &events {
            let Some(c) = counts.get_mut(kind) else { continue };
            c.0 += 1;
            let fam = family(kind);
            if let Some(first) = mine
                .iter()
                .filter(|(t, k)| fam.contains(k) && *t >= onset - 60 * MIN && t <= end)
                .map(|(t, _)| *t)
                .min()
            {
                c.1 += 1;
                c.3.push((onset - first) as f64 / MIN as f64);
                if first <= onset + 5 * MIN {
                    c.2 += 1;
                }
            }
        }
        let artifacts: Vec<(&str, i64, i64)> = p
            .artifacts
            .iter()
            .map(|a| Ok((a.kind.as_str(), ms(&a.start)?, ms(&a.end)?)))
            .collect::<Result<_, String>>()?;
        for (t, k) in &mine {
            let ok = if *k == "signal_loss" {
                artifacts.iter().any(|(ak, s, e)| *ak == "signal_loss" && s <= t && *t <= e + 30 * MIN)
            } else {
                events.iter().any(|(ek, on, end)| family(ek).contains(k) && *t >= on - 60 * MIN && *t <= end + 30 * MIN)
            };
            if !ok {
                false_alerts += 1;
                *false_by_kind.entry(k.to_string()).or_default() += 1;
            }
        }
    }
    let events = counts
        .into_iter()
        .map(|(k, (n, det, timely, mut leads))| {
            leads.sort_by(f64::total_cmp);
            let share = |x: usize| (n > 0).then(|| round(x as f64 / n as f64, 3));
            (
                k.to_string(),
                EventScore {
                    events: n,
                    sensitivity: share(det),
                    timely: share(timely),
                    median_lead_min: leads.get(leads.len() / 2).copied(),
                },
            )
        })
        .collect();
    let per_day = |x: usize, d: i32| if days > 0.0 { round(x as f64 / days, d) } else { 0.0 };
    Ok(Report {
        patient_days: round(days, 2),
        alerts: total,
        alerts_per_patient_day: per_day(total, 2),
        false_alerts,
        false_alerts_per_patient_day: per_day(false_alerts, 3),
        false_by_kind,
        events,
    })
}

/// The report as the reference scorer prints it.
pub fn render(r: &Report) -> String {
    let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_else(|| "None".into());
    let mut s = format!(
        "patient-days {}  alerts {} ({}/patient-day)  false {} ({}/patient-day) {:?}\n",
        r.patient_days,
        r.alerts,
        r.alerts_per_patient_day,
        r.false_alerts,
        r.false_alerts_per_patient_day,
        r.false_by_kind
    );
    s.push_str(&format!("{:<11}{:>5}{:>13}{:>9}{:>19}\n", "event", "n", "sensitivity", "timely", "median lead (min)"));
    for k in EVENT_KINDS {
        if let Some(e) = r.events.get(k) {
            s.push_str(&format!(
                "{:<11}{:>5}{:>13}{:>9}{:>19}\n",
                k,
                e.events,
                opt(e.sensitivity),
                opt(e.timely),
                opt(e.median_lead_min)
            ));
        }
    }
    s
}
