//! Verification of one object on its own: a ProxyConfig or a ServicePolicy
//! (signature, digest, and that what it says in the clear agrees with what
//! it signs) or the MeshBundle (signature, and that its clear spec is the signed one). The
//! cross-check between the two is in the store.
//!
//! ProxyConfig signatures are checked by mesh-proxy's own [`Verifier`], so
//! the runtime accepts exactly what a proxy would accept.

use super::{ObjectKey, Rejection, Served, ServedPolicy};
use bytes::Bytes;
use mesh_common::verify::Verifier;
use mesh_proxy_api::WorkloadRef;
use mesh_proxy_api::bundle::OpenError;
use mesh_proxy_api::envelope::{self, VerifyingKey};
use serde::Deserialize;
use std::collections::BTreeMap;

pub use mesh_proxy_api::bundle::{BUNDLE_NAME, BUNDLE_PAYLOAD_TYPE, BundleEntry, BundleSpec, ServicePolicyEntry};
use mesh_proxy_api::service_policy::{Audience, ServicePolicy};

/// A bundle that verified: which object carries which workload's config,
/// with which digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub source_revision: String,
    /// The signed build sequence; see [`super::Floor`].
    pub sequence: u64,
    pub allow_errors: bool,
    pub digest: String,
    pub entries: BTreeMap<ObjectKey, BundleEntry>,
    /// Its shared Service policies, by object.
    pub policies: BTreeMap<ObjectKey, ServicePolicyEntry>,
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

/// The clear fields of a ServicePolicy spec.
#[derive(Deserialize)]
struct PolicySpec {
    service: String,
    audience: Audience,
    digest: String,
    envelope: envelope::Envelope,
}

/// Verifies a ServicePolicy object stored under `key`: its signature (the
/// check mesh-proxy runs), and that its namespace, name, service, audience
/// and digest are the signed ones.
pub fn policy(key: &ObjectKey, bytes: &Bytes, trusted: &[VerifyingKey]) -> Result<ServedPolicy, Rejection> {
    let body = json_body(bytes);
    let object: Object<PolicySpec> = serde_json::from_slice(&body).map_err(parse_err)?;
    if object.kind != "ServicePolicy" {
        return Err(parse_err(format!("kind is `{}`, expected ServicePolicy", object.kind)));
    }
    let spec = &object.spec;
    let signed = ServicePolicy::open(&spec.envelope, trusted).map_err(verify_err)?;
    let digest = envelope::payload_digest(&spec.envelope).map_err(verify_err)?;
    if spec.digest != digest {
        return Err(Rejection::new(
            "digest",
            format!("spec.digest {} is not the signed payload's {digest}", spec.digest),
        ));
    }
    let svc = &signed.service;
    let name = signed.object_name();
    let placed = object.metadata.namespace.as_deref() == Some(svc.namespace.as_str())
        && key.namespace == svc.namespace
        && object.metadata.name.as_deref() == Some(key.name.as_str())
        && key.name == name;
    if !placed || spec.service != svc.name || spec.audience != signed.audience {
        let msg = format!("not the signed ServicePolicy {}/{name}", svc.namespace);
        return Err(Rejection::new("metadata", msg));
    }
    Ok(ServedPolicy { audience: signed.audience, digest, object: key.clone(), body })
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
    let signed = object.spec.open(trusted).map_err(|e| match e {
        OpenError::MissingEnvelope => parse_err(e),
        OpenError::Envelope(v) => verify_err(v),
        OpenError::Differs => Rejection::new("metadata", e.to_string()),
    })?;
    let env = object.spec.envelope.as_ref().expect("open checked the envelope");
    let digest = envelope::payload_digest(env).map_err(verify_err)?;
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
    let mut policies = BTreeMap::new();
    for e in signed.service_policies {
        let key = ObjectKey { namespace: e.namespace.clone(), name: e.name.clone() };
        if policies.insert(key, e).is_some() {
            return Err(Rejection::new("metadata", "a ServicePolicy is listed twice"));
        }
    }
    Ok(Bundle {
        source_revision: signed.source_revision,
        sequence: signed.sequence,
        allow_errors: signed.allow_errors,
        digest,
        entries,
        policies,
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
