//! The Kubernetes objects `meshc build` writes: one `ProxyConfig` per meshed
//! workload, one `ServicePolicy` per shared view of a Service, and one
//! `MeshBundle` listing them, each carrying a DSSE envelope.

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

/// The MeshBundle object's spec: the signed [`BundleSpec`] in the clear,
/// field for field, except that `servicePolicies` is written even when the
/// build shares none. The signed payload leaves an empty list out (builds
/// from before shared policies stay canonical), but the object must state
/// it: an apply that merges the new object over the live one (server-side
/// apply of a field another manager set, a merge patch) keeps a list the
/// object leaves out, and the runtime then refuses the bundle, whose clear
/// spec is no longer the signed one, keeping the previous build in force.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleObjectSpec<'a> {
    pub source_revision: &'a str,
    #[serde(skip_serializing_if = "mesh_proxy_api::sequence::is_unset")]
    pub sequence: u64,
    pub meshc_version: &'a str,
    pub key_id: &'a str,
    pub allow_errors: bool,
    pub error_findings: usize,
    pub configs: &'a [BundleEntry],
    pub service_policies: &'a [ServicePolicyEntry],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope: Option<&'a Envelope>,
}

impl<'a> BundleObjectSpec<'a> {
    pub fn of(spec: &'a BundleSpec) -> BundleObjectSpec<'a> {
        let BundleSpec {
            source_revision,
            sequence,
            meshc_version,
            key_id,
            allow_errors,
            error_findings,
            configs,
            service_policies,
            envelope,
        } = spec;
        BundleObjectSpec {
            source_revision,
            sequence: *sequence,
            meshc_version,
            key_id,
            allow_errors: *allow_errors,
            error_findings: *error_findings,
            configs,
            service_policies,
            envelope: envelope.as_ref(),
        }
    }
}

/// One YAML document: `---` and JSON, which is YAML. JSON is used because
/// every string is quoted, so no value can change type under YAML 1.1
/// (`no`, `on`, `1e3`), and serde_json's output is byte-stable.
pub fn document<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string_pretty(value).expect("emitted objects serialize");
    format!("---\n{json}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proxy_api::envelope::{SigningKey, sign_value};

    /// A signed bundle spec listing `policies` ServicePolicies.
    fn spec(policies: usize) -> BundleSpec {
        let entry = |i: usize| ServicePolicyEntry {
            namespace: "shop".into(),
            name: format!("api{i}"),
            service: format!("api{i}"),
            audience: Audience::AllNamespaces,
            digest: "sha256:aa".into(),
        };
        let mut spec = BundleSpec {
            source_revision: "r".into(),
            sequence: 3,
            meshc_version: "0".into(),
            key_id: "k".into(),
            allow_errors: false,
            error_findings: 0,
            configs: Vec::new(),
            service_policies: (0..policies).map(entry).collect(),
            envelope: None,
        };
        spec.envelope = Some(sign_value(&spec, BUNDLE_PAYLOAD_TYPE, &SigningKey::from_bytes(&[3; 32])).unwrap());
        spec
    }

    /// The object's spec reads back as the very spec it writes out (so the
    /// runtime's clear-equals-signed check holds), and always names the
    /// ServicePolicy list, empty or not.
    #[test]
    fn the_bundle_object_spec_is_the_bundle_spec_with_its_list_always_stated() {
        for spec in [spec(0), spec(2)] {
            let text = serde_json::to_string(&BundleObjectSpec::of(&spec)).unwrap();
            assert!(text.contains("\"servicePolicies\":["), "{text}");
            let back: BundleSpec = serde_json::from_str(&text).unwrap();
            assert_eq!(back, spec);
        }
    }
}
