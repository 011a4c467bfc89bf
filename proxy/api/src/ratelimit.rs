//! HTTP local rate limits (Linkerd's HTTPLocalRateLimitPolicy) on an
//! inbound server, and which buckets a request counts against.
//!
//! The rule is linkerd2-proxy's `LocalRateLimit::check`
//! (`linkerd/proxy/server-policy/src/local_rate_limit.rs`):
//!
//! 1. every request first takes a token from the `total` bucket;
//! 2. a client whose identity an override names then takes one from that
//!    override's bucket (one bucket shared by all the identities the
//!    override names) and skips the identity limit;
//! 3. any other client takes one from its own bucket of the `identity`
//!    limit, and all clients without an identity (plaintext, or TLS without
//!    a client certificate) share one such bucket.
//!
//! A rate of 0 is no limit (Linkerd keeps only `NonZeroU32` rates, and drops
//! an override whose rate is 0, so its identities fall back to the identity
//! limit). A later override naming an identity replaces an earlier one, as
//! Linkerd collects overrides into a map keyed by identity.
//!
//! Each bucket allows a burst of `requests_per_second` and refills one token
//! every `1/requests_per_second` seconds (governor's `Quota::per_second`).
//! The proxy checks the rate limit after routing and authorization
//! (`linkerd/app/inbound/src/policy/http.rs`, `HttpPolicyService::call`):
//! requests answered 403 or 404 never count. Beyond a limit it answers 429
//! (gRPC: `RESOURCE_EXHAUSTED`, 8), with no `Retry-After`.
//!
//! Pure: the proxy keeps the buckets; meshc asks the same function which
//! limit a client meets.

use crate::config::Meta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

/// The rate limit of one inbound server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRateLimit {
    /// `kind: httplocalratelimitpolicy` and the policy's name.
    pub meta: Meta,
    /// Requests per second for all clients together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
    /// Requests per second for each client identity (clients without one share a bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<RateLimitOverride>,
}

/// A rate shared by the clients whose identity is listed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitOverride {
    pub requests_per_second: u32,
    /// Exact client identities, e.g. `bot.ns.serviceaccount.identity.linkerd.cluster.local`.
    pub identities: Vec<String>,
}

/// Which limit a bucket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Total,
    Identity,
    Override,
}

impl Scope {
    /// The word meshc's `reach` reports and Linkerd's `ratelimit_scope` metric label uses
    /// (`linkerd/app/inbound/src/policy.rs`, `ratelimit_label`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Total => "total",
            Scope::Identity => "identity",
            Scope::Override => "override",
        }
    }
}

/// One bucket a request takes a token from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BucketKey<'a> {
    /// The server's one total bucket.
    Total,
    /// The bucket of `overrides[i]`.
    Override(usize),
    /// The identity limit's bucket of this client; `None` is the one all
    /// clients without an identity share.
    Identity(Option<&'a str>),
}

impl BucketKey<'_> {
    pub fn scope(&self) -> Scope {
        match self {
            BucketKey::Total => Scope::Total,
            BucketKey::Override(_) => Scope::Override,
            BucketKey::Identity(_) => Scope::Identity,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket<'a> {
    pub key: BucketKey<'a>,
    pub requests_per_second: NonZeroU32,
}

/// The buckets a request counts against, in the order the proxy takes
/// tokens: `total` first (a request it refuses takes nothing from `own`),
/// then the client's own bucket (override or identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buckets<'a> {
    pub total: Option<Bucket<'a>>,
    pub own: Option<Bucket<'a>>,
}

impl<'a> Buckets<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &Bucket<'a>> {
        self.total.iter().chain(self.own.iter())
    }

    /// The limit a client alone meets first: the lower rate, `total` on a
    /// tie because the proxy checks it first.
    pub fn binding(&self) -> Option<&Bucket<'a>> {
        match (&self.total, &self.own) {
            (Some(t), Some(o)) if o.requests_per_second < t.requests_per_second => Some(o),
            (Some(t), _) => Some(t),
            (None, o) => o.as_ref(),
        }
    }
}

/// Which buckets a request from a client with `identity` (the identity it
/// proved with mTLS, `None` without one) counts against.
pub fn buckets<'a>(limit: &LocalRateLimit, identity: Option<&'a str>) -> Buckets<'a> {
    let total =
        limit.total.and_then(NonZeroU32::new).map(|rps| Bucket { key: BucketKey::Total, requests_per_second: rps });
    let own = override_for(limit, identity)
        .map(|(i, rps)| Bucket { key: BucketKey::Override(i), requests_per_second: rps })
        .or_else(|| {
            let rps = limit.identity.and_then(NonZeroU32::new)?;
            Some(Bucket { key: BucketKey::Identity(identity), requests_per_second: rps })
        });
    Buckets { total, own }
}

/// The last override with a non-zero rate that names `identity`.
fn override_for(limit: &LocalRateLimit, identity: Option<&str>) -> Option<(usize, NonZeroU32)> {
    let id = identity?;
    limit.overrides.iter().enumerate().rev().find_map(|(i, o)| {
        let rps = NonZeroU32::new(o.requests_per_second)?;
        o.identities.iter().any(|n| n == id).then_some((i, rps))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(total: Option<u32>, identity: Option<u32>, overrides: &[(u32, &[&str])]) -> LocalRateLimit {
        LocalRateLimit {
            meta: Meta::resource("HTTPLocalRateLimitPolicy", "rl"),
            total,
            identity,
            overrides: overrides
                .iter()
                .map(|(rps, ids)| RateLimitOverride {
                    requests_per_second: *rps,
                    identities: ids.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
        }
    }

    fn keys<'a>(b: &Buckets<'a>) -> Vec<(BucketKey<'a>, u32)> {
        b.iter().map(|b| (b.key.clone(), b.requests_per_second.get())).collect()
    }

    #[test]
    fn overridden_clients_skip_the_identity_limit() {
        let l = limit(Some(100), Some(10), &[(50, &["bot"])]);
        assert_eq!(keys(&buckets(&l, Some("bot"))), vec![(BucketKey::Total, 100), (BucketKey::Override(0), 50)]);
        assert_eq!(
            keys(&buckets(&l, Some("web"))),
            vec![(BucketKey::Total, 100), (BucketKey::Identity(Some("web")), 10)]
        );
    }

    #[test]
    fn clients_without_identity_share_one_identity_bucket() {
        let l = limit(None, Some(10), &[(50, &["bot"])]);
        assert_eq!(keys(&buckets(&l, None)), vec![(BucketKey::Identity(None), 10)]);
    }

    #[test]
    fn later_override_wins_and_zero_rates_are_no_limit() {
        let l = limit(Some(0), Some(10), &[(50, &["bot"]), (20, &["bot"]), (0, &["web"])]);
        assert_eq!(keys(&buckets(&l, Some("bot"))), vec![(BucketKey::Override(1), 20)]);
        assert_eq!(keys(&buckets(&l, Some("web"))), vec![(BucketKey::Identity(Some("web")), 10)]);
    }

    #[test]
    fn binding_is_the_lower_rate_and_total_on_a_tie() {
        let l = limit(Some(10), Some(10), &[(5, &["bot"])]);
        assert_eq!(buckets(&l, Some("web")).binding().map(|b| b.key.scope()), Some(Scope::Total));
        assert_eq!(buckets(&l, Some("bot")).binding().map(|b| b.key.scope()), Some(Scope::Override));
        let none = limit(None, None, &[]);
        assert_eq!(buckets(&none, Some("web")).binding(), None);
    }
}
