//! The parts every GlucoChain web page shares. Pages are rendered on the
//! server as HTML (with [`maud`], which escapes every value), charts are
//! inline SVG, and the only script is our own small file that signs in and
//! signs transactions with the participant's key inside the browser
//! (WebCrypto Ed25519): the key never reaches a server.
//!
//! * [`page`]: the document layout and the security headers (a strict
//!   content security policy: nothing is loaded from elsewhere, no inline
//!   script or style);
//! * [`assets`]: the stylesheet and the script, served by each service at
//!   `/static/…`;
//! * [`chart`]: SVG glucose charts — a trace with thresholds and a
//!   prediction, the AGP modal day and daily profiles;
//! * [`session`]: session cookies signed by the serving service's key.

pub mod assets;
pub mod chart;
pub mod page;
pub mod session;

pub use maud::{Markup, PreEscaped, html};

/// `HH:MM` of a Unix-ms instant, shifted by `offset_minutes`.
pub fn clock(ms: i64, offset_minutes: i32) -> String {
    let m = (ms + offset_minutes as i64 * 60_000).rem_euclid(86_400_000) / 60_000;
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix-ms instant.
pub fn date_time(ms: i64) -> String {
    format!("{} {} UTC", glucochain_agp::civil_date(ms.div_euclid(86_400_000)), clock(ms, 0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_as_a_clinician_reads_them() {
        assert_eq!(super::clock(1_772_409_600_000 + 8 * 3_600_000 + 5 * 60_000, 0), "08:05");
        assert_eq!(super::clock(1_772_409_600_000, -60), "23:00");
        assert_eq!(super::date_time(1_772_409_600_000), "2026-03-02 00:00 UTC");
    }
}
