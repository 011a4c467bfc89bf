//! Rate limits: token buckets, one overall and one per key.
//!
//! Hand-written rather than `governor`: what is needed is a bucket per
//! key whose map stays bounded however many keys arrive (a full bucket is
//! the same as none, so full ones are dropped when the map is at its cap),
//! a read-only look at a bucket (to refuse a request before paying for it),
//! and the wait to put in `Retry-After`. That is forty lines; governor's
//! keyed store grows until `retain_recent` is called and brings a
//! concurrent map and clock crates along.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use std::time::Instant;

/// A sustained rate and the burst allowed above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// One bucket: `tokens` as of `at`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(rate.burst), at: now }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(f64::from(rate.burst));
        self.at = now;
    }

    /// `Err` holds how long until a token is there.
    fn check(&self, rate: Rate) -> Result<(), Duration> {
        if self.tokens >= 1.0 {
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / rate.per_second;
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
    }

    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        self.check(rate)?;
        self.tokens -= 1.0;
        Ok(())
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= f64::from(rate.burst)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update below is one assignment: a panic cannot leave half of one.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One bucket for everyone.
pub struct RateLimit {
    rate: Rate,
    bucket: Mutex<Bucket>,
}

impl RateLimit {
    pub fn new(rate: Rate) -> RateLimit {
        RateLimit { rate, bucket: Mutex::new(Bucket::full(rate, Instant::now())) }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&self) -> Result<(), Duration> {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Result<(), Duration> {
        lock(&self.bucket).take(self.rate, now)
    }
}

/// A bucket per key, at most `max_keys` of them.
pub struct KeyedRateLimit {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl KeyedRateLimit {
    pub fn new(rate: Rate, max_keys: usize) -> KeyedRateLimit {
        KeyedRateLimit { rate, max_keys, buckets: Mutex::new(HashMap::new()) }
    }

    /// Whether `key` has a token now, without taking it.
    pub fn peek(&self, key: &str) -> Result<(), Duration> {
        self.peek_at(key, Instant::now())
    }

    fn peek_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        match lock(&self.buckets).get(key) {
            Some(b) => {
                let mut b = *b;
                b.refill(self.rate, now);
                b.check(self.rate)
            }
            None => Ok(()),
        }
    }

    /// Takes a token of `key`'s, or says how long until one is there. A
    /// new key when the map is full of keys still drawing is refused
    /// (for a second): memory stays bounded.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = lock(&self.buckets);
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            buckets.retain(|_, b| !b.is_full(self.rate, now));
            if buckets.len() >= self.max_keys {
                return Err(Duration::from_secs(1));
            }
        }
        buckets.entry(key.to_owned()).or_insert_with(|| Bucket::full(self.rate, now)).take(self.rate, now)
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { per_second: 2.0, burst: 3 };

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let limit = RateLimit { rate: RATE, bucket: Mutex::new(Bucket::full(RATE, t0)) };
        for _ in 0..3 {
            assert_eq!(limit.take_at(t0), Ok(()));
        }
        // Empty: the next token is half a second away at 2/s.
        assert_eq!(limit.take_at(t0), Err(Duration::from_millis(500)));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limit.take_at(t1), Ok(()));
        assert!(limit.take_at(t1).is_err());
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limit.take_at(t2), Ok(()));
        }
        assert!(limit.take_at(t2).is_err());
    }

    #[test]
    fn keys_have_their_own_buckets_and_peeking_takes_nothing() {
        let t0 = Instant::now();
        let limit = KeyedRateLimit::new(RATE, 10);
        for _ in 0..3 {
            assert_eq!(limit.peek_at("a", t0), Ok(()));
            assert_eq!(limit.take_at("a", t0), Ok(()));
        }
        assert!(limit.peek_at("a", t0).is_err());
        assert!(limit.take_at("a", t0).is_err());
        assert_eq!(limit.take_at("b", t0), Ok(()), "another key is not limited by a's use");
        assert_eq!(limit.peek_at("never-seen", t0), Ok(()));
    }

    #[test]
    fn the_key_map_is_bounded_and_full_buckets_make_room() {
        let t0 = Instant::now();
        let limit = KeyedRateLimit::new(RATE, 2);
        assert_eq!(limit.take_at("a", t0), Ok(()));
        assert_eq!(limit.take_at("b", t0), Ok(()));
        assert_eq!(limit.take_at("c", t0), Err(Duration::from_secs(1)), "both keys are still drawing");
        // Refilled buckets are the same as absent ones: dropped for "c".
        assert_eq!(limit.take_at("c", t0 + Duration::from_secs(1)), Ok(()));
        assert_eq!(lock(&limit.buckets).len(), 1);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
