//! EgressNetwork (policy.linkerd.io/v1alpha1, Linkerd 2.17+): which
//! destinations outside the cluster a client's proxy treats as one egress
//! resource, and whether traffic no route describes is allowed or refused.
//! Field set of `charts/linkerd-crds/templates/policy/egress-network.yaml`.

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct EgressNetworkSpec {
    /// Absent: everything outside the cluster networks (Linkerd's
    /// `EgressNetwork::from_resource`). Present and empty: rejected by admission.
    #[serde(default)]
    pub networks: Option<Vec<EgressCidr>>,
    /// `Allow` or `Deny` (required by the CRD).
    pub traffic_policy: String,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct EgressCidr {
    /// A CIDR or a bare address.
    pub cidr: String,
    #[serde(default)]
    pub except: Option<Vec<String>>,
}

pub const TRAFFIC_POLICIES: &[&str] = &["Allow", "Deny"];
