//! Which egress edges a change opens and closes (`query::matrix_egress`).
//!
//! Egress turns on the client's namespace and on whether it has a proxy,
//! not on its inbound class, so the sides are compared per client workload
//! (by label): the facts its proxy lets out on each side. A workload on one
//! side only opens or closes all of its facts. Changes are grouped by fact,
//! listing the workloads.

use super::Sides;
use crate::pipeline::Outcome;
use crate::query::matrix_egress::{EgressFact, EgressOutcome, namespace_facts, no_proxy};
use crate::query::proof::{Prover, Step};
use crate::query::reach::workload_label;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Clone, Debug, Serialize)]
pub struct EgressChange {
    /// The client workloads whose egress changed alike.
    pub clients: Vec<String>,
    pub target: EgressFact,
    /// On the side that has the edge: `allow` or `partial`.
    pub verdict: &'static str,
    pub backends: Vec<String>,
    /// The EgressNetwork (or its route) the edge comes from, on the side that has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Step>,
}

/// One side's egress facts: the distinct sets (a namespace's, or no
/// proxy's), and which set each workload has, by label. Workloads of one
/// namespace share its set (ten thousand copies of a hundred sets otherwise).
struct Facts {
    sets: Vec<BTreeSet<EgressOutcome>>,
    by_workload: BTreeMap<String, usize>,
}

impl Facts {
    fn of(o: &Outcome) -> Self {
        let mut sets = vec![BTreeSet::from([no_proxy()])];
        let mut per_namespace: HashMap<&str, usize> = HashMap::new();
        let mut by_workload = BTreeMap::new();
        for (wi, w) in o.resolved.workloads.iter().enumerate() {
            let set = if w.is_meshed() {
                *per_namespace.entry(w.namespace.as_str()).or_insert_with(|| {
                    sets.push(namespace_facts(&o.outbound.egress.for_namespace(&w.namespace)).into_iter().collect());
                    sets.len() - 1
                })
            } else {
                0
            };
            by_workload.insert(workload_label(o, wi), set);
        }
        Facts { sets, by_workload }
    }

    fn get(&self, label: &str) -> Option<&BTreeSet<EgressOutcome>> {
        self.by_workload.get(label).and_then(|&i| self.sets.get(i))
    }
}

/// `(opened, closed)`; `network_namespace` keeps the facts of EgressNetworks in it.
pub fn changes(s: &Sides, network_namespace: Option<&str>) -> (Vec<EgressChange>, Vec<EgressChange>) {
    let (base, head) = rayon::join(|| Facts::of(s.base), || Facts::of(s.head));
    let empty = BTreeSet::new();
    let labels: BTreeSet<&String> = base.by_workload.keys().chain(head.by_workload.keys()).collect();
    let mut opened: BTreeMap<&EgressOutcome, Vec<String>> = BTreeMap::new();
    let mut closed: BTreeMap<&EgressOutcome, Vec<String>> = BTreeMap::new();
    for label in labels {
        let (b, h) = (base.get(label).unwrap_or(&empty), head.get(label).unwrap_or(&empty));
        for f in h.difference(b) {
            opened.entry(f).or_default().push(label.clone());
        }
        for f in b.difference(h) {
            closed.entry(f).or_default().push(label.clone());
        }
    }
    let keep = |f: &EgressFact| {
        network_namespace.is_none_or(|ns| f.egress_network.as_deref().is_some_and(|n| n.split('/').next() == Some(ns)))
    };
    let list = |m: BTreeMap<&EgressOutcome, Vec<String>>, o: &Outcome| -> Vec<EgressChange> {
        m.into_iter()
            .filter(|(f, _)| keep(&f.target))
            .map(|(f, clients)| EgressChange {
                clients,
                target: f.target.clone(),
                verdict: f.verdict,
                backends: f.backends.clone(),
                source: source(o, &f.target),
            })
            .collect()
    };
    (list(opened, s.head), list(closed, s.base))
}

/// The route resource, else the EgressNetwork, with file:line.
fn source(o: &Outcome, f: &EgressFact) -> Option<Step> {
    let (ns, name) = f.egress_network.as_deref()?.split_once('/')?;
    let p = Prover::new(o);
    let policy = &o.outbound.egress;
    if let (Some(route), Some(port)) = (&f.route, f.port) {
        let route_name = route.split_once(' ').map_or(route.as_str(), |(_, n)| n);
        let key = (ns.to_owned(), name.to_owned(), port, route_name.to_owned());
        if let Some(&ri) = policy.route_resources.get(&key) {
            return Some(p.at("route", ri, &[], format!("{route} of EgressNetwork {ns}/{name} on port {port}")));
        }
    }
    let net = policy.nets.get(ns, name)?;
    let detail = format!("EgressNetwork {ns}/{name}");
    Some(p.at("egress-network", net.resource, &["spec", "trafficPolicy"], detail))
}

/// One line: `web (+2 more) → egress: EgressNetwork ns/x HTTPRoute r port 80 (to original)`.
pub fn line(e: &EgressChange) -> String {
    let clients = match e.clients.len() {
        1 => e.clients[0].clone(),
        n => format!("{} (+{} more)", e.clients.first().map_or("", String::as_str), n.saturating_sub(1)),
    };
    let partial = if e.verdict == "allow" { String::new() } else { format!(" [{}]", e.verdict) };
    format!("{clients} → egress: {} (to {}){partial}", e.target.label(), e.backends.join(", "))
}

/// Where the edge comes from, for a `because` line.
pub fn source_line(e: &EgressChange) -> Option<String> {
    let s = e.source.as_ref()?;
    Some(match (&s.file, s.line) {
        (Some(f), Some(l)) => format!("{} ({f}:{l})", s.detail),
        _ => s.detail.clone(),
    })
}
