//! `meshc reach --to egress:HOST:PORT`: what the client's own proxy does
//! with a connection or request to a destination outside the cluster, by
//! `mesh_proxy_api::outbound::egress::decide_egress` on the egress config
//! lowered for the client's namespace (semantics: `docs/semantics/egress.md`).
//!
//! An IP address is decided once. A DNS name's address is not in git: it is
//! outside the cluster networks (a name cannot resolve into the pod CIDR),
//! so the query decides a representative address of every network that
//! could hold it (and one outside them all); where those disagree the
//! verdict is `depends`, with the condition.
//!
//! The traffic is HTTP (a request), TLS (a ClientHello with an SNI) or
//! opaque TCP: TLSRoutes pick by SNI, a TCPRoute takes every connection,
//! and each falls back to the network's traffic policy as Linkerd's
//! default egress routes do (`decide_egress`).

use super::egress_ref::{EgressHost, EgressRef};
use super::evaluate::Verdict;
use super::proof::{Prover, ResourceRef, Step};
use super::reach::ClientView;
use crate::pipeline::Outcome;
use ipnet::IpNet;
use mesh_proxy_api::HttpRequest;
use mesh_proxy_api::outbound::egress::{
    DefaultRoute, Egress, EgressDecision, EgressOutcome, EgressTarget, EgressTraffic, Refusal, TrafficPolicy,
};
use serde::Serialize;
use std::net::IpAddr;

/// What the client sends.
#[derive(Clone, Debug)]
pub enum EgressProtocol {
    Http(HttpRequest),
    Tls {
        sni: String,
    },
    /// Neither HTTP nor TLS (`--tcp`): opaque bytes.
    Opaque,
}

/// The traffic a query describes: TLS when an SNI is given, or on port 443
/// without request options (SNI = HOST); otherwise HTTP (GET / unless said),
/// with the Host header set to HOST unless given.
pub fn traffic_of(target: &EgressRef, req: Option<HttpRequest>, sni: Option<String>) -> EgressProtocol {
    if let Some(sni) = sni {
        return EgressProtocol::Tls { sni };
    }
    match req {
        None if target.port == 443 => EgressProtocol::Tls { sni: target.host_text() },
        req => {
            let mut req = req.unwrap_or_else(|| HttpRequest::get("/"));
            req.host.get_or_insert_with(|| target.host_text());
            EgressProtocol::Http(req)
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EgressReach {
    pub client: String,
    pub target: String,
    /// `http`, `tls` or `tcp`.
    pub protocol: &'static str,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// HTTP status, or grpc-status 7 for gRPC routes; absent when allowed or the connection is closed.
    /// The route is the HTTPRoute, GRPCRoute, TLSRoute or TCPRoute that won; absent when the
    /// network's traffic policy decided (the proof names the default route).
    pub status: Option<u32>,
    #[serde(rename = "egressNetwork")]
    pub network: Option<ResourceRef>,
    pub route: Option<ResourceRef>,
    pub backends: Vec<BackendView>,
    pub proof: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendView {
    /// `original` (passed through to HOST:PORT), `service` (redirected) or `invalid`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub weight: u32,
}

/// The outcome at one address, in the terms the answer uses.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Summary {
    verdict: Verdict,
    status: Option<u32>,
    network: Option<(String, String)>,
    /// (kind, name) of the route that won.
    route: Option<(&'static str, String)>,
    backends: Vec<BackendView>,
}

pub fn reach_egress(
    o: &Outcome,
    client: &ClientView,
    target: &EgressRef,
    traffic: &EgressProtocol,
) -> Result<EgressReach, String> {
    let p = Prover::new(o);
    let cluster = &o.resolved.settings.cluster_networks;
    let (ns, meshed) = client_namespace(o, client)?;
    let protocol = match traffic {
        EgressProtocol::Http(_) => "http",
        EgressProtocol::Tls { .. } => "tls",
        EgressProtocol::Opaque => "tcp",
    };
    let mut proof = vec![client_step(&p, client), destination_step(target, traffic, cluster)?];
    if !meshed {
        proof.push(Step::plain("proxy", "the client has no proxy: nothing polices its egress".to_owned()));
        let s =
            Summary { verdict: Verdict::Allow, status: None, network: None, route: None, backends: vec![original(1)] };
        return Ok(answer(client, target, protocol, s, None, proof));
    }
    let egress = o.outbound.egress.for_namespace(&ns);
    let addrs = match &target.host {
        EgressHost::Ip(ip) => vec![*ip],
        EgressHost::Dns(_) => representatives(&egress, cluster),
    };
    let summaries: Vec<(IpAddr, Summary)> =
        addrs.iter().map(|&a| (a, summarize(&egress, a, target.port, traffic))).collect();
    let Some((first_addr, first)) = summaries.first().cloned() else {
        return Err("the cluster networks cover every address: there is no egress".to_owned());
    };
    proof.push(scope_step(o, &ns));
    let same_verdict = summaries.iter().all(|(_, s)| (s.verdict, s.status) == (first.verdict, first.status));
    let same_everything = summaries.iter().all(|(_, s)| *s == first);
    let mut summary = first.clone();
    let mut condition = None;
    if same_everything {
        proof.extend(decision_steps(&p, o, &egress, first_addr, target, traffic));
    } else if same_verdict {
        // Which network (or route) applies turns on the address, but not the answer.
        let detail = format!("the answer is the same wherever it resolves: {}", condition_text(target, &summaries));
        proof.push(Step::plain("egress-network", detail));
        summary = Summary { network: None, route: None, backends: vec![], ..first };
    } else {
        condition = Some(condition_text(target, &summaries));
    }
    if condition.is_some() {
        summary = Summary { verdict: Verdict::Depends, status: None, route: None, backends: vec![], ..summary };
    }
    Ok(answer(client, target, protocol, summary, condition, proof))
}

fn answer(
    client: &ClientView,
    target: &EgressRef,
    protocol: &'static str,
    s: Summary,
    condition: Option<String>,
    proof: Vec<Step>,
) -> EgressReach {
    let route_ns = s.network.as_ref().map(|(ns, _)| ns.clone());
    let route = s.route.map(|(kind, name)| ResourceRef { kind: kind.into(), namespace: route_ns, name });
    let network = s.network.map(|(ns, name)| ResourceRef { kind: "EgressNetwork".into(), namespace: Some(ns), name });
    EgressReach {
        client: client.spec.clone(),
        target: target.to_string(),
        protocol,
        verdict: s.verdict,
        condition,
        status: s.status,
        network,
        route,
        backends: s.backends,
        proof,
    }
}

/// The namespace whose egress config the client's proxy has, and whether it has a proxy.
fn client_namespace(o: &Outcome, client: &ClientView) -> Result<(String, bool), String> {
    if let Some(wi) = client.workload {
        let w = &o.resolved.workloads[wi];
        return Ok((w.namespace.clone(), w.meshed.is_ok()));
    }
    if let Some((ns, _)) = client.spec.strip_prefix("sa:").and_then(|r| r.split_once('/')) {
        return Ok((ns.to_owned(), true));
    }
    Err(format!(
        "`{}`: egress is decided by the client's own proxy, so the client must be a workload or sa:NAMESPACE/NAME",
        client.spec
    ))
}

fn traffic<'r>(t: &'r EgressProtocol) -> EgressTraffic<'r> {
    match t {
        EgressProtocol::Http(req) => EgressTraffic::Http(req),
        EgressProtocol::Tls { sni } => EgressTraffic::Tls { sni },
        EgressProtocol::Opaque => EgressTraffic::Opaque,
    }
}

fn original(weight: u32) -> BackendView {
    BackendView { kind: "original", service: None, weight }
}

fn summarize(egress: &Egress, addr: IpAddr, port: u16, t: &EgressProtocol) -> Summary {
    match mesh_proxy_api::outbound::egress::decide_egress(egress, addr, port, traffic(t)) {
        EgressDecision::InCluster | EgressDecision::Fallback => {
            Summary { verdict: Verdict::Allow, status: None, network: None, route: None, backends: vec![original(1)] }
        }
        EgressDecision::Network { network, outcome } => {
            let refusal = outcome.refusal();
            let (verdict, status) = match refusal {
                None => (Verdict::Allow, None),
                Some(Refusal::Http403) => (Verdict::Deny, Some(403)),
                Some(Refusal::Grpc7) => (Verdict::Deny, Some(7)),
                Some(Refusal::Close) => (Verdict::Deny, None),
                Some(Refusal::Http500) => (Verdict::NoRoute, Some(500)),
            };
            let (route, backends) = match &outcome {
                EgressOutcome::Route { route, rule, .. } => (
                    Some((route_kind(&route.kind), route.name.clone())),
                    rule.backends.iter().map(backend_view).collect(),
                ),
                EgressOutcome::Connection { route, backends, .. } => {
                    (Some((route_kind(&route.kind), route.name.clone())), backends.iter().map(backend_view).collect())
                }
                EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Allow, .. } => (None, vec![original(1)]),
                EgressOutcome::TrafficPolicy { .. } | EgressOutcome::SniRequired => (None, vec![]),
            };
            let backends = if verdict == Verdict::Allow { backends } else { vec![] };
            let network = Some((network.namespace.clone(), network.name.clone()));
            Summary { verdict, status, network, route, backends }
        }
    }
}

fn backend_view(b: &mesh_proxy_api::outbound::egress::EgressBackend) -> BackendView {
    match &b.target {
        EgressTarget::Original => original(b.weight),
        EgressTarget::Service { namespace, name, port } => {
            BackendView { kind: "service", service: Some(format!("{namespace}/{name}:{port}")), weight: b.weight }
        }
        EgressTarget::Invalid { reason } => {
            BackendView { kind: "invalid", service: Some(reason.clone()), weight: b.weight }
        }
    }
}

/// One address inside each network that could hold a name's address (not
/// in an exception, not in the cluster), then one outside them all.
fn representatives(egress: &Egress, cluster: &[IpNet]) -> Vec<IpAddr> {
    let external = |a: &IpAddr| !cluster.iter().any(|c| c.contains(a));
    let mut out = Vec::new();
    for n in egress.networks.iter().flat_map(|n| &n.networks) {
        let mut candidates: Vec<IpAddr> = n.net.hosts().next().into_iter().collect();
        candidates.extend([n.net.network(), n.net.broadcast()]);
        for e in &n.except {
            candidates.extend(step(e.broadcast(), 1));
            candidates.extend(step(e.network(), -1));
        }
        if let Some(a) = candidates.into_iter().find(|a| n.contains(*a) && external(a)) {
            out.push(a);
        }
    }
    // Documentation addresses (RFC 5737, RFC 3849) stand for "anywhere else".
    let elsewhere = ["192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"];
    let covered = |a: &IpAddr| egress.networks.iter().flat_map(|n| &n.networks).any(|n| n.contains(*a));
    out.extend(elsewhere.iter().filter_map(|s| s.parse::<IpAddr>().ok()).find(|a| external(a) && !covered(a)));
    out.sort();
    out.dedup();
    out
}

fn step(ip: IpAddr, delta: i128) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => {
            let n = i128::from(u32::from(v4)) + delta;
            u32::try_from(n).ok().map(|n| IpAddr::from(std::net::Ipv4Addr::from(n)))
        }
        IpAddr::V6(v6) => {
            let n = u128::from(v6).checked_add_signed(delta)?;
            Some(IpAddr::from(std::net::Ipv6Addr::from(n)))
        }
    }
}

fn condition_text(target: &EgressRef, summaries: &[(IpAddr, Summary)]) -> String {
    let parts: Vec<String> = summaries
        .iter()
        .map(|(a, s)| {
            let via = s
                .network
                .as_ref()
                .map_or_else(|| "no EgressNetwork".to_owned(), |(ns, n)| format!("EgressNetwork {ns}/{n}"));
            format!("at an address like {a} ({via}): {}", s.verdict.as_str())
        })
        .collect();
    format!("{} may resolve to: {}", target.host_text(), parts.join("; "))
}

fn client_step(p: &Prover, c: &ClientView) -> Step {
    match c.workload {
        Some(wi) => p.at("client", p.outcome.resolved.workloads[wi].resource, &[], c.detail.clone()),
        None => Step::plain("client", c.detail.clone()),
    }
}

fn destination_step(target: &EgressRef, t: &EgressProtocol, cluster: &[IpNet]) -> Result<Step, String> {
    let what = match t {
        EgressProtocol::Http(req) => {
            format!("HTTP {} {} (Host {})", req.method, req.path, req.host.as_deref().unwrap_or("-"))
        }
        EgressProtocol::Tls { sni } => format!("TLS with SNI {sni} (not HTTP to the proxy's detection)"),
        EgressProtocol::Opaque => "opaque TCP (neither HTTP nor a TLS ClientHello)".to_owned(),
    };
    let place = match &target.host {
        EgressHost::Ip(ip) => {
            if let Some(c) = cluster.iter().find(|c| c.contains(ip)) {
                return Err(format!(
                    "{target}: {ip} is inside the cluster network {c}, so it is not egress (Linkerd looks it up as a \
                     Service or pod address); name the workload or Service instead"
                ));
            }
            format!("{ip} is outside the cluster networks")
        }
        EgressHost::Dns(name) => {
            format!("{name} is a DNS name: it resolves outside the cluster networks (a name cannot be in the pod CIDR)")
        }
    };
    Ok(Step::plain("destination", format!("{target}: {what}; {place}")))
}

fn scope_step(o: &Outcome, ns: &str) -> Step {
    let nets = &o.outbound.egress.nets;
    let own = nets.by_namespace.get(ns).is_some_and(|l| !l.is_empty());
    let detail = if own {
        format!("namespace {ns} has EgressNetworks, so only those apply to its clients")
    } else {
        format!(
            "namespace {ns} has no EgressNetwork, so those of the global egress namespace {} apply ({} of them)",
            nets.global_namespace,
            nets.by_namespace.get(&nets.global_namespace).map_or(0, Vec::len)
        )
    };
    Step::plain("egress-scope", detail)
}

/// Which network covered the address and why it won, which route matched
/// (or that the traffic policy applied), and where the traffic goes.
fn decision_steps(
    p: &Prover,
    o: &Outcome,
    egress: &Egress,
    addr: IpAddr,
    target: &EgressRef,
    t: &EgressProtocol,
) -> Vec<Step> {
    let decision = mesh_proxy_api::outbound::egress::decide_egress(egress, addr, target.port, traffic(t));
    let EgressDecision::Network { network, outcome } = decision else {
        let detail = format!(
            "no EgressNetwork that applies covers {addr}: Linkerd's egress-fallback policy forwards to {}",
            target.host_text()
        );
        return vec![Step::plain("egress-network", detail)];
    };
    let policy = &o.outbound.egress;
    let res = policy.nets.get(&network.namespace, &network.name).map(|n| n.resource);
    let covering: Vec<String> = egress
        .networks
        .iter()
        .filter(|n| n.networks.iter().any(|x| x.contains(addr)))
        .map(|n| format!("{}/{}", n.namespace, n.name))
        .collect();
    let why = if covering.len() > 1 {
        format!(
            " (of {} covering it, the smallest matching network wins, then the older, then by name)",
            covering.join(", ")
        )
    } else {
        String::new()
    };
    let detail = format!(
        "EgressNetwork {}/{} (trafficPolicy {:?}) covers {}{why}",
        network.namespace,
        network.name,
        network.traffic_policy,
        if matches!(target.host, EgressHost::Dns(_)) {
            "every address it can resolve to".to_owned()
        } else {
            addr.to_string()
        }
    );
    let mut steps = vec![match res {
        Some(ri) => p.at("egress-network", ri, &["spec", "trafficPolicy"], detail),
        None => Step::plain("egress-network", detail),
    }];
    steps.push(outcome_step(p, policy, network, target.port, &outcome, t));
    steps
}

/// The route that won on the port, or the default egress route, and why.
fn outcome_step(
    p: &Prover,
    policy: &crate::lower::outbound::egress::EgressPolicy,
    network: &mesh_proxy_api::outbound::egress::EgressNetwork,
    port: u16,
    outcome: &EgressOutcome<'_>,
    t: &EgressProtocol,
) -> Step {
    let at = |name: &str, detail: String| {
        let key = (network.namespace.clone(), network.name.clone(), port, name.to_owned());
        match policy.route_resources.get(&key) {
            Some(&ri) => p.at("route", ri, &["spec", "rules"], detail),
            None => Step::plain("route", detail),
        }
    };
    match outcome {
        EgressOutcome::Route { route, selection, .. } => {
            let detail = format!(
                "{} {} rule {} matches on port {port}: an explicit route that matches wins over the default egress \
                 route, which comes last",
                route_kind(&route.kind),
                route.name,
                selection.rule
            );
            at(&route.name, detail)
        }
        EgressOutcome::Connection { route, .. } if route_kind(&route.kind) == "TCPRoute" => {
            let detail = format!(
                "TCPRoute {} serves port {port}: it takes every connection (HTTP and TLS included), and with a \
                 TCPRoute Linkerd sends no default egress route, so the traffic policy does not apply",
                route.name
            );
            at(&route.name, detail)
        }
        EgressOutcome::Connection { route, sni, .. } => {
            let name = match t {
                EgressProtocol::Tls { sni } => sni.as_str(),
                _ => "",
            };
            let how = match sni {
                Some(mesh_proxy_api::outbound::SniMatch::Exact(_)) => "names it exactly".to_owned(),
                Some(mesh_proxy_api::outbound::SniMatch::Suffix(_)) => "matches it by a wildcard suffix".to_owned(),
                None => "names no hostnames, so it matches every SNI".to_owned(),
            };
            let detail = format!(
                "TLSRoute {} {how} ({name}) on port {port}: the best SNI match wins (an exact name over any \
                 wildcard, a longer name over a shorter, then the older route), and the default egress route, \
                 which names none, comes last",
                route.name
            );
            at(&route.name, detail)
        }
        EgressOutcome::SniRequired => Step::plain(
            "route",
            format!(
                "TLSRoutes serve port {port}, so the proxy requires a TLS ClientHello with an SNI \
                 (NewDetectRequiredSni); this connection brings none and is closed"
            ),
        ),
        EgressOutcome::TrafficPolicy { policy: tp, via } => {
            let none = match (t, via) {
                (EgressProtocol::Tls { sni }, DefaultRoute::Tls) => {
                    format!("no TLSRoute of it on port {port} matches SNI {sni}")
                }
                (EgressProtocol::Tls { .. } | EgressProtocol::Opaque, _) => format!(
                    "port {port} has no TLSRoute or TCPRoute, and protocol detection finds no HTTP in this \
                     connection (HTTP routes never see it)"
                ),
                (EgressProtocol::Http(_), _) => format!("no route of it on port {port} matches"),
            };
            let name = via.name(*tp);
            Step::plain("route", format!("{none}: the default route {name} applies the traffic policy"))
        }
    }
}

fn route_kind(kind: &str) -> &'static str {
    match kind.to_ascii_lowercase().as_str() {
        "grpcroute" => "GRPCRoute",
        "tlsroute" => "TLSRoute",
        "tcproute" => "TCPRoute",
        _ => "HTTPRoute",
    }
}
