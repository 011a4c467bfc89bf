//! The HTTPLocalRateLimitPolicy limit a client meets at a Server, read from
//! the lowered config with the function the proxy runs
//! (`mesh_proxy_api::ratelimit::buckets`): every request counts against the
//! total; a client whose identity an override names then counts against that
//! override's bucket and skips the identity limit; any other client counts
//! against its own identity bucket, and all clients without an identity
//! share one. Beyond a limit the proxy answers 429.

use mesh_proxy_api::{LocalRateLimit, buckets};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitView {
    pub policy: String,
    pub requests_per_second: u32,
    /// `total`, `identity` or `override`.
    pub scope: &'static str,
}

/// The limit that binds first for `identity` alone: the lower of the total
/// and the client's own limit; on a tie the total, which the proxy checks
/// first.
pub fn applying(limit: &LocalRateLimit, identity: Option<&str>) -> Option<RateLimitView> {
    let b = buckets(limit, identity);
    let bucket = b.binding()?;
    Some(RateLimitView {
        policy: limit.meta.name.clone(),
        requests_per_second: bucket.requests_per_second.get(),
        scope: bucket.key.scope().as_str(),
    })
}

/// A Server's policy as a whole, for `who-can-reach` and `show-config`:
/// override clients as the identities the proxy matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    pub policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<u32>,
    pub overrides: Vec<OverrideView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideView {
    pub requests_per_second: u32,
    pub identities: Vec<String>,
}

impl From<&LocalRateLimit> for PolicyView {
    fn from(l: &LocalRateLimit) -> Self {
        PolicyView {
            policy: l.meta.name.clone(),
            total: l.total,
            identity: l.identity,
            overrides: l
                .overrides
                .iter()
                .map(|o| OverrideView { requests_per_second: o.requests_per_second, identities: o.identities.clone() })
                .collect(),
        }
    }
}

impl PolicyView {
    /// One line: `HTTPLocalRateLimitPolicy NAME: total N/s, each identity N/s, ...; beyond, 429`.
    pub fn text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.total.map(|t| format!("total {t}/s")));
        parts.extend(self.identity.map(|i| format!("each identity {i}/s (clients without one share it)")));
        for o in &self.overrides {
            parts.push(format!("{}/s shared by {}", o.requests_per_second, o.identities.join(", ")));
        }
        format!("HTTPLocalRateLimitPolicy {}: {}; beyond, 429", self.policy, parts.join(", "))
    }
}
