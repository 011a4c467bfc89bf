//! Built-in policy: the authorizations each default policy produces (§1.1)
//! and the default and probe routes of servers without routes (§1.4, §7.2).

use super::authn::{all_networks, to_networks};
use crate::settings::Settings;
use crate::settings::version::Feature;
use mesh_proxy_api::{
    Authentication, Authorization, GrpcRoute, GrpcRule, HttpMatch, HttpRoute, HttpRule, Meta, PathMatch,
};

/// The default policy that governs a port: on a port listed in
/// `config.linkerd.io/proxy-require-identity-inbound-ports` an allowing,
/// unauthenticated policy is tightened to its authenticated twin. Linkerd flips
/// the policy itself before naming it (policy-controller
/// `k8s/index/src/inbound/index.rs`, `default_inbound_server`), so the server and
/// its authorization are named after the tightened policy
/// (`default:all-authenticated`), which shows in `linkerd diagnostics policy` and
/// in the proxy's `srv_name` / `authz_name` labels. `audit` and `deny` are not
/// `Allow` policies there and stay as they are.
pub fn effective_default_policy(policy: &str, require_identity: bool) -> &str {
    match (require_identity, policy) {
        (true, "all-unauthenticated") => "all-authenticated",
        (true, "cluster-unauthenticated") => "cluster-authenticated",
        _ => policy,
    }
}

/// The authorizations of default policy `policy` (`deny` has none), named
/// after it.
pub fn default_authorizations(policy: &str, s: &Settings) -> Vec<Authorization> {
    let any_identity = || Authentication::TlsAuthenticated { identities: Vec::new(), suffixes: vec![String::new()] };
    let (authentication, networks) = match policy {
        "all-unauthenticated" => (Authentication::Unauthenticated, all_networks()),
        "all-authenticated" => (any_identity(), all_networks()),
        "cluster-unauthenticated" => (Authentication::Unauthenticated, to_networks(&s.cluster_networks)),
        "cluster-authenticated" => (any_identity(), to_networks(&s.cluster_networks)),
        "audit" => (Authentication::Unauthenticated, all_networks()),
        _ => return Vec::new(),
    };
    vec![Authorization { meta: Meta::default_named(policy), networks, authentication }]
}

pub fn default_http_route() -> HttpRoute {
    HttpRoute {
        meta: Meta::default_named("default"),
        hostnames: Vec::new(),
        rules: vec![HttpRule {
            matches: vec![HttpMatch { path: Some(PathMatch::Prefix("/".to_owned())), ..Default::default() }],
            filters: Vec::new(),
        }],
        authorizations: Vec::new(),
    }
}

/// The probe route for `paths` (GET + Exact), authorized from the probe
/// networks. Before 2.12 there was none: a probe was a client like any other.
pub fn probe_route(paths: &[String], s: &Settings) -> Option<HttpRoute> {
    if paths.is_empty() || s.probe_networks.is_empty() || !s.linkerd_version.has(Feature::ProbeAuthorization) {
        return None;
    }
    let matches = paths
        .iter()
        .map(|p| HttpMatch {
            path: Some(PathMatch::Exact(p.clone())),
            method: Some("GET".to_owned()),
            ..Default::default()
        })
        .collect();
    Some(HttpRoute {
        meta: Meta::default_named("probe"),
        hostnames: Vec::new(),
        rules: vec![HttpRule { matches, filters: Vec::new() }],
        authorizations: vec![Authorization {
            meta: Meta::default_named("probe"),
            networks: to_networks(&s.probe_networks),
            authentication: Authentication::Unauthenticated,
        }],
    })
}

pub fn default_grpc_route() -> GrpcRoute {
    GrpcRoute {
        meta: Meta::default_named("default"),
        hostnames: Vec::new(),
        rules: vec![GrpcRule { matches: Vec::new() }],
        authorizations: Vec::new(),
    }
}
