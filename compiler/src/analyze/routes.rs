//! Route findings, read off the lowered configs: routes nobody may use,
//! routes that capture everything, and policies on routes that never attach.

use crate::findings::{Code, Finding, Referent};
use crate::resolve::Resolved;
use crate::resolve::index::Kind;
use mesh_proxy_api::{HttpRoute, PathMatch, ProxyConfig};
use std::collections::BTreeSet;

pub fn check(r: &Resolved, configs: &[Option<ProxyConfig>], findings: &mut Vec<Finding>) {
    unauthorized(r, configs, findings);
    overbroad(r, findings);
    policies_on_detached_routes(r, findings);
}

/// A route whose own and Server authorizations are both empty admits only localhost.
fn unauthorized(r: &Resolved, configs: &[Option<ProxyConfig>], findings: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    for config in configs.iter().flatten() {
        let ns = &config.workload.namespace;
        for entry in &config.inbound.ports {
            let server = &entry.server;
            if !server.authorizations.is_empty() {
                continue;
            }
            let http = server.http_routes.iter().map(|h| (&h.meta, h.authorizations.is_empty()));
            let grpc = server.grpc_routes.iter().map(|g| (&g.meta, g.authorizations.is_empty()));
            for (meta, empty) in http.chain(grpc) {
                if !empty
                    || meta.kind == "default"
                    || !seen.insert((ns.clone(), meta.clone(), server.meta.name.clone()))
                {
                    continue;
                }
                let Some(ri) = route_index(r, ns, meta) else {
                    continue;
                };
                let route = &r.resources[ri];
                let msg = format!(
                    "{} on Server {} has no authorization, and neither has the Server: every request it matches gets 403 (gRPC PERMISSION_DENIED), except from localhost",
                    route.id, server.meta.name
                );
                let f = Finding::new(Code::RouteUnauthorized, route.span(), msg).resource(route.id.clone());
                findings.push(f.hint("add an AuthorizationPolicy with targetRef to this route (or to its Server)"));
            }
        }
    }
}

pub fn route_index(r: &Resolved, ns: &str, meta: &mesh_proxy_api::Meta) -> Option<usize> {
    let kind = match (meta.kind.as_str(), meta.group.as_deref()) {
        ("httproute", Some("policy.linkerd.io")) => Kind::PolicyHttpRoute,
        ("httproute", _) => Kind::GatewayHttpRoute,
        ("grpcroute", _) => Kind::GrpcRoute,
        _ => return None,
    };
    r.index.get(kind, ns, &meta.name)
}

fn is_match_all(route: &HttpRoute) -> bool {
    route.hostnames.is_empty()
        && route.rules.iter().any(|rule| {
            rule.matches.is_empty()
                || rule.matches.iter().any(|m| {
                    m.method.is_none()
                        && m.headers.is_empty()
                        && m.query_params.is_empty()
                        && match &m.path {
                            None => true,
                            Some(PathMatch::Prefix(p)) => p.trim_end_matches('/').is_empty(),
                            Some(_) => false,
                        }
                })
        })
}

fn overbroad(r: &Resolved, findings: &mut Vec<Finding>) {
    let mut attached: Vec<usize> = r.routes.http.values().flatten().copied().collect();
    attached.sort_unstable();
    attached.dedup();
    for ri in attached {
        let Some(crate::resolve::routes::Converted::Http(h)) = r.routes.converted.get(&ri) else {
            continue;
        };
        if !is_match_all(h) {
            continue;
        }
        let route = &r.resources[ri];
        let msg = format!(
            "{} has a rule that matches every request (PathPrefix `/`, no method or header): policy on it is effectively Server-wide",
            route.id
        );
        let f = Finding::new(Code::OverbroadRoute, route.span_at(&["spec", "rules"]), msg).resource(route.id.clone());
        findings.push(f.hint("match the paths and methods the route is meant for"));
    }
}

fn policies_on_detached_routes(r: &Resolved, findings: &mut Vec<Finding>) {
    let attached: BTreeSet<usize> = r.routes.http.values().chain(r.routes.grpc.values()).flatten().copied().collect();
    for &(pi, ri) in &r.granted.route_targets {
        if attached.contains(&ri) {
            continue;
        }
        let (p, route) = (&r.resources[pi], &r.resources[ri]);
        let msg = format!(
            "{} targets {}, which is not attached to any Server (see its route-not-accepted or unresolved-reference finding): the policy grants nothing",
            p.id, route.id
        );
        let f = Finding::new(Code::InertPolicy, p.span_at(&["spec", "targetRef"]), msg).resource(p.id.clone());
        findings.push(f.referent(Referent::from(&route.id)));
    }
}
