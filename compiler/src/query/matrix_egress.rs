//! Egress edges: what `meshc matrix`, `meshc diff` and CEL's `egress` say
//! about traffic to destinations outside the cluster.
//!
//! A client's egress is decided by its own proxy from the EgressNetworks
//! that apply to its namespace (its own namespace's, else the global egress
//! namespace's; `docs/semantics/egress.md`), so every meshed workload of a
//! namespace has the same egress, and a workload without a proxy has none
//! policed. An egress edge is one fact of that policy that lets traffic out:
//!
//! - a route of an EgressNetwork on a port (`HTTPRoute x` on 443; a
//!   TLSRoute or the TCPRoute where no HTTP or gRPC route serves the port):
//!   requests or connections it matches, to addresses the network covers,
//!   are forwarded (to the original destination, or redirected to a Service);
//! - an EgressNetwork with `trafficPolicy: Allow`: any other traffic to the
//!   addresses it covers (the default route Linkerd appends);
//! - `uncovered`: addresses no EgressNetwork that applies covers get
//!   Linkerd's `egress-fallback` and are forwarded (every address when none
//!   applies);
//! - `no-proxy`: a workload without a Linkerd proxy; nothing polices it.
//!
//! A `Deny` network's default route, and a route whose every backend is
//! invalid (500), let nothing out: no edge. Edges are per client class (the
//! classes of `meshc matrix`) and client namespace; the rows group the
//! classes and namespaces that share a fact.

use super::classes::Classes;
use crate::pipeline::Outcome;
use mesh_proxy_api::outbound::egress::{Egress, EgressBackend, EgressNetwork, EgressPort, EgressTarget, TrafficPolicy};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What an egress edge lets out, as the JSON names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressFact {
    /// `NAMESPACE/NAME` of the EgressNetwork; absent for `uncovered` and `no-proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_network: Option<String>,
    /// `HTTPRoute NAME` or `GRPCRoute NAME`; absent for the traffic policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The destination port the route serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `Allow` on the network's default route (any other traffic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<&'static str>,
    /// `uncovered` or `no-proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<&'static str>,
}

impl EgressFact {
    /// One line: `EgressNetwork ns/name HTTPRoute x :443`, `uncovered`, …
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(n) = &self.egress_network {
            parts.push(format!("EgressNetwork {n}"));
        }
        if let Some(r) = &self.route {
            parts.push(r.clone());
        }
        if let Some(p) = self.port {
            parts.push(format!("port {p}"));
        }
        if let Some(tp) = self.traffic_policy {
            parts.push(format!("trafficPolicy {tp} (other traffic)"));
        }
        match self.egress {
            Some("uncovered") => parts.push("addresses no EgressNetwork covers (egress-fallback)".to_owned()),
            Some(other) => parts.push(format!("any destination ({other}: nothing polices egress)")),
            None => {}
        }
        parts.join(" ")
    }

    /// A node name for graphs: the EgressNetwork, or the fallback kind.
    pub fn node(&self) -> String {
        match (&self.egress_network, self.egress) {
            (Some(n), _) => format!("EgressNetwork {n}"),
            (None, Some(kind)) => format!("egress ({kind})"),
            (None, None) => "egress".to_owned(),
        }
    }
}

/// One fact, with the verdict and backends it gives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EgressOutcome {
    pub target: EgressFact,
    /// `allow`, or `partial` when some backends are invalid (500).
    pub verdict: &'static str,
    /// `original` (passed through), `svc/NS/NAME:PORT` (redirected) or
    /// `invalid: REASON`, each with its weight.
    pub backends: Vec<String>,
}

/// A row: the client classes, in the client namespaces, that have the fact.
#[derive(Clone, Debug, Serialize)]
pub struct EgressRow {
    pub clients: Vec<usize>,
    /// The client workloads' namespaces (all of them for `no-proxy`).
    pub namespaces: Vec<String>,
    #[serde(flatten)]
    pub outcome: EgressOutcome,
}

/// The facts of one namespace's egress config.
pub fn namespace_facts(egress: &Egress) -> Vec<EgressOutcome> {
    let mut out = Vec::new();
    for n in &egress.networks {
        out.extend(network_facts(n));
    }
    if !covers_everything(egress) {
        out.push(plain(EgressFact { egress: Some("uncovered"), ..none() }));
    }
    out
}

/// The edge of a workload without a proxy.
pub fn no_proxy() -> EgressOutcome {
    plain(EgressFact { egress: Some("no-proxy"), ..none() })
}

fn none() -> EgressFact {
    EgressFact { egress_network: None, route: None, port: None, traffic_policy: None, egress: None }
}

fn plain(target: EgressFact) -> EgressOutcome {
    EgressOutcome { target, verdict: "allow", backends: vec!["original".to_owned()] }
}

fn network_facts(n: &EgressNetwork) -> Vec<EgressOutcome> {
    let network = Some(format!("{}/{}", n.namespace, n.name));
    let mut out = Vec::new();
    for p in &n.ports {
        for (kind, name, backends) in port_routes(p) {
            let route = Some(format!("{kind} {name}"));
            let fact = EgressFact { egress_network: network.clone(), route, port: Some(p.port), ..none() };
            out.extend(route_outcome(fact, &backends));
        }
    }
    if n.traffic_policy == TrafficPolicy::Allow {
        out.push(plain(EgressFact { egress_network: network, traffic_policy: Some("Allow"), ..none() }));
    }
    out
}

/// The routes that serve a port, by kind in the order Linkerd's status
/// controller lets one kind win: GRPCRoutes, else HTTPRoutes, else
/// TLSRoutes, else the TCPRoute.
fn port_routes(p: &EgressPort) -> Vec<(&'static str, &str, Vec<&EgressBackend>)> {
    if !p.grpc_routes.is_empty() {
        p.grpc_routes.iter().map(|r| ("GRPCRoute", r.meta.name.as_str(), backends_of(&r.rules))).collect()
    } else if !p.http_routes.is_empty() {
        p.http_routes.iter().map(|r| ("HTTPRoute", r.meta.name.as_str(), backends_of(&r.rules))).collect()
    } else if !p.tls_routes.is_empty() {
        p.tls_routes.iter().map(|r| ("TLSRoute", r.meta.name.as_str(), r.backends.iter().collect())).collect()
    } else {
        p.tcp_route.iter().map(|r| ("TCPRoute", r.meta.name.as_str(), r.backends.iter().collect())).collect()
    }
}

fn backends_of<M>(rules: &[mesh_proxy_api::outbound::egress::EgressRule<M>]) -> Vec<&EgressBackend> {
    rules.iter().flat_map(|r| &r.backends).collect()
}

/// A route lets traffic out unless every backend that takes traffic is invalid.
fn route_outcome(target: EgressFact, backends: &[&EgressBackend]) -> Option<EgressOutcome> {
    let live: Vec<&&EgressBackend> = backends.iter().filter(|b| b.weight > 0).collect();
    let invalid = live.iter().filter(|b| matches!(b.target, EgressTarget::Invalid { .. })).count();
    if live.is_empty() || invalid == live.len() {
        return None;
    }
    let mut names: Vec<String> = live.iter().map(|b| backend_label(b)).collect();
    names.sort();
    names.dedup();
    let verdict = if invalid == 0 { "allow" } else { "partial" };
    Some(EgressOutcome { target, verdict, backends: names })
}

fn backend_label(b: &EgressBackend) -> String {
    match &b.target {
        EgressTarget::Original => "original".to_owned(),
        EgressTarget::Service { namespace, name, port } => format!("svc/{namespace}/{name}:{port}"),
        EgressTarget::Invalid { reason } => format!("invalid: {reason}"),
    }
}

/// Whether the networks cover every address outside the cluster: some
/// network is the whole IPv4 space and some the whole IPv6 space, each with
/// no exception outside the cluster networks (Linkerd's default
/// `networks`). Otherwise some external address may fall to the fallback.
fn covers_everything(egress: &Egress) -> bool {
    let family_root = |v6: bool| {
        egress.networks.iter().flat_map(|n| &n.networks).any(|net| {
            net.net.prefix_len() == 0
                && net.net.network().is_ipv6() == v6
                && net.except.iter().all(|e| egress.cluster_networks.iter().any(|c| c.contains(e)))
        })
    };
    !egress.networks.is_empty() && family_root(false) && family_root(true)
}

/// Every egress row of the repository: meshed clients per namespace, then
/// the clients without a proxy. `network_namespace` keeps only the facts of
/// EgressNetworks in that namespace.
pub fn rows(o: &Outcome, classes: &Classes, network_namespace: Option<&str>) -> Vec<EgressRow> {
    // Namespace → the classes of its meshed workloads; the classes and
    // namespaces of workloads without a proxy.
    let mut meshed: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let mut unmeshed: (BTreeSet<usize>, BTreeSet<String>) = Default::default();
    for c in &classes.classes {
        for m in &c.members {
            let Some(w) = m.workload.map(|wi| &o.resolved.workloads[wi]) else { continue };
            if w.is_meshed() {
                meshed.entry(w.namespace.as_str()).or_default().insert(c.id);
            } else {
                unmeshed.0.insert(c.id);
                unmeshed.1.insert(w.namespace.clone());
            }
        }
    }
    let mut by_fact: BTreeMap<EgressOutcome, (BTreeSet<usize>, BTreeSet<String>)> = BTreeMap::new();
    for (ns, ids) in &meshed {
        for fact in namespace_facts(&o.outbound.egress.for_namespace(ns)) {
            let entry = by_fact.entry(fact).or_default();
            entry.0.extend(ids);
            entry.1.insert((*ns).to_owned());
        }
    }
    if !unmeshed.0.is_empty() {
        by_fact.insert(no_proxy(), unmeshed);
    }
    let keep = |f: &EgressFact| match network_namespace {
        None => true,
        Some(ns) => f.egress_network.as_deref().is_some_and(|n| n.split('/').next() == Some(ns)),
    };
    by_fact
        .into_iter()
        .filter(|(f, _)| keep(&f.target))
        .map(|(outcome, (clients, namespaces))| EgressRow {
            clients: clients.into_iter().collect(),
            namespaces: namespaces.into_iter().collect(),
            outcome,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proxy_api::outbound::egress::{EgressHttpRoute, EgressRule, EgressTcpRoute, EgressTlsRoute};
    use mesh_proxy_api::{Meta, Network};

    fn network(policy: TrafficPolicy, nets: &[&str]) -> EgressNetwork {
        EgressNetwork {
            namespace: "linkerd-egress".into(),
            name: "all".into(),
            traffic_policy: policy,
            networks: nets.iter().map(|n| Network { net: n.parse().unwrap(), except: Vec::new() }).collect(),
            ports: Vec::new(),
        }
    }

    #[test]
    fn a_deny_network_over_everything_lets_nothing_out() {
        let egress = Egress {
            cluster_networks: Vec::new(),
            networks: vec![network(TrafficPolicy::Deny, &["0.0.0.0/0", "::/0"])],
        };
        assert!(namespace_facts(&egress).is_empty());
    }

    #[test]
    fn an_allow_network_is_one_edge_and_a_partial_one_leaves_the_fallback() {
        let egress = Egress {
            cluster_networks: Vec::new(),
            networks: vec![network(TrafficPolicy::Allow, &["0.0.0.0/0", "::/0"])],
        };
        let facts = namespace_facts(&egress);
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].target.traffic_policy, Some("Allow"));
        let egress =
            Egress { cluster_networks: Vec::new(), networks: vec![network(TrafficPolicy::Deny, &["203.0.113.0/24"])] };
        let facts = namespace_facts(&egress);
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].target.egress, Some("uncovered"));
        // No network at all: everything is the fallback.
        assert_eq!(namespace_facts(&Egress::default())[0].target.egress, Some("uncovered"));
    }

    fn meta(kind: &str, name: &str) -> Meta {
        Meta { kind: kind.into(), name: name.into(), group: None }
    }

    fn to_original() -> Vec<EgressBackend> {
        vec![EgressBackend { target: EgressTarget::Original, weight: 1 }]
    }

    /// A Deny network refuses what no route takes, so each connection route
    /// is an edge of its own; on a port with an HTTPRoute the TLSRoute is
    /// not accepted (Linkerd's status controller), so only the HTTPRoute is.
    #[test]
    fn tls_and_tcp_routes_are_edges_where_no_http_route_serves_the_port() {
        let mut n = network(TrafficPolicy::Deny, &["0.0.0.0/0", "::/0"]);
        let tls =
            |name: &str| EgressTlsRoute { meta: meta("tlsroute", name), snis: Vec::new(), backends: to_original() };
        let mut p443 = EgressPort::new(443);
        p443.tls_routes.push(tls("api"));
        let mut p5432 = EgressPort::new(5432);
        p5432.tcp_route = Some(EgressTcpRoute { meta: meta("tcproute", "db"), backends: to_original() });
        let mut p8443 = EgressPort::new(8443);
        p8443.tls_routes.push(tls("shadowed"));
        p8443.http_routes.push(EgressHttpRoute {
            meta: meta("httproute", "web"),
            hostnames: Vec::new(),
            rules: vec![EgressRule {
                matches: Vec::new(),
                filters: Vec::new(),
                backends: to_original(),
                timeouts: Default::default(),
            }],
        });
        n.ports = vec![p443, p5432, p8443];
        let egress = Egress { cluster_networks: Vec::new(), networks: vec![n] };
        let routes: Vec<(Option<String>, Option<u16>)> =
            namespace_facts(&egress).into_iter().map(|f| (f.target.route, f.target.port)).collect();
        assert_eq!(
            routes,
            [
                (Some("TLSRoute api".to_owned()), Some(443)),
                (Some("TCPRoute db".to_owned()), Some(5432)),
                (Some("HTTPRoute web".to_owned()), Some(8443)),
            ]
        );
    }
}
