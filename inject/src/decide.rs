//! Whether a pod template is injected (`pkg/inject/report.go`: `newReport`,
//! `Injectable`, `disabledByAnnotation`; `pkg/healthcheck/sidecar.go`:
//! `HasExistingSidecars`), with the reasons in words.

use super::knobs::{ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT};
use super::{Context, PROXY_CONTAINER, PROXY_INIT_CONTAINER};
use serde_json::Value as Json;
use std::collections::BTreeMap;

pub const INJECT_KEY: &str = "linkerd.io/inject";

/// Why a template is left as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Injected; `true` in ingress mode.
    Inject { ingress: bool },
    /// Nobody asked for it (or asked not to): not a problem.
    Skip(String),
    /// Asked for, but injecting would break the pod.
    Refuse(String),
}

/// The decision, in Linkerd's order: sidecars already there, excluded
/// namespaces and control-plane pods, the annotation (pod, else namespace),
/// then what would make the injected pod fail.
pub fn decide(template: &Json, annotations: &BTreeMap<String, String>, ctx: &Context) -> Verdict {
    let spec = &template["spec"];
    if containers(spec).any(|c| c["name"] == "linkerd-proxy" || c["name"] == "linkerd-init") {
        return Verdict::Skip("it already has Linkerd's proxy (linkerd-proxy)".to_owned());
    }
    if matches!(ctx.namespace, "kube-system" | "cert-manager") {
        return Verdict::Skip(format!("namespace {} is never injected", ctx.namespace));
    }
    let ns_labels = ctx.namespace_meta.as_ref().map(|n| n.labels);
    if ns_labels.and_then(|l| l.get("config.linkerd.io/admission-webhooks")).is_some_and(|v| v == "disabled") {
        return Verdict::Skip(format!(
            "namespace {} has config.linkerd.io/admission-webhooks: disabled",
            ctx.namespace
        ));
    }
    let labels = &template["metadata"]["labels"];
    if ["linkerd.io/control-plane-component", "linkerd.io/cni-resource"].iter().any(|l| labels.get(l).is_some()) {
        return Verdict::Skip("it is a Linkerd control-plane pod".to_owned());
    }
    let ingress = match asked(annotations, ctx) {
        Ok(ingress) => ingress,
        Err(why) => return Verdict::Skip(why),
    };
    if spec["containers"].as_array().is_none_or(|c| c.is_empty()) {
        return Verdict::Refuse("its pod spec has no containers".to_owned());
    }
    if spec["hostNetwork"] == Json::Bool(true) {
        return Verdict::Refuse(
            "it uses hostNetwork: the proxy's redirection would capture the node's traffic".to_owned(),
        );
    }
    if let Some(why) = port_clash(spec) {
        return Verdict::Refuse(why);
    }
    Verdict::Inject { ingress }
}

/// `Ok(ingress)` when the pod's `linkerd.io/inject`, else its namespace's,
/// asks for injection.
fn asked(annotations: &BTreeMap<String, String>, ctx: &Context) -> Result<bool, String> {
    let ns_value = ctx.namespace_meta.as_ref().and_then(|n| n.annotations.get(INJECT_KEY)).map(String::as_str);
    let (value, from) = match (annotations.get(INJECT_KEY), ns_value) {
        (Some(v), _) => (v.as_str(), "its pod template".to_owned()),
        (None, Some(v)) => (v, format!("namespace {}", ctx.namespace)),
        (None, None) => {
            let known = if ctx.namespace_meta.is_some() { "" } else { " (the Namespace is not in the input)" };
            return Err(format!(
                "neither its pod template nor namespace {} has {INJECT_KEY}: enabled{known}",
                ctx.namespace
            ));
        }
    };
    match value {
        "enabled" => Ok(false),
        "ingress" => Ok(true),
        "disabled" => Err(format!("{from} has {INJECT_KEY}: disabled")),
        other => Err(format!("{from} has {INJECT_KEY}: `{other}`, not enabled, ingress or disabled")),
    }
}

/// A container port the proxy listens on: the proxy could not bind it, or
/// the app would never see its traffic.
fn port_clash(spec: &Json) -> Option<String> {
    for c in containers(spec).filter(|c| !is_ours(c)) {
        for p in c["ports"].as_array().into_iter().flatten() {
            let port = p["containerPort"].as_u64();
            if let Some(port) = port.filter(|p| [INBOUND_PORT, ADMIN_PORT, OUTBOUND_PORT].map(u64::from).contains(p)) {
                let name = c["name"].as_str().unwrap_or("?");
                return Some(format!(
                    "container {name} declares port {port}, which the proxy listens on ({INBOUND_PORT} inbound, {OUTBOUND_PORT} outbound, {ADMIN_PORT} admin)"
                ));
            }
        }
    }
    None
}

/// Every init and regular container of a pod spec.
pub fn containers(spec: &Json) -> impl Iterator<Item = &Json> {
    let list = |k: &str| spec[k].as_array().map(|a| a.as_slice()).unwrap_or_default();
    list("initContainers").iter().chain(list("containers"))
}

/// A container meshc's injector added.
pub fn is_ours(c: &Json) -> bool {
    c["name"] == PROXY_CONTAINER || c["name"] == PROXY_INIT_CONTAINER
}
