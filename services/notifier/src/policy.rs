//! The notifier's rules, free of I/O: who is told at each escalation step,
//! when (quiet hours, repeat intervals), how alerts of one patient fold into
//! one group, and how failed sends back off. Every function takes the time
//! as an argument, so tests drive it with any clock.

use glucochain_types::ParticipantId;
use glucochain_types::tx::{AlertRepeat, ChannelKind, ContactChannel, QuietHours};

/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// How pressing a notification is; the order matters (urgent is highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Informational (reminders, rises, anomalies).
    Info = 1,
    /// Needs attention soon (low, predicted low, very high).
    Warning = 2,
    /// Needs action now (urgent low, break-glass); ignores quiet hours.
    Urgent = 3,
}

impl Level {
    /// From the stored integer (unknown values are treated as warnings).
    pub fn from_i32(v: i32) -> Level {
        match v {
            1 => Level::Info,
            3 => Level::Urgent,
            _ => Level::Warning,
        }
    }

    /// How often the last step is repeated while nobody acknowledges, by
    /// the care plan's [`AlertRepeat`] (default: urgent every 15 minutes,
    /// warnings every 30); information never.
    pub fn repeat_every_ms(self, repeat: &AlertRepeat) -> Option<i64> {
        match self {
            Level::Urgent => Some(i64::from(repeat.urgent_minutes.max(1)) * MINUTE_MS),
            Level::Warning => Some(i64::from(repeat.warning_minutes.max(1)) * MINUTE_MS),
            Level::Info => None,
        }
    }

    /// How long repeats go on before the notifier stops and leaves the
    /// alert visibly unacknowledged: urgent 2 hours, warnings 6 hours.
    pub fn repeat_span_ms(self) -> i64 {
        match self {
            Level::Urgent => 120 * MINUTE_MS,
            _ => 360 * MINUTE_MS,
        }
    }

    /// How many repeat rounds fit in [`Level::repeat_span_ms`] (at least one).
    pub fn max_repeats(self, repeat: &AlertRepeat) -> u32 {
        self.repeat_every_ms(repeat).map_or(0, |every| (self.repeat_span_ms() / every).max(1) as u32)
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Urgent => "urgent",
        }
    }
}

/// Someone to tell and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The person.
    pub participant: ParticipantId,
    /// Their channels (all are used).
    pub channels: Vec<ContactChannel>,
}

/// A care-plan contact with the addresses the plan's kinds reach: those
/// the contact declares now (`contact.channels.set`, opened from the vault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The person.
    pub participant: ParticipantId,
    /// Their addresses of the kinds the plan names (all are used).
    pub channels: Vec<ContactChannel>,
    /// Minutes without acknowledgement before escalating to the next contact.
    pub escalate_after_minutes: u32,
}

impl Contact {
    fn target(&self) -> Target {
        Target { participant: self.participant.clone(), channels: self.channels.clone() }
    }
}

/// What the notifier knows about who to reach for one patient.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// The care plan's contacts, in escalation order.
    pub contacts: Vec<Contact>,
    /// The responsible clinician (the plan's proposer) and how to reach
    /// them, when the directory knows.
    pub clinician: Option<Target>,
    /// The plan's quiet hours.
    pub quiet_hours: Option<QuietHours>,
    /// The plan's repeat intervals.
    pub repeat: AlertRepeat,
}

impl Routing {
    /// Every care-plan contact but `who`, as targets (notices go to all at once).
    pub fn others_than(&self, who: &ParticipantId) -> Vec<Target> {
        self.contacts.iter().filter(|c| &c.participant != who).map(Contact::target).collect()
    }
}

/// What one escalation step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Who is told now.
    pub targets: Vec<Target>,
    /// When the next step is due if nobody acknowledges (`None`: this was the last).
    pub next_at_ms: Option<i64>,
}

/// Step `step` of an alert's escalation at `now`: contacts one by one in the
/// care plan's order (each waits its `escalate_after_minutes`), then the
/// responsible clinician, then repeats of the last step at the level's
/// interval in the care plan, for the level's [`Level::repeat_span_ms`]. An
/// alert without contacts goes to the clinician alone.
pub fn escalation_step(routing: &Routing, level: Level, step: u32, now_ms: i64) -> Step {
    let n = routing.contacts.len() as u32;
    let clinician_step = n;
    let wait_after = |i: u32| -> i64 {
        routing.contacts.get(i as usize).map(|c| c.escalate_after_minutes.max(1) as i64 * MINUTE_MS).unwrap_or(0)
    };
    let clinician_known = routing
        .clinician
        .as_ref()
        .filter(|t| !t.channels.is_empty() && !routing.contacts.iter().any(|c| c.participant == t.participant));
    if step < n {
        let next_at = if step + 1 < n || clinician_known.is_some() || level.repeat_every_ms(&routing.repeat).is_some() {
            Some(now_ms + wait_after(step))
        } else {
            None
        };
        return Step { targets: vec![routing.contacts[step as usize].target()], next_at_ms: next_at };
    }
    // The last person step: the clinician if known, else the last contact.
    let last_person: Vec<Target> = match (clinician_known, routing.contacts.last()) {
        (Some(t), _) => vec![t.clone()],
        (None, Some(c)) => vec![c.target()],
        (None, None) => Vec::new(),
    };
    let repeat = level.repeat_every_ms(&routing.repeat);
    let max_repeats = level.max_repeats(&routing.repeat);
    if step == clinician_step && clinician_known.is_some() {
        return Step { targets: last_person, next_at_ms: repeat.map(|r| now_ms + r) };
    }
    // Repeats: everyone reached so far is told again.
    let first_repeat = if clinician_known.is_some() { clinician_step + 1 } else { clinician_step };
    let round = step - first_repeat + 1;
    if round > max_repeats || repeat.is_none() {
        return Step { targets: Vec::new(), next_at_ms: None };
    }
    let mut everyone: Vec<Target> = routing.contacts.iter().map(Contact::target).collect();
    if let Some(t) = clinician_known {
        everyone.push(t.clone());
    }
    if everyone.is_empty() {
        return Step { targets: Vec::new(), next_at_ms: None };
    }
    let next = if round < max_repeats { repeat.map(|r| now_ms + r) } else { None };
    Step { targets: everyone, next_at_ms: next }
}

/// How long a contact may snooze an alert kind, minutes: urgent alerts at
/// most half an hour (the devices never let an urgent low be silenced for
/// long), others up to four hours. Information is not snoozed (it is not
/// repeated).
pub fn snooze_choices(level: Level) -> &'static [u32] {
    match level {
        Level::Urgent => &[15, 30],
        Level::Warning => &[15, 30, 60, 120, 240],
        Level::Info => &[],
    }
}

/// Minutes since local midnight of `HH:MM`.
fn minutes_of(hhmm: &str) -> Option<i64> {
    let (h, m) = hhmm.split_once(':')?;
    Some(h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)
}

/// When a non-urgent notification due at `at_ms` may go out: `at_ms`
/// itself, or the end of the quiet hours it falls in (which may span midnight).
pub fn after_quiet_hours(q: Option<&QuietHours>, at_ms: i64) -> i64 {
    let Some(q) = q else { return at_ms };
    let (Some(start), Some(end)) = (minutes_of(&q.start), minutes_of(&q.end)) else { return at_ms };
    if start == end {
        return at_ms;
    }
    let local_ms = at_ms + q.utc_offset_minutes as i64 * MINUTE_MS;
    let day_ms = 1440 * MINUTE_MS;
    let midnight = local_ms.div_euclid(day_ms) * day_ms;
    let minute = (local_ms - midnight) / MINUTE_MS;
    let quiet = if start < end { minute >= start && minute < end } else { minute >= start || minute < end };
    if !quiet {
        return at_ms;
    }
    let end_local =
        if start < end || minute < end { midnight + end * MINUTE_MS } else { midnight + day_ms + end * MINUTE_MS };
    end_local - q.utc_offset_minutes as i64 * MINUTE_MS
}

/// When a notification of `level` due at `at_ms` is sent.
pub fn send_time(level: Level, q: Option<&QuietHours>, at_ms: i64) -> i64 {
    if level == Level::Urgent { at_ms } else { after_quiet_hours(q, at_ms) }
}

/// What to do with a new alert for a patient who may already have an open group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fold {
    /// Start a new group: notify from the first step.
    NewGroup,
    /// Record it in the open group without telling anyone again (same or
    /// lower level: the group's notifications already cover it).
    Into {
        /// The group.
        group: String,
    },
    /// A higher level than the open group: tell the people the group has
    /// reached so far now, and carry on escalating from there with this
    /// alert's level.
    Raise {
        /// The group.
        group: String,
        /// The step the group had reached.
        step: u32,
    },
}

/// An open (unacknowledged, unresolved) group of a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGroup {
    /// Group id.
    pub group: String,
    /// Highest level so far.
    pub level: Level,
    /// Step reached.
    pub step: u32,
    /// When its newest alert came.
    pub last_ms: i64,
}

/// Alerts of one patient within this of the group's last alert fold into it.
pub const GROUP_WINDOW_MS: i64 = 60 * MINUTE_MS;

/// Alertmanager-style grouping: one open group per patient; a new alert
/// within [`GROUP_WINDOW_MS`] folds into it (or raises its level), later
/// ones start a new group.
pub fn fold(open: Option<&OpenGroup>, level: Level, now_ms: i64) -> Fold {
    match open {
        Some(g) if now_ms - g.last_ms <= GROUP_WINDOW_MS => {
            if level > g.level {
                Fold::Raise { group: g.group.clone(), step: g.step }
            } else {
                Fold::Into { group: g.group.clone() }
            }
        }
        _ => Fold::NewGroup,
    }
}

/// Delay before retry `attempts` (1-based) of a failed send: 5 s doubling
/// to at most 10 minutes.
pub fn backoff_ms(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(10);
    (5_000i64 << exp).min(10 * MINUTE_MS)
}

/// A failed send is given up after this many attempts (about an hour and a half of retrying).
pub const MAX_ATTEMPTS: u32 = 14;

/// Lower-case channel name.
pub fn channel_name(k: ChannelKind) -> &'static str {
    match k {
        ChannelKind::Email => "email",
        ChannelKind::Sms => "sms",
        ChannelKind::Webhook => "webhook",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(seed: u8) -> ParticipantId {
        ParticipantId::from_public_key(&glucochain_crypto::KeyPair::from_seed([seed; 32]).public())
    }

    fn contact(seed: u8, minutes: u32) -> Contact {
        Contact {
            participant: pid(seed),
            channels: vec![ContactChannel { kind: ChannelKind::Email, address: format!("c{seed}@example.org") }],
            escalate_after_minutes: minutes,
        }
    }

    fn routing(with_clinician: bool) -> Routing {
        Routing {
            contacts: vec![contact(1, 10), contact(2, 5)],
            clinician: with_clinician.then(|| Target {
                participant: pid(9),
                channels: vec![ContactChannel { kind: ChannelKind::Sms, address: "+15550009".into() }],
            }),
            quiet_hours: None,
            repeat: AlertRepeat::default(),
        }
    }

    #[test]
    fn contacts_in_order_then_the_clinician_then_repeats() {
        let r = routing(true);
        let s0 = escalation_step(&r, Level::Urgent, 0, 0);
        assert_eq!(s0.targets[0].participant, pid(1));
        assert_eq!(s0.next_at_ms, Some(10 * MINUTE_MS), "first contact's own wait");
        let s1 = escalation_step(&r, Level::Urgent, 1, 100);
        assert_eq!(s1.targets[0].participant, pid(2));
        assert_eq!(s1.next_at_ms, Some(100 + 5 * MINUTE_MS));
        let s2 = escalation_step(&r, Level::Urgent, 2, 200);
        assert_eq!(s2.targets.len(), 1);
        assert_eq!(s2.targets[0].participant, pid(9), "then the responsible clinician");
        assert_eq!(s2.next_at_ms, Some(200 + 15 * MINUTE_MS), "urgent repeats every 15 minutes by default");
        let s3 = escalation_step(&r, Level::Urgent, 3, 300);
        assert_eq!(s3.targets.len(), 3, "a repeat tells everyone reached so far");
        let rounds = Level::Urgent.max_repeats(&r.repeat);
        assert_eq!(rounds, 8, "two hours of repeats every 15 minutes");
        let last = escalation_step(&r, Level::Urgent, 2 + rounds, 0);
        assert_eq!(last.next_at_ms, None, "repeats end");
        assert!(escalation_step(&r, Level::Urgent, 3 + rounds, 0).targets.is_empty());
    }

    #[test]
    fn issue_20_the_care_plan_sets_how_often_alerts_repeat() {
        let mut r = routing(true);
        r.repeat = AlertRepeat { urgent_minutes: 30, warning_minutes: 60 };
        let s2 = escalation_step(&r, Level::Urgent, 2, 1000);
        assert_eq!(s2.next_at_ms, Some(1000 + 30 * MINUTE_MS));
        let w = escalation_step(&r, Level::Warning, 2, 1000);
        assert_eq!(w.next_at_ms, Some(1000 + 60 * MINUTE_MS));
        assert_eq!(Level::Urgent.max_repeats(&r.repeat), 4, "still two hours");
        assert_eq!(Level::Warning.max_repeats(&r.repeat), 6, "still six hours");
        // Over the two hours after the clinician step, urgent messages go out 4 times, not 24.
        let sends = (3..3 + 10).filter(|s| !escalation_step(&r, Level::Urgent, *s, 0).targets.is_empty()).count();
        assert_eq!(sends, 4);
    }

    #[test]
    fn information_is_not_repeated_and_without_a_clinician_the_last_contact_repeats() {
        let r = routing(false);
        let s1 = escalation_step(&r, Level::Info, 1, 0);
        assert_eq!(s1.next_at_ms, None, "info: the last contact is the end");
        let w = escalation_step(&r, Level::Warning, 1, 0);
        assert_eq!(w.next_at_ms, Some(5 * MINUTE_MS));
        let rep = escalation_step(&r, Level::Warning, 2, 1000);
        assert_eq!(rep.targets.len(), 2);
        assert_eq!(rep.next_at_ms, Some(1000 + 30 * MINUTE_MS), "warnings repeat every 30 minutes");
    }

    #[test]
    fn issue_20_urgent_alerts_snooze_for_half_an_hour_at_most() {
        assert_eq!(snooze_choices(Level::Urgent).iter().max(), Some(&30));
        assert!(snooze_choices(Level::Warning).contains(&240));
        assert!(snooze_choices(Level::Info).is_empty());
    }

    #[test]
    fn quiet_hours_hold_non_urgent_until_they_end_across_midnight() {
        let q = QuietHours { start: "22:00".into(), end: "07:00".into(), utc_offset_minutes: 60 };
        let day = 20_000 * 1440 * MINUTE_MS; // a UTC midnight
        // 23:30 local = 22:30 UTC: held until 07:00 local next day = 06:00 UTC.
        let t = day + (22 * 60 + 30) * MINUTE_MS;
        assert_eq!(send_time(Level::Warning, Some(&q), t), day + 1440 * MINUTE_MS + 6 * 60 * MINUTE_MS);
        // 05:00 local = 04:00 UTC: held until 06:00 UTC the same day.
        let t = day + 4 * 60 * MINUTE_MS;
        assert_eq!(send_time(Level::Info, Some(&q), t), day + 6 * 60 * MINUTE_MS);
        // Urgent ignores them; outside them nothing waits.
        assert_eq!(send_time(Level::Urgent, Some(&q), t), t);
        let noon = day + 11 * 60 * MINUTE_MS;
        assert_eq!(send_time(Level::Warning, Some(&q), noon), noon);
        let same_day = QuietHours { start: "13:00".into(), end: "14:00".into(), utc_offset_minutes: 0 };
        assert_eq!(send_time(Level::Info, Some(&same_day), day + 13 * 60 * MINUTE_MS), day + 14 * 60 * MINUTE_MS);
    }

    #[test]
    fn alerts_fold_into_the_open_group_and_a_higher_level_raises_it() {
        let g = OpenGroup { group: "g".into(), level: Level::Warning, step: 1, last_ms: 0 };
        assert_eq!(fold(None, Level::Warning, 0), Fold::NewGroup);
        assert_eq!(fold(Some(&g), Level::Warning, 10 * MINUTE_MS), Fold::Into { group: "g".into() });
        assert_eq!(fold(Some(&g), Level::Info, 10 * MINUTE_MS), Fold::Into { group: "g".into() });
        assert_eq!(fold(Some(&g), Level::Urgent, 10 * MINUTE_MS), Fold::Raise { group: "g".into(), step: 1 });
        assert_eq!(fold(Some(&g), Level::Urgent, GROUP_WINDOW_MS + 1), Fold::NewGroup, "too long ago");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1), 5_000);
        assert_eq!(backoff_ms(2), 10_000);
        assert_eq!(backoff_ms(5), 80_000);
        assert_eq!(backoff_ms(30), 10 * MINUTE_MS);
    }
}
