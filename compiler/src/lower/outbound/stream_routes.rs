//! TLSRoutes and TCPRoutes with Service parents (docs/semantics/tcp-tls-routes.md):
//! which Services they attach to, the status Linkerd's status controller
//! would write (Accepted, RouteReasonConflicted, ResolvedRefs), their
//! backends converted for client proxies, and which route kind serves each
//! port (`Policy::service_for` applies Linkerd's precedence).
//!
//! Parents of other kinds are left to their own modules (EgressNetwork
//! parents: `egress` and `egress_streams`).

use super::routes::ServiceIndex;
use super::services::ServiceBase;
use crate::findings::{Code, Finding, Referent};
use crate::model::Resource;
use crate::model::route::ParentRef;
use crate::model::stream_route::{StreamBackendRef, StreamRoute};
use crate::resolve::routes::{hostnames, meta};
use mesh_proxy_api::outbound::{
    Backend, BackendTarget, OutboundPort, OutboundProtocol, OutboundService, OutboundTcpRoute, OutboundTlsRoute,
};
use std::collections::HashSet;

/// A TLSRoute or TCPRoute attached to one Service, as every client namespace may see it.
#[derive(Clone, Debug)]
pub struct AttachedStream {
    pub resource: usize,
    /// Producer (the Service's namespace) or consumer route, as for HTTP.
    pub namespace: String,
    /// The parentRef's port; `None` attaches to every port.
    pub port: Option<u16>,
    pub route: StreamKind,
    /// Linkerd's order (`timestamp_then_name`): creationTimestamp (present first), then name.
    pub order: (bool, Option<String>, String),
}

#[derive(Clone, Debug)]
pub enum StreamKind {
    /// Backends empty: the parent Service, filled in per port.
    Tls(OutboundTlsRoute),
    Tcp(OutboundTcpRoute),
}

impl AttachedStream {
    pub fn is_tls(&self) -> bool {
        matches!(self.route, StreamKind::Tls(_))
    }

    pub fn applies_to(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

/// A Service parentRef as the status controller compares them: the
/// Service's namespace and name, and the port (`sectionName` is not read).
type ParentKey = (String, String, Option<u16>);

pub fn is_service_parent(p: &ParentRef) -> bool {
    p.kind.as_deref() == Some("Service") && matches!(p.group.as_deref(), None | Some("" | "core"))
}

fn parent_key(route_ns: &str, p: &ParentRef) -> ParentKey {
    let ns = p.namespace.clone().unwrap_or_else(|| route_ns.to_owned());
    (ns, p.name.clone(), p.port.and_then(|p| u16::try_from(p).ok()))
}

/// The Service parentRefs of routes (HTTP and gRPC, or TLS), for conflicts.
pub fn service_parent_keys<'a>(routes: impl Iterator<Item = (&'a Resource, &'a [ParentRef])>) -> HashSet<ParentKey> {
    routes
        .flat_map(|(r, parents)| parents.iter().filter(|p| is_service_parent(p)).map(|p| parent_key(r.namespace(), p)))
        .collect()
}

/// What wins over a route on the same parentRef in the status controller
/// (`status/src/index.rs::parent_has_conflicting_routes`, GEP-1426):
/// gRPC and HTTP routes over TLS routes, and all three over TCP routes.
pub struct Conflicts {
    pub http_or_grpc: HashSet<ParentKey>,
    pub tls: HashSet<ParentKey>,
}

impl Conflicts {
    fn winner(&self, tls: bool, key: &ParentKey) -> Option<&'static str> {
        if self.http_or_grpc.contains(key) {
            Some("an HTTPRoute or GRPCRoute")
        } else if !tls && self.tls.contains(key) {
            Some("a TLSRoute")
        } else {
            None
        }
    }
}

pub struct Ctx<'a> {
    pub resources: &'a [Resource],
    pub services: &'a ServiceIndex,
    pub bases: &'a [ServiceBase],
    pub conflicts: &'a Conflicts,
}

/// Attaches every TLSRoute and TCPRoute in `routes` (resource indices) to its Service parents.
pub fn attach(ctx: &Ctx<'_>, routes: &[usize], findings: &mut Vec<Finding>) -> Vec<Vec<AttachedStream>> {
    let mut out: Vec<Vec<AttachedStream>> = vec![Vec::new(); ctx.bases.len()];
    for &ri in routes {
        let r = &ctx.resources[ri];
        let Some(route) = r.stream_route() else { continue };
        let parents = accepted_parents(ctx, r, route, findings);
        if parents.is_empty() {
            continue;
        }
        let converted = convert(ctx, r, route, findings);
        let order = (r.meta.creation_timestamp.is_none(), r.meta.creation_timestamp.clone(), r.name().to_owned());
        for (si, port) in parents {
            let (namespace, route, order) = (r.namespace().to_owned(), converted.clone(), order.clone());
            out[si].push(AttachedStream { resource: ri, namespace, port, route, order });
        }
    }
    for list in &mut out {
        list.sort_by(|a, b| a.order.cmp(&b.order));
    }
    out
}

/// The (Service, port) parents the route is Accepted on; the others reported.
fn accepted_parents(
    ctx: &Ctx<'_>,
    r: &Resource,
    route: StreamRoute<'_>,
    findings: &mut Vec<Finding>,
) -> Vec<(usize, Option<u16>)> {
    let mut out = Vec::new();
    for (i, p) in route.parent_refs().iter().enumerate().filter(|(_, p)| is_service_parent(p)) {
        let at = |field: &str| r.span_at(&["spec", "parentRefs", &i.to_string(), field]);
        let key = parent_key(r.namespace(), p);
        let (ns, name, port) = key.clone();
        let Some(&si) = ctx.services.get(&(ns.clone(), name.clone())) else {
            let msg = format!(
                "{} parentRef names Service {ns}/{name}, which does not exist; the route is not accepted (NoMatchingParent) and routes nothing",
                r.id
            );
            let f = Finding::new(Code::UnresolvedReference, at("name"), msg).resource(r.id.clone());
            findings.push(f.referent(Referent::object("Service", &ns, &name)));
            continue;
        };
        if let Some(why) = ctx.bases[si].invalid_parent {
            let msg =
                format!("{} has parent Service {ns}/{name}, which is {why}; Linkerd does not apply routes to it", r.id);
            findings.push(Finding::new(Code::RouteNotAccepted, at("name"), msg).resource(r.id.clone()));
            continue;
        }
        if let Some(winner) = ctx.conflicts.winner(route.kind() == "TLSRoute", &key) {
            let on = port.map_or(String::new(), |p| format!(" port {p}"));
            let msg = format!(
                "{} is not accepted on Service {ns}/{name}{on}: {winner} with the same parentRef takes precedence (RouteReasonConflicted), so it routes nothing there",
                r.id
            );
            findings.push(Finding::new(Code::RouteNotAccepted, at("name"), msg).resource(r.id.clone()));
            continue;
        }
        if let (Some(section), None) = (&p.section_name, port) {
            let msg = format!(
                "{} parentRef to Service {ns}/{name} has sectionName `{section}` and no port: Linkerd attaches Service-parent routes by port only, so the route applies to every port of the Service",
                r.id
            );
            let hint = "name the port with `port:` instead of `sectionName:`";
            findings
                .push(Finding::new(Code::SectionNameIgnored, at("sectionName"), msg).resource(r.id.clone()).hint(hint));
        }
        out.push((si, port));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The route for client proxies: its one rule's backends (admission
/// guarantees exactly one rule), as `index/src/outbound/index/{tls,tcp}.rs`
/// convert them.
fn convert(ctx: &Ctx<'_>, r: &Resource, route: StreamRoute<'_>, findings: &mut Vec<Finding>) -> StreamKind {
    let refs: &[StreamBackendRef] = route.rules().first().map_or(&[], |rule| &rule.backend_refs);
    let backends: Vec<Backend> = refs.iter().enumerate().map(|(j, b)| backend(ctx, r, j, b, findings)).collect();
    if !backends.is_empty() && backends.iter().all(|b| b.weight == 0) {
        let msg = format!("{}: every backendRef has weight 0, so every connection it routes is closed", r.id);
        let at = r.span_at(&["spec", "rules", "0", "backendRefs"]);
        findings.push(Finding::new(Code::BackendWeightsZero, at, msg).resource(r.id.clone()));
    }
    match route {
        StreamRoute::Tls(t) => {
            StreamKind::Tls(OutboundTlsRoute { meta: meta(r), snis: hostnames(&t.hostnames), backends })
        }
        StreamRoute::Tcp(_) => StreamKind::Tcp(OutboundTcpRoute { meta: meta(r), backends }),
    }
}

fn backend(ctx: &Ctx<'_>, r: &Resource, j: usize, b: &StreamBackendRef, findings: &mut Vec<Finding>) -> Backend {
    let at = |field: &str| r.span_at(&["spec", "rules", "0", "backendRefs", &j.to_string(), field]);
    let weight = b.weight.map_or(1, |w| u32::try_from(w).unwrap_or(0));
    let ns = b.namespace.clone().unwrap_or_else(|| r.namespace().to_owned());
    let group = b.group.as_deref().unwrap_or("");
    let kind = b.kind.as_deref().unwrap_or("Service");
    // An error: where, why, and the Service named when it does not exist.
    let target = match (group, kind) {
        ("" | "core", "Service") => match b.port.and_then(|p| u16::try_from(p).ok()) {
            None => Err((at("name"), format!("backend Service {} has no port", b.name), None)),
            Some(_) if !ctx.services.contains_key(&(ns.clone(), b.name.clone())) => {
                let missing = Referent::object("Service", &ns, &b.name);
                Err((at("name"), format!("Service {ns}/{} does not exist (BackendNotFound)", b.name), Some(missing)))
            }
            Some(port) => Ok(BackendTarget::Service { namespace: ns, name: b.name.clone(), port }),
        },
        ("policy.linkerd.io", "EgressNetwork") => {
            Err((at("kind"), "EgressNetwork backends attach to EgressNetwork parents only".to_owned(), None))
        }
        (g, k) => {
            Err((at("kind"), format!("unsupported backend type {} {k}", if g.is_empty() { "core" } else { g }), None))
        }
    };
    let target = target.unwrap_or_else(|(span, reason, missing)| {
        let msg = format!("{} backend {}: {reason}; connections routed to it are closed", r.id, b.name);
        findings.push(Finding::new(Code::BackendUnresolved, span, msg).resource(r.id.clone()).referent(missing));
        BackendTarget::Invalid { reason }
    });
    Backend { target, weight, filters: Vec::new() }
}

/// Why `a` serves no port of `svc` (the Service as a client in the route's
/// own namespace sees it), or `None` when some port uses it.
pub fn shadow_reason(a: &AttachedStream, svc: &OutboundService) -> Option<String> {
    let name = match &a.route {
        StreamKind::Tls(t) => &t.meta.name,
        StreamKind::Tcp(t) => &t.meta.name,
    };
    let ports: Vec<&OutboundPort> = svc.ports.iter().filter(|p| a.applies_to(p.port)).collect();
    let used = |p: &&OutboundPort| match &a.route {
        StreamKind::Tls(_) => p.tls_routes.iter().any(|t| &t.meta.name == name),
        StreamKind::Tcp(_) => p.tcp_route.as_ref().is_some_and(|t| &t.meta.name == name),
    };
    if ports.iter().any(used) {
        return None;
    }
    let Some(p) = ports.first() else {
        let port = a.port.map_or(String::new(), |p| p.to_string());
        return Some(format!("Service {}/{} has no port {port}", svc.namespace, svc.name));
    };
    let reason = match (p.protocol, a.is_tls()) {
        (OutboundProtocol::Opaque, true) => "is opaque, which takes only a TCPRoute".to_owned(),
        (OutboundProtocol::Http1 | OutboundProtocol::Http2, _) => {
            "has appProtocol http or h2c, which takes only HTTP and gRPC routes".to_owned()
        }
        (OutboundProtocol::Detect, _) if !p.grpc_routes.is_empty() || !p.http_routes.is_empty() => {
            "is served by HTTP or gRPC routes, which take precedence".to_owned()
        }
        (_, false) if !p.tls_routes.is_empty() => "is served by TLSRoutes, which take precedence".to_owned(),
        (_, _) => match &p.tcp_route {
            Some(t) => format!(
                "is served by TCPRoute {}, which is older (or first by name); Linkerd sends one TCPRoute per port",
                t.meta.name
            ),
            None => "takes no such route".to_owned(),
        },
    };
    Some(format!("port {} of Service {}/{} {reason}", p.port, svc.namespace, svc.name))
}
