//! The HTTPLocalRateLimitPolicy limit a client meets at a Server, as
//! linkerd2-proxy checks it (`linkerd/proxy/server-policy/src/local_rate_limit.rs`,
//! `LocalRateLimit::check`): every request counts against the total; a
//! client whose identity an override names then counts against that
//! override's bucket (shared by the identities it names) and skips the
//! identity limit; any other client counts against its own identity bucket,
//! and all clients without an identity share one. Beyond a limit the proxy
//! answers 429.

use crate::model::Spec;
use crate::model::policy::{HttpLocalRateLimitPolicySpec, group_is};
use crate::resolve::Resolved;
use crate::resolve::index::Kind;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitView {
    pub policy: String,
    pub requests_per_second: u32,
    /// `total`, `identity` or `override`.
    pub scope: &'static str,
}

/// The limit that binds first for `identity` alone at Server
/// `namespace/server`: the lower of the total and the client's own limit.
/// On a tie the total, which the proxy checks first.
pub fn applying(r: &Resolved, namespace: &str, server: &str, identity: Option<&str>) -> Option<RateLimitView> {
    let (policy, spec) = http_policy(r, namespace, server)?;
    let own = own_limit(r, policy.namespace(), spec, identity);
    let total = spec.total.as_ref().map(|l| ("total", l.requests_per_second));
    let (scope, rps) = match (total, own) {
        (Some(t), Some(o)) if o.1 < t.1 => o,
        (Some(t), _) => t,
        (None, o) => o?,
    };
    Some(RateLimitView { policy: policy.name().to_owned(), requests_per_second: rps, scope })
}

/// The accepted policy of an HTTP Server: opaque and TLS Servers get none
/// (`policy-controller/grpc/src/inbound.rs`, `to_server`, sends it with the
/// HTTP protocols and detection only).
fn http_policy<'r>(
    r: &'r Resolved,
    namespace: &str,
    server: &str,
) -> Option<(&'r crate::model::Resource, &'r HttpLocalRateLimitPolicySpec)> {
    let found = r.rate_limits.for_server(&r.resources, namespace, server)?;
    let s = r.index.get(Kind::Server, namespace, server)?;
    match &r.resources[s].spec {
        Spec::Server(s) if matches!(s.proxy_protocol.as_deref(), Some("opaque" | "TLS")) => None,
        _ => Some(found),
    }
}

/// The override naming `identity` (the proxy keys overrides by identity, so
/// a later override naming it again replaces an earlier one), else the
/// identity limit.
fn own_limit(
    r: &Resolved,
    ns: &str,
    spec: &HttpLocalRateLimitPolicySpec,
    identity: Option<&str>,
) -> Option<(&'static str, u32)> {
    let names = |client: &crate::model::policy::NamespacedTargetRef| {
        let client_ns = client.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(ns);
        client.kind == "ServiceAccount"
            && group_is(client.group.as_deref(), "core")
            && identity == Some(r.settings.identity(client_ns, &client.name).as_str())
    };
    let over = spec.overrides.iter().rev().find(|o| o.client_refs.iter().any(names));
    match over {
        Some(o) => Some(("override", o.requests_per_second)),
        None => spec.identity.as_ref().map(|l| ("identity", l.requests_per_second)),
    }
}

/// A Server's accepted policy as a whole, for `who-can-reach` and
/// `show-config`: override clients as the identities the proxy matches.
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

/// The policy Server `namespace/server` enforces, if it is HTTP.
pub fn of_server(r: &Resolved, namespace: &str, server: &str) -> Option<PolicyView> {
    let (policy, spec) = http_policy(r, namespace, server)?;
    let overrides = spec
        .overrides
        .iter()
        .map(|o| OverrideView {
            requests_per_second: o.requests_per_second,
            identities: o
                .client_refs
                .iter()
                .map(|c| {
                    let ns = c.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(policy.namespace());
                    r.settings.identity(ns, &c.name)
                })
                .collect(),
        })
        .collect();
    Some(PolicyView {
        policy: policy.name().to_owned(),
        total: spec.total.as_ref().map(|l| l.requests_per_second),
        identity: spec.identity.as_ref().map(|l| l.requests_per_second),
        overrides,
    })
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
