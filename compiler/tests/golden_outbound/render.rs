//! How config values read in an assertion: backends as `ns/name:port`,
//! matches as `PathPrefix /slow & header x-canary=true`, and views that
//! let HTTP and gRPC routes be walked alike.

use mesh_proxy_api::config::{GrpcMatch, HeaderMatch, HostMatch, HttpFilter, HttpMatch, Meta, PathMatch, PortRange};
use mesh_proxy_api::config::{QueryParamMatch, StringMatch};
use mesh_proxy_api::outbound::{
    Backend, BackendTarget, OutboundPort, OutboundProtocol, OutboundService, Retry, ServiceRoute, Timeouts,
};
use mesh_proxy_api::{OutboundRoute, RuleBackends};

/// An HTTP or gRPC route, its matches already rendered.
pub struct RouteView<'a> {
    pub meta: &'a Meta,
    pub hostnames: &'a [HostMatch],
    pub rules: Vec<RuleView<'a>>,
}

pub struct RuleView<'a> {
    /// The rule's matches joined with ` | ` (OR); `*` when it has none.
    pub matches: String,
    pub filters: &'a [HttpFilter],
    pub backends: &'a [Backend],
    pub timeouts: &'a Timeouts,
    pub retry: Option<&'a Retry>,
}

fn view<M>(route: &ServiceRoute<M>, render: fn(&M) -> String) -> RouteView<'_> {
    let rules = route
        .rules
        .iter()
        .map(|r| RuleView {
            matches: if r.matches.is_empty() {
                "*".into()
            } else {
                r.matches.iter().map(render).collect::<Vec<_>>().join(" | ")
            },
            filters: &r.filters,
            backends: &r.backends,
            timeouts: &r.timeouts,
            retry: r.retry.as_ref(),
        })
        .collect();
    RouteView { meta: &route.meta, hostnames: &route.hostnames, rules }
}

/// The names of a port's routes in the order the proxy holds them (gRPC
/// routes, which serve the port when there are any, then HTTP routes).
pub fn route_names(p: &OutboundPort) -> impl Iterator<Item = String> + '_ {
    let grpc = p.grpc_routes.iter().map(|r| r.meta.name.clone());
    grpc.chain(p.http_routes.iter().map(|r| r.meta.name.clone()))
}

pub fn route_named<'a>(s: &OutboundService, p: &'a OutboundPort, name: &str) -> Result<RouteView<'a>, String> {
    let grpc = p.grpc_routes.iter().find(|r| r.meta.name == name).map(|r| view(r, grpc_match));
    grpc.or_else(|| p.http_routes.iter().find(|r| r.meta.name == name).map(|r| view(r, http_match))).ok_or_else(|| {
        let names: Vec<String> = route_names(p).collect();
        format!("svc/{}/{}:{} has no route `{name}` (routes: {})", s.namespace, s.name, p.port, names.join(", "))
    })
}

fn http_match(m: &HttpMatch) -> String {
    let path = m.path.as_ref().map(|p| match p {
        PathMatch::Exact(v) => format!("Exact {v}"),
        PathMatch::Prefix(v) => format!("PathPrefix {v}"),
        PathMatch::Regex(v) => format!("Regex {v}"),
    });
    let parts = path
        .into_iter()
        .chain(m.headers.iter().map(header))
        .chain(m.query_params.iter().map(query_param))
        .chain(m.method.iter().map(|v| format!("method {v}")));
    and(parts)
}

fn grpc_match(m: &GrpcMatch) -> String {
    let parts = m
        .service
        .iter()
        .map(|v| format!("service {v}"))
        .chain(m.method.iter().map(|v| format!("method {v}")))
        .chain(m.headers.iter().map(header));
    and(parts)
}

/// Conditions of one match (AND); `*` when it sets none.
fn and(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts.collect();
    if parts.is_empty() { "*".into() } else { parts.join(" & ") }
}

fn header(h: &HeaderMatch) -> String {
    format!("header {}", string_match(&h.name, &h.value))
}

fn query_param(q: &QueryParamMatch) -> String {
    format!("query {}", string_match(&q.name, &q.value))
}

/// `name=value` (exact) or `name~regex`.
fn string_match(name: &str, value: &StringMatch) -> String {
    match value {
        StringMatch::Exact(v) => format!("{name}={v}"),
        StringMatch::Regex(v) => format!("{name}~{v}"),
    }
}

pub fn host(h: &HostMatch) -> String {
    match h {
        HostMatch::Exact(v) => v.clone(),
        HostMatch::Suffix(v) => format!("*.{v}"),
    }
}

pub fn target(t: &BackendTarget) -> String {
    match t {
        BackendTarget::Service { namespace, name, port } => format!("{namespace}/{name}:{port}"),
        BackendTarget::Invalid { .. } => "invalid".into(),
    }
}

pub fn rule_backends(b: &RuleBackends) -> Vec<String> {
    match b {
        RuleBackends::Service { namespace, name, port } => vec![format!("{namespace}/{name}:{port}")],
        RuleBackends::Weighted(b) => b.iter().map(|b| target(&b.target)).collect(),
    }
}

pub fn protocol(p: OutboundProtocol) -> &'static str {
    match p {
        OutboundProtocol::Detect => "detect",
        OutboundProtocol::Http1 => "http1",
        OutboundProtocol::Http2 => "http2",
        OutboundProtocol::Opaque => "opaque",
    }
}

pub fn outcome(o: &OutboundRoute) -> &'static str {
    match o {
        OutboundRoute::Opaque => "opaque",
        OutboundRoute::Default { .. } => "default",
        OutboundRoute::Rule { .. } => "rule",
        OutboundRoute::Profile { .. } => "profile",
        OutboundRoute::NotFound => "not-found",
    }
}

/// `a` or `a-b`.
pub fn range(min: u16, max: u16) -> String {
    if min == max { min.to_string() } else { format!("{min}-{max}") }
}

pub fn port_range(r: &PortRange) -> String {
    range(r.start, r.end)
}
