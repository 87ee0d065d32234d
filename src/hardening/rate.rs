//! A per-identity send rate limit: a token bucket of `per_minute` tokens, refilled evenly.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Buckets kept before full, idle ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// Token buckets keyed by identity.
#[derive(Debug)]
pub struct SendRate {
    per_minute: f64,
    buckets: Mutex<HashMap<Vec<u8>, (f64, Instant)>>,
}

impl SendRate {
    /// At most `per_minute` sends a minute per identity, all of them at once if saved up.
    pub fn new(per_minute: u32) -> SendRate {
        SendRate {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `identity`; `false` when its bucket is empty.
    pub fn allow(&self, identity: &[u8]) -> bool {
        self.allow_at(identity, Instant::now())
    }

    fn allow_at(&self, identity: &[u8], now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            let full = self.per_minute;
            let rate = full / 60.0;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < full
            });
        }
        let (tokens, at) = buckets
            .entry(identity.to_vec())
            .or_insert((self.per_minute, now));
        let refill = now.duration_since(*at).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.per_minute);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_is_capped_and_refills_with_time() {
        let rate = SendRate::new(3);
        let start = Instant::now();
        assert!((0..3).all(|_| rate.allow_at(b"admin1", start)));
        assert!(!rate.allow_at(b"admin1", start));
        assert!(rate.allow_at(b"admin2", start), "buckets are per identity");
        assert!(!rate.allow_at(b"admin1", start + Duration::from_secs(10)));
        assert!(rate.allow_at(b"admin1", start + Duration::from_secs(21)));
    }
}
