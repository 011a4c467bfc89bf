//! A pod calling a Service that selects its own workload. The client's
//! proxy balances over the Service's endpoints, and one of them is the
//! client's own pod: linkerd2-proxy marks an endpoint at one of its inbound
//! addresses local (`outbound::http::concrete`, `is_local` from
//! `LINKERD2_PROXY_INBOUND_IPS`; the same in `opaq` and `tls`) and connects
//! in plaintext (`NoClientTls::Loopback`) to the app's port. That
//! connection, opened as the proxy's uid to the pod's own address, leaves
//! through `lo`, returns from proxy-init's `PROXY_INIT_OUTPUT` and never
//! meets `PROXY_INIT_REDIRECT`: the app answers, with no Server,
//! authorization or rate limit in between. The workload's other pods, when
//! it has some, are ordinary endpoints: their inbound policy decides.
//! (docs/semantics/proxy-init.md, "A pod calling its own Service".)

use super::backends::{BackendVerdict, Pods};
use crate::load::yaml::Value;
use crate::pipeline::Outcome;
use crate::query::evaluate::Verdict;
use crate::query::proof::Step;

/// Kinds whose `spec.replicas` counts the pods (Kubernetes' default: 1).
const REPLICATED: [&str; 4] = ["Deployment", "StatefulSet", "ReplicaSet", "Rollout"];

/// Whether workload `wi` runs a single pod, as far as git says: a Pod, or a
/// Deployment, StatefulSet, ReplicaSet or Rollout with `replicas` 1 or unset.
/// Replicas above 1 or not a number, a DaemonSet or a Job may run several.
/// An autoscaler or a rolling update's surge pod adds pods git does not show.
pub fn single_pod(o: &Outcome, wi: usize) -> bool {
    let w = &o.resolved.workloads[wi];
    if w.kind == "Pod" {
        return true;
    }
    if !REPLICATED.contains(&w.kind.as_str()) {
        return false;
    }
    let node = &o.resolved.resources[w.resource].node;
    match node.get("spec").and_then(|s| s.get("replicas")).map(|r| &r.value) {
        None | Some(Value::Null) => true,
        Some(Value::Int(n)) => *n <= 1,
        Some(_) => false,
    }
}

/// Why the workload's other pods may be endpoints too.
fn other_pods_reason(o: &Outcome, wi: usize) -> String {
    let w = &o.resolved.workloads[wi];
    let node = &o.resolved.resources[w.resource].node;
    match node.get("spec").and_then(|s| s.get("replicas")).map(|r| &r.value) {
        Some(Value::Int(n)) => format!("{} {}/{} runs {n} replicas", w.kind, w.namespace, w.name),
        Some(_) => format!("{} {}/{} sets replicas to a value git does not fix", w.kind, w.namespace, w.name),
        None => format!("{} {}/{} may run several pods", w.kind, w.namespace, w.name),
    }
}

/// The client's own pod behind a backend: the app answers.
pub fn own_entry(service: String, weight: u32, workload: String, wi: usize) -> BackendVerdict {
    let why = format!(
        "one endpoint is the client's own pod: its proxy connects to {workload} in plaintext, straight to the app \
         (linkerd2-proxy: an endpoint at the proxy's own inbound address is local, no mTLS; the connection leaves \
         through lo and proxy-init's rules keep it from the inbound proxy), so no Server, authorization or rate limit applies"
    );
    BackendVerdict {
        service,
        weight,
        workload: Some(workload),
        pods: Some(Pods::Own),
        workload_index: Some(wi),
        verdict: Verdict::Allow,
        condition: None,
        status: None,
        proof: vec![Step::plain("own pod", why)],
    }
}

/// The entries for the client's own workload behind a backend: its own pod,
/// then (when it may run more than one pod) its other pods, judged as any
/// endpoint (`others`, the inbound verdict computed for them).
pub fn entries(o: &Outcome, wi: usize, mut others: BackendVerdict) -> Vec<BackendVerdict> {
    let workload = others.workload.clone().unwrap_or_default();
    let own = own_entry(others.service.clone(), others.weight, workload, wi);
    if single_pod(o, wi) {
        return vec![own];
    }
    let why = format!(
        "{}: the client's proxy balances over its own pod and the others, whose inbound proxies decide as for any client",
        other_pods_reason(o, wi)
    );
    others.pods = Some(Pods::Others);
    others.proof.insert(0, Step::plain("other pods", why));
    vec![own, others]
}
