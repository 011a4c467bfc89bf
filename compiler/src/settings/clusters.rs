//! `clusters:` in the root `meshc.yaml`: a repository that holds several
//! clusters, each in a directory of its own with its own settings. Checked
//! one cluster at a time, then across clusters (`crate::multicluster`).

use super::SettingsFile;
use schemars::JsonSchema;
use serde::Deserialize;

/// One cluster of a multicluster repository.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ClusterEntry {
    /// The cluster's name, as Links of other clusters name it in
    /// `spec.targetClusterName` (the suffix of its mirrored Services) and as
    /// references write it (`east/deploy/emojivoto/web`).
    #[serde(default)]
    pub name: String,
    /// The directory that holds the cluster's manifests, relative to the repository root.
    #[serde(default)]
    pub directory: String,
    /// Settings of this cluster only (any key `meshc.yaml` takes for one
    /// cluster), over the top-level keys, which every cluster shares.
    #[serde(default)]
    pub settings: Option<SettingsFile>,
    /// A PEM file of the cluster's trust anchors (Linkerd's
    /// `identityTrustAnchorsPEM`), relative to the repository root; else the
    /// `linkerd-identity-trust-roots` ConfigMap in the cluster's directory, when it holds one.
    #[serde(default)]
    pub trust_anchors: Option<String>,
}
