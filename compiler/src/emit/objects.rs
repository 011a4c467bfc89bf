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
pub const SERVICE_POLICY_KIND: &str = "ServicePolicy";
/// Where ServicePolicy files go in `--out`: `servicepolicies/<namespace>/<name>.yaml`.
pub const SERVICE_POLICIES_DIR: &str = "servicepolicies";
pub use mesh_proxy_api::bundle::{BUNDLE_NAME, BUNDLE_PAYLOAD_TYPE, BundleEntry, BundleSpec, ServicePolicyEntry};
use mesh_proxy_api::service_policy::Audience;

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

/// What a ServicePolicy object carries: `service`, `audience` and `digest`
/// repeat what the envelope signs (the Service's namespace is the
/// object's), for `kubectl get` and for the runtime to index by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePolicySpec {
    pub service: String,
    pub audience: Audience,
    pub digest: String,
    pub envelope: Envelope,
}

/// One YAML document: `---` and JSON, which is YAML. JSON is used because
/// every string is quoted, so no value can change type under YAML 1.1
/// (`no`, `on`, `1e3`), and serde_json's output is byte-stable.
pub fn document<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string_pretty(value).expect("emitted objects serialize");
    format!("---\n{json}\n")
}
