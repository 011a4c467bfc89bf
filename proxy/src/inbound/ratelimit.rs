//! The token buckets behind HTTPLocalRateLimitPolicy: which buckets a
//! request counts against is `mesh_proxy_api::buckets` (what meshc verifies
//! with); this module only keeps their state.
//!
//! A small GCRA rather than the `governor` crate Linkerd uses: the same
//! arithmetic (governor's `Quota::per_second(n)`: a burst of n, one token
//! back every 1/n s), but a per-identity map that stays bounded (full
//! buckets, which are the same as none, are dropped when it reaches its
//! cap), a clock the tests can drive, and no new dependency with its own
//! clock and concurrent-map crates.

use mesh_proxy_api::{BucketKey, LocalRateLimit, Scope, buckets};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Per-identity buckets kept at most; beyond, full ones are dropped first.
const MAX_IDENTITY_BUCKETS: usize = 10_000;

/// A request refused by a limit: its scope and rate, for the 429's
/// `l5d-proxy-error` (worded as Linkerd's `RateLimitError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub scope: Scope,
    pub requests_per_second: NonZeroU32,
}

impl Exceeded {
    pub fn message(&self) -> String {
        let scope = match self.scope {
            Scope::Total => "total",
            Scope::Identity => "per-identity",
            Scope::Override => "override",
        };
        format!("{scope} rate limit exceeded: {}rps", self.requests_per_second)
    }
}

/// GCRA state: the theoretical arrival time of the next request, in
/// nanoseconds since the limiter's start. A bucket is full when it is at or
/// before now.
#[derive(Clone, Copy, Debug, Default)]
struct Gcra {
    tat: u64,
}

impl Gcra {
    /// Takes a token if one is left at `now`.
    fn take(&mut self, now: u64, rps: NonZeroU32) -> bool {
        let period = 1_000_000_000 / u64::from(rps.get());
        let burst = period.saturating_mul(u64::from(rps.get()));
        let tat = self.tat.max(now);
        // Allowed while the bucket, after this request, holds no more than the burst.
        if tat.saturating_add(period).saturating_sub(now) > burst {
            return false;
        }
        self.tat = tat.saturating_add(period);
        true
    }

    fn full(&self, now: u64) -> bool {
        self.tat <= now
    }
}

/// The buckets of one server's limit.
#[derive(Debug)]
pub struct ServerLimiter {
    start: Instant,
    limit: LocalRateLimit,
    total: Mutex<Gcra>,
    overrides: Vec<Mutex<Gcra>>,
    identities: Mutex<HashMap<Option<String>, Gcra>>,
}

impl ServerLimiter {
    pub fn new(limit: LocalRateLimit, start: Instant) -> Self {
        let overrides = limit.overrides.iter().map(|_| Mutex::default()).collect();
        ServerLimiter { start, limit, total: Mutex::default(), overrides, identities: Mutex::default() }
    }

    /// Counts a request from `identity` at `now`: `total` first, then the
    /// client's own bucket, stopping at the first that refuses (as
    /// `LocalRateLimit::check` does, so a request the total refuses takes
    /// nothing from the client's own bucket).
    pub fn check(&self, identity: Option<&str>, now: Instant) -> Result<(), Exceeded> {
        let now = u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        for b in buckets(&self.limit, identity).iter() {
            let rps = b.requests_per_second;
            let taken = match &b.key {
                BucketKey::Total => lock(&self.total).take(now, rps),
                BucketKey::Override(i) => self.overrides.get(*i).is_none_or(|g| lock(g).take(now, rps)),
                BucketKey::Identity(id) => self.take_identity(id.map(str::to_owned), now, rps),
            };
            if !taken {
                return Err(Exceeded { scope: b.key.scope(), requests_per_second: rps });
            }
        }
        Ok(())
    }

    fn take_identity(&self, id: Option<String>, now: u64, rps: NonZeroU32) -> bool {
        let mut map = lock(&self.identities);
        if map.len() >= MAX_IDENTITY_BUCKETS && !map.contains_key(&id) {
            map.retain(|_, g| !g.full(now));
        }
        map.entry(id).or_default().take(now, rps)
    }
}

/// The limiters of every port, rebuilt (buckets full again) when the
/// port's limit changes, as linkerd2-proxy builds a new `LocalRateLimit` on
/// each policy update.
#[derive(Debug, Default)]
pub struct Limiters {
    by_port: Mutex<HashMap<u16, Arc<ServerLimiter>>>,
}

impl Limiters {
    pub fn for_port(&self, port: u16, limit: &LocalRateLimit) -> Arc<ServerLimiter> {
        let mut map = lock(&self.by_port);
        match map.get(&port) {
            Some(l) if l.limit == *limit => l.clone(),
            _ => {
                let l = Arc::new(ServerLimiter::new(limit.clone(), Instant::now()));
                map.insert(port, l.clone());
                l
            }
        }
    }
}

/// A poisoned lock only means another request panicked mid-update; the
/// counter inside is still a valid number.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long after `start` a limiter refills one token at `rps`.
#[cfg(test)]
fn period(rps: u32) -> std::time::Duration {
    std::time::Duration::from_nanos(1_000_000_000 / u64::from(rps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proxy_api::{Meta, RateLimitOverride};
    use std::time::Duration;

    fn limiter(total: Option<u32>, identity: Option<u32>, bot: Option<u32>) -> (ServerLimiter, Instant) {
        let overrides = bot
            .map(|rps| RateLimitOverride { requests_per_second: rps, identities: vec!["bot".into()] })
            .into_iter()
            .collect();
        let limit =
            LocalRateLimit { meta: Meta::resource("HTTPLocalRateLimitPolicy", "rl"), total, identity, overrides };
        let start = Instant::now();
        (ServerLimiter::new(limit, start), start)
    }

    fn passed(l: &ServerLimiter, id: Option<&str>, n: usize, at: Instant) -> usize {
        (0..n).filter(|_| l.check(id, at).is_ok()).count()
    }

    #[test]
    fn a_burst_passes_exactly_the_rate_then_one_per_period() {
        let (l, t0) = limiter(Some(10), None, None);
        assert_eq!(passed(&l, None, 50, t0), 10);
        // Just short of one period: still nothing; at one period: one token.
        assert_eq!(passed(&l, None, 5, t0 + period(10) - Duration::from_nanos(1)), 0);
        assert_eq!(passed(&l, None, 5, t0 + period(10)), 1);
        // A full second later the bucket is full again, never fuller.
        assert_eq!(passed(&l, None, 50, t0 + Duration::from_secs(5)), 10);
    }

    #[test]
    fn identities_have_their_own_buckets_and_the_unidentified_share_one() {
        let (l, t0) = limiter(None, Some(3), None);
        assert_eq!(passed(&l, Some("a"), 10, t0), 3);
        assert_eq!(passed(&l, Some("b"), 10, t0), 3);
        assert_eq!(passed(&l, None, 10, t0), 3);
        assert_eq!(passed(&l, None, 10, t0), 0);
    }

    #[test]
    fn an_override_replaces_the_identity_limit_but_not_the_total() {
        let (l, t0) = limiter(Some(20), Some(2), Some(8));
        assert_eq!(passed(&l, Some("bot"), 8, t0), 8);
        assert_eq!(l.check(Some("bot"), t0), Err(Exceeded { scope: Scope::Override, requests_per_second: nz(8) }));
        assert_eq!(passed(&l, Some("web"), 2, t0), 2);
        assert_eq!(l.check(Some("web"), t0), Err(Exceeded { scope: Scope::Identity, requests_per_second: nz(2) }));
        // The total took a token for each of those 12 requests, refused ones
        // included (Linkerd checks it first): 8 are left for everyone else.
        let others: usize = (0..10).map(|i| passed(&l, Some(&format!("c{i}")), 1, t0)).sum();
        assert_eq!(others, 8);
        assert_eq!(l.check(Some("c99"), t0), Err(Exceeded { scope: Scope::Total, requests_per_second: nz(20) }));
    }

    #[test]
    fn a_request_the_total_refuses_takes_nothing_from_its_own_bucket() {
        let (l, t0) = limiter(Some(2), Some(1), None);
        assert_eq!(passed(&l, Some("a"), 2, t0), 1);
        assert_eq!(l.check(Some("b"), t0), Err(Exceeded { scope: Scope::Total, requests_per_second: nz(2) }));
        // Half a second on, the total has one token back; b's identity
        // bucket (1/s) would be empty had the refused request taken from it.
        assert!(l.check(Some("b"), t0 + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn the_message_is_linkerds() {
        let e = Exceeded { scope: Scope::Identity, requests_per_second: nz(10) };
        assert_eq!(e.message(), "per-identity rate limit exceeded: 10rps");
    }

    /// What `http::authorize_and_forward` answers a refused request with:
    /// 429 (gRPC RESOURCE_EXHAUSTED in a 200), the reason in
    /// `l5d-proxy-error`, and no `Retry-After` (Linkerd sends none).
    #[test]
    fn a_refused_request_gets_429_with_linkerds_headers() {
        let msg = Exceeded { scope: Scope::Total, requests_per_second: nz(10) }.message();
        let rsp = crate::http_util::local(http::StatusCode::TOO_MANY_REQUESTS, false, Some(&msg));
        assert_eq!(rsp.status(), 429);
        assert_eq!(rsp.headers()["l5d-proxy-error"], "total rate limit exceeded: 10rps");
        assert!(rsp.headers().get(http::header::RETRY_AFTER).is_none());
        let grpc = crate::http_util::local(http::StatusCode::TOO_MANY_REQUESTS, true, Some(&msg));
        assert_eq!(grpc.status(), 200);
        assert_eq!(grpc.headers()["grpc-status"], "8");
        assert_eq!(grpc.headers()["grpc-message"], "total rate limit exceeded: 10rps");
    }

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }
}
