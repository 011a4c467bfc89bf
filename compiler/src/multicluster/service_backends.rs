//! `reach --to CLUSTER/svc/NS/NAME:PORT` of a Service whose client route
//! (an HTTPRoute's or GRPCRoute's backendRefs, a ServiceProfile's
//! dstOverrides, a TrafficSplit through them) sends part of the call to a
//! mirrored Service: the one-cluster answer judges such a backend as a
//! Service without selector (`depends`), since its endpoints are written
//! outside git. Across clusters meshc knows them: each workload behind the
//! exported Service, reached through the gateway or pod-to-pod as
//! [`super::reach`] proves it, replaces that backend.

use super::Clusters;
use super::reach::{self as cross, CrossReach};
use crate::query::evaluate::Verdict;
use crate::query::proof::Step;
use crate::query::reach::workload_label;
use crate::query::svc::backends::{self, BackendVerdict};
use crate::query::svc::{self, ServiceReach};
use mesh_proxy_api::HttpRequest;

/// Follows every backend of `r` (a Service reach in cluster `source`) that
/// is a mirror into the target cluster, then decides the call again.
/// `req` is the request the backends were judged with (`None`: a connection).
pub fn follow(m: &Clusters, source: usize, r: &mut ServiceReach, req: Option<&HttpRequest>) {
    let before = std::mem::take(&mut r.backends);
    for b in before {
        match across(m, source, r, &b, req) {
            Some(entries) => r.backends.extend(entries),
            None => r.backends.push(b),
        }
    }
    r.verdict = svc::verdict_of(&r.client_route, &r.backends);
}

/// The entries that replace backend `b` when it is a mirror, one per
/// workload behind the exported Service; `None` for any other backend.
fn across(
    m: &Clusters,
    source: usize,
    r: &ServiceReach,
    b: &BackendVerdict,
    req: Option<&HttpRequest>,
) -> Option<Vec<BackendVerdict>> {
    let (service, port) = b.service.rsplit_once(':')?;
    let (namespace, name) = service.split_once('/')?;
    let port: u16 = port.parse().ok()?;
    let path = cross::path_of_mirror(m, source, namespace, name)?;
    let target = &m.clusters[path.target];
    let picked_by = format!(
        "the route of {}/{}:{} picks backend {} (weight {}): the client's proxy sends the call to the mirror's \
         endpoints; the mirror's own routes do not apply to a backend",
        r.service.namespace, r.service.name, r.service.port, b.service, b.weight
    );
    let workloads = cross::backends(m, &path, port);
    if workloads.is_empty() {
        let why = format!(
            "{} mirrors Service {namespace}/{} of cluster {}, where no workload answers port {port}: the mirror has \
             no endpoints",
            b.service, path.service, target.name
        );
        let entry = BackendVerdict {
            verdict: Verdict::Deny,
            condition: None,
            proof: vec![Step::plain("backend", why)],
            ..b.clone()
        };
        return Some(vec![entry]);
    }
    let entries = workloads
        .into_iter()
        .map(|(wi, pod_port)| {
            let call = cross::cross_as_backend(m, &r.client, &path, port, (wi, pod_port), req, picked_by.clone());
            let workload = format!("{}/{}:{pod_port}", target.name, workload_label(&target.outcome, wi));
            entry(b, &call, workload, req.is_some())
        })
        .collect();
    Some(entries)
}

/// One workload's entry: the first hop that stops the call, else the
/// target's verdict, with every hop's proof.
fn entry(b: &BackendVerdict, call: &CrossReach, workload: String, with_request: bool) -> BackendVerdict {
    let mut proof = Vec::new();
    for h in &call.hops {
        let verdict = h.verdict.map_or("", |v| v.as_str());
        proof.push(Step::plain("hop", format!("{} ({}): {verdict}", h.hop, h.cluster)));
        proof.extend(h.proof.iter().filter(|s| s.step != "client").cloned());
    }
    let base = BackendVerdict {
        workload: Some(workload),
        pods: None,
        workload_index: None,
        condition: None,
        status: None,
        proof: Vec::new(),
        ..b.clone()
    };
    if let Some(stop) = call.hops.iter().find_map(|h| h.verdict.filter(|v| *v != Verdict::Allow)) {
        return BackendVerdict { verdict: stop, proof, ..base };
    }
    let Some((arrives, reach)) = &call.target else { return BackendVerdict { verdict: Verdict::Deny, proof, ..base } };
    proof.push(Step::plain("hop", format!("target ({arrives})")));
    let judged = if with_request {
        reach.verdicts.first().cloned()
    } else {
        backends::connection_verdict(reach.verdicts.clone())
    };
    let Some(v) = judged else {
        proof.push(Step::plain(
            "backend",
            "the target's Server declares an HTTP protocol: a TLS or opaque connection fails to parse and is closed"
                .to_owned(),
        ));
        return BackendVerdict { verdict: Verdict::Deny, proof, ..base };
    };
    proof.extend(v.proof);
    BackendVerdict { verdict: v.verdict, condition: v.condition, status: v.status, proof, ..base }
}
