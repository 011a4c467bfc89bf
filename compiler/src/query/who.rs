//! `meshc who-can-reach`: every client class that gets into a workload,
//! per port and route, each computed with the proxy's decision functions
//! on the class representative.

use super::classes::Classes;
use super::evaluate::{self, Gate, Unit, Verdict, route_meta};
use super::places::combine;
use super::proof::{Prover, Step, route_name, rule_texts};
use crate::pipeline::Outcome;
use crate::resolve::workload::Workload;
use mesh_proxy_api::{Client, PortPolicy, ProxyConfig};
use serde::Serialize;
use std::collections::BTreeSet;

/// The ports worth answering for: declared container ports, ports a
/// Server binds, probed ports, and opaque or identity-required ports the
/// config lists. The injected proxy's own ports only when a Server binds them.
pub fn target_ports(w: &Workload, config: Option<&ProxyConfig>) -> Vec<u16> {
    let mut ports: BTreeSet<u16> = w.ports.iter().filter(|p| !p.injected).map(|p| p.port).collect();
    ports.extend(w.probes.iter().filter(|p| !p.injected).map(|p| p.port));
    let injected: BTreeSet<u16> = w.ports.iter().filter(|p| p.injected).map(|p| p.port).collect();
    if let Some(c) = config {
        let listed = c.inbound.ports.iter().filter(|e| !injected.contains(&e.port) || e.server.meta.kind == "server");
        ports.extend(listed.map(|e| e.port));
    }
    ports.into_iter().collect()
}

pub fn port_name(w: &Workload, port: u16) -> Option<String> {
    w.ports.iter().find(|p| p.port == port).and_then(|p| p.name.clone())
}

#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub unit: Unit,
    /// `HTTPRoute books-read`, `default:default`, or absent for a connection / bypass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The route's rules in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<String>,
    pub allowed: Vec<usize>,
    pub denied: Vec<usize>,
    /// Classes allowed or denied depending on where the client pod is in
    /// the pod CIDR, which git does not hold; each with the condition.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<Dependent>,
    /// Classes whose traffic bypasses the proxy (skip-subnets); they are in `allowed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bypass: Vec<usize>,
    /// When denied, what the client sees: 403, 404, grpc-status 7, or a closed connection.
    pub denied_as: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Dependent {
    pub class: usize,
    /// `allow when the client pod's address is in 10.240.0.0/16`.
    pub condition: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PortAnswer {
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Server, default policy, bypass or missing proxy governing the port.
    pub server: Step,
    /// The Server's HTTPLocalRateLimitPolicy: allowed requests beyond it get 429.
    #[serde(rename = "rateLimit", skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<super::ratelimit::PolicyView>,
    pub entries: Vec<Entry>,
}

fn denied_as(unit: Unit) -> &'static str {
    match unit {
        Unit::Http => "403",
        Unit::Grpc => "grpc-status 7",
        Unit::Connection => "connection closed",
        Unit::Bypass => "never",
    }
}

/// The answer for one port of workload `wi`.
pub fn port_answer(o: &Outcome, classes: &Classes, wi: usize, port: u16) -> PortAnswer {
    let p = Prover::new(o);
    let w = &o.resolved.workloads[wi];
    let config = o.configs[wi].as_ref();
    let policy = config.map(|c| c.inbound.lookup(port));
    let all: Vec<usize> = (0..classes.len()).collect();
    let bypass_entry = |gate: Gate| PortAnswer {
        port,
        name: port_name(w, port),
        server: p.gate(wi, port, &gate),
        rate_limit: None,
        entries: vec![Entry {
            unit: Unit::Bypass,
            route: None,
            matches: Vec::new(),
            allowed: all.clone(),
            denied: Vec::new(),
            depends: Vec::new(),
            bypass: Vec::new(),
            denied_as: denied_as(Unit::Bypass),
        }],
    };
    let server = match policy {
        None => return bypass_entry(Gate::NoProxy),
        Some(PortPolicy::Skipped) => return bypass_entry(Gate::SkippedPort),
        Some(PortPolicy::Server(s)) => s,
    };
    let template = evaluate::per_route(Gate::Server(server), &classes.classes[0].client);
    let mut entries: Vec<Entry> = template
        .iter()
        .map(|d| {
            let (route, matches) = match d.route {
                Some((ri, _)) => (Some(route_name(route_meta(server, ri))), rule_texts(server, ri)),
                None => (None, Vec::new()),
            };
            Entry {
                unit: d.unit,
                route,
                matches,
                allowed: Vec::new(),
                denied: Vec::new(),
                depends: Vec::new(),
                bypass: Vec::new(),
                denied_as: denied_as(d.unit),
            }
        })
        .collect();
    for class in &classes.classes {
        let verdicts = entry_verdicts(config, port, &class.at, entries.len());
        for (i, e) in entries.iter_mut().enumerate() {
            let at: Vec<(Verdict, bool)> = verdicts.iter().map(|v| v[i]).collect();
            let (verdict, condition) = combine(&classes.addrs.places, &at.iter().map(|v| v.0).collect::<Vec<_>>());
            match (verdict, condition) {
                (Verdict::Allow, _) => e.allowed.push(class.id),
                (Verdict::Depends, Some(condition)) => e.depends.push(Dependent { class: class.id, condition }),
                _ => e.denied.push(class.id),
            }
            if at.iter().all(|v| v.1) {
                e.bypass.push(class.id);
            }
        }
    }
    let rate_limit = server.rate_limit.as_ref().map(super::ratelimit::PolicyView::from);
    let server = p.gate(wi, port, &Gate::Server(server));
    PortAnswer { port, name: port_name(w, port), server, rate_limit, entries }
}

/// Per place, each entry's verdict and whether the client bypasses the proxy.
fn entry_verdicts(config: Option<&ProxyConfig>, port: u16, at: &[Client], entries: usize) -> Vec<Vec<(Verdict, bool)>> {
    let mut out: Vec<Vec<(Verdict, bool)>> = Vec::with_capacity(at.len());
    for (k, client) in at.iter().enumerate() {
        if k > 0 && at[k - 1] == *client {
            out.push(out[k - 1].clone());
            continue;
        }
        let gate = evaluate::gate(config, port, client);
        out.push(match gate {
            Gate::SkippedSubnet(_) => vec![(Verdict::Allow, true); entries],
            _ => evaluate::per_route(gate, client).iter().map(|d| (d.verdict, false)).collect(),
        });
    }
    out
}

/// Answers for the given port, or every port of [`target_ports`].
pub fn who_can_reach(o: &Outcome, classes: &Classes, wi: usize, port: Option<u16>) -> Vec<PortAnswer> {
    let ports = match port {
        Some(p) => vec![p],
        None => target_ports(&o.resolved.workloads[wi], o.configs[wi].as_ref()),
    };
    ports.into_iter().map(|port| port_answer(o, classes, wi, port)).collect()
}
