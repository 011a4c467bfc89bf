//! Mesh settings from the repository's own Linkerd install: a Flux
//! HelmRelease of the `linkerd-control-plane` chart carries the values that
//! decide default policy, cluster networks and identities. meshc.yaml and
//! flags still win over them.

use super::SettingsFile;
use crate::load::RawObject;
use crate::load::yaml::{Node, Value};

const CHART: &str = "linkerd-control-plane";

/// Settings from the first HelmRelease of Linkerd's control-plane chart, if any.
pub fn from_helm_release(objects: &[RawObject]) -> Option<SettingsFile> {
    let release = objects.iter().find(|o| {
        o.kind == "HelmRelease"
            && o.api_version.starts_with("helm.toolkit.fluxcd.io/")
            && chart_name(&o.node).is_some_and(|c| c == CHART || c.ends_with(&format!("/{CHART}")))
    })?;
    let spec = release.node.get("spec")?;
    let values = spec.get("values");
    let get = |path: &[&str]| -> Option<&Node> {
        let mut node = values?;
        for key in path {
            node = node.get(key)?;
        }
        Some(node)
    };
    let text = |path: &[&str]| get(path).and_then(scalar_text);
    let namespace = spec
        .get("targetNamespace")
        .or_else(|| release.node.get("metadata").and_then(|m| m.get("namespace")))
        .and_then(Node::as_str)
        .map(str::to_owned);
    Some(SettingsFile {
        default_inbound_policy: text(&["proxy", "defaultInboundPolicy"]),
        cluster_networks: text(&["clusterNetworks"]).map(|s| split_list(&s)),
        trust_domain: text(&["identityTrustDomain"]).or_else(|| text(&["clusterDomain"])),
        cluster_domain: text(&["clusterDomain"]),
        control_plane_namespace: namespace,
        probe_networks: get(&["policyController", "probeNetworks"]).map(list),
        default_opaque_ports: text(&["proxy", "opaquePorts"]),
        default_skip_inbound_ports: text(&["proxyInit", "ignoreInboundPorts"]),
        service_account_token_projection: get(&["identity", "serviceAccountTokenProjection"]).and_then(bool_value),
        ..SettingsFile::default()
    })
}

fn chart_name(node: &Node) -> Option<&str> {
    node.get("spec")?.get("chart")?.get("spec")?.get("chart")?.as_str()
}

fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bool_value(node: &Node) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => None,
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()
}

/// probeNetworks is a YAML list in the chart, but a comma string is accepted too.
fn list(node: &Node) -> Vec<String> {
    match &node.value {
        Value::Seq(items) => items.iter().filter_map(scalar_text).collect(),
        _ => scalar_text(node).map(|s| split_list(&s)).unwrap_or_default(),
    }
}
