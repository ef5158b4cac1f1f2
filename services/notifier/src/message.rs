//! What a notification says: the email (plain text and HTML with a small
//! chart of the last hours), the SMS and the webhook body, in words a worried
//! parent understands at a glance. Only what the reader needs: the patient's
//! alias, what happened, the values and trend, what to do, how to acknowledge.

use crate::policy::Level;
use glucochain_types::time::Timestamp;

/// What a notification is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// `alert`, `reminder` or `notice`.
    pub source_kind: &'static str,
    /// Alert or reminder kind (`urgent_low`, `medication`, `break_glass`, ...).
    pub kind: String,
    /// Level.
    pub level: Level,
    /// The patient's alias as the contact directory knows it (never the id).
    pub patient_name: String,
    /// Why (the detector's or engine's explanation).
    pub detail: String,
    /// Triggering glucose, mg/dL.
    pub glucose: Option<f64>,
    /// Trend, mg/dL per minute.
    pub slope: Option<f64>,
    /// Prediction: (mg/dL, at).
    pub predicted: Option<(f64, i64)>,
    /// When it happened.
    pub at_ms: i64,
    /// The last hours of readings (at, mg/dL), oldest first.
    pub recent: Vec<(i64, f64)>,
    /// Where to acknowledge (a signed single-use link), if the source takes acks.
    pub ack_url: Option<String>,
    /// The code to reply by SMS.
    pub ack_code: String,
    /// Escalation step (0 = first contact; higher means others were told first).
    pub step: u32,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// The headline of a notification kind, e.g. "Urgent low glucose".
pub fn headline(kind: &str) -> &'static str {
    match kind {
        "urgent_low" => "Urgent low glucose",
        "low" => "Low glucose",
        "predicted_low" => "Low glucose expected soon",
        "rapid_fall" => "Glucose falling fast",
        "rapid_rise" => "Glucose rising fast",
        "high" => "High glucose",
        "very_high" => "Very high glucose",
        "predicted_high" => "Very high glucose expected soon",
        "anomaly" => "Unusual glucose pattern",
        "signal_loss" => "No glucose data",
        "break_glass" => "Emergency access to medical information",
        "medication" => "Medication reminder",
        "checkup" => "Check-up due",
        "checkup_overdue" => "Check-up overdue",
        _ => "GlucoChain notification",
    }
}

fn advice(kind: &str) -> &'static str {
    match kind {
        "urgent_low" => {
            "Act now: give 15-20 g of fast-acting sugar (juice, glucose tablets) and check again in 15 minutes. If they cannot swallow or do not respond, give glucagon and call emergency services."
        }
        "low" => "Give 15 g of fast-acting sugar (juice, glucose tablets) and check again in 15 minutes.",
        "predicted_low" => "Glucose is heading for a low. Check on them now; a small snack may prevent it.",
        "rapid_fall" => "Glucose is dropping fast. Check on them and be ready to treat a low.",
        "rapid_rise" => "Glucose is rising fast. Check whether a meal-time insulin dose was missed.",
        "high" => "Glucose has stayed high. Check whether insulin was missed and follow the care plan.",
        "very_high" => {
            "Check for missed insulin and, if it stays above 250 mg/dL, for ketones. Follow the care plan or call the care team."
        }
        "predicted_high" => {
            "Glucose is rising towards a very high level. Check whether a meal-time insulin dose was missed."
        }
        "anomaly" => "Glucose is unusual for this time of day. Check in with them.",
        "signal_loss" => "No sensor readings are arriving. Check the sensor and phone, and ask how they feel.",
        "break_glass" => {
            "A clinician opened the emergency profile (blood group, allergies, medication), usually because of an emergency. If you did not expect this, contact the care team."
        }
        "medication" => "Time for the medication in the care plan.",
        "checkup" | "checkup_overdue" => "Please book the check-up with the care team.",
        _ => "",
    }
}

fn clock(ms: i64) -> String {
    let s = Timestamp::from_unix_ms(ms).to_rfc3339();
    // 2026-11-25T08:05:00Z -> 08:05 UTC
    s.get(11..16).map(|hm| format!("{hm} UTC")).unwrap_or(s)
}

fn trend_words(slope: f64) -> String {
    let arrow = if slope <= -2.0 {
        "falling fast"
    } else if slope <= -1.0 {
        "falling"
    } else if slope >= 2.0 {
        "rising fast"
    } else if slope >= 1.0 {
        "rising"
    } else {
        "steady"
    };
    format!("{arrow} ({slope:+.1} mg/dL per minute)")
}

impl Notice {
    /// What to do, in a sentence or two.
    pub fn advice(&self) -> &'static str {
        advice(&self.kind)
    }

    /// The headline, e.g. "Urgent low glucose".
    pub fn headline(&self) -> &'static str {
        headline(&self.kind)
    }

    /// The facts, one line each: glucose, trend, prediction.
    pub fn facts(&self) -> Vec<String> {
        let mut f = Vec::new();
        if let Some(g) = self.glucose.filter(|g| *g > 0.0) {
            f.push(format!("Glucose: {g:.0} mg/dL at {}", clock(self.at_ms)));
        }
        if let Some(s) = self.slope.filter(|s| s.is_finite() && *s != 0.0) {
            f.push(format!("Trend: {}", trend_words(s)));
        }
        if let Some((p, at)) = self.predicted.filter(|(p, _)| *p > 0.0) {
            f.push(format!("Expected: about {p:.0} mg/dL by {}", clock(at)));
        }
        f
    }

    /// The email.
    pub fn email(&self) -> Email {
        let urgent = if self.level == Level::Urgent { "URGENT: " } else { "" };
        let subject = format!("{urgent}{} - {}", self.headline(), self.patient_name);
        let mut text = format!("{} for {}.\n\n", self.headline(), self.patient_name);
        for f in self.facts() {
            text.push_str(&f);
            text.push('\n');
        }
        if !self.detail.is_empty() {
            text.push_str(&format!("Why: {}\n", self.detail));
        }
        if self.step > 0 {
            text.push_str("You are receiving this because earlier contacts have not acknowledged it.\n");
        }
        text.push_str(&format!("\nWhat to do: {}\n", advice(&self.kind)));
        if let Some(url) = &self.ack_url {
            text.push_str(&format!(
                "\nAcknowledge (so others are not alerted): {url}\nor reply to the SMS with {}\n",
                self.ack_code
            ));
        }
        text.push_str("\n-- GlucoChain. This message holds only what you need to help.\n");

        let colour = match self.level {
            Level::Urgent => "#b00020",
            Level::Warning => "#8a4b00",
            Level::Info => "#1f4e79",
        };
        let mut html = String::new();
        html.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"></head>");
        html.push_str("<body style=\"font-family:Arial,Helvetica,sans-serif;color:#111;max-width:560px\">");
        html.push_str(&format!(
            "<h1 style=\"color:{colour};font-size:22px\">{}</h1><p style=\"font-size:16px\">for <strong>{}</strong></p>",
            esc(self.headline()),
            esc(&self.patient_name)
        ));
        html.push_str("<ul style=\"font-size:16px\">");
        for f in self.facts() {
            html.push_str(&format!("<li>{}</li>", esc(&f)));
        }
        html.push_str("</ul>");
        if self.recent.len() >= 2 {
            let chart = glucochain_web::chart::trace(
                &self.recent,
                glucochain_web::chart::Thresholds::default(),
                self.predicted.map(|(g, at)| (at, g)),
                0,
            );
            html.push_str(&chart.into_string());
        }
        if self.step > 0 {
            html.push_str("<p>You are receiving this because earlier contacts have not acknowledged it.</p>");
        }
        html.push_str(&format!(
            "<p style=\"font-size:16px\"><strong>What to do:</strong> {}</p>",
            esc(advice(&self.kind))
        ));
        if !self.detail.is_empty() {
            html.push_str(&format!("<p style=\"color:#444\">Why: {}</p>", esc(&self.detail)));
        }
        if let Some(url) = &self.ack_url {
            html.push_str(&format!(
                "<p><a href=\"{}\" style=\"display:inline-block;background:{colour};color:#fff;padding:12px 20px;text-decoration:none;border-radius:4px;font-size:16px\">Acknowledge</a></p><p style=\"color:#444\">or reply to the SMS with <strong>{}</strong></p>",
                esc(url),
                esc(&self.ack_code)
            ));
        }
        html.push_str("<p style=\"color:#666;font-size:12px\">GlucoChain. This message holds only what you need to help.</p></body></html>");
        Email { subject, text, html }
    }

    /// The SMS (GSM characters only): the facts and the reply code in the
    /// first 160 characters, then the link to the alert page (a second
    /// segment of a concatenated SMS).
    pub fn sms(&self) -> String {
        let mut s = format!("GlucoChain: {} - {}.", self.headline(), self.patient_name);
        if let Some(g) = self.glucose.filter(|g| *g > 0.0) {
            s.push_str(&format!(" {g:.0} mg/dL"));
            if let Some(sl) = self.slope.filter(|s| s.is_finite() && *s != 0.0) {
                s.push_str(&format!(", {sl:+.1}/min"));
            }
            s.push('.');
        }
        if self.source_kind == "alert" {
            s.push_str(&format!(" Reply {} to acknowledge.", self.ack_code));
        }
        if let Some(url) = &self.ack_url {
            s.push_str(&format!(" See: {url}"));
        }
        s
    }

    /// The webhook body. It never carries the acknowledge link: a link
    /// acknowledges for the whole group, and a webhook is a machine whose
    /// owner the care plan alone vouches for.
    pub fn webhook(&self, source_id: &str) -> serde_json::Value {
        serde_json::json!({
            "source_id": source_id,
            "source_kind": self.source_kind,
            "kind": self.kind,
            "level": self.level.as_str(),
            "headline": self.headline(),
            "patient_name": self.patient_name,
            "glucose_mg_dl": self.glucose,
            "slope_mg_dl_per_min": self.slope,
            "at": Timestamp::from_unix_ms(self.at_ms).to_rfc3339(),
            "detail": self.detail,
            "escalation_step": self.step,
        })
    }
}

/// HTML escaping for text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: &str, level: Level) -> Notice {
        Notice {
            source_kind: "alert",
            kind: kind.into(),
            level,
            patient_name: "Sam <3".into(),
            detail: "glucose 52 mg/dL is below 54 (urgent low)".into(),
            glucose: Some(52.0),
            slope: Some(-2.4),
            predicted: Some((40.0, 1_800_000)),
            at_ms: 0,
            recent: vec![(-3_600_000, 120.0), (-1_800_000, 90.0), (0, 52.0)],
            ack_url: Some("https://notify.example/a/TOKEN".into()),
            ack_code: "K7Q2MX".into(),
            step: 0,
        }
    }

    #[test]
    fn the_email_says_what_happened_what_to_do_and_how_to_acknowledge() {
        let e = notice("urgent_low", Level::Urgent).email();
        assert_eq!(e.subject, "URGENT: Urgent low glucose - Sam <3");
        assert!(e.text.contains("Glucose: 52 mg/dL at 00:00 UTC"), "{}", e.text);
        assert!(e.text.contains("falling fast (-2.4 mg/dL per minute)"));
        assert!(e.text.contains("fast-acting sugar"));
        assert!(e.text.contains("https://notify.example/a/TOKEN"));
        assert!(e.html.contains("Sam &lt;3"), "escaped");
        assert!(e.html.contains("<svg") && e.html.contains("class=\"readings\""), "chart");
        assert!(!e.html.contains("Sam <3"));
    }

    #[test]
    fn the_sms_carries_the_facts_and_code_in_one_segment_then_the_link() {
        let s = notice("low", Level::Warning).sms();
        let (facts, link) = s.split_once(" See: ").unwrap();
        assert!(facts.len() <= 160, "{s}");
        assert_eq!(link, "https://notify.example/a/TOKEN");
        assert!(s.contains("Reply K7Q2MX"));
        assert!(s.contains("52 mg/dL, -2.4/min"));
    }

    #[test]
    fn an_escalated_message_says_others_were_told_first() {
        let mut n = notice("low", Level::Warning);
        n.step = 1;
        assert!(n.email().text.contains("earlier contacts have not acknowledged"));
    }
}
