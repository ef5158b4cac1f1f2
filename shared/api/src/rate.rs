//! Per-participant rate limiting: a token bucket per signer (ingest) or
//! reader (ledger).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Token buckets keyed by participant.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<String, (f64, Instant)>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter { rate: rate.max(0.001), burst: burst.max(1.0), buckets: HashMap::new() }
    }

    /// Takes a token for `who` at `now`; on refusal, how long until one is available.
    pub fn take(&mut self, who: &str, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() > 100_000 {
            // Forget full buckets (idle signers) so the map stays bounded.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = self.buckets.entry(who.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_per_signer() {
        let mut r = RateLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(r.take("a", t0).is_ok());
        }
        let wait = r.take("a", t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(r.take("b", t0).is_ok(), "another signer has its own bucket");
        assert!(r.take("a", t0 + Duration::from_millis(500)).is_ok(), "refilled at 2/s");
        assert!(r.take("a", t0 + Duration::from_millis(500)).is_err());
    }
}
