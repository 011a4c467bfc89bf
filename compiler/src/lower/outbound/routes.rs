//! HTTPRoutes and GRPCRoutes with Service parents (GAMMA, semantics
//! reference §8.1): which Services they attach to, their rules converted
//! for client proxies, and the mistakes that change what clients get.

use super::annotations::{self, Problems};
use super::durations::{parse_go, parse_linkerd};
use super::services::{ServiceBase, report};
use crate::findings::{Code, Finding, Referent};
use crate::model::route::{BackendRef, HttpRouteRule, ParentRef, RouteFilter};
use crate::model::{Resource, Spec};
use crate::resolve::routes::{convert_filter, convert_grpc_match, convert_http_match, hostnames, meta};
use mesh_proxy_api::outbound::{
    Backend, BackendTarget, OutboundGrpcRoute, OutboundGrpcRule, OutboundHttpRoute, OutboundHttpRule, OutboundProtocol,
    Retry, Timeouts,
};
use mesh_proxy_api::{HttpFilter, HttpMatch};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A route attached to one Service, as every client namespace may see it.
#[derive(Clone, Debug)]
pub struct Attached {
    pub resource: usize,
    /// The route's namespace: producer routes (the Service's namespace)
    /// apply to every client, consumer routes to clients in their namespace.
    pub namespace: String,
    /// The parentRef's port; `None` attaches to every port.
    pub port: Option<u16>,
    pub route: RouteKind,
    /// Linkerd's outbound order: creationTimestamp (present first), then name.
    pub order: (bool, Option<String>, String),
}

#[derive(Clone, Debug)]
pub enum RouteKind {
    Http(OutboundHttpRoute),
    Grpc(OutboundGrpcRoute),
}

/// Services by (namespace, name) → index into the bases.
pub type ServiceIndex = HashMap<(String, String), usize>;

fn is_service_ref(group: Option<&str>, kind: Option<&str>) -> bool {
    matches!(group, None | Some("" | "core")) && kind.is_none_or(|k| k == "Service")
}

fn is_service_parent(p: &ParentRef) -> bool {
    p.kind.as_deref() == Some("Service") && matches!(p.group.as_deref(), None | Some("" | "core"))
}

fn parent_refs(r: &Resource) -> &[ParentRef] {
    match &r.spec {
        Spec::HttpRoute(h) => &h.parent_refs,
        Spec::GrpcRoute(g) => &g.parent_refs,
        _ => &[],
    }
}

/// Every route resource's Service parents that exist, as service indices.
fn parents_of(r: &Resource, services: &ServiceIndex) -> Vec<(usize, usize, Option<u16>)> {
    let ns = r.namespace();
    parent_refs(r)
        .iter()
        .enumerate()
        .filter(|(_, p)| is_service_parent(p))
        .filter_map(|(i, p)| {
            let key = (p.namespace.clone().unwrap_or_else(|| ns.to_owned()), p.name.clone());
            let port = p.port.and_then(|p| u16::try_from(p).ok());
            services.get(&key).map(|&si| (i, si, port))
        })
        .collect()
}

/// Attaches every route in `routes` (resource indices) to its Service parents.
pub fn attach(
    resources: &[Resource],
    routes: &[usize],
    services: &ServiceIndex,
    bases: &[ServiceBase],
    findings: &mut Vec<Finding>,
) -> Vec<Vec<Attached>> {
    let mut out: Vec<Vec<Attached>> = vec![Vec::new(); bases.len()];
    for &ri in routes {
        let r = &resources[ri];
        report_missing_parents(r, services, findings);
        let attach_to: Vec<(usize, usize, Option<u16>)> = parents_of(r, services)
            .into_iter()
            .filter(|&(i, si, _)| match bases[si].invalid_parent {
                None => true,
                Some(why) => {
                    let msg = format!(
                        "{} has parent Service {}/{}, which is {why}; Linkerd does not apply routes to it",
                        r.id, bases[si].svc.namespace, bases[si].svc.name
                    );
                    let at = r.span_at(&["spec", "parentRefs", &i.to_string(), "name"]);
                    findings.push(Finding::new(Code::RouteNotAccepted, at, msg).resource(r.id.clone()));
                    false
                }
            })
            .collect();
        if attach_to.is_empty() {
            continue;
        }
        let ctx = Ctx { r, services, bases };
        let Some(route) = ctx.convert(findings) else { continue };
        for (i, si, port) in attach_to {
            ctx.check_opaque(i, si, port, &route, findings);
            let order = (r.meta.creation_timestamp.is_none(), r.meta.creation_timestamp.clone(), r.name().to_owned());
            out[si].push(Attached {
                resource: ri,
                namespace: r.namespace().to_owned(),
                port,
                route: route.clone(),
                order,
            });
        }
    }
    for list in &mut out {
        list.sort_by(|a, b| a.order.cmp(&b.order));
        report_kind_conflicts(resources, list, findings);
    }
    report_stacking(resources, &out, services, findings);
    out
}

/// GEP-1426: a backend that is itself the parent of an accepted route is
/// sent to directly; that route's rules do not apply to this traffic.
/// Sending to one of the route's own parents is the usual split, not stacking.
fn report_stacking(
    resources: &[Resource],
    out: &[Vec<Attached>],
    services: &ServiceIndex,
    findings: &mut Vec<Finding>,
) {
    let mut own: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut routes: BTreeMap<usize, &RouteKind> = BTreeMap::new();
    for (si, list) in out.iter().enumerate() {
        for a in list {
            own.entry(a.resource).or_default().insert(si);
            routes.insert(a.resource, &a.route);
        }
    }
    for (ri, route) in routes {
        let r = &resources[ri];
        let rules: Vec<&[Backend]> = match route {
            RouteKind::Http(h) => h.rules.iter().map(|rule| rule.backends.as_slice()).collect(),
            RouteKind::Grpc(g) => g.rules.iter().map(|rule| rule.backends.as_slice()).collect(),
        };
        for (k, backends) in rules.into_iter().enumerate() {
            // One backend per backendRef, in order, so `j` is the ref's index.
            for (j, b) in backends.iter().enumerate() {
                let BackendTarget::Service { namespace, name, .. } = &b.target else { continue };
                let Some(&si) = services.get(&(namespace.clone(), name.clone())) else { continue };
                if out[si].is_empty() || own[&ri].contains(&si) {
                    continue;
                }
                let msg = format!(
                    "{} sends to Service {namespace}/{name}, which is itself the parent of a route; routes do not stack, so that route's rules (timeouts, retries, splits) do not apply to this traffic",
                    r.id
                );
                let at = r.span_at(&["spec", "rules", &k.to_string(), "backendRefs", &j.to_string(), "name"]);
                findings.push(Finding::new(Code::RouteStacking, at, msg).resource(r.id.clone()));
            }
        }
    }
}

fn report_missing_parents(r: &Resource, services: &ServiceIndex, findings: &mut Vec<Finding>) {
    for (i, p) in parent_refs(r).iter().enumerate() {
        let ns = p.namespace.clone().unwrap_or_else(|| r.namespace().to_owned());
        if is_service_parent(p) && !services.contains_key(&(ns.clone(), p.name.clone())) {
            let msg = format!(
                "{} parentRef names Service {ns}/{}, which does not exist; the route is not accepted and has no effect",
                r.id, p.name
            );
            let at = r.span_at(&["spec", "parentRefs", &i.to_string(), "name"]);
            let f = Finding::new(Code::UnresolvedReference, at, msg).resource(r.id.clone());
            findings.push(f.referent(Referent::object("Service", &ns, &p.name)));
        }
    }
}

/// GRPCRoutes win over HTTPRoutes on the same Service port (§7.1 applies outbound too).
fn report_kind_conflicts(resources: &[Resource], list: &[Attached], findings: &mut Vec<Finding>) {
    let grpc_ports: Vec<Option<u16>> =
        list.iter().filter(|a| matches!(a.route, RouteKind::Grpc(_))).map(|a| a.port).collect();
    for a in list.iter().filter(|a| matches!(a.route, RouteKind::Http(_))) {
        if grpc_ports.iter().any(|g| g.is_none() || a.port.is_none() || *g == a.port) {
            let r = &resources[a.resource];
            let msg = format!(
                "{} is not used by clients: a GRPCRoute on the same Service port takes precedence (RouteReasonConflicted)",
                r.id
            );
            findings.push(
                Finding::new(Code::RouteNotAccepted, r.span_at(&["spec", "parentRefs"]), msg).resource(r.id.clone()),
            );
        }
    }
}

struct Ctx<'a> {
    r: &'a Resource,
    services: &'a ServiceIndex,
    bases: &'a [ServiceBase],
}

impl Ctx<'_> {
    /// The route converted for client proxies, or `None` when Linkerd drops it.
    fn convert(&self, findings: &mut Vec<Finding>) -> Option<RouteKind> {
        let r = self.r;
        let a = &r.meta.annotations;
        let mut problems = Problems::new();
        let annotated = annotations::timeouts(a, &mut problems);
        let retry = annotations::retry(a, &mut problems);
        if !problems.is_empty() {
            report(r, problems, "Linkerd fails to convert the route and drops it, so its rules do not apply", findings);
            return None;
        }
        let use_annotations = annotations::has_timeouts(a);
        let result = match &r.spec {
            Spec::HttpRoute(h) => {
                let rules = h.effective_rules();
                let mut out = Vec::new();
                for (k, rule) in rules.iter().enumerate() {
                    let matches = rule
                        .matches
                        .as_deref()
                        .unwrap_or(&[Default::default()])
                        .iter()
                        .map(convert_http_match)
                        .collect::<Result<Vec<_>, _>>();
                    let matches = match matches {
                        Ok(m) => m,
                        Err(why) => return self.dropped(&why, findings),
                    };
                    let timeouts =
                        if use_annotations { annotated.clone() } else { self.rule_timeouts(k, rule, findings) };
                    let filters = self.filters(k, &rule.filters, findings);
                    let backends = self.backends(k, &rule.backend_refs, findings);
                    self.check_retry(k, &matches, retry.as_ref(), findings);
                    out.push(OutboundHttpRule { matches, filters, backends, timeouts, retry: retry.clone() });
                }
                Ok(RouteKind::Http(OutboundHttpRoute { meta: meta(r), hostnames: hostnames(&h.hostnames), rules: out }))
            }
            Spec::GrpcRoute(g) => {
                let mut out = Vec::new();
                for (k, rule) in g.rules.iter().enumerate() {
                    let matches = match rule.matches.iter().map(convert_grpc_match).collect::<Result<Vec<_>, _>>() {
                        Ok(m) => m,
                        Err(why) => return self.dropped(&why, findings),
                    };
                    let filters = self.filters(k, &rule.filters, findings);
                    let backends = self.backends(k, &rule.backend_refs, findings);
                    out.push(OutboundGrpcRule {
                        matches,
                        filters,
                        backends,
                        timeouts: annotated.clone(),
                        retry: retry.clone(),
                    });
                }
                if out.is_empty() {
                    let rule = OutboundGrpcRule {
                        matches: vec![],
                        filters: vec![],
                        backends: vec![],
                        timeouts: annotated,
                        retry,
                    };
                    out.push(rule);
                }
                Ok(RouteKind::Grpc(OutboundGrpcRoute { meta: meta(r), hostnames: hostnames(&g.hostnames), rules: out }))
            }
            _ => Err(()),
        };
        result.ok()
    }

    fn dropped(&self, why: &str, findings: &mut Vec<Finding>) -> Option<RouteKind> {
        let msg = format!("{} is dropped by Linkerd's outbound index: {why}", self.r.id);
        findings.push(
            Finding::new(Code::RouteNotAccepted, self.r.span_at(&["spec", "rules"]), msg).resource(self.r.id.clone()),
        );
        None
    }

    /// `rules[k].timeouts.request`: Gateway API routes use Linkerd's
    /// grammar (a bad value is silently ignored), Linkerd's own HTTPRoute a
    /// Kubernetes duration.
    fn rule_timeouts(&self, k: usize, rule: &HttpRouteRule, findings: &mut Vec<Finding>) -> Timeouts {
        let Some(t) = &rule.timeouts else { return Timeouts::default() };
        let parse = |v: &str| if self.r.group == "policy.linkerd.io" { parse_go(v) } else { parse_linkerd(v) };
        let mut field = |name: &str, v: &Option<String>| -> Option<u64> {
            let v = v.as_deref()?;
            match parse(v) {
                Ok(ms) => Some(ms).filter(|ms| *ms > 0),
                Err(e) => {
                    let msg = format!(
                        "{} rule {k} timeouts.{name}: {e}; Linkerd silently ignores it, so the rule has no such timeout",
                        self.r.id
                    );
                    let at = self.r.span_at(&["spec", "rules", &k.to_string(), "timeouts", name]);
                    findings.push(Finding::new(Code::InvalidDuration, at, msg).resource(self.r.id.clone()));
                    None
                }
            }
        };
        let request_ms = field("request", &t.request);
        // backendRequest is validated but not used outbound (§8.2).
        let _ = field("backendRequest", &t.backend_request);
        Timeouts { request_ms, ..Timeouts::default() }
    }

    /// Rule filters Linkerd's client proxy applies; others are dropped.
    fn filters(&self, k: usize, filters: &[RouteFilter], findings: &mut Vec<Finding>) -> Vec<HttpFilter> {
        let mut out = Vec::new();
        for (j, f) in filters.iter().enumerate() {
            match convert_filter(f, true) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => {}
                Err(why) => {
                    let msg = format!(
                        "{} rule {k}: {why} on the client side; the filter is dropped and the rule applies without it",
                        self.r.id
                    );
                    let at = self.r.span_at(&["spec", "rules", &k.to_string(), "filters", &j.to_string(), "type"]);
                    findings.push(Finding::new(Code::UnsupportedFilter, at, msg).resource(self.r.id.clone()));
                }
            }
        }
        out
    }

    /// The rule's backends; an empty list means the parent Service, filled in per port.
    fn backends(&self, k: usize, refs: &[BackendRef], findings: &mut Vec<Finding>) -> Vec<Backend> {
        let ns = self.r.namespace();
        let mut out = Vec::new();
        for (j, b) in refs.iter().enumerate() {
            let at =
                |field: &str| self.r.span_at(&["spec", "rules", &k.to_string(), "backendRefs", &j.to_string(), field]);
            let weight = b.weight.map_or(1, |w| u32::try_from(w).unwrap_or(0));
            let bns = b.namespace.clone().unwrap_or_else(|| ns.to_owned());
            // An error: where, why, and the Service named when it does not exist.
            let target = if !is_service_ref(b.group.as_deref(), b.kind.as_deref()) {
                Err((at("kind"), format!("kind {} is not a Service", b.kind.as_deref().unwrap_or("?")), None))
            } else if let Some(f) = b.filters.first() {
                let ty = f.get("type").and_then(|t| t.as_str()).unwrap_or("?");
                Err((at("filters"), format!("backend filter {ty} is not supported"), None))
            } else {
                match (self.services.get(&(bns.clone(), b.name.clone())), b.port.and_then(|p| u16::try_from(p).ok())) {
                    (None, _) => {
                        let missing = Referent::object("Service", &bns, &b.name);
                        Err((at("name"), format!("Service {bns}/{} does not exist", b.name), Some(missing)))
                    }
                    (Some(_), None) => Err((at("name"), "it has no port (required)".to_owned(), None)),
                    (Some(_), Some(port)) => Ok(BackendTarget::Service { namespace: bns, name: b.name.clone(), port }),
                }
            };
            let target = target.unwrap_or_else(|(span, reason, missing)| {
                let msg =
                    format!("{} rule {k} backend {}: {reason}; requests routed to it fail with 500", self.r.id, b.name);
                findings.push(
                    Finding::new(Code::BackendUnresolved, span, msg).resource(self.r.id.clone()).referent(missing),
                );
                BackendTarget::Invalid { reason }
            });
            out.push(Backend { target, weight, filters: Vec::new() });
        }
        if !out.is_empty() && out.iter().all(|b| b.weight == 0) {
            let msg = format!(
                "{} rule {k}: every backendRef has weight 0, so every request on this rule fails with 500",
                self.r.id
            );
            let at = self.r.span_at(&["spec", "rules", &k.to_string(), "backendRefs"]);
            findings.push(Finding::new(Code::BackendWeightsZero, at, msg).resource(self.r.id.clone()));
        }
        out
    }

    fn check_retry(&self, k: usize, matches: &[HttpMatch], retry: Option<&Retry>, findings: &mut Vec<Finding>) {
        if retry.is_none() {
            return;
        }
        if let Some(m) = matches.iter().filter_map(|m| m.method.as_deref()).find(|m| is_non_idempotent(m)) {
            let msg = format!(
                "{} retries its rule {k}, which matches {m} requests: a {m} that reached the server and failed may be applied twice",
                self.r.id
            );
            let at = self.r.span_at(&["metadata", "annotations"]);
            findings.push(Finding::new(Code::RetryNonIdempotent, at, msg).resource(self.r.id.clone()));
        }
    }

    fn check_opaque(&self, i: usize, si: usize, port: Option<u16>, route: &RouteKind, findings: &mut Vec<Finding>) {
        let svc = &self.bases[si].svc;
        let opaque: Vec<u16> = svc
            .ports
            .iter()
            .filter(|p| p.protocol == OutboundProtocol::Opaque && port.is_none_or(|q| q == p.port))
            .map(|p| p.port)
            .collect();
        if opaque.is_empty() || (port.is_none() && opaque.len() < svc.ports.len()) {
            return;
        }
        let kind = if matches!(route, RouteKind::Grpc(_)) { "GRPCRoute" } else { "HTTPRoute" };
        let ports: Vec<String> = opaque.iter().map(u16::to_string).collect();
        let msg = format!(
            "{} is a {kind} on Service {}/{} port {}, which is opaque: clients send raw TCP there and the route never applies",
            self.r.id,
            svc.namespace,
            svc.name,
            ports.join(", ")
        );
        let at = self.r.span_at(&["spec", "parentRefs", &i.to_string()]);
        findings.push(Finding::new(Code::OpaquePortHttpRoute, at, msg).resource(self.r.id.clone()));
    }
}

pub fn is_non_idempotent(method: &str) -> bool {
    method.eq_ignore_ascii_case("POST") || method.eq_ignore_ascii_case("PATCH")
}
