//! Routes with an EgressNetwork parent, and each client namespace's egress
//! config. Attachment follows Linkerd's outbound index
//! (`policy-controller/k8s/index/src/outbound/index.rs`, `apply_http_route`
//! and friends): the parent must be in the route's own namespace and name a
//! port, and the status controller must accept it (the EgressNetwork exists
//! and is accepted; a GRPCRoute on the same parent wins over HTTPRoutes).
//! Backends follow `policy-controller/grpc/src/outbound/http.rs`
//! (`convert_backend`): the parent EgressNetwork itself forwards to the
//! original destination, a Service redirects there, anything else fails
//! with 500 (TLSRoutes and TCPRoutes: the connection is closed). Route
//! kinds conflict per parent port as in the status controller
//! (`parent_has_conflicting_routes`): gRPC over HTTP over TLS over TCP;
//! the conversion of TLSRoutes and TCPRoutes is in `egress_streams`.

use super::durations::{parse_go, parse_linkerd};
use super::routes::ServiceIndex;
use crate::findings::{Code, Finding, Referent};
use crate::model::egress_admission::is_egress_parent;
use crate::model::route::{BackendRef, ParentRef, RouteFilter};
use crate::model::{Resource, Spec};
use crate::resolve::Resolved;
use crate::resolve::egress::{self as nets, EgressNet, EgressNets};
use crate::resolve::index::Kind;
use crate::resolve::routes::{convert_filter, convert_grpc_match, convert_http_match, hostnames, meta};
use ipnet::IpNet;
use mesh_proxy_api::HttpFilter;
use mesh_proxy_api::outbound::Timeouts;
use mesh_proxy_api::outbound::egress::{
    Egress, EgressBackend, EgressGrpcRoute, EgressHttpRoute, EgressNetwork, EgressPort, EgressRoute, EgressRule,
    EgressTarget, EgressTcpRoute, EgressTlsRoute, TrafficPolicy,
};
use std::collections::{BTreeMap, HashMap};

/// Every EgressNetwork with its accepted routes, ready to be given to clients.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    pub nets: EgressNets,
    /// (namespace, name) → the network as the proxy config carries it.
    lowered: HashMap<(String, String), EgressNetwork>,
    /// (namespace, name, port, route name) → route resource, for proofs.
    pub route_resources: HashMap<(String, String, u16, String), usize>,
    cluster_networks: Vec<IpNet>,
}

impl EgressPolicy {
    /// The egress config of a client in `namespace`.
    pub fn for_namespace(&self, namespace: &str) -> Egress {
        let networks: Vec<EgressNetwork> = self
            .nets
            .applicable(namespace)
            .iter()
            .filter_map(|n| self.lowered.get(&(n.namespace.clone(), n.name.clone())).cloned())
            .collect();
        let cluster_networks = if networks.is_empty() { Vec::new() } else { self.cluster_networks.clone() };
        Egress { cluster_networks, networks }
    }
}

/// One route attached to one EgressNetwork port.
struct Attached {
    resource: usize,
    port: u16,
    order: (bool, Option<String>, String),
    route: Lowered,
}

pub(super) enum Lowered {
    Http(EgressHttpRoute),
    Grpc(EgressGrpcRoute),
    Tls(EgressTlsRoute),
    Tcp(EgressTcpRoute),
}

impl Lowered {
    /// Precedence on one parent port (`parent_has_conflicting_routes`): lower wins.
    fn rank(&self) -> u8 {
        match self {
            Lowered::Grpc(_) => 0,
            Lowered::Http(_) => 1,
            Lowered::Tls(_) => 2,
            Lowered::Tcp(_) => 3,
        }
    }
}

/// Reads EgressNetworks and their routes; reports their mistakes.
pub fn analyze(r: &Resolved, services: &ServiceIndex, findings: &mut Vec<Finding>) -> EgressPolicy {
    let nets = EgressNets::read(&r.resources, &r.index, &r.settings);
    nets::report(&nets, &r.resources, &r.settings.cluster_networks, findings);
    let mut attached: BTreeMap<(String, String), Vec<Attached>> = BTreeMap::new();
    let kinds = [Kind::GrpcRoute, Kind::PolicyHttpRoute, Kind::GatewayHttpRoute, Kind::TlsRoute, Kind::TcpRoute];
    for &ri in kinds.iter().flat_map(|k| r.index.all(*k)) {
        let res = &r.resources[ri];
        for (i, p) in parent_refs(res).iter().enumerate() {
            let Some((net, port)) = accepted_parent(res, i, p, &nets, findings) else { continue };
            let ctx = Ctx { r: res, services, nets: &nets, parent: net };
            let Some(route) = ctx.convert(findings) else { continue };
            let order =
                (res.meta.creation_timestamp.is_none(), res.meta.creation_timestamp.clone(), res.name().to_owned());
            let key = (net.namespace.clone(), net.name.clone());
            attached.entry(key).or_default().push(Attached { resource: ri, port, order, route });
        }
    }
    let mut policy = EgressPolicy { cluster_networks: r.settings.cluster_networks.clone(), ..Default::default() };
    for net in nets.all() {
        let key = (net.namespace.clone(), net.name.clone());
        let mut list = attached.remove(&key).unwrap_or_default();
        list.sort_by(|a, b| a.order.cmp(&b.order));
        let ports = ports_of(&r.resources, net, list, &mut policy.route_resources, findings);
        if ports.is_empty() && net.traffic_policy == TrafficPolicy::Deny {
            report_deny_all(&r.resources[net.resource], findings);
        }
        let lowered = EgressNetwork {
            namespace: net.namespace.clone(),
            name: net.name.clone(),
            traffic_policy: net.traffic_policy,
            networks: net.networks.clone(),
            ports,
        };
        policy.lowered.insert(key, lowered);
    }
    policy.nets = nets;
    policy
}

fn parent_refs(r: &Resource) -> &[ParentRef] {
    match &r.spec {
        Spec::HttpRoute(h) => &h.parent_refs,
        Spec::GrpcRoute(g) => &g.parent_refs,
        _ => r.stream_route().map_or(&[], |s| s.parent_refs()),
    }
}

/// The parent EgressNetwork and port, when Linkerd applies the route to it.
fn accepted_parent<'n>(
    r: &Resource,
    i: usize,
    p: &ParentRef,
    nets: &'n EgressNets,
    findings: &mut Vec<Finding>,
) -> Option<(&'n EgressNet, u16)> {
    if !is_egress_parent(p) {
        return None;
    }
    let ns = p.namespace.clone().unwrap_or_else(|| r.namespace().to_owned());
    let at = r.span_at(&["spec", "parentRefs", &i.to_string()]);
    let not_accepted =
        |code: Code, why: String| Finding::new(code, at, format!("{} {why}", r.id)).resource(r.id.clone());
    let Some(net) = nets.get(&ns, &p.name) else {
        let why = format!(
            "has parent EgressNetwork {ns}/{}, which does not exist: the route is not accepted (NoMatchingParent) \
             and shapes no egress",
            p.name
        );
        findings.push(not_accepted(Code::UnresolvedReference, why).referent(Referent::object(
            "EgressNetwork",
            &ns,
            &p.name,
        )));
        return None;
    };
    if ns != r.namespace() {
        let why = format!(
            "has parent EgressNetwork {ns}/{} in another namespace: Linkerd's outbound index applies routes only to \
             EgressNetworks in the route's own namespace, so it shapes no egress",
            p.name
        );
        findings.push(not_accepted(Code::RouteNotAccepted, why));
        return None;
    }
    if !net.accepted {
        let why = format!(
            "has parent EgressNetwork {ns}/{}, which is not accepted (its networks overlap the cluster networks): \
             the route is not accepted either and shapes no egress",
            p.name
        );
        findings.push(not_accepted(Code::RouteNotAccepted, why));
        return None;
    }
    let port = p.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0);
    let Some(port) = port else {
        let why = format!("parentRef {i} has no valid port; the route is not applied to EgressNetwork {ns}/{}", p.name);
        findings.push(not_accepted(Code::RouteNotAccepted, why));
        return None;
    };
    Some((net, port))
}

/// The network's routes by port. On one parent port only the highest kind
/// is accepted (`parent_has_conflicting_routes`: gRPC, HTTP, TLS, TCP), and
/// of TCPRoutes only the oldest is sent (`tcp::protocol` takes one).
fn ports_of(
    resources: &[Resource],
    net: &EgressNet,
    list: Vec<Attached>,
    route_resources: &mut HashMap<(String, String, u16, String), usize>,
    findings: &mut Vec<Finding>,
) -> Vec<EgressPort> {
    let mut ports: BTreeMap<u16, EgressPort> = BTreeMap::new();
    let mut best: BTreeMap<u16, u8> = BTreeMap::new();
    for a in &list {
        let rank = best.entry(a.port).or_insert(u8::MAX);
        *rank = (*rank).min(a.route.rank());
    }
    for a in list {
        let r = &resources[a.resource];
        let entry = ports.entry(a.port).or_insert_with(|| EgressPort::new(a.port));
        let winner = best.get(&a.port).copied().unwrap_or(u8::MAX);
        if a.route.rank() > winner {
            let msg = format!(
                "{} is not accepted on EgressNetwork {}/{} port {}: a route of a higher-precedence kind (GRPCRoute, \
                 HTTPRoute, TLSRoute, TCPRoute in that order) on the same parent port wins (RouteReasonConflicted)",
                r.id, net.namespace, net.name, a.port
            );
            let f = Finding::new(Code::RouteNotAccepted, r.span_at(&["spec", "parentRefs"]), msg);
            findings.push(f.resource(r.id.clone()));
            continue;
        }
        match a.route {
            Lowered::Grpc(g) => entry.grpc_routes.push(g),
            Lowered::Http(h) => entry.http_routes.push(h),
            Lowered::Tls(t) => entry.tls_routes.push(t),
            Lowered::Tcp(t) => match &entry.tcp_route {
                Some(first) => {
                    let msg = format!(
                        "{} on EgressNetwork {}/{} port {} is never used: Linkerd sends one TCPRoute per port, the \
                         oldest (then first by name), {}",
                        r.id, net.namespace, net.name, a.port, first.meta.name
                    );
                    let f = Finding::new(Code::ConnectionRouteShadowed, r.span_at(&["spec", "parentRefs"]), msg);
                    findings.push(f.resource(r.id.clone()));
                    continue;
                }
                None => entry.tcp_route = Some(t),
            },
        }
        let key = (net.namespace.clone(), net.name.clone(), a.port, r.name().to_owned());
        route_resources.insert(key, a.resource);
    }
    ports.into_values().collect()
}

fn report_deny_all(r: &Resource, findings: &mut Vec<Finding>) {
    let msg = format!(
        "EgressNetwork {}/{} has trafficPolicy Deny and no accepted route (HTTPRoute, GRPCRoute, TLSRoute or \
         TCPRoute): every request to its addresses gets 403 (gRPC PERMISSION_DENIED) and every TLS or opaque \
         connection is closed",
        r.namespace(),
        r.name()
    );
    let f = Finding::new(Code::EgressDenyAll, r.span_at(&["spec", "trafficPolicy"]), msg);
    findings.push(f.resource(r.id.clone()).hint("attach routes for the external destinations clients need"));
}

pub(super) struct Ctx<'a> {
    pub(super) r: &'a Resource,
    services: &'a ServiceIndex,
    nets: &'a EgressNets,
    parent: &'a EgressNet,
}

/// The fields of a backendRef that say where it points (HTTP, gRPC, TLS and TCP routes share them).
pub(super) struct BackendParts<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub port: Option<i64>,
}

/// Why a backendRef points nowhere: the field at fault, the reason, and the
/// object it names when that object does not exist.
pub(super) type Unresolved = (&'static str, String, Option<Referent>);

impl<'a> BackendParts<'a> {
    fn of_http(b: &'a BackendRef) -> Self {
        BackendParts {
            group: b.group.as_deref(),
            kind: b.kind.as_deref(),
            name: &b.name,
            namespace: b.namespace.as_deref(),
            port: b.port,
        }
    }
}

impl Ctx<'_> {
    /// The route converted for client proxies, or `None` when Linkerd drops it.
    fn convert(&self, findings: &mut Vec<Finding>) -> Option<Lowered> {
        let r = self.r;
        match &r.spec {
            Spec::HttpRoute(h) => {
                let mut rules = Vec::new();
                for (k, rule) in h.effective_rules().iter().enumerate() {
                    let default_match = [Default::default()];
                    let written = rule.matches.as_deref().unwrap_or(&default_match);
                    let matches = self.or_drop(written.iter().map(convert_http_match).collect(), findings)?;
                    let timeouts =
                        self.timeouts(k, rule.timeouts.as_ref().and_then(|t| t.request.as_deref()), findings);
                    let filters = self.filters(k, &rule.filters, findings);
                    let backends = self.backends(k, &rule.backend_refs, findings);
                    rules.push(EgressRule { matches, filters, backends, timeouts });
                }
                Some(Lowered::Http(EgressRoute { meta: meta(r), hostnames: hostnames(&h.hostnames), rules }))
            }
            Spec::GrpcRoute(g) => {
                let mut rules = Vec::new();
                for (k, rule) in g.rules.iter().enumerate() {
                    let matches = self.or_drop(rule.matches.iter().map(convert_grpc_match).collect(), findings)?;
                    let filters = self.filters(k, &rule.filters, findings);
                    let backends = self.backends(k, &rule.backend_refs, findings);
                    rules.push(EgressRule { matches, filters, backends, timeouts: Timeouts::default() });
                }
                if rules.is_empty() {
                    let backends = vec![EgressBackend { target: EgressTarget::Original, weight: 1 }];
                    rules.push(EgressRule {
                        matches: vec![],
                        filters: vec![],
                        backends,
                        timeouts: Timeouts::default(),
                    });
                }
                Some(Lowered::Grpc(EgressRoute { meta: meta(r), hostnames: hostnames(&g.hostnames), rules }))
            }
            _ => self.r.stream_route().map(|route| self.convert_stream(route, findings)),
        }
    }

    fn or_drop<T>(&self, matches: Result<Vec<T>, String>, findings: &mut Vec<Finding>) -> Option<Vec<T>> {
        matches
            .map_err(|why| {
                let msg = format!("{} is dropped by Linkerd's outbound index: {why}", self.r.id);
                let f = Finding::new(Code::RouteNotAccepted, self.r.span_at(&["spec", "rules"]), msg);
                findings.push(f.resource(self.r.id.clone()));
            })
            .ok()
    }

    /// `timeouts.request`: Linkerd's own HTTPRoute uses Go's duration
    /// grammar, the Gateway API's Linkerd's; a bad value is ignored.
    fn timeouts(&self, k: usize, request: Option<&str>, findings: &mut Vec<Finding>) -> Timeouts {
        let Some(v) = request else { return Timeouts::default() };
        let parsed = if self.r.group == "policy.linkerd.io" { parse_go(v) } else { parse_linkerd(v) };
        match parsed {
            Ok(ms) => Timeouts { request_ms: Some(ms).filter(|ms| *ms > 0), ..Timeouts::default() },
            Err(e) => {
                let msg = format!("{} rule {k} timeouts.request: {e}; Linkerd ignores it", self.r.id);
                let at = self.r.span_at(&["spec", "rules", &k.to_string(), "timeouts", "request"]);
                findings.push(Finding::new(Code::InvalidDuration, at, msg).resource(self.r.id.clone()));
                Timeouts::default()
            }
        }
    }

    fn filters(&self, k: usize, filters: &[RouteFilter], findings: &mut Vec<Finding>) -> Vec<HttpFilter> {
        let mut out = Vec::new();
        for (j, f) in filters.iter().enumerate() {
            match convert_filter(f, true) {
                Ok(f) => out.extend(f),
                Err(why) => {
                    let msg = format!("{} rule {k}: {why} on the client side; the filter is dropped", self.r.id);
                    let at = self.r.span_at(&["spec", "rules", &k.to_string(), "filters", &j.to_string(), "type"]);
                    findings.push(Finding::new(Code::UnsupportedFilter, at, msg).resource(self.r.id.clone()));
                }
            }
        }
        out
    }

    /// The rule's backends; none means the parent: forward to the original destination.
    fn backends(&self, k: usize, refs: &[BackendRef], findings: &mut Vec<Finding>) -> Vec<EgressBackend> {
        if refs.is_empty() {
            return vec![EgressBackend { target: EgressTarget::Original, weight: 1 }];
        }
        let mut out = Vec::new();
        for (j, b) in refs.iter().enumerate() {
            let weight = b.weight.map_or(1, |w| u32::try_from(w).unwrap_or(0));
            let parts = BackendParts::of_http(b);
            let target = self.target(&parts).unwrap_or_else(|(field, reason, missing)| {
                let at = self.r.span_at(&["spec", "rules", &k.to_string(), "backendRefs", &j.to_string(), field]);
                let msg =
                    format!("{} rule {k} backend {}: {reason}; requests routed to it fail with 500", self.r.id, b.name);
                findings
                    .push(Finding::new(Code::BackendUnresolved, at, msg).resource(self.r.id.clone()).referent(missing));
                EgressTarget::Invalid { reason }
            });
            out.push(EgressBackend { target, weight });
        }
        out
    }

    /// The backend's target, or the field to point at, why, and the object
    /// named when it does not exist.
    pub(super) fn target(&self, b: &BackendParts<'_>) -> Result<EgressTarget, Unresolved> {
        let ns = b.namespace.map_or_else(|| self.r.namespace().to_owned(), str::to_owned);
        let group = b.group.unwrap_or("");
        let kind = b.kind.unwrap_or("Service");
        if kind.eq_ignore_ascii_case("EgressNetwork") && group.eq_ignore_ascii_case("policy.linkerd.io") {
            if self.nets.get(&ns, b.name).is_none() {
                let missing = Referent::object("EgressNetwork", &ns, b.name);
                return Err(("name", format!("EgressNetwork {ns}/{} does not exist", b.name), Some(missing)));
            }
            if ns != self.parent.namespace || b.name != self.parent.name.as_str() {
                let why = "an EgressNetwork backend must be the route's own EgressNetwork parent";
                return Err(("name", why.to_owned(), None));
            }
            return Ok(EgressTarget::Original);
        }
        if !(kind == "Service" && matches!(group, "" | "core")) {
            return Err(("kind", format!("kind {kind} is not a Service or EgressNetwork"), None));
        }
        if !self.services.contains_key(&(ns.clone(), b.name.to_owned())) {
            let missing = Referent::object("Service", &ns, b.name);
            return Err(("name", format!("Service {ns}/{} does not exist", b.name), Some(missing)));
        }
        match b.port.and_then(|p| u16::try_from(p).ok()) {
            Some(port) => Ok(EgressTarget::Service { namespace: ns, name: b.name.to_owned(), port }),
            None => Err(("name", "it has no port (required)".to_owned(), None)),
        }
    }
}
