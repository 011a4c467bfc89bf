//! Rate limits on certificate requests: one for all clients together,
//! taken before the token is reviewed (in Kubernetes mode each review is a
//! TokenReview on the API server), and one per identity.
//!
//! The per-identity limit is keyed by the *reviewed* identity, never by
//! what the request claims: the endpoint takes requests from anyone, and a
//! claim-keyed limit would let anyone spend a victim workload's budget.
//! So that a client looping with one valid token does not cost a review
//! per request, the identity a token was last reviewed as is remembered
//! (by the token's digest, for [`RECENT_TTL`]) and used only to refuse
//! early once that identity has no budget left; it never grants anything.

use crate::limits::{KeyedRateLimit, Rate, RateLimit};
use crate::settings::Limits;
use crate::tokens::token_digest;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a token's reviewed identity is remembered for early refusals.
const RECENT_TTL: Duration = Duration::from_secs(600);
/// Tokens remembered at most; past this the memory is dropped, which only
/// costs reviews.
const RECENT_MAX: usize = 10_000;
/// Identities with a bucket at most (buckets of idle identities are dropped first).
const IDENTITIES_MAX: usize = 100_000;

/// Why a certificate request is refused before signing (429).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertRefused {
    /// Every client together is over `--cert-rate`.
    Overall(Duration),
    /// This identity is over `--cert-rate-per-identity`.
    Identity(Duration),
}

impl CertRefused {
    /// A metrics label.
    pub fn reason(self) -> &'static str {
        match self {
            CertRefused::Overall(_) => "overall-rate",
            CertRefused::Identity(_) => "identity-rate",
        }
    }

    /// How long until a retry may succeed.
    pub fn wait(self) -> Duration {
        match self {
            CertRefused::Overall(w) | CertRefused::Identity(w) => w,
        }
    }
}

pub struct CertLimits {
    overall: RateLimit,
    per_identity: KeyedRateLimit,
    /// Token digest → the identity it was reviewed as, and when.
    recent: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl CertLimits {
    pub fn new(l: &Limits) -> CertLimits {
        let overall = Rate { per_second: l.cert_rate, burst: l.cert_burst };
        let per_identity = Rate { per_second: l.cert_rate_per_identity, burst: l.cert_burst_per_identity };
        CertLimits {
            overall: RateLimit::new(overall),
            per_identity: KeyedRateLimit::new(per_identity, IDENTITIES_MAX),
            recent: Mutex::new(HashMap::new()),
        }
    }

    fn recent(&self) -> MutexGuard<'_, HashMap<[u8; 32], (String, Instant)>> {
        // Each update is one insert or retain: a panic cannot leave half of one.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before the token is reviewed: refused when the identity this token
    /// was recently reviewed as has no budget, or when everyone together
    /// is over the overall rate.
    pub fn before_review(&self, token: &str) -> Result<(), CertRefused> {
        let known = self
            .recent()
            .get(&token_digest(token))
            .filter(|(_, at)| at.elapsed() < RECENT_TTL)
            .map(|(identity, _)| identity.clone());
        if let Some(identity) = known {
            self.per_identity.peek(&identity).map_err(CertRefused::Identity)?;
        }
        self.overall.take().map_err(CertRefused::Overall)
    }

    /// After the review: takes from the reviewed identity's budget.
    pub fn after_review(&self, token: &str, identity: &str) -> Result<(), CertRefused> {
        self.remember(token, identity);
        self.per_identity.take(identity).map_err(CertRefused::Identity)
    }

    fn remember(&self, token: &str, identity: &str) {
        let mut recent = self.recent();
        if recent.len() >= RECENT_MAX {
            recent.retain(|_, (_, at)| at.elapsed() < RECENT_TTL);
            if recent.len() >= RECENT_MAX {
                recent.clear();
            }
        }
        recent.insert(token_digest(token), (identity.to_owned(), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(overall: (f64, u32), per_identity: (f64, u32)) -> CertLimits {
        let l = Limits {
            cert_rate: overall.0,
            cert_burst: overall.1,
            cert_rate_per_identity: per_identity.0,
            cert_burst_per_identity: per_identity.1,
            ..Limits::default()
        };
        CertLimits::new(&l)
    }

    #[test]
    fn a_known_token_over_its_identitys_budget_is_refused_before_review() {
        let l = limits((1000.0, 1000), (0.001, 2));
        for _ in 0..2 {
            assert_eq!(l.before_review("t"), Ok(()));
            assert_eq!(l.after_review("t", "a"), Ok(()));
        }
        // The third is refused before its review: "a" has spent its burst...
        let refused = l.before_review("t").unwrap_err();
        assert_eq!(refused.reason(), "identity-rate");
        assert!(refused.wait() > Duration::from_secs(900), "{refused:?}");
        // ...and a new token of "a" is refused only once reviewed.
        assert_eq!(l.before_review("t2"), Ok(()));
        assert!(matches!(l.after_review("t2", "a"), Err(CertRefused::Identity(_))));
        // Another identity is not affected.
        assert_eq!(l.before_review("u"), Ok(()));
        assert_eq!(l.after_review("u", "b"), Ok(()));
    }

    #[test]
    fn the_overall_rate_counts_every_request_before_review() {
        let l = limits((0.001, 3), (1000.0, 1000));
        for t in ["a", "b", "c"] {
            assert_eq!(l.before_review(t), Ok(()));
        }
        assert!(matches!(l.before_review("d"), Err(CertRefused::Overall(_))));
    }
}
