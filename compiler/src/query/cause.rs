//! The likely cause of a denial, as a reviewer would look for it: a policy
//! in the same namespace that meant to grant this traffic but is inert
//! (a dangling reference, a wrong group, a route that never attached),
//! whose target is this Server or route or resembles its name.

use super::proof::{Prover, Step};
use crate::findings::Code;
use crate::model::Spec;
use crate::resolve::authz::bounded_edit_distance;
use crate::resolve::index::Kind;
use mesh_proxy_api::{InboundServer, Meta};
use std::collections::HashSet;

const MAX_CAUSES: usize = 3;

/// Why a policy does nothing, by code.
fn makes_inert(code: Code) -> bool {
    matches!(code, Code::UnresolvedReference | Code::InertPolicy | Code::RouteNotAccepted | Code::SchemaViolation)
}

fn kind_of(kind: &str, api_version: &str) -> Option<Kind> {
    Some(match kind {
        "AuthorizationPolicy" => Kind::AuthorizationPolicy,
        "ServerAuthorization" => Kind::ServerAuthorization,
        "HTTPRoute" if api_version.starts_with("policy.linkerd.io/") => Kind::PolicyHttpRoute,
        "HTTPRoute" => Kind::GatewayHttpRoute,
        "GRPCRoute" => Kind::GrpcRoute,
        _ => return None,
    })
}

/// What the policy or route meant to apply to: target, server or parents.
fn intended_targets(spec: &Spec) -> Vec<&str> {
    match spec {
        Spec::AuthorizationPolicy(p) => vec![p.target_ref.name.as_str()],
        Spec::ServerAuthorization(s) => s.server.name.as_deref().into_iter().collect(),
        Spec::HttpRoute(r) => r.parent_refs.iter().map(|p| p.name.as_str()).collect(),
        Spec::GrpcRoute(r) => r.parent_refs.iter().map(|p| p.name.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// How closely `target` resembles one of `names`: 0 is the same name.
fn resemblance(target: &str, names: &[&str]) -> Option<usize> {
    names
        .iter()
        .filter_map(|n| {
            let limit = 3.max(n.len() / 3);
            // A renamed resource usually keeps its first word (`api-http` → `api-server`).
            let first = |s: &'_ str| s.split(['-', '.']).next().unwrap_or_default().to_owned();
            let same_stem = first(n).len() >= 3 && first(n) == first(target);
            bounded_edit_distance(target, n, limit)
                .or_else(|| (n.contains(target) || target.contains(n)).then_some(limit + 1))
                .or_else(|| same_stem.then_some(limit + 2))
        })
        .min()
}

pub fn likely_causes(p: &Prover, ns: &str, server: &InboundServer, route: Option<&Meta>) -> Vec<Step> {
    let r = &p.outcome.resolved;
    let mut names: Vec<&str> = Vec::new();
    if server.meta.kind == "server" {
        names.push(&server.meta.name);
    }
    if let Some(m) = route.filter(|m| m.kind != "default") {
        names.push(&m.name);
    }
    let bound_by = match server.meta.kind.as_str() {
        "server" => format!("this port is bound by Server `{}`", server.meta.name),
        _ => format!("this port has no Server; the default policy `{}` applies", server.meta.name),
    };
    let mut seen = HashSet::new();
    let mut found: Vec<(usize, usize, String)> = Vec::new();
    for f in &p.outcome.findings {
        let Some(id) = f.resource.as_ref().filter(|id| id.namespace.as_deref() == Some(ns)) else { continue };
        if !makes_inert(f.code) || !seen.insert(id) {
            continue;
        }
        let Some(i) = kind_of(&id.kind, &id.api_version).and_then(|k| r.index.get(k, ns, &id.name)) else { continue };
        // A policy that names an existing other Server or route is about that one.
        let exists = |t: &str| {
            [Kind::Server, Kind::PolicyHttpRoute, Kind::GatewayHttpRoute, Kind::GrpcRoute]
                .iter()
                .any(|&k| r.index.get(k, ns, t).is_some())
        };
        let targets = intended_targets(&r.resources[i].spec);
        let score = targets
            .iter()
            .filter_map(|t| {
                if names.contains(t) {
                    Some(0)
                } else if exists(t) {
                    None
                } else {
                    resemblance(t, &names)
                }
            })
            .min();
        let Some(score) = score else { continue };
        found.push((score, i, f.message.clone()));
    }
    found.sort_by_key(|(score, i, _)| (*score, *i));
    found
        .into_iter()
        .take(MAX_CAUSES)
        .map(|(_, i, message)| p.at("likely-cause", i, &[], format!("{message}; {bound_by}")))
        .collect()
}
