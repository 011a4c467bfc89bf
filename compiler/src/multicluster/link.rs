//! Linkerd's `Link` (`multicluster.linkerd.io` v1alpha1, v1alpha2, v1alpha3):
//! one source cluster's view of one target cluster. Read as the service
//! mirror reads it (`multicluster/service-mirror/cluster_watcher.go`); see
//! `docs/semantics/multicluster.md`.

use crate::findings::{Code, Finding, Span};
use crate::load::RawObject;
use crate::model::decode;
use crate::model::meta::LabelSelector;
use serde::Deserialize;
use std::collections::BTreeMap;

pub const GROUP: &str = "multicluster.linkerd.io";

/// The Link objects among `objects` (any served version).
pub fn raw_links(objects: &[RawObject]) -> Vec<RawObject> {
    objects.iter().filter(|o| o.kind == "Link" && group(&o.api_version) == GROUP).cloned().collect()
}

fn group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// `spec` of a Link, every field the three versions' schemas list.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkSpec {
    #[serde(default)]
    pub target_cluster_name: Option<String>,
    #[serde(default)]
    pub target_cluster_domain: Option<String>,
    #[serde(default)]
    pub target_cluster_linkerd_namespace: Option<String>,
    #[serde(default)]
    pub cluster_credentials_secret: Option<String>,
    #[serde(default)]
    pub gateway_address: Option<String>,
    #[serde(default)]
    pub gateway_port: Option<String>,
    #[serde(default)]
    pub gateway_identity: Option<String>,
    #[serde(default)]
    pub probe_spec: Option<serde_json::Value>,
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub remote_discovery_selector: Option<LabelSelector>,
    #[serde(default)]
    pub federated_service_selector: Option<LabelSelector>,
    #[serde(default)]
    pub excluded_labels: Vec<String>,
    #[serde(default)]
    pub excluded_annotations: Vec<String>,
}

/// A Link as the service mirror acts on it.
#[derive(Clone, Debug)]
pub struct Link {
    /// Index of the cluster whose directory holds it (the source).
    pub source_cluster: usize,
    pub name: String,
    pub namespace: String,
    pub span: Span,
    /// The Link's YAML, where the Services it mirrors are placed.
    pub node: std::sync::Arc<crate::load::yaml::Node>,
    /// `spec.targetClusterName`: the mirrors' suffix.
    pub target: String,
    pub spec: LinkSpec,
}

/// How a target Service is exported through a Link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// `spec.selector`: through the target cluster's gateway.
    Gateway,
    /// `spec.remoteDiscoverySelector`: straight to the remote pods.
    PodToPod,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Gateway => "gateway",
            Mode::PodToPod => "pod-to-pod",
        }
    }
}

impl Link {
    /// Decodes `raw` (of cluster `source_cluster`); a Link the service mirror
    /// cannot act on is a finding and `None`.
    pub fn read(raw: &RawObject, source_cluster: usize, default_ns: &str, findings: &mut Vec<Finding>) -> Option<Link> {
        let env = decode::decode::<LinkSpec>(raw, true, findings)?;
        let name = env.metadata.name.clone().unwrap_or_default();
        let namespace = env.metadata.namespace.clone().unwrap_or_else(|| default_ns.to_owned());
        let mut spec = env.spec.unwrap_or_default();
        drop_unserved_fields(raw, &mut spec, findings);
        let span = raw.span();
        let Some(target) = spec.target_cluster_name.clone().filter(|t| !t.is_empty()) else {
            let msg = format!(
                "Link {namespace}/{name} has no spec.targetClusterName: its service mirror has no cluster to name \
                 mirrors after, and nothing is mirrored through it"
            );
            findings.push(Finding::new(Code::MulticlusterInvalid, span, msg));
            return None;
        };
        let link = Link { source_cluster, name, namespace, span, node: raw.node.clone(), target, spec };
        link.check_gateway_fields(raw, findings);
        Some(link)
    }

    /// A Link that exports through the gateway needs the gateway's address,
    /// port and identity: without them the mirrors have no endpoints, or the
    /// client cannot verify the gateway.
    fn check_gateway_fields(&self, raw: &RawObject, findings: &mut Vec<Finding>) {
        if self.selector(Mode::Gateway).is_none() {
            return;
        }
        let s = &self.spec;
        let missing: Vec<&str> = [
            ("gatewayAddress", &s.gateway_address),
            ("gatewayPort", &s.gateway_port),
            ("gatewayIdentity", &s.gateway_identity),
        ]
        .into_iter()
        .filter(|(_, v)| v.as_deref().is_none_or(|v| v.trim().is_empty()))
        .map(|(k, _)| k)
        .collect();
        let bad_port =
            s.gateway_port.as_deref().is_some_and(|p| !p.trim().is_empty() && p.trim().parse::<u16>().is_err());
        if missing.is_empty() && !bad_port {
            return;
        }
        let what = if missing.is_empty() {
            format!("spec.gatewayPort `{}` is not a port number", s.gateway_port.as_deref().unwrap_or_default())
        } else {
            format!("it has no spec.{}", missing.join(", spec."))
        };
        let msg = format!(
            "Link {}/{} exports through the gateway of cluster {} but {what}: calls to its mirrored Services fail",
            self.namespace, self.name, self.target
        );
        let span = crate::load::objects::span_of(raw.source, raw.node.get("spec").unwrap_or(&*raw.node));
        findings.push(Finding::new(Code::MulticlusterInvalid, span, msg).hint(
            "write the fields `linkerd multicluster link-gen` writes: the target gateway Service's address, its \
             `mc-gateway` port (4143) and its `mirror.linkerd.io/gateway-identity` annotation",
        ));
    }

    /// The selector of `mode`; `None` when missing or empty, which the
    /// service mirror reads as "selects nothing" (`isExported`, `isRemoteDiscovery`).
    pub fn selector(&self, mode: Mode) -> Option<&LabelSelector> {
        let s = match mode {
            Mode::Gateway => self.spec.selector.as_ref(),
            Mode::PodToPod => self.spec.remote_discovery_selector.as_ref(),
        };
        s.filter(|s| !is_empty(s))
    }

    pub fn federated_selector(&self) -> Option<&LabelSelector> {
        self.spec.federated_service_selector.as_ref().filter(|s| !is_empty(s))
    }

    /// How this Link exports a target Service with `labels`, if it does.
    /// Gateway first: the default selectors cannot both match (one key, two values).
    pub fn exports(&self, labels: &BTreeMap<String, String>) -> Option<Mode> {
        [Mode::Gateway, Mode::PodToPod]
            .into_iter()
            .find(|m| self.selector(*m).is_some_and(|s| crate::resolve::selector::matches(s, labels)))
    }

    pub fn federates(&self, labels: &BTreeMap<String, String>) -> bool {
        self.federated_selector().is_some_and(|s| crate::resolve::selector::matches(s, labels))
    }
}

fn is_empty(s: &LabelSelector) -> bool {
    s.match_labels.is_empty() && s.match_expressions.is_empty()
}

/// The API server prunes what the version written does not declare:
/// `federatedServiceSelector` came with v1alpha2, `excludedLabels` and
/// `excludedAnnotations` with v1alpha3.
fn drop_unserved_fields(raw: &RawObject, spec: &mut LinkSpec, findings: &mut Vec<Finding>) {
    let version = raw.api_version.rsplit('/').next().unwrap_or("");
    let mut dropped = Vec::new();
    if version == "v1alpha1" && spec.federated_service_selector.take().is_some() {
        dropped.push("federatedServiceSelector");
    }
    if matches!(version, "v1alpha1" | "v1alpha2") {
        if !std::mem::take(&mut spec.excluded_labels).is_empty() {
            dropped.push("excludedLabels");
        }
        if !std::mem::take(&mut spec.excluded_annotations).is_empty() {
            dropped.push("excludedAnnotations");
        }
    }
    for field in dropped {
        let span = raw
            .node
            .get("spec")
            .and_then(|s| s.get(field))
            .map_or(raw.span(), |n| crate::load::objects::span_of(raw.source, n));
        let msg =
            format!("Link {version} has no field spec.{field}: the API server drops it (it came with a later version)");
        findings.push(
            Finding::new(Code::SchemaViolation, span, msg).hint("write the Link as multicluster.linkerd.io/v1alpha3"),
        );
    }
}

/// The label `link-gen` selects for each mode, and what a Service carries to be federated.
pub const EXPORT_LABEL: &str = "mirror.linkerd.io/exported";
pub const FEDERATED_LABEL: &str = "mirror.linkerd.io/federated";
