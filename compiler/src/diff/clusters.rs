//! `meshc diff` of a multicluster repository: each cluster's two sides
//! compared as `diff` compares one cluster (clusters matched by name),
//! every workload named `CLUSTER/KIND/NS/NAME`; then the calls across
//! clusters (`multicluster::edges`), which appear or disappear when a Link,
//! an export label, the gateway's or the target's policy changes.

use super::{ClientGroup, Diff, EdgeChange, Sides, Target};
use crate::multicluster::Clusters;
use crate::multicluster::edges::{self, CrossEdge};
use crate::pipeline::Outcome;
use std::collections::BTreeMap;

/// The diff of two checked multicluster repositories (`base` and `head`
/// are the combined outcomes; their findings are compared as a whole).
/// A cluster on one side only is compared with an empty cluster.
pub fn diff(base: &Outcome, head: &Outcome, namespace: Option<&str>) -> Diff {
    let empty = &empty_outcome();
    let none = Clusters { clusters: Vec::new(), links: empty_links() };
    let (b, h) = (base.multicluster.as_deref().unwrap_or(&none), head.multicluster.as_deref().unwrap_or(&none));
    let mut names: Vec<&str> = b.clusters.iter().chain(&h.clusters).map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut d = Diff::default();
    for name in names {
        let sides = Sides::new(cluster_or(b, name, empty), cluster_or(h, name, empty));
        let one = super::diff(&sides, namespace);
        merge(&mut d, one, name);
    }
    let (opened, closed) = across(b, h, namespace);
    d.opened.extend(opened);
    d.closed.extend(closed);
    d.findings = super::finding_changes(base, head);
    d
}

fn cluster_or<'a>(m: &'a Clusters, name: &str, empty: &'a Outcome) -> &'a Outcome {
    m.find(name).map_or(empty, |i| &m.clusters[i].outcome)
}

/// A cluster without objects: what a cluster added (removed) by the change is compared with.
fn empty_outcome() -> Outcome {
    let settings = crate::settings::Settings::default();
    let resolved = crate::resolve::resolve(Vec::new(), settings, &[], &mut Vec::new());
    Outcome {
        sources: Vec::new(),
        findings: Vec::new(),
        objects: 0,
        resolved,
        configs: Vec::new(),
        outbound: Default::default(),
        tests: Vec::new(),
        multicluster: None,
    }
}

fn empty_links() -> crate::multicluster::Links {
    crate::multicluster::Links {
        links: Vec::new(),
        target_of: Vec::new(),
        exports: Vec::new(),
        federated: Vec::new(),
        untrusted: Vec::new(),
        gateways: Vec::new(),
        gateway_problems: Vec::new(),
    }
}

/// Adds one cluster's diff, its workloads and clients prefixed with the cluster.
fn merge(d: &mut Diff, one: Diff, cluster: &str) {
    let prefix = |s: &str| format!("{cluster}/{s}");
    let edge = |mut e: EdgeChange| {
        if !e.client.members.is_empty() {
            e.client.label = prefix(e.client.label.as_str());
            e.client.members = e.client.members.iter().map(|m| prefix(m.as_str())).collect();
        }
        e.target.workload = prefix(e.target.workload.as_str());
        e
    };
    d.opened.extend(one.opened.into_iter().map(edge));
    d.closed.extend(one.closed.into_iter().map(edge));
    d.unchanged += one.unchanged;
    let egress = |mut e: super::egress::EgressChange| {
        e.clients = e.clients.iter().map(|c| prefix(c.as_str())).collect();
        e
    };
    d.egress_opened.extend(one.egress_opened.into_iter().map(egress));
    d.egress_closed.extend(one.egress_closed.into_iter().map(egress));
    d.configs_changed.extend(one.configs_changed.into_iter().map(|mut c| {
        c.workload = prefix(c.workload.as_str());
        c
    }));
}

/// What one side lets across: per (client, mirror, workload port), the verdict when allowed.
fn allowed(m: &Clusters, namespace: Option<&str>) -> BTreeMap<(String, String, String, u16), CrossEdge> {
    let mut out = BTreeMap::new();
    for e in edges::all(m) {
        if !matches!(e.verdict, "allow" | "partial" | "depends") {
            continue;
        }
        let Some(t) = m.find(&e.target_cluster) else { continue };
        let w = &m.clusters[t].outcome.resolved.workloads[e.workload_index];
        if namespace.is_some_and(|ns| w.namespace != ns) {
            continue;
        }
        let client = format!("{}/{}", e.client_cluster, e.client);
        out.insert((client, e.via.clone(), e.workload.clone(), e.port), e);
    }
    out
}

/// Calls across clusters allowed on one side only: (opened, closed).
fn across(base: &Clusters, head: &Clusters, namespace: Option<&str>) -> (Vec<EdgeChange>, Vec<EdgeChange>) {
    let (b, h) = (allowed(base, namespace), allowed(head, namespace));
    let change = |((client, _, _, _), e): (&(String, String, String, u16), &CrossEdge)| EdgeChange {
        client: ClientGroup { label: client.clone(), members: vec![client.clone()] },
        target: Target { workload: e.workload.clone(), port: e.port },
        namespace: e.workload.split('/').nth(2).unwrap_or_default().to_owned(),
        route: match &e.arrives {
            Some(a) => format!("via {} ({} mode, arrives as {a})", e.via, e.mode),
            None => format!("via {} ({} mode)", e.via, e.mode),
        },
        matches: None,
        condition: None,
        cause: None,
    };
    let opened = h.iter().filter(|(k, _)| !b.contains_key(*k)).map(change).collect();
    let closed = b.iter().filter(|(k, _)| !h.contains_key(*k)).map(change).collect();
    (opened, closed)
}
