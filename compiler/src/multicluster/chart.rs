//! The multicluster extension's Helm values, where a cluster's directory
//! holds them: a Flux HelmRelease of the `linkerd-multicluster` chart
//! (`spec.values` over its `valuesFrom`, merged as helm-controller does).
//! What they change in what meshc models (linkerd2
//! `multicluster/charts/linkerd-multicluster/values.yaml`, `templates/gateway.yaml`,
//! `templates/local-service-mirror.yaml`; docs/semantics/multicluster.md):
//!
//! - `gateway.enabled`: whether the cluster has a gateway at all;
//! - `gateway.name`: the gateway's Deployment, Service and ServiceAccount,
//!   so its identity; the release namespace is the multicluster namespace;
//! - `gateway.port`: the gateway Service's `mc-gateway` port, where the
//!   gateway requires an mTLS identity;
//! - `linkerdNamespace`, `identityTrustDomain`: what the chart builds the
//!   identity it advertises from (the Service's `mirror.linkerd.io/gateway-identity`,
//!   which `link-gen` copies into Links), whatever the control plane's are;
//! - `localServiceMirror.federatedServiceSelector`: which of the cluster's
//!   own Services join `<svc>-federated`.

use crate::findings::Span;
use crate::load::RawObject;
use crate::load::flux::vars::DataSources;
use crate::load::yaml::Node;
use crate::model::meta::LabelSelector;
use serde_json::Value;
use std::collections::BTreeMap;

pub const CHART: &str = "linkerd-multicluster";
/// The chart's defaults (values.yaml).
pub const DEFAULT_NAMESPACE: &str = "linkerd-multicluster";
pub const DEFAULT_GATEWAY_NAME: &str = "linkerd-gateway";
pub const DEFAULT_GATEWAY_PORT: u16 = 4143;

/// The values of one release of the chart, as they decide the gateway.
#[derive(Clone, Debug)]
pub struct ChartValues {
    /// `HelmRelease NS/NAME`, for messages.
    pub release: String,
    pub span: Span,
    /// The release namespace (`targetNamespace`, else the HelmRelease's own).
    pub namespace: String,
    pub gateway_enabled: bool,
    /// Where `gateway.enabled` is written, else the release.
    pub gateway_enabled_span: Span,
    pub gateway_name: String,
    pub gateway_port: u16,
    pub linkerd_namespace: String,
    pub identity_trust_domain: String,
    /// `localServiceMirror.federatedServiceSelector` when it is an equality
    /// list (`k=v,k2=v2`), as the local service mirror parses it; a set-based
    /// selector string is not read (the chart's default stands).
    pub federated_selector: Option<LabelSelector>,
}

impl ChartValues {
    /// The identity the chart advertises on the gateway Service.
    pub fn advertised_identity(&self) -> String {
        format!(
            "{}.{}.serviceaccount.identity.{}.{}",
            self.gateway_name, self.namespace, self.linkerd_namespace, self.identity_trust_domain
        )
    }
}

/// The first HelmRelease of the chart among `objects`, if any.
pub fn read(objects: &[RawObject]) -> Option<ChartValues> {
    let release = crate::settings::helm_values::flux_release_of_chart(objects, CHART)?;
    let spec = release.node.get("spec")?;
    let meta = |k: &str| release.node.get("metadata").and_then(|m| m.get(k)).and_then(Node::as_str);
    let own_ns = meta("namespace");
    let name = format!("HelmRelease {}/{}", own_ns.unwrap_or("default"), meta("name").unwrap_or("?"));
    let namespace = spec.get("targetNamespace").and_then(Node::as_str).or(own_ns).unwrap_or(DEFAULT_NAMESPACE);
    // A valuesFrom the repository does not hold: the inline values alone.
    let values = match crate::load::render::helm_values::flux(spec, own_ns, &DataSources::collect(objects)) {
        Ok(v) => v.inline.unwrap_or(Value::Null),
        Err(_) => spec.get("values").map_or(Value::Null, Node::to_json),
    };
    Some(of_values(release, name, namespace.to_owned(), &values))
}

fn of_values(release: &RawObject, name: String, namespace: String, v: &Value) -> ChartValues {
    let at = |path: &[&str]| path.iter().try_fold(v, |node, k| node.get(k));
    let text = |path: &[&str], default: &str| match at(path) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => default.to_owned(),
    };
    let gateway_enabled = match at(&["gateway", "enabled"]) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s != "false",
        _ => true,
    };
    let gateway_port = match at(&["gateway", "port"]) {
        None | Some(Value::Null) => DEFAULT_GATEWAY_PORT,
        // Helm would render a value that is no port into the Service, which the API server refuses.
        Some(p) => match p.as_u64().or_else(|| p.as_str().and_then(|s| s.parse().ok())).map(u16::try_from) {
            Some(Ok(n)) if n > 0 => n,
            _ => DEFAULT_GATEWAY_PORT,
        },
    };
    let federated_selector = match at(&["localServiceMirror", "federatedServiceSelector"]) {
        Some(Value::String(s)) => equality_selector(s),
        _ => None,
    };
    let values_node = release.node.get("spec").and_then(|s| s.get("values"));
    let enabled_node = values_node.and_then(|n| n.get("gateway")).and_then(|g| g.get("enabled"));
    ChartValues {
        release: name,
        span: release.span(),
        gateway_enabled_span: enabled_node.map_or(release.span(), |n| crate::load::objects::span_of(release.source, n)),
        namespace,
        gateway_enabled,
        gateway_name: text(&["gateway", "name"], DEFAULT_GATEWAY_NAME),
        gateway_port,
        linkerd_namespace: text(&["linkerdNamespace"], mesh_proxy_api::identity::DEFAULT_CONTROL_PLANE_NAMESPACE),
        identity_trust_domain: text(&["identityTrustDomain"], mesh_proxy_api::identity::DEFAULT_TRUST_DOMAIN),
        federated_selector,
    }
}

/// `k=v[,k2=v2]`: the equality form of a label selector string.
fn equality_selector(s: &str) -> Option<LabelSelector> {
    let mut labels = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once("==").or_else(|| part.split_once('='))?;
        if k.trim().is_empty() || k.contains('!') {
            return None;
        }
        labels.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    (!labels.is_empty()).then(|| LabelSelector { match_labels: labels, match_expressions: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::objects::objects_of;

    fn values_of(yaml: &str) -> ChartValues {
        let (objects, _) = objects_of(0, "mc.yaml", yaml);
        read(&objects).expect("a release of the chart")
    }

    #[test]
    fn defaults_are_the_charts() {
        let v = values_of(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: mc, namespace: linkerd-multicluster}\nspec: {chart: {spec: {chart: linkerd-multicluster}}}\n",
        );
        assert!(v.gateway_enabled);
        assert_eq!((v.gateway_name.as_str(), v.gateway_port), ("linkerd-gateway", 4143));
        assert_eq!(
            v.advertised_identity(),
            "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
        );
    }

    #[test]
    fn values_and_target_namespace_change_the_gateway() {
        let v = values_of(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: mc, namespace: flux-system}\nspec:\n  targetNamespace: mc\n  chart: {spec: {chart: linkerd/linkerd-multicluster}}\n  values:\n    gateway: {enabled: false, name: gw, port: 10143}\n    identityTrustDomain: west.example\n    localServiceMirror: {federatedServiceSelector: \"team=a,federate=yes\"}\n",
        );
        assert!(!v.gateway_enabled);
        assert_eq!(v.gateway_enabled_span.line, 8);
        assert_eq!((v.namespace.as_str(), v.gateway_name.as_str(), v.gateway_port), ("mc", "gw", 10143));
        assert_eq!(v.advertised_identity(), "gw.mc.serviceaccount.identity.linkerd.west.example");
        assert_eq!(v.federated_selector.unwrap().match_labels.len(), 2);
    }

    #[test]
    fn selector_strings_beyond_equality_are_not_guessed() {
        assert!(equality_selector("a=b").is_some());
        assert!(equality_selector("a in (b)").is_none());
        assert!(equality_selector("a!=b").is_none());
        assert!(equality_selector("").is_none());
    }
}
