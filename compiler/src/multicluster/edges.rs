//! Edges across clusters for `who-can-reach` and `matrix`: every client
//! class of a source cluster whose members are pods (the only clients that
//! can call a mirrored Service: kubelets, external addresses and the pod's
//! own localhost stay in their cluster) calling every workload port behind
//! each Service a Link mirrors, each call proved hop by hop with
//! [`super::reach::cross`] (client proxy, gateway, target).

use super::Clusters;
use super::reach::{self as cross, CrossReach, Path};
use crate::query::classes::Classes;
use crate::query::clients::ClientKind;
use crate::query::evaluate::Verdict;
use crate::query::reach::ClientView;
use serde::Serialize;

/// One pod of one cluster calling one workload port of another.
#[derive(Clone, Debug, Serialize)]
pub struct CrossEdge {
    /// The client's cluster.
    #[serde(rename = "clientCluster")]
    pub client_cluster: String,
    /// The pod's class id in the client cluster's classes.
    pub class: usize,
    /// The pod's workload, `KIND/NS/NAME`.
    pub client: String,
    /// `CLUSTER/svc/NS/MIRROR:PORT` the client calls.
    pub via: String,
    pub mode: &'static str,
    #[serde(rename = "targetCluster")]
    pub target_cluster: String,
    /// `CLUSTER/KIND/NS/NAME`.
    pub workload: String,
    #[serde(skip)]
    pub workload_index: usize,
    pub port: u16,
    /// Who the target sees: the gateway's identity, the client's, or none (a hop stopped the call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrives: Option<String>,
    /// `allow`, `partial`, `depends`, `deny` or `no-route` (see [`CrossReach::verdict`]).
    pub verdict: &'static str,
    /// The first hop that stops the call, or the target's verdict, in words.
    pub why: String,
}

/// Every pod of `classes` (each workload member of a class), as the client
/// of a cross-cluster call, with its class id. Pods, not classes: a class
/// groups the clients its own cluster's policies cannot tell apart, while
/// pod-to-pod the target cluster's policies see each client's own identity.
pub fn pod_clients(classes: &Classes) -> Vec<(usize, ClientView)> {
    let mut out = Vec::new();
    for c in &classes.classes {
        for pod in c.members.iter().filter(|m| m.kind == ClientKind::Workload) {
            let at = crate::query::reach::placed(classes, ClientKind::Workload, &pod.client);
            let mut view = ClientView::of_client(pod.label.clone(), ClientKind::Workload, &at, Some(c.id));
            // The client route is the pod's namespace's.
            view.workload = pod.workload;
            out.push((c.id, view));
        }
    }
    out
}

/// Every pod of `clients` (of `p.source`) calling `(wi, pod_port)` of `p.target` through `p` on Service port `port`.
pub fn through(
    m: &Clusters,
    clients: &[(usize, ClientView)],
    p: &Path,
    port: u16,
    (wi, pod_port): (usize, u16),
) -> Vec<CrossEdge> {
    let tgt = &m.clusters[p.target];
    let workload = format!("{}/{}", tgt.name, crate::query::reach::workload_label(&tgt.outcome, wi));
    clients
        .iter()
        .map(|(class, view)| {
            let c = cross::cross(m, view, p, port, (wi, pod_port), None);
            CrossEdge {
                client_cluster: m.clusters[p.source].name.clone(),
                class: *class,
                client: view.spec.clone(),
                via: c.via.clone(),
                mode: c.mode,
                target_cluster: tgt.name.clone(),
                workload: workload.clone(),
                workload_index: wi,
                port: pod_port,
                arrives: c.target.as_ref().map(|(a, _)| a.clone()),
                verdict: c.verdict(false),
                why: why(&c),
            }
        })
        .collect()
}

/// The first hop that does not let the call through, else the target's first verdict.
fn why(c: &CrossReach) -> String {
    if let Some(h) = c.hops.iter().find(|h| h.verdict.is_some_and(|v| v != Verdict::Allow)) {
        let detail = h.proof.last().map_or("", |s| s.detail.as_str());
        return format!("{} ({}): {detail}", h.hop, h.cluster);
    }
    match &c.target {
        Some((_, r)) => r.verdicts.first().map_or_else(String::new, |v| v.summary()),
        None => String::new(),
    }
}

/// Every call from another cluster into workload `wi` of cluster `target`
/// (on `port`, else on each port an export leads to).
pub fn into_workload(m: &Clusters, target: usize, wi: usize, port: Option<u16>) -> Vec<CrossEdge> {
    let wanted = |b: (usize, u16)| b.0 == wi && port.is_none_or(|want| want == b.1);
    edges_where(m, |e| e.target_cluster == target, wanted)
}

/// Every call across clusters in the repository, by export.
pub fn all(m: &Clusters) -> Vec<CrossEdge> {
    edges_where(m, |_| true, |_| true)
}

/// The edges of the exports `export` keeps, into the backends `backend` keeps;
/// each source cluster's classes derived once.
fn edges_where(
    m: &Clusters,
    export: impl Fn(&super::mirror::Export) -> bool,
    backend: impl Fn((usize, u16)) -> bool,
) -> Vec<CrossEdge> {
    let mut clients: Vec<Option<Vec<(usize, ClientView)>>> = vec![None; m.clusters.len()];
    let mut out = Vec::new();
    for e in m.links.exports.iter().filter(|e| export(e)) {
        let p = cross::path_of(m, e);
        let keep: Vec<(u16, (usize, u16))> = service_backends(m, &p).into_iter().filter(|(_, b)| backend(*b)).collect();
        if keep.is_empty() {
            continue;
        }
        let views = clients[p.source].get_or_insert_with(|| {
            let o = &m.clusters[p.source].outcome;
            pod_clients(&Classes::derive(&o.resolved, &o.configs))
        });
        for (svc_port, b) in keep {
            out.extend(through(m, views, &p, svc_port, b));
        }
    }
    out
}

/// Each TCP port of the path's target Service with the workload ports behind it.
pub fn service_backends(m: &Clusters, p: &Path) -> Vec<(u16, (usize, u16))> {
    let o = &m.clusters[p.target].outcome;
    let Some(ri) = o.resolved.index.get(crate::resolve::index::Kind::Service, p.namespace, p.service) else {
        return Vec::new();
    };
    let ports: Vec<u16> =
        crate::query::svc::target::service_ports(o, ri).iter().filter_map(|sp| u16::try_from(sp.port).ok()).collect();
    ports.into_iter().flat_map(|sp| cross::backends(m, p, sp).into_iter().map(move |b| (sp, b))).collect()
}
