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

use crate::client::HttpRequest;
use crate::config::{GrpcMatch, HostMatch, HttpFilter, HttpMatch, Meta, Network};
use crate::outbound::Timeouts;
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
    /// An explicit route's rule matched.
    Route { route: &'a Meta, selection: RouteSelection, rule: RuleRef<'a> },
    /// No route applies: the default egress route carries the traffic
    /// policy. `grpc` is set when GRPCRoutes serve the port (a Deny then
    /// answers grpc-status 7 rather than HTTP 403).
    TrafficPolicy { policy: TrafficPolicy, grpc: bool },
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
    let policy = |grpc| EgressOutcome::TrafficPolicy { policy: network.traffic_policy, grpc };
    let port_routes = network.ports.iter().find(|p| p.port == port);
    let outcome = match (traffic, port_routes) {
        (EgressTraffic::Http(req), Some(p)) => route_request(p, req).unwrap_or(policy(!p.grpc_routes.is_empty())),
        (EgressTraffic::Http(_), None) => policy(false),
        // Hook for TLSRoute and TCPRoute with an EgressNetwork parent (modelled
        // with Service parents by the TCP/TLS routes work): their selection by
        // SNI (TLS) or port (TCP) goes here, before the traffic policy, which
        // is what Linkerd's default egress route applies when none matches.
        (EgressTraffic::Tls { .. } | EgressTraffic::Opaque, _) => policy(false),
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

fn route_request<'a>(p: &'a EgressPort, req: &HttpRequest) -> Option<EgressOutcome<'a>> {
    if !p.grpc_routes.is_empty() {
        let sel = select_grpc_route_for_http(&p.grpc_routes, req)?;
        return Some(rule_outcome(sel, &p.grpc_routes[sel.route]));
    }
    let sel = select_http_route(&p.http_routes, req)?;
    Some(rule_outcome(sel, &p.http_routes[sel.route]))
}

fn rule_outcome<M>(selection: RouteSelection, route: &EgressRoute<M>) -> EgressOutcome<'_> {
    let rule = &route.rules[selection.rule];
    let rule = RuleRef { backends: &rule.backends, filters: &rule.filters, timeouts: &rule.timeouts };
    EgressOutcome::Route { route: &route.meta, selection, rule }
}

impl EgressOutcome<'_> {
    /// How the proxy refuses, if it refuses every request (or the
    /// connection) on this outcome; `None` when it sends the traffic on.
    pub fn refusal(&self, connection_only: bool) -> Option<Refusal> {
        match self {
            EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Allow, .. } => None,
            EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Deny, .. } if connection_only => Some(Refusal::Close),
            EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Deny, grpc: true } => Some(Refusal::Grpc7),
            EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Deny, grpc: false } => Some(Refusal::Http403),
            EgressOutcome::Route { rule, .. } => rule.always_fails().then_some(Refusal::Http500),
        }
    }
}

impl RuleRef<'_> {
    /// Every request fails with 500: all weights are 0 or every weighted backend is invalid.
    pub fn always_fails(&self) -> bool {
        self.backends.iter().all(|b| b.weight == 0 || matches!(b.target, EgressTarget::Invalid { .. }))
    }
}

#[cfg(test)]
mod tests;
