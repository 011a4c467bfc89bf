//! Egress: what a client's proxy does with a connection to an address
//! outside the cluster networks (Linkerd 2.17+ EgressNetworks; semantics in
//! `docs/semantics/egress.md`).
//!
//! Linkerd's policy controller answers a lookup of such an address with the
//! best EgressNetwork that applies to the client (`resolve_egress_network`),
//! or with `egress-fallback` (forward to the original destination) when none
//! does. The EgressNetwork's routes for the destination port come first; the
//! controller appends a default route that carries the `trafficPolicy`
//! (Allow: forward; Deny: HTTP 403, gRPC PERMISSION_DENIED, connection closed
//! for TLS and opaque TCP), so an egress request never gets 404.
//!
//! A port serves one kind of route (`to_proto`'s order: gRPC, HTTP, TLS,
//! TCP). HTTP and gRPC routes decide each request, and a connection that is
//! not HTTP takes the opaque default route; TLSRoutes decide by the
//! ClientHello's SNI and close a connection without one; the one TCPRoute
//! takes every connection (with no default route behind it).

use crate::client::HttpRequest;
use crate::config::{GrpcMatch, HostMatch, HttpFilter, HttpMatch, Meta, Network};
use crate::outbound::Timeouts;
use crate::outbound::stream::{SniMatch, select_by_sni};
use crate::route::{MatchedRoute, RouteSelection, select_grpc_route_for_http, select_http_route};
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The egress part of a workload's outbound config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Egress {
    /// Addresses inside these are in the cluster: never egress.
    #[schemars(with = "Vec<String>")]
    pub cluster_networks: Vec<IpNet>,
    /// The EgressNetworks that apply to this workload: those of its own
    /// namespace if it has any, else those of the global egress namespace.
    /// Sorted in Linkerd's order for equally specific matches: older first
    /// (no timestamp counts as oldest), then namespace, then name.
    pub networks: Vec<EgressNetwork>,
}

impl Egress {
    /// Nothing applies: every external address gets `egress-fallback`.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressNetwork {
    pub namespace: String,
    pub name: String,
    pub traffic_policy: TrafficPolicy,
    /// Absent in the resource means everything outside the cluster
    /// networks; meshc writes that out (0.0.0.0/0 and ::/0 with the cluster
    /// networks as exceptions).
    pub networks: Vec<Network>,
    /// Routes by destination port (a route's parentRef must name a port), sorted by port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EgressPort>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TrafficPolicy {
    Allow,
    Deny,
}

/// The routes of one EgressNetwork for one destination port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressPort {
    pub port: u16,
    /// In Linkerd's order (creationTimestamp, then name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_routes: Vec<EgressHttpRoute>,
    /// When set, these and not `http_routes` serve the port (GRPCRoutes win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc_routes: Vec<EgressGrpcRoute>,
    /// TLSRoutes, in Linkerd's order; they serve the port when it has no
    /// HTTP or gRPC routes (the status controller conflicts them otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_routes: Vec<EgressTlsRoute>,
    /// The oldest TCPRoute (Linkerd sends one); it serves the port when the
    /// port has no other routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_route: Option<EgressTcpRoute>,
}

impl EgressPort {
    pub fn new(port: u16) -> Self {
        EgressPort { port, http_routes: Vec::new(), grpc_routes: Vec::new(), tls_routes: Vec::new(), tcp_route: None }
    }

    /// Which kind of route serves the port (`to_proto`, appProtocol unset).
    fn served_by(&self) -> PortRoutes<'_> {
        if !self.grpc_routes.is_empty() {
            PortRoutes::Grpc(&self.grpc_routes)
        } else if !self.http_routes.is_empty() {
            PortRoutes::Http(&self.http_routes)
        } else if !self.tls_routes.is_empty() {
            PortRoutes::Tls(&self.tls_routes)
        } else if let Some(tcp) = &self.tcp_route {
            PortRoutes::Tcp(tcp)
        } else {
            PortRoutes::None
        }
    }
}

#[derive(Clone, Copy)]
enum PortRoutes<'a> {
    Grpc(&'a [EgressGrpcRoute]),
    Http(&'a [EgressHttpRoute]),
    Tls(&'a [EgressTlsRoute]),
    Tcp(&'a EgressTcpRoute),
    None,
}

/// A TLSRoute with an EgressNetwork parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressTlsRoute {
    pub meta: Meta,
    /// SNI names; empty matches every SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snis: Vec<HostMatch>,
    /// Weighted random choice; never empty.
    pub backends: Vec<EgressBackend>,
}

/// A TCPRoute with an EgressNetwork parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressTcpRoute {
    pub meta: Meta,
    /// Weighted random choice; never empty.
    pub backends: Vec<EgressBackend>,
}

/// What the client's proxy reads of a connection before it can decide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EgressRead {
    /// HTTP detection: HTTP is decided per request, anything else as opaque.
    Detect,
    /// The ClientHello's SNI (TLSRoutes serve the port).
    Sni,
    /// Nothing: a TCPRoute takes every connection.
    Nothing,
}

impl EgressNetwork {
    /// What the proxy reads of a connection to `port` under this network.
    pub fn reads(&self, port: u16) -> EgressRead {
        match self.ports.iter().find(|p| p.port == port).map_or(PortRoutes::None, EgressPort::served_by) {
            PortRoutes::Tls(_) => EgressRead::Sni,
            PortRoutes::Tcp(_) => EgressRead::Nothing,
            PortRoutes::Grpc(_) | PortRoutes::Http(_) | PortRoutes::None => EgressRead::Detect,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "EgressRoute_for_{M}")]
pub struct EgressRoute<M> {
    pub meta: Meta,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<HostMatch>,
    pub rules: Vec<EgressRule<M>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "EgressRule_for_{M}")]
pub struct EgressRule<M> {
    /// OR of matches; an empty list matches every request.
    pub matches: Vec<M>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpFilter>,
    /// Weighted random choice; never empty (a rule without backendRefs
    /// forwards to the original destination).
    pub backends: Vec<EgressBackend>,
    #[serde(default, skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
}

pub type EgressHttpRoute = EgressRoute<HttpMatch>;
pub type EgressGrpcRoute = EgressRoute<GrpcMatch>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressBackend {
    pub target: EgressTarget,
    pub weight: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum EgressTarget {
    /// The EgressNetwork itself: forward to the address the client dialled.
    Original,
    /// Redirected to a Service in the cluster.
    Service { namespace: String, name: String, port: u16 },
    /// A backend Linkerd cannot use: requests sent to it fail with 500.
    Invalid { reason: String },
}

impl<M> MatchedRoute for EgressRoute<M> {
    type Match = M;
    fn hostnames(&self) -> &[HostMatch] {
        &self.hostnames
    }
    fn rule_matches(&self) -> impl Iterator<Item = &[M]> {
        self.rules.iter().map(|rule| rule.matches.as_slice())
    }
}

/// What the client sends once connected, as far as egress policy reads it.
#[derive(Clone, Copy, Debug)]
pub enum EgressTraffic<'r> {
    /// An HTTP request (gRPC is HTTP/2 `POST /service/method`).
    Http(&'r HttpRequest),
    /// A TLS ClientHello with this SNI.
    Tls { sni: &'r str },
    /// Anything else: opaque TCP.
    Opaque,
}

/// The decision for one connection or request to `dst_ip:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressDecision<'a> {
    /// The address is inside the cluster networks: not egress.
    InCluster,
    /// No EgressNetwork of the client covers the address: Linkerd's
    /// `egress-fallback` policy forwards to it.
    Fallback,
    /// `network` (the most specific one covering the address) decides.
    Network { network: &'a EgressNetwork, outcome: EgressOutcome<'a> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressOutcome<'a> {
    /// An explicit HTTP or gRPC route's rule matched.
    Route { route: &'a Meta, selection: RouteSelection, rule: RuleRef<'a> },
    /// A TLSRoute (`sni`: how well its names matched; `None` for a route
    /// without names) or the port's TCPRoute takes the whole connection.
    Connection { route: &'a Meta, backends: &'a [EgressBackend], sni: Option<SniMatch> },
    /// No route applies: the default egress route `via` carries the traffic policy.
    TrafficPolicy { policy: TrafficPolicy, via: DefaultRoute },
    /// TLSRoutes serve the port and the connection brought no ClientHello
    /// with an SNI (plain HTTP, opaque bytes): the proxy closes it.
    SniRequired,
}

/// The default route Linkerd's controller appends for an EgressNetwork
/// (`default_outbound_egress_route` in `grpc/src/outbound/{http,grpc,tls,tcp}.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultRoute {
    /// An HTTP request on a port with HTTP routes or none: 403 when denied.
    Http,
    /// An HTTP request on a port GRPCRoutes serve: grpc-status 7 when denied.
    Grpc,
    /// A TLS connection on a port TLSRoutes serve, none matching its SNI.
    Tls,
    /// A connection detection found not to be HTTP (TLS included) on a port
    /// without TLS routes: the opaque route, closed when denied.
    Opaque,
}

impl DefaultRoute {
    /// The default route's name in Linkerd's metadata, e.g. `http-egress-deny`.
    pub fn name(self, policy: TrafficPolicy) -> &'static str {
        match (self, policy) {
            (DefaultRoute::Http, TrafficPolicy::Allow) => "http-egress-allow",
            (DefaultRoute::Http, TrafficPolicy::Deny) => "http-egress-deny",
            (DefaultRoute::Grpc, TrafficPolicy::Allow) => "grpc-egress-allow",
            (DefaultRoute::Grpc, TrafficPolicy::Deny) => "grpc-egress-deny",
            (DefaultRoute::Tls, TrafficPolicy::Allow) => "tls-egress-allow",
            (DefaultRoute::Tls, TrafficPolicy::Deny) => "tls-egress-deny",
            (DefaultRoute::Opaque, TrafficPolicy::Allow) => "tcp-egress-allow",
            (DefaultRoute::Opaque, TrafficPolicy::Deny) => "tcp-egress-deny",
        }
    }
}

/// The matched rule's parts that say where the request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleRef<'a> {
    pub backends: &'a [EgressBackend],
    pub filters: &'a [HttpFilter],
    pub timeouts: &'a Timeouts,
}

/// How the client's proxy answers a request or connection it refuses itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP 403 (a gRPC client reads it as PERMISSION_DENIED).
    Http403,
    /// grpc-status 7 PERMISSION_DENIED.
    Grpc7,
    /// The connection is closed (TLS and opaque TCP).
    Close,
    /// HTTP 500: every backend of the matched rule is invalid or weighted 0.
    Http500,
}

/// Decides a connection (TLS, opaque) or request (HTTP) from a client whose
/// egress config is `egress` to `dst_ip:port`.
pub fn decide_egress<'a>(
    egress: &'a Egress,
    dst_ip: IpAddr,
    port: u16,
    traffic: EgressTraffic<'_>,
) -> EgressDecision<'a> {
    if egress.cluster_networks.iter().any(|n| n.contains(&dst_ip)) {
        return EgressDecision::InCluster;
    }
    let Some(network) = select_network(&egress.networks, dst_ip) else {
        return EgressDecision::Fallback;
    };
    let policy = |via| EgressOutcome::TrafficPolicy { policy: network.traffic_policy, via };
    let routes = network.ports.iter().find(|p| p.port == port).map_or(PortRoutes::None, EgressPort::served_by);
    let outcome = match (routes, traffic) {
        (PortRoutes::Grpc(routes), EgressTraffic::Http(req)) => select_grpc_route_for_http(routes, req)
            .map_or(policy(DefaultRoute::Grpc), |sel| rule_outcome(sel, &routes[sel.route])),
        (PortRoutes::Http(routes), EgressTraffic::Http(req)) => select_http_route(routes, req)
            .map_or(policy(DefaultRoute::Http), |sel| rule_outcome(sel, &routes[sel.route])),
        (PortRoutes::None, EgressTraffic::Http(_)) => policy(DefaultRoute::Http),
        // Detection finds no HTTP (TLS is not HTTP to it): the opaque default route.
        (PortRoutes::Grpc(_) | PortRoutes::Http(_) | PortRoutes::None, _) => policy(DefaultRoute::Opaque),
        (PortRoutes::Tls(routes), EgressTraffic::Tls { sni }) => match select_by_sni(routes, |r| &r.snis, sni) {
            Some((r, sni)) => EgressOutcome::Connection { route: &r.meta, backends: &r.backends, sni },
            None => policy(DefaultRoute::Tls),
        },
        // `NewDetectRequiredSni`: a TLS port's connection must bring an SNI.
        (PortRoutes::Tls(_), EgressTraffic::Http(_) | EgressTraffic::Opaque) => EgressOutcome::SniRequired,
        (PortRoutes::Tcp(r), _) => EgressOutcome::Connection { route: &r.meta, backends: &r.backends, sni: None },
    };
    EgressDecision::Network { network, outcome }
}

/// The network covering `ip` with the smallest matched block; ties go to
/// the earliest in list order (which the config sorts as Linkerd breaks ties).
pub fn select_network(networks: &[EgressNetwork], ip: IpAddr) -> Option<&EgressNetwork> {
    let mut best: Option<(u128, &EgressNetwork)> = None;
    for n in networks {
        let Some(size) = n.networks.iter().filter(|net| net.contains(ip)).map(block_size).min() else { continue };
        if best.is_none_or(|(b, _)| size < b) {
            best = Some((size, n));
        }
    }
    best.map(|(_, n)| n)
}

/// Addresses in the CIDR minus those of its exceptions, as Linkerd's
/// `Network::block_size` (which assumes exceptions do not overlap).
pub fn block_size(n: &Network) -> u128 {
    let size = |net: &IpNet| {
        let free = u32::from(net.max_prefix_len() - net.prefix_len());
        1u128.checked_shl(free).unwrap_or(u128::MAX)
    };
    n.except.iter().fold(size(&n.net), |acc, e| acc.saturating_sub(size(e)))
}

fn rule_outcome<M>(selection: RouteSelection, route: &EgressRoute<M>) -> EgressOutcome<'_> {
    let rule = &route.rules[selection.rule];
    let rule = RuleRef { backends: &rule.backends, filters: &rule.filters, timeouts: &rule.timeouts };
    EgressOutcome::Route { route: &route.meta, selection, rule }
}

impl EgressOutcome<'_> {
    /// How the proxy refuses, if it refuses every request (or the
    /// connection) on this outcome; `None` when it sends the traffic on.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Allow, .. } => None,
            EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Deny, via } => Some(match via {
                DefaultRoute::Http => Refusal::Http403,
                DefaultRoute::Grpc => Refusal::Grpc7,
                DefaultRoute::Tls | DefaultRoute::Opaque => Refusal::Close,
            }),
            EgressOutcome::Route { rule, .. } => always_fails(rule.backends).then_some(Refusal::Http500),
            // An invalid backend of a TLS or opaque route fails the connection.
            EgressOutcome::Connection { backends, .. } => always_fails(backends).then_some(Refusal::Close),
            EgressOutcome::SniRequired => Some(Refusal::Close),
        }
    }

    /// Whether the outcome takes the whole connection (TLS, TCP or opaque)
    /// rather than one HTTP request.
    pub fn is_connection(&self) -> bool {
        match self {
            EgressOutcome::Route { .. } => false,
            EgressOutcome::TrafficPolicy { via, .. } => matches!(via, DefaultRoute::Tls | DefaultRoute::Opaque),
            EgressOutcome::Connection { .. } | EgressOutcome::SniRequired => true,
        }
    }
}

impl RuleRef<'_> {
    /// Every request fails with 500: all weights are 0 or every weighted backend is invalid.
    pub fn always_fails(&self) -> bool {
        always_fails(self.backends)
    }
}

/// The backend a connection or request goes to, by weight (`roll` uniform
/// over u64); `None` when every weight is 0.
pub fn pick_egress_backend(backends: &[EgressBackend], roll: u64) -> Option<&EgressBackend> {
    crate::outbound::pick_weighted(backends, |b| b.weight, roll)
}

fn always_fails(backends: &[EgressBackend]) -> bool {
    backends.iter().all(|b| b.weight == 0 || matches!(b.target, EgressTarget::Invalid { .. }))
}

#[cfg(test)]
mod tests;
