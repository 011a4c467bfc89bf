//! Linkerd's policy CRDs (policy.linkerd.io). Field sets follow the CRDs of
//! every served version; a field some version lacks is checked in `versions`.

use super::meta::{IntOrString, LabelSelector};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ServerSpec {
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub external_workload_selector: Option<LabelSelector>,
    pub port: IntOrString,
    /// unknown (default), HTTP/1, HTTP/2, gRPC, opaque or TLS.
    #[serde(default)]
    pub proxy_protocol: Option<String>,
    /// v1beta3: the default policy for this Server's port; the CRD default is `deny`.
    #[serde(default)]
    pub access_policy: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ServerAuthorizationSpec {
    pub server: ServerSelector,
    pub client: ServerAuthorizationClient,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ServerSelector {
    #[serde(default)]
    pub name: Option<String>,
    /// Selects Servers by their own labels, not pods.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ServerAuthorizationClient {
    #[serde(default)]
    pub networks: Vec<NetworkSpec>,
    #[serde(default)]
    pub unauthenticated: Option<bool>,
    #[serde(default, rename = "meshTLS")]
    pub mesh_tls: Option<MeshTlsClient>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct MeshTlsClient {
    #[serde(default, rename = "unauthenticatedTLS")]
    pub unauthenticated_tls: Option<bool>,
    #[serde(default)]
    pub identities: Vec<String>,
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountRef>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ServiceAccountRef {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct NetworkSpec {
    /// A CIDR or a bare IP address (a /32 or /128).
    pub cidr: String,
    #[serde(default)]
    pub except: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    pub target_ref: LocalTargetRef,
    pub required_authentication_refs: Vec<NamespacedTargetRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct LocalTargetRef {
    #[serde(default)]
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct NamespacedTargetRef {
    #[serde(default)]
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct MeshTlsAuthenticationSpec {
    #[serde(default)]
    pub identities: Option<Vec<String>>,
    #[serde(default)]
    pub identity_refs: Option<Vec<IdentityRef>>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct IdentityRef {
    #[serde(default)]
    pub group: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct NetworkAuthenticationSpec {
    pub networks: Vec<NetworkSpec>,
}

/// HTTPLocalRateLimitPolicy (policy.linkerd.io/v1alpha1). Rates are read as
/// the policy controller reads them (`u32`): a value it cannot read leaves
/// the policy out of its index.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct HttpLocalRateLimitPolicySpec {
    pub target_ref: LocalTargetRef,
    #[serde(default)]
    pub total: Option<RateLimit>,
    #[serde(default)]
    pub identity: Option<RateLimit>,
    #[serde(default)]
    pub overrides: Vec<RateLimitOverride>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RateLimit {
    pub requests_per_second: u32,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RateLimitOverride {
    pub requests_per_second: u32,
    pub client_refs: Vec<NamespacedTargetRef>,
}

/// Group comparison as Linkerd's `targets_kind`: absent or empty means core.
pub fn group_is(group: Option<&str>, expected: &str) -> bool {
    let g = group.filter(|g| !g.is_empty()).unwrap_or("core");
    g.eq_ignore_ascii_case(expected)
}

pub const POLICY_GROUP: &str = "policy.linkerd.io";
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
