//! Built-in policy: the authorizations each default policy produces (§1.1)
//! and the default and probe routes of servers without routes (§1.4, §7.2).

use super::authn::{all_networks, to_networks};
use crate::settings::Settings;
use mesh_proxy_api::{
    Authentication, Authorization, GrpcRoute, GrpcRule, HttpMatch, HttpRoute, HttpRule, Meta, PathMatch,
};

/// The authorizations of default policy `policy` (`deny` has none).
/// `authenticated_only` is the require-identity-inbound-ports tweak.
pub fn default_authorizations(policy: &str, authenticated_only: bool, s: &Settings) -> Vec<Authorization> {
    let any_identity = || Authentication::TlsAuthenticated { identities: Vec::new(), suffixes: vec![String::new()] };
    let (authentication, networks) = match policy {
        "all-unauthenticated" => (Authentication::Unauthenticated, all_networks()),
        "all-authenticated" => (any_identity(), all_networks()),
        "cluster-unauthenticated" => (Authentication::Unauthenticated, to_networks(&s.cluster_networks)),
        "cluster-authenticated" => (any_identity(), to_networks(&s.cluster_networks)),
        "audit" => (Authentication::Unauthenticated, all_networks()),
        _ => return Vec::new(),
    };
    let authentication = match (authenticated_only, policy) {
        (true, "all-unauthenticated" | "cluster-unauthenticated") => any_identity(),
        _ => authentication,
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

/// The probe route for `paths` (GET + Exact), authorized from the probe networks.
pub fn probe_route(paths: &[String], s: &Settings) -> Option<HttpRoute> {
    if paths.is_empty() || s.probe_networks.is_empty() {
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
