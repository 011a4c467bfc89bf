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
    /// Where the mesh-runtime of a cluster that sources link to hands out
    /// its endpoints: what `meshc build` writes into each source cluster's
    /// `links.json` for the runtime (`mesh-runtime --links`). meshc cannot
    /// know it from the manifests.
    #[serde(default)]
    pub runtime: Option<ClusterRuntime>,
}

/// How a source cluster's mesh-runtime learns a linked cluster's
/// endpoints: that cluster's runtime API (`url` and the identity its
/// certificate carries), or an endpoints file on the source runtime's disk.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ClusterRuntime {
    /// The cluster's mesh-runtime API, `https://HOST:PORT`.
    #[serde(default)]
    pub url: Option<String>,
    /// The identity the runtime's certificate carries; default
    /// `mesh-runtime.mesh-system.serviceaccount.identity.<control-plane-ns>.<trust-domain>`
    /// of the cluster's own settings.
    #[serde(default)]
    pub identity: Option<String>,
    /// Instead of `url`: a file in mesh-runtime's endpoints format, as the
    /// source cluster's runtime sees it on its disk.
    #[serde(default)]
    pub endpoints_file: Option<String>,
}
