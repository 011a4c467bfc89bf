//! A Server's accepted HTTPLocalRateLimitPolicy → the `LocalRateLimit` its
//! pods' proxies enforce, as Linkerd's policy controller serves it
//! (`policy-controller/k8s/index/src/inbound/index.rs`, `client_ratelimit`,
//! and `grpc/src/inbound.rs`, `to_server`).

use crate::model::policy::{NamespacedTargetRef, group_is};
use crate::resolve::Resolved;
use mesh_proxy_api::{LocalRateLimit, Meta, Protocol, RateLimitOverride};

/// The limit of Server `s` with `protocol`: none for opaque and TLS Servers
/// (the controller sends the limit with the HTTP protocols and detection
/// only), and none when an override names a client that is not a
/// ServiceAccount (the controller fails to read the whole policy,
/// `k8s/index/src/inbound/ratelimit_policy.rs`, `client_ref`).
pub fn server_rate_limit(r: &Resolved, s: usize, protocol: &Protocol) -> Option<LocalRateLimit> {
    if !protocol.is_http() {
        return None;
    }
    let server = &r.resources[s];
    let (policy, spec) = r.rate_limits.for_server(&r.resources, server.namespace(), server.name())?;
    let mut overrides = Vec::with_capacity(spec.overrides.len());
    for o in &spec.overrides {
        let identities = o
            .client_refs
            .iter()
            .map(|c| is_service_account(c).then(|| client_identity(r, policy.namespace(), c)))
            .collect::<Option<Vec<String>>>()?;
        overrides.push(RateLimitOverride { requests_per_second: o.requests_per_second, identities });
    }
    Some(LocalRateLimit {
        meta: Meta::resource("HTTPLocalRateLimitPolicy", policy.name()),
        total: spec.total.as_ref().map(|l| l.requests_per_second),
        identity: spec.identity.as_ref().map(|l| l.requests_per_second),
        overrides,
    })
}

fn is_service_account(c: &NamespacedTargetRef) -> bool {
    c.kind == "ServiceAccount" && group_is(c.group.as_deref(), "core")
}

/// A ServiceAccount's mesh identity; the namespace defaults to the policy's.
fn client_identity(r: &Resolved, policy_ns: &str, c: &NamespacedTargetRef) -> String {
    let ns = c.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(policy_ns);
    r.settings.identity(ns, &c.name)
}
