//! The Kubernetes objects `meshc build` writes: one `ProxyConfig` per meshed
//! workload and one `MeshBundle` listing them, both carrying DSSE envelopes.

use mesh_proxy_api::WorkloadRef;
use mesh_proxy_api::envelope::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const GROUP: &str = "meshc.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "meshc.io/v1alpha1";
pub const PROXY_CONFIG_KIND: &str = "ProxyConfig";
pub const BUNDLE_KIND: &str = "MeshBundle";
/// The bundle is cluster-scoped and there is one per mesh.
pub const BUNDLE_NAME: &str = "meshc";
/// DSSE payloadType of a signed [`BundleSpec`] (without its envelope).
pub const BUNDLE_PAYLOAD_TYPE: &str = "application/vnd.meshc.meshbundle+json;version=v1alpha1";

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_WORKLOAD_KIND: &str = "meshc.io/workload-kind";
pub const LABEL_WORKLOAD_NAME: &str = "meshc.io/workload-name";
pub const ANNOTATION_ALLOW_ERRORS: &str = "meshc.io/allow-errors";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
}

/// Unknown metadata is allowed: kustomize and the API server add some.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What a ProxyConfig object carries. `workload`, `identity` and `digest`
/// repeat what the envelope signs, for `kubectl get` and for the runtime to
/// index by; verification checks that they agree with the signed payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfigSpec {
    pub workload: WorkloadRef,
    pub identity: String,
    pub digest: String,
    pub envelope: Envelope,
}

/// The bundle's spec: the complete set of configs of one build, so that
/// removing or adding a ProxyConfig is detected, not only changing one.
/// Its envelope signs this same struct without the envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleSpec {
    pub source_revision: String,
    pub meshc_version: String,
    pub key_id: String,
    /// True when built with `--allow-errors` from a policy with error findings.
    pub allow_errors: bool,
    pub error_findings: usize,
    /// Sorted by namespace, then name.
    pub configs: Vec<BundleEntry>,
    /// Absent from the signed payload, present in every object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Envelope>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleEntry {
    pub namespace: String,
    pub name: String,
    pub workload: WorkloadRef,
    pub digest: String,
}

/// One YAML document: `---` and JSON, which is YAML. JSON is used because
/// every string is quoted, so no value can change type under YAML 1.1
/// (`no`, `on`, `1e3`), and serde_json's output is byte-stable.
pub fn document<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string_pretty(value).expect("emitted objects serialize");
    format!("---\n{json}\n")
}
