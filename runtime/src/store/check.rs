//! Verification of one object on its own: a ProxyConfig (signature, digest,
//! and that what it says in the clear agrees with what it signs) or the
//! MeshBundle (signature, and that its clear spec is the signed one). The
//! cross-check between the two is in the store.
//!
//! ProxyConfig signatures are checked by mesh-proxy's own [`Verifier`], so
//! the runtime accepts exactly what a proxy would accept.

use super::{ObjectKey, Rejection, Served};
use bytes::Bytes;
use mesh_proxy::source::Verifier;
use mesh_proxy_api::WorkloadRef;
use mesh_proxy_api::envelope::{self, Envelope, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// DSSE payloadType of a signed MeshBundle spec; the same string as meshc's
/// `emit::objects::BUNDLE_PAYLOAD_TYPE` (a test keeps them equal).
pub const BUNDLE_PAYLOAD_TYPE: &str = "application/vnd.meshc.meshbundle+json;version=v1alpha1";
/// There is one bundle per mesh, cluster-scoped, with this name.
pub const BUNDLE_NAME: &str = "meshc";

/// The bundle's spec as meshc signs it. The signature covers the canonical
/// JSON of this struct without `envelope`, so the fields must be meshc's
/// `BundleSpec` exactly (unknown fields are refused rather than dropped,
/// which would make the clear and signed specs look equal when they are not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleSpec {
    pub source_revision: String,
    pub meshc_version: String,
    pub key_id: String,
    pub allow_errors: bool,
    pub error_findings: usize,
    pub configs: Vec<BundleEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Envelope>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleEntry {
    pub namespace: String,
    pub name: String,
    pub workload: WorkloadRef,
    pub digest: String,
}

/// A bundle that verified: which object carries which workload's config,
/// with which digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub source_revision: String,
    pub allow_errors: bool,
    pub digest: String,
    pub entries: BTreeMap<ObjectKey, BundleEntry>,
    /// The bytes it was read from, re-verified when the trusted keys change.
    pub bytes: Bytes,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Object<S> {
    kind: String,
    metadata: Meta,
    spec: S,
}

/// The clear fields of a ProxyConfig spec; the envelope is re-read by the
/// [`Verifier`].
#[derive(Deserialize)]
struct ConfigSpec {
    workload: WorkloadRef,
    identity: String,
}

/// meshc writes each object as `---` then JSON; the API serves the JSON.
pub fn json_body(bytes: &Bytes) -> Bytes {
    let skip_ws =
        |from: usize| bytes[from..].iter().position(|b| !b.is_ascii_whitespace()).map_or(bytes.len(), |i| from + i);
    let start = skip_ws(0);
    let marker = bytes[start..].starts_with(b"---") && bytes.get(start + 3).is_none_or(|b| *b == b'\n' || *b == b'\r');
    bytes.slice(if marker { skip_ws(start + 3) } else { start }..)
}

/// `Kind/namespace/name`, the form the API and the proxy's `--workload` use.
pub fn workload_key(w: &WorkloadRef) -> String {
    format!("{}/{}/{}", w.kind, w.namespace, w.name)
}

fn parse_err(e: impl std::fmt::Display) -> Rejection {
    Rejection::new("parse", e.to_string())
}

/// Verifies a ProxyConfig object stored under `key`.
pub fn config(key: &ObjectKey, bytes: &Bytes, trusted: &[VerifyingKey]) -> Result<Served, Rejection> {
    let body = json_body(bytes);
    let object: Object<ConfigSpec> = serde_json::from_slice(&body).map_err(parse_err)?;
    if object.kind != "ProxyConfig" {
        return Err(parse_err(format!("kind is `{}`, expected ProxyConfig", object.kind)));
    }
    let workload = workload_key(&object.spec.workload);
    let verifier = Verifier { trusted: trusted.to_vec(), workload: workload.clone() };
    let verified = verifier.open(&body).map_err(|r| Rejection::new(r.reason(), r.to_string()))?;
    let w = &verified.config.workload;
    if object.spec.identity != verified.config.identity {
        let msg = format!("spec.identity `{}` is not the signed `{}`", object.spec.identity, verified.config.identity);
        return Err(Rejection::new("metadata", msg));
    }
    if key.namespace != w.namespace || object.metadata.namespace.as_deref() != Some(w.namespace.as_str()) {
        let msg = format!("object namespace `{}` is not the workload's `{}`", key.namespace, w.namespace);
        return Err(Rejection::new("metadata", msg));
    }
    if object.metadata.name.as_deref() != Some(key.name.as_str()) {
        let msg = format!("metadata.name is not the object's name `{}`", key.name);
        return Err(Rejection::new("metadata", msg));
    }
    Ok(Served {
        workload,
        identity: verified.config.identity,
        digest: verified.digest,
        key_id: verified.key_id,
        object: key.clone(),
        body,
    })
}

/// Verifies the MeshBundle object.
pub fn bundle(bytes: &Bytes, trusted: &[VerifyingKey]) -> Result<Bundle, Rejection> {
    let body = json_body(bytes);
    let object: Object<BundleSpec> = serde_json::from_slice(&body).map_err(parse_err)?;
    if object.kind != "MeshBundle" {
        return Err(parse_err(format!("kind is `{}`, expected MeshBundle", object.kind)));
    }
    if object.metadata.name.as_deref() != Some(BUNDLE_NAME) || object.metadata.namespace.is_some() {
        return Err(Rejection::new("metadata", format!("must be the cluster-scoped MeshBundle `{BUNDLE_NAME}`")));
    }
    let env = object.spec.envelope.clone().ok_or_else(|| parse_err("spec.envelope is missing"))?;
    let signed: BundleSpec = envelope::open_value(&env, BUNDLE_PAYLOAD_TYPE, trusted).map_err(verify_err)?;
    let clear = BundleSpec { envelope: None, ..object.spec };
    if clear != signed {
        return Err(Rejection::new("metadata", "spec differs from the signed manifest"));
    }
    let digest = envelope::payload_digest(&env).map_err(verify_err)?;
    let mut entries = BTreeMap::new();
    for e in signed.configs {
        if e.namespace != e.workload.namespace {
            return Err(Rejection::new(
                "metadata",
                format!("entry {}/{}: not in its workload's namespace", e.namespace, e.name),
            ));
        }
        let key = ObjectKey { namespace: e.namespace.clone(), name: e.name.clone() };
        if entries.insert(key, e).is_some() {
            return Err(Rejection::new("metadata", "an object is listed twice"));
        }
    }
    Ok(Bundle {
        source_revision: signed.source_revision,
        allow_errors: signed.allow_errors,
        digest,
        entries,
        bytes: bytes.clone(),
    })
}

/// The same reason words as mesh-proxy's config rejections.
fn verify_err(e: envelope::VerifyError) -> Rejection {
    use envelope::VerifyError as E;
    let reason = match e {
        E::NoTrustedKeys | E::UntrustedKey { .. } => "untrusted-key",
        E::PayloadType { .. } | E::Base64 { .. } | E::BadSignature { .. } => "signature",
        E::Payload(_) | E::NotCanonical => "payload",
        E::WrongWorkload(_) => "workload",
    };
    Rejection::new(reason, e.to_string())
}
