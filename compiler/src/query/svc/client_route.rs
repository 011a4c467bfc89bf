//! The client's side of a call to a Service: what its proxy does with the
//! request, decided by `mesh_proxy_api::outbound::route_outbound` on the
//! Service as the client's namespace sees it (semantics reference §8).

use super::target::ServiceTarget;
use crate::pipeline::Outcome;
use crate::query::clients::ClientKind;
use crate::query::reach::ClientView;
use mesh_proxy_api::HttpRequest;
use mesh_proxy_api::outbound::{
    Backend, BackendTarget, OutboundRoute, OutboundService, Profile, ProfileRoute, Retry, RouteTarget, RuleBackends,
    Timeouts, route_outbound,
};
use mesh_proxy_api::outbound::{ConnectionRoute, SniMatch, route_connection};
use serde::Serialize;

/// Who sends the request: a proxy that applies outbound policy, or none.
pub struct Sender {
    /// Whether a Linkerd proxy routes the client's outbound traffic.
    pub proxy: bool,
    /// The client's namespace, when known: consumer routes and
    /// ServiceProfiles there apply to it (§8.1, §8.5).
    pub namespace: Option<String>,
}

/// The client's proxy and namespace, as far as the client reference tells.
pub fn sender(o: &Outcome, c: &ClientView) -> Sender {
    match c.kind {
        ClientKind::Workload => {
            let w = c.workload.map(|wi| &o.resolved.workloads[wi]);
            Sender { proxy: w.is_some_and(|w| w.meshed.is_ok()), namespace: w.map(|w| w.namespace.clone()) }
        }
        ClientKind::Identity => Sender { proxy: true, namespace: identity_namespace(&c.spec, c.identity.as_deref()) },
        ClientKind::Unmeshed => Sender { proxy: false, namespace: c.spec.strip_prefix("unmeshed:").map(str::to_owned) },
        ClientKind::Kubelet | ClientKind::External | ClientKind::Localhost | ClientKind::Cidr => {
            Sender { proxy: false, namespace: None }
        }
    }
}

/// `sa:NS/NAME` names its namespace; an identity `NAME.NS.serviceaccount...` too.
fn identity_namespace(spec: &str, identity: Option<&str>) -> Option<String> {
    if let Some((ns, _)) = spec.strip_prefix("sa:").and_then(|r| r.split_once('/')) {
        return Some(ns.to_owned());
    }
    let labels: Vec<&str> = identity?.split('.').collect();
    match labels.as_slice() {
        [sa, ns, "serviceaccount", ..] if *sa != "*" && *ns != "*" => Some((*ns).to_owned()),
        _ => None,
    }
}

/// The Service as the client's proxy holds it: the client workload's own
/// config when `meshc build` gave it one, else the view of the client's
/// namespace (what the config would hold; the default when it holds none).
pub fn service_view(o: &Outcome, c: &ClientView, ns: Option<&str>, t: &ServiceTarget) -> Option<OutboundService> {
    let built =
        c.workload.and_then(|wi| o.configs[wi].as_ref()).and_then(|cfg| cfg.outbound.service(&t.namespace, &t.name));
    if let Some(s) = built {
        return Some(s.clone());
    }
    let si = o.outbound.find(&t.namespace, &t.name)?;
    Some(o.outbound.service_for(si, ns.unwrap_or("")))
}

/// One backend of the chosen rule, before the inbound side is asked.
#[derive(Clone, Debug)]
pub enum BackendRef {
    Service {
        namespace: String,
        name: String,
        port: u16,
    },
    /// Requests sent here fail in the client's proxy with 500.
    Invalid {
        reason: String,
    },
    /// A ServiceProfile dstOverride to an authority that is not a Service
    /// of this cluster: where it leads, git does not say.
    Elsewhere {
        authority: String,
    },
}

impl BackendRef {
    pub fn label(&self) -> String {
        match self {
            BackendRef::Service { namespace, name, port } => format!("{namespace}/{name}:{port}"),
            BackendRef::Invalid { reason } => format!("invalid backend ({reason})"),
            BackendRef::Elsewhere { authority } => authority.clone(),
        }
    }
}

/// What the client's proxy chose, as `reach` reports it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientRoute {
    /// `HTTPRoute`, `GRPCRoute`, `TCPRoute`, `TLSRoute`, `ServiceProfile`,
    /// `default` (no routes: the Service itself), `opaque` (TCP to the
    /// Service), `no-route` (404, or a connection no TLSRoute takes),
    /// `no-proxy` (kube-proxy alone), `undeclared-port` (the Service has no
    /// such port), `not-exposed` (a ClusterIP Service called from outside
    /// the cluster).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rule that matched (Gateway API routes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// The ServiceProfile route that matched (none: the profile's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_route: Option<String>,
    /// When the client's proxy answers every such request itself: 404 (no
    /// route matches), 500 (no usable backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// A ServiceProfile route whose failures are retried within the budget.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
    /// The SNI of the TLS connection routed (`reach --sni`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Whether the client's proxy routes the whole connection (a TCPRoute
    /// or TLSRoute): the backends see a connection, not a request.
    #[serde(skip)]
    pub connection: bool,
    /// In words, for the proof.
    #[serde(skip)]
    pub detail: String,
    /// Where the route comes from, to cite it: (kind, namespace candidates, name).
    #[serde(skip)]
    pub origin: Option<RouteOrigin>,
}

#[derive(Clone, Debug)]
pub struct RouteOrigin {
    pub meta: mesh_proxy_api::Meta,
    /// A ServiceProfile's namespace; routes carry none (the Service's or the client's).
    pub namespace: Option<String>,
}

impl ClientRoute {
    fn new(kind: &'static str, detail: String) -> Self {
        ClientRoute {
            kind,
            name: None,
            rule: None,
            profile_route: None,
            status: None,
            timeouts: Timeouts::default(),
            retry: None,
            retryable: false,
            sni: None,
            connection: false,
            detail,
            origin: None,
        }
    }
}

/// The client route and the weighted backends requests on it go to.
pub struct Routed {
    pub route: ClientRoute,
    pub backends: Vec<(BackendRef, u32)>,
}

/// What a client without a proxy does: kube-proxy sends the connection to
/// one of the Service's endpoints, so no route or profile applies.
pub fn unproxied(t: &ServiceTarget) -> Routed {
    let detail = "the client has no Linkerd proxy: kube-proxy sends the connection to an endpoint of the Service, no route, profile, timeout or retry applies".to_owned();
    Routed { route: ClientRoute::new("no-proxy", detail), backends: vec![(itself(t), 1)] }
}

/// A port the Service does not declare: kube-proxy has no rule for it, and
/// Linkerd's policy controller answers the client proxy's lookup with a
/// `Forbidden` opaque route (`undefined_port` in policy-controller/grpc/src/outbound.rs).
pub fn undeclared(t: &ServiceTarget) -> Routed {
    let detail = format!(
        "Service {}/{} declares no TCP port {}: kube-proxy has no rule for it and Linkerd's policy controller gives the client proxy a Forbidden route, so the connection is refused",
        t.namespace, t.name, t.port
    );
    Routed { route: ClientRoute::new("undeclared-port", detail), backends: Vec::new() }
}

/// A client outside the cluster networks calling a Service that only has a
/// cluster IP: no address of the Service is routable from where it is.
pub fn not_exposed(t: &ServiceTarget) -> Routed {
    let detail = format!(
        "Service {}/{} is of type ClusterIP: a client outside the cluster networks has no address to reach it by (NodePort or LoadBalancer would give one)",
        t.namespace, t.name
    );
    Routed { route: ClientRoute::new("not-exposed", detail), backends: Vec::new() }
}

/// Whether the Service gives clients outside the cluster an address.
pub fn exposed(o: &Outcome, t: &ServiceTarget) -> bool {
    match &o.resolved.resources[t.resource].spec {
        crate::model::Spec::Service(s) => matches!(s.type_.as_deref(), Some("NodePort" | "LoadBalancer")),
        _ => false,
    }
}

fn itself(t: &ServiceTarget) -> BackendRef {
    BackendRef::Service { namespace: t.namespace.clone(), name: t.name.clone(), port: t.port }
}

/// Routes `req` (or, with `sni`, a TLS connection naming it) as the
/// client's proxy would: the connection first (`route_connection`: a
/// TCPRoute, the TLSRoute for the SNI, or none), then, on a port that
/// routes requests, the request (`route_outbound`).
pub fn route(svc: &OutboundService, t: &ServiceTarget, req: &HttpRequest, sni: Option<&str>, domain: &str) -> Routed {
    let mut routed = match route_connection(svc, t.port, sni) {
        None => return undeclared(t),
        Some(ConnectionRoute::Requests) if sni.is_none() => return route_request(svc, t, req, domain),
        Some(ConnectionRoute::Requests | ConnectionRoute::Service { .. }) => to_service_as_tcp(t, sni),
        Some(ConnectionRoute::Route { route, backends, sni: matched }) => stream_routed(route, backends, sni, matched),
        Some(ConnectionRoute::NoRoute) => no_stream_route(t, sni),
    };
    routed.route.sni = sni.map(str::to_owned);
    routed
}

/// No connection route takes it: the connection goes to the Service as TCP
/// (an opaque port, or TLS on a port whose detection finds no HTTP).
fn to_service_as_tcp(t: &ServiceTarget, sni: Option<&str>) -> Routed {
    let detail = match sni {
        Some(_) => {
            "no TCPRoute or TLSRoute serves the port and a TLS connection is not HTTP: the client's proxy sends it to the Service as TCP"
        }
        None => "the port is opaque: the connection goes to the Service as TCP, no HTTP route applies",
    };
    let mut route = ClientRoute::new("opaque", detail.to_owned());
    route.connection = true;
    Routed { route, backends: vec![(itself(t), 1)] }
}

/// A TCPRoute, or the TLSRoute the SNI selected: one backend by weight per connection.
fn stream_routed(meta: &mesh_proxy_api::Meta, backends: &[Backend], sni: Option<&str>, m: Option<SniMatch>) -> Routed {
    let tls = meta.kind == "tlsroute";
    let kind = if tls { "TLSRoute" } else { "TCPRoute" };
    let how = match (tls, sni, m) {
        (false, _, _) => "takes every connection to the port (a TCPRoute has no match)".to_owned(),
        (true, Some(s), Some(SniMatch::Exact(_))) => {
            format!("names SNI {s} exactly (an exact name beats any wildcard)")
        }
        (true, Some(s), Some(SniMatch::Suffix(_))) => {
            format!("matches SNI {s} by a wildcard hostname (the longest matching suffix, no exact name)")
        }
        (true, _, _) => "lists no hostnames, so it takes any SNI no other TLSRoute names".to_owned(),
    };
    let mut route = ClientRoute::new(kind, format!("{kind} {} {how}", meta.name));
    route.name = Some(meta.name.clone());
    route.connection = true;
    route.origin = Some(RouteOrigin { meta: meta.clone(), namespace: None });
    Routed { route, backends: backends.iter().map(|b| (backend_ref(b), b.weight)).collect() }
}

/// TLSRoutes serve the port and none takes this connection: the client's
/// proxy closes it (no HTTP status: it is not HTTP).
fn no_stream_route(t: &ServiceTarget, sni: Option<&str>) -> Routed {
    let detail = match sni {
        Some(s) => format!(
            "TLSRoutes serve port {} and none names SNI {s} (nor lists no hostnames): the client's proxy closes the connection",
            t.port
        ),
        None => format!(
            "TLSRoutes serve port {}: a connection without a TLS ClientHello naming an SNI (plain HTTP here; give --sni for TLS) matches none, and the client's proxy closes it",
            t.port
        ),
    };
    let mut route = ClientRoute::new("no-route", detail);
    route.connection = true;
    Routed { route, backends: Vec::new() }
}

/// Routes the request on a port that routes requests.
fn route_request(svc: &OutboundService, t: &ServiceTarget, req: &HttpRequest, cluster_domain: &str) -> Routed {
    let Some(outcome) = route_outbound(svc, t.port, req) else { return undeclared(t) };
    let status = outcome.local_status();
    let mut routed = match outcome {
        OutboundRoute::Opaque => to_service_as_tcp(t, None),
        OutboundRoute::NotFound => {
            let detail = format!(
                "routes are attached to port {} and none matches {} {}: the client's proxy answers 404 itself",
                t.port, req.method, req.path
            );
            Routed { route: ClientRoute::new("no-route", detail), backends: Vec::new() }
        }
        OutboundRoute::Default { target } => {
            let mut route = ClientRoute::new(
                "default",
                "no route is attached to the port: the default route sends every request to the Service itself".into(),
            );
            shaping(&mut route, &target);
            Routed { route, backends: backends(&target) }
        }
        OutboundRoute::Rule { route: meta, selection, target } => {
            let kind = if meta.kind == "grpcroute" { "GRPCRoute" } else { "HTTPRoute" };
            let mut route = ClientRoute::new(
                kind,
                format!("{kind} {} rule {} matches {} {}", meta.name, selection.rule, req.method, req.path),
            );
            route.name = Some(meta.name.clone());
            route.rule = Some(selection.rule);
            route.origin = Some(RouteOrigin { meta: meta.clone(), namespace: None });
            shaping(&mut route, &target);
            Routed { route, backends: backends(&target) }
        }
        OutboundRoute::Profile { profile, route: matched } => profile_routed(profile, matched, t, cluster_domain),
    };
    routed.route.status = status;
    routed
}

fn shaping(route: &mut ClientRoute, target: &RouteTarget) {
    route.timeouts = target.timeouts.clone();
    route.retry = target.retry.cloned();
}

fn backends(target: &RouteTarget) -> Vec<(BackendRef, u32)> {
    match target.backends {
        RuleBackends::Service { namespace, name, port } => {
            vec![(BackendRef::Service { namespace: namespace.to_owned(), name: name.to_owned(), port }, 1)]
        }
        RuleBackends::Weighted(list) => list.iter().map(|b| (backend_ref(b), b.weight)).collect(),
    }
}

fn backend_ref(b: &Backend) -> BackendRef {
    match &b.target {
        BackendTarget::Service { namespace, name, port } => {
            BackendRef::Service { namespace: namespace.clone(), name: name.clone(), port: *port }
        }
        BackendTarget::Invalid { reason } => BackendRef::Invalid { reason: reason.clone() },
    }
}

/// A ServiceProfile governs the Service (§8.5): the first matching route
/// (or none, the default) times the request; dstOverrides split it.
fn profile_routed(profile: &Profile, matched: Option<&ProfileRoute>, t: &ServiceTarget, domain: &str) -> Routed {
    let mut route = ClientRoute::new(
        "ServiceProfile",
        match matched {
            Some(r) => {
                format!("ServiceProfile {} route `{}` is the first whose condition matches", profile.name, r.name)
            }
            None => format!(
                "ServiceProfile {} governs the Service and no route of it matches: the default behaviour (profiles never answer 404)",
                profile.name
            ),
        },
    );
    route.name = Some(profile.name.clone());
    route.profile_route = matched.map(|r| r.name.clone());
    route.timeouts.request_ms = matched.and_then(|r| r.timeout_ms);
    route.retryable = matched.is_some_and(|r| r.is_retryable);
    let meta = mesh_proxy_api::Meta { kind: "serviceprofile".into(), group: None, name: profile.name.clone() };
    route.origin = Some(RouteOrigin { meta, namespace: Some(profile.namespace.clone()) });
    let backends = if profile.dst_overrides.is_empty() {
        vec![(itself(t), 1)]
    } else {
        profile.dst_overrides.iter().map(|d| (authority_backend(&d.authority, t.port, domain), d.weight)).collect()
    };
    Routed { route, backends }
}

/// `NAME.NAMESPACE.svc.DOMAIN[:PORT]` (the port defaults to the one called).
/// Any other authority is not a Service of this cluster (`Elsewhere`).
fn authority_backend(authority: &str, port: u16, domain: &str) -> BackendRef {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => (authority, port),
        },
        None => (authority, port),
    };
    let host = host.trim_end_matches('.');
    let suffix = format!(".svc.{}", domain.trim_end_matches('.'));
    match host.strip_suffix(&suffix).and_then(|h| h.split_once('.')) {
        Some((name, namespace)) if !namespace.contains('.') => {
            BackendRef::Service { namespace: namespace.to_owned(), name: name.to_owned(), port }
        }
        _ => BackendRef::Elsewhere { authority: authority.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(b: BackendRef) -> Option<(String, String, u16)> {
        match b {
            BackendRef::Service { namespace, name, port } => Some((namespace, name, port)),
            _ => None,
        }
    }

    #[test]
    fn dst_override_authorities_name_services_of_the_cluster_domain() {
        let b = authority_backend("metrics-test.ns.svc.cluster.local", 9090, "cluster.local");
        assert_eq!(service(b), Some(("ns".into(), "metrics-test".into(), 9090)));
        // A port in the authority wins over the one called; a trailing dot is the same name.
        let b = authority_backend("books.booksapp.svc.cluster.local.:7002", 80, "cluster.local");
        assert_eq!(service(b), Some(("booksapp".into(), "books".into(), 7002)));
        // Another cluster domain, or a name outside the cluster, is not a Service here.
        assert!(matches!(authority_backend("a.b.svc.other.domain", 80, "cluster.local"), BackendRef::Elsewhere { .. }));
        assert!(matches!(authority_backend("example.com:443", 80, "cluster.local"), BackendRef::Elsewhere { .. }));
    }

    #[test]
    fn identity_clients_name_their_namespace_when_they_can() {
        assert_eq!(identity_namespace("sa:shop/web", None).as_deref(), Some("shop"));
        let id = "web.shop.serviceaccount.identity.linkerd.cluster.local";
        assert_eq!(identity_namespace(id, Some(id)).as_deref(), Some("shop"));
        // A pattern names no one namespace: producer routes only.
        let any = "*.shop.serviceaccount.identity.linkerd.cluster.local";
        assert_eq!(identity_namespace(any, Some(any)), None);
        assert_eq!(identity_namespace("spiffe", Some("spiffe")), None);
    }
}
