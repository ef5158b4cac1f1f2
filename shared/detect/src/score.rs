//! Scoring an alert stream against ground-truth events.
//!
//! Two rule sets, one per test set: [`score`] follows the interstitial CGM
//! set's README (`tests/fixtures/cgm/`), [`plasma`] the plasma-labelled set
//! (`tests/fixtures/cgm-plasma/`).
//!
//! Interstitial rules: an event is detected when an alert of its family
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
        "hyper_l2" | "hyper_l1" => &["very_high", "predicted_high", "high", "rapid_rise", "anomaly"],
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

/// The plasma-labelled set's rules (`tests/fixtures/cgm-plasma/README.md`):
/// an event is detected when an alert of that patient falls in
/// [start − pre, start + post] (30 and 15 minutes by default; with
/// `kind_match` only an alert whose kind names a compatible family), lead =
/// start − earliest such alert; an alert is false when it lies in no event's
/// [start − pre, end] (events of every kind, `rapid_rise` included).
pub mod plasma {
    use super::{ScoredAlert, ms, round};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// Scored event kinds (`rapid_rise` is informational: not in "all primary").
    pub const PRIMARY: [&str; 4] = ["hypo_l2", "hypo_l1", "hyper_l2", "rapid_fall"];
    /// Every kind reported.
    pub const KINDS: [&str; 5] = ["hypo_l2", "hypo_l1", "hyper_l2", "rapid_fall", "rapid_rise"];

    /// A labelled event.
    #[derive(Debug, Clone, Deserialize)]
    pub struct Event {
        /// Event kind.
        pub kind: String,
        /// First minute of the qualifying run.
        pub start: String,
        /// First minute back across the threshold for 15 minutes.
        pub end: String,
    }

    /// One patient's labels.
    #[derive(Debug, Clone, Deserialize)]
    pub struct PatientLabels {
        /// Patient id, e.g. `adult#001`.
        pub patient_id: String,
        /// Start of the trace.
        pub start: String,
        /// End of the trace.
        pub end: String,
        /// Events.
        pub events: Vec<Event>,
    }

    /// The labels file.
    #[derive(Debug, Clone, Deserialize)]
    pub struct Labels {
        /// Patients.
        pub patients: Vec<PatientLabels>,
    }

    /// Scoring options.
    #[derive(Debug, Clone, Copy)]
    pub struct Options {
        /// Minutes before an event's start that count.
        pub pre_min: f64,
        /// Minutes after an event's start that count.
        pub post_min: f64,
        /// The alert kind must name a family compatible with the event.
        pub kind_match: bool,
    }

    impl Default for Options {
        /// The rules: [start − 30, start + 15], kinds matched.
        fn default() -> Self {
            Options { pre_min: 30.0, post_min: 15.0, kind_match: true }
        }
    }

    /// Whether an alert of `alert_kind` may announce an event of `event_kind`,
    /// by the words in its name as the reference scorer matches them.
    pub fn compatible(alert_kind: &str, event_kind: &str) -> bool {
        let k = alert_kind.to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| k.contains(w));
        match event_kind {
            "hypo_l1" | "hypo_l2" => has(&["hypo", "low"]),
            "hyper_l2" => has(&["hyper", "high"]),
            "rapid_fall" => has(&["fall", "drop", "down", "decreas"]),
            "rapid_rise" => has(&["rise", "rising", "up", "increas"]),
            _ => false,
        }
    }

    /// Figures for one event kind.
    #[derive(Debug, Clone, Default, Serialize, PartialEq)]
    pub struct KindScore {
        /// Events.
        pub events: usize,
        /// Detected events.
        pub detected: usize,
        /// detected / events, 4 digits.
        pub sensitivity: Option<f64>,
        /// Median lead of detected events, minutes (1 digit).
        pub median_lead_min: Option<f64>,
    }

    /// One patient's figures.
    #[derive(Debug, Clone, Default, Serialize, PartialEq)]
    pub struct PatientScore {
        /// Detected events by kind.
        pub detected: BTreeMap<String, usize>,
        /// Events by kind.
        pub events: BTreeMap<String, usize>,
        /// Alerts.
        pub alerts: usize,
        /// False alerts.
        pub false_alerts: usize,
    }

    /// The report.
    #[derive(Debug, Clone, Default, Serialize, PartialEq)]
    pub struct Report {
        /// Patient-days covered.
        pub patient_days: f64,
        /// Alerts scored (of known patients, inside their trace).
        pub alerts: usize,
        /// False alerts.
        pub false_alerts: usize,
        /// Alerts per patient-day (3 digits).
        pub alerts_per_patient_day: f64,
        /// False alerts per patient-day (3 digits).
        pub false_alerts_per_patient_day: f64,
        /// False alerts by alert kind.
        pub false_by_kind: BTreeMap<String, usize>,
        /// By event kind.
        pub by_kind: BTreeMap<String, KindScore>,
        /// All primary kinds together.
        pub overall_primary: KindScore,
        /// By patient.
        pub per_patient: BTreeMap<String, PatientScore>,
    }

    fn median(xs: &mut [f64]) -> Option<f64> {
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(round(xs[n / 2], 1)),
            _ => Some(round((xs[n / 2 - 1] + xs[n / 2]) / 2.0, 1)),
        }
    }

    /// Scores `alerts` against `labels`.
    pub fn score(labels: &Labels, alerts: &[ScoredAlert], o: Options) -> Result<Report, String> {
        let (pre, post) = ((o.pre_min * 60_000.0) as i64, (o.post_min * 60_000.0) as i64);
        let mut by_patient: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
        for a in alerts {
            by_patient.entry(a.patient_id.as_str()).or_default().push((ms(&a.timestamp)?, a.kind.as_str()));
        }
        let fits = |alert: &str, event: &str| !o.kind_match || compatible(alert, event);
        let mut r = Report::default();
        let mut leads: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut days = 0.0;
        for p in &labels.patients {
            let (start, end) = (ms(&p.start)?, ms(&p.end)?);
            days += (end - start) as f64 / 86_400_000.0;
            let mut mine: Vec<(i64, &str)> = by_patient
                .get(p.patient_id.as_str())
                .map(|v| v.iter().filter(|(t, _)| (start..=end).contains(t)).copied().collect())
                .unwrap_or_default();
            mine.sort();
            let events: Vec<(&str, i64, i64)> = p
                .events
                .iter()
                .map(|e| Ok((e.kind.as_str(), ms(&e.start)?, ms(&e.end)?)))
                .collect::<Result<_, String>>()?;
            let ps = r.per_patient.entry(p.patient_id.clone()).or_default();
            for (kind, s, _) in &events {
                let k = r.by_kind.entry(kind.to_string()).or_default();
                k.events += 1;
                *ps.events.entry(kind.to_string()).or_default() += 1;
                if let Some(first) =
                    mine.iter().filter(|(t, a)| *t >= s - pre && *t <= s + post && fits(a, kind)).map(|(t, _)| *t).min()
                {
                    k.detected += 1;
                    *ps.detected.entry(kind.to_string()).or_default() += 1;
                    leads.entry(kind).or_default().push((s - first) as f64 / 60_000.0);
                }
            }
            for (t, a) in &mine {
                r.alerts += 1;
                ps.alerts += 1;
                if !events.iter().any(|(k, s, e)| *t >= s - pre && t <= e && fits(a, k)) {
                    r.false_alerts += 1;
                    ps.false_alerts += 1;
                    *r.false_by_kind.entry(a.to_string()).or_default() += 1;
                }
            }
        }
        let mut all = Vec::new();
        for kind in KINDS {
            let k = r.by_kind.entry(kind.to_string()).or_default();
            let mut l = leads.remove(kind).unwrap_or_default();
            k.sensitivity = (k.events > 0).then(|| round(k.detected as f64 / k.events as f64, 4));
            if PRIMARY.contains(&kind) {
                r.overall_primary.events += k.events;
                r.overall_primary.detected += k.detected;
                all.extend(l.iter().copied());
            }
            k.median_lead_min = median(&mut l);
        }
        let o = &mut r.overall_primary;
        o.sensitivity = (o.events > 0).then(|| round(o.detected as f64 / o.events as f64, 4));
        o.median_lead_min = median(&mut all);
        r.patient_days = round(days, 3);
        if days > 0.0 {
            r.alerts_per_patient_day = round(r.alerts as f64 / days, 3);
            r.false_alerts_per_patient_day = round(r.false_alerts as f64 / days, 3);
        }
        Ok(r)
    }

    /// The report as a table, like the reference scorer prints it.
    pub fn render(r: &Report) -> String {
        let f = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "-".into());
        let mut s = format!("patient-days {}\n", r.patient_days);
        s.push_str(&format!("{:<12}{:>7}{:>9}{:>8}{:>13}\n", "kind", "events", "detected", "sens", "median lead"));
        for kind in KINDS {
            let k = &r.by_kind[kind];
            let name = if PRIMARY.contains(&kind) { kind.to_string() } else { format!("{kind}*") };
            s.push_str(&format!(
                "{name:<12}{:>7}{:>9}{:>8}{:>13}\n",
                k.events,
                k.detected,
                f(k.sensitivity, 3),
                f(k.median_lead_min, 1)
            ));
        }
        let o = &r.overall_primary;
        s.push_str(&format!(
            "{:<12}{:>7}{:>9}{:>8}{:>13}\n",
            "ALL primary",
            o.events,
            o.detected,
            f(o.sensitivity, 3),
            f(o.median_lead_min, 1)
        ));
        s.push_str(&format!(
            "alerts {}  false alerts {}  alerts/patient-day {}  false alerts/patient-day {} {:?}\n",
            r.alerts, r.false_alerts, r.alerts_per_patient_day, r.false_alerts_per_patient_day, r.false_by_kind
        ));
        s
    }
}
