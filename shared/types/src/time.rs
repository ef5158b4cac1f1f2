//! Timestamps as RFC 3339 text in UTC on the wire.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, serialized as RFC 3339 (e.g. `2026-11-25T08:00:00Z`).
/// Stored as Unix milliseconds, so comparisons are exact and deterministic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From Unix milliseconds.
    pub const fn from_unix_ms(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Unix milliseconds.
    pub const fn unix_ms(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Parses RFC 3339 text.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
        Ok(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// RFC 3339 text in UTC.
    pub fn to_rfc3339(self) -> String {
        let t =
            OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        t.format(&Rfc3339).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse("2026-11-25T08:00:00.250+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T07:00:00.25Z");
        assert_eq!(Timestamp::parse(&t.to_rfc3339()).unwrap(), t);
        assert!(Timestamp::parse("yesterday").is_err());
    }
}

/// A service clock: real time, or (for demos and tests) time running
/// `speed` times faster from a start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start_real: i64,
    start: i64,
    speed: f64,
}

impl Clock {
    /// Real time.
    pub fn real() -> Self {
        Clock { start_real: 0, start: 0, speed: 1.0 }
    }

    /// Time that equals real time at `start` and runs `speed` times faster
    /// from then: a restarted service given the same start keeps its time.
    pub fn anchored(start: Timestamp, speed: f64) -> Self {
        let start = start.unix_ms();
        Clock { start_real: start.max(1), start, speed }
    }

    /// The clock a service's `--clock-speed` and `--clock-start` ask for:
    /// real time when the speed is 1 and no start is given, else anchored
    /// at the start (default now).
    pub fn from_flags(speed: f64, start: Option<&str>) -> Result<Self, String> {
        if (speed - 1.0).abs() <= f64::EPSILON && start.is_none() {
            return Ok(Clock::real());
        }
        if !(speed.is_finite() && speed > 0.0) {
            return Err(format!("--clock-speed must be a positive number, not {speed}"));
        }
        let start = match start {
            Some(s) => Timestamp::parse(s).map_err(|e| format!("--clock-start: {e}"))?,
            None => Timestamp::now(),
        };
        Ok(Clock::anchored(start, speed))
    }

    /// How many times faster than real time it runs.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        if self.start_real == 0 {
            return Timestamp::now();
        }
        let elapsed = (Timestamp::now().unix_ms() - self.start_real) as f64 * self.speed;
        Timestamp::from_unix_ms(self.start + elapsed as i64)
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn flags_choose_real_or_an_anchored_clock_and_refuse_nonsense() {
        let real = Clock::from_flags(1.0, None).unwrap();
        assert!((real.now().unix_ms() - Timestamp::now().unix_ms()).abs() < 1_000);
        assert!(Clock::from_flags(0.0, None).is_err());
        assert!(Clock::from_flags(60.0, Some("yesterday")).is_err());
        // Anchored an hour ago at 60x: 60 hours ahead of the anchor, whenever it is asked.
        let start = Timestamp::from_unix_ms(Timestamp::now().unix_ms() - 3_600_000);
        let c = Clock::from_flags(60.0, Some(&start.to_rfc3339())).unwrap();
        let ahead = c.now().unix_ms() - start.unix_ms();
        assert!((ahead - 60 * 3_600_000).abs() < 120_000, "{ahead}");
        assert_eq!(c.speed(), 60.0);
    }
}
