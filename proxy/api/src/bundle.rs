//! The MeshBundle's signed spec: the complete set of configs of one build,
//! so that removing or adding a ProxyConfig is detected, not only changing
//! one. meshc writes it; `meshc verify-bundle` and mesh-runtime open it.

use crate::config::WorkloadRef;
use crate::envelope::{self, Envelope, VerifyError, VerifyingKey};
use crate::service_policy::{Audience, set_digest};
use serde::{Deserialize, Serialize};
use std::fmt;

/// DSSE payloadType of a signed [`BundleSpec`] (without its envelope).
pub const BUNDLE_PAYLOAD_TYPE: &str = "application/vnd.meshc.meshbundle+json;version=v1alpha1";
/// The bundle is cluster-scoped and there is one per mesh.
pub const BUNDLE_NAME: &str = "meshc";

/// Its envelope signs this same struct without the envelope. Unknown
/// fields are refused rather than dropped: dropping them would make the
/// clear and signed specs look equal when they are not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleSpec {
    pub source_revision: String,
    /// Monotonic per build (by default the source commit's committer time):
    /// holders refuse a lower one (see [`crate::sequence`]). Absent (0) in
    /// builds from before sequences, which every sequenced build outranks.
    #[serde(default, skip_serializing_if = "crate::sequence::is_unset")]
    pub sequence: u64,
    pub meshc_version: String,
    pub key_id: String,
    /// True when built with `--allow-errors` from a policy with error findings.
    pub allow_errors: bool,
    pub error_findings: usize,
    /// Sorted by namespace, then name.
    pub configs: Vec<BundleEntry>,
    /// The build's shared Service policies (`crate::service_policy`),
    /// sorted by namespace, then name. Absent in builds from before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_policies: Vec<ServicePolicyEntry>,
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

/// One signed ServicePolicy object of the build: where it is (its
/// namespace is the Service's), which Service and clients it is for, and
/// the digest of its signed payload.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePolicyEntry {
    pub namespace: String,
    pub name: String,
    pub service: String,
    pub audience: Audience,
    pub digest: String,
}

/// [`set_digest`] of the shared views among `entries` for clients in
/// `client_ns`: what every config of that namespace must name.
pub fn service_policy_set(entries: &[ServicePolicyEntry], client_ns: &str) -> String {
    let applies = entries.iter().filter(|e| e.audience.includes(client_ns));
    set_digest(applies.map(|e| e.digest.as_str()))
}

/// Why a bundle spec did not open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    MissingEnvelope,
    Envelope(VerifyError),
    /// The spec in the clear is not the one the envelope signs.
    Differs,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::MissingEnvelope => f.write_str("spec.envelope is missing"),
            OpenError::Envelope(e) => write!(f, "envelope: {e}"),
            OpenError::Differs => f.write_str("spec differs from the signed manifest"),
        }
    }
}

impl BundleSpec {
    /// The signed spec, if the envelope verifies against `trusted` and the
    /// spec in the clear says exactly what it signs.
    pub fn open(&self, trusted: &[VerifyingKey]) -> Result<BundleSpec, OpenError> {
        let env = self.envelope.as_ref().ok_or(OpenError::MissingEnvelope)?;
        let signed: BundleSpec =
            envelope::open_value(env, BUNDLE_PAYLOAD_TYPE, trusted).map_err(OpenError::Envelope)?;
        let clear = BundleSpec { envelope: None, ..self.clone() };
        if clear != signed {
            return Err(OpenError::Differs);
        }
        Ok(signed)
    }
}
