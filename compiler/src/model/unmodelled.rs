//! Objects meshc reads but does not model. A kind that Linkerd or the
//! Gateway API serves changes what Linkerd's proxies do, so skipping it in
//! silence would let `reach` answer allow where the cluster answers 403 or
//! 429. Each such object gets an `unmodelled-resource` finding that names the
//! verdicts it may change. The same holds for a workload kind whose pods
//! meshc cannot see (a custom controller's pod template).

use crate::findings::{Code, Finding};
use crate::load::RawObject;
use crate::load::yaml::Node;

/// Groups whose every kind shapes mesh traffic: Linkerd's own, the Gateway
/// API's (Linkerd serves its routes; the rest is served by a gateway), and
/// SMI's (served by the linkerd-smi extension).
const SERVED_GROUPS: &[&str] = &[
    "policy.linkerd.io",
    "linkerd.io",
    "workload.linkerd.io",
    "multicluster.linkerd.io",
    "gateway.networking.k8s.io",
    "gateway.networking.x-k8s.io",
    "split.smi-spec.io",
    "access.smi-spec.io",
    "specs.smi-spec.io",
];

/// The finding for an object `known` does not model, if it is one that can
/// change a verdict.
pub fn finding(raw: &RawObject, group: &str, namespace: &str) -> Option<Finding> {
    let name = raw.node.get("metadata").and_then(|m| m.get("name")).and_then(Node::as_str).unwrap_or("");
    if ignored(raw) {
        return None;
    }
    let effect = if SERVED_GROUPS.contains(&group) {
        served_effect(raw, group)
    } else if has_pod_template(&raw.node) {
        "its pods are not seen (meshc models Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and \
         CronJob): Servers selecting them, and their verdicts as clients and as servers, are not checked"
            .to_owned()
    } else {
        return None;
    };
    // GatewayClass is the one cluster-scoped kind of these groups.
    let id = if raw.kind == "GatewayClass" { name.to_owned() } else { format!("{namespace}/{name}") };
    let msg = format!("{} {id} ({}) is not modelled: {effect}", raw.kind, raw.api_version);
    Some(Finding::new(Code::UnmodelledResource, raw.span(), msg))
}

/// `meshc.io/ignore` on an object that never becomes a `Resource`.
fn ignored(raw: &RawObject) -> bool {
    let value = raw.node.get("metadata").and_then(|m| m.get("annotations")).and_then(|a| a.get("meshc.io/ignore"));
    value
        .and_then(Node::as_str)
        .is_some_and(|v| v.split(',').any(|c| c.trim() == Code::UnmodelledResource.as_str() || c.trim() == "all"))
}

fn spec_str<'a>(raw: &'a RawObject, path: &[&str]) -> Option<&'a str> {
    let mut node = raw.node.get("spec")?;
    for key in path {
        node = node.get(key)?;
    }
    node.as_str()
}

/// What Linkerd (or the gateway, or linkerd-smi) does with the object that
/// meshc's verdicts therefore leave out.
fn served_effect(raw: &RawObject, group: &str) -> String {
    if group.ends_with(".smi-spec.io") {
        // linkerd-smi converts TrafficSplits only; nothing reads the others.
        return "Linkerd does not implement it (the linkerd-smi extension reads TrafficSplit only): the access or \
                routing it describes is not enforced"
            .to_owned();
    }
    match raw.kind.as_str() {
        // TLSRoute and TCPRoute (model::stream_route), EgressNetwork
        // (model::egress) and TrafficSplit (model::traffic_split) are modelled.
        "UDPRoute" => "Linkerd does not proxy UDP; the gateway that serves it is not checked".to_owned(),
        "ExternalWorkload" => "the external workload is not seen: its identity as a client and the Servers that \
                               select it (externalWorkloadSelector) are not checked"
            .to_owned(),
        "Link" => format!(
            "Services mirrored from cluster {} are not seen: verdicts of clients calling them are not checked",
            spec_str(raw, &["targetClusterName"]).unwrap_or("?")
        ),
        "Gateway" | "GatewayClass" | "ListenerSet" | "XListenerSet" => {
            "what the gateway implementation accepts and routes (its listeners and the routes whose parent is a \
             Gateway) is not checked; meshc checks only what Linkerd's proxies do"
                .to_owned()
        }
        _ => "verdicts that depend on it are not checked".to_owned(),
    }
}

/// A controller with a pod template: `spec.template.spec.containers` (as a
/// Deployment) or `spec.jobTemplate.spec.template.spec.containers`.
fn has_pod_template(node: &Node) -> bool {
    let Some(spec) = node.get("spec") else { return false };
    let template = spec.get("template").or_else(|| spec.get("jobTemplate")?.get("spec")?.get("template"));
    template.and_then(|t| t.get("spec")).and_then(|s| s.get("containers")).is_some()
}
