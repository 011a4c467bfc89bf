//! The shared Service policies a config names (`outbound.servicePolicies`,
//! mesh_proxy_api::service_policy): a set of ServicePolicy objects, from
//! the runtime (`GET /v1/service-policies`) or a build's
//! `servicepolicies/` directory, both as `{"policies": [object, …]}`.
//!
//! Each object's envelope is verified with the trusted keys; the views for
//! this workload's namespace form the set, named by
//! [`set_digest`]. The config is enforced only with the very set it names,
//! so a view missing, added, tampered with or from another build keeps the
//! config in force as it was.

use super::{Rejection, SourceError};
use mesh_proxy_api::envelope::{Envelope, VerifyingKey, payload_digest};
use mesh_proxy_api::service_policy::{ServicePolicy, answer_body, set_digest};
use serde::Deserialize;
use std::path::Path;

/// The verified views for one namespace and the digest that names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySet {
    pub digest: String,
    pub policies: Vec<ServicePolicy>,
}

#[derive(Deserialize)]
struct Answer {
    policies: Vec<PolicyObject>,
}

/// Only the envelope is trusted; the clear fields are the runtime's index.
#[derive(Deserialize)]
struct PolicyObject {
    spec: PolicyObjectSpec,
}

#[derive(Deserialize)]
struct PolicyObjectSpec {
    envelope: Envelope,
}

/// Verifies every object of `bytes` and keeps the views for `namespace`.
/// One object that does not verify refuses the whole answer: the set would
/// not be the one a config names anyway, and the reason is worth a count.
pub fn open_set(bytes: &[u8], trusted: &[VerifyingKey], namespace: &str) -> Result<PolicySet, Rejection> {
    let answer: Answer = serde_json::from_slice(bytes).map_err(|e| Rejection::Parse(e.to_string()))?;
    let mut digests = Vec::new();
    let mut policies = Vec::new();
    for o in answer.policies {
        let policy = ServicePolicy::open(&o.spec.envelope, trusted).map_err(Rejection::from_verify)?;
        if policy.applies_to(namespace) {
            digests.push(payload_digest(&o.spec.envelope).map_err(Rejection::from_verify)?);
            policies.push(policy);
        }
    }
    Ok(PolicySet { digest: set_digest(digests.iter().map(String::as_str)), policies })
}

/// A build's `servicepolicies/` directory as one answer: every `.yaml`
/// file in its namespace directories, sorted by path. A missing directory
/// is an empty set (a build without shared policies writes none).
pub fn read_dir_answer(dir: &Path) -> Result<Vec<u8>, SourceError> {
    let mut files = Vec::new();
    let namespaces = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(answer_body([])),
        Err(e) => return Err(SourceError(format!("{}: {e}", dir.display()))),
    };
    for ns in namespaces.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
        let entries = std::fs::read_dir(ns.path()).map_err(|e| SourceError(format!("{}: {e}", ns.path().display())))?;
        files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml")));
    }
    files.sort();
    let objects = files.iter().map(|path| json_of(path)).collect::<Result<Vec<_>, _>>()?;
    Ok(answer_body(objects.iter().map(String::as_bytes)))
}

/// A file `meshc build` wrote: `---` and one JSON document.
fn json_of(path: &Path) -> Result<String, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|e| SourceError(format!("{}: {e}", path.display())))?;
    let trimmed = text.trim_start();
    Ok(trimmed.strip_prefix("---").unwrap_or(trimmed).trim().to_owned())
}
