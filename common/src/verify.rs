//! Envelope verification: what makes a signed ProxyConfig acceptable to
//! serve (mesh-runtime) or to enforce (mesh-proxy). Both run the same
//! checks, so the runtime never serves what a proxy would refuse: a
//! signature by a trusted key, the expected workload, and an object digest
//! that is the signed payload's.

use mesh_proxy_api::envelope::{self, Envelope, VerifyError, VerifyingKey};
use mesh_proxy_api::sequence::Rollback;
use mesh_proxy_api::{ProxyConfig, WorkloadRef};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// Reads the trusted public keys (`--trust-key` PEM files); at least one
/// is required, since an empty set would refuse every config.
pub fn read_trusted_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, String> {
    let keys = paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            envelope::verifying_key_from_pem(&text).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if keys.is_empty() {
        return Err("no --trust-key given".into());
    }
    Ok(keys)
}
/// The source could not deliver bytes (file missing, unreadable, connection lost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError(pub String);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a config must satisfy to be served.
pub struct Verifier {
    pub trusted: Vec<VerifyingKey>,
    /// `Kind/namespace/name`.
    pub workload: String,
}

/// A config that verified, before it is numbered.
#[derive(Debug)]
pub struct Verified {
    pub config: ProxyConfig,
    pub digest: String,
    pub key_id: String,
}

/// Why a config was refused. [`Rejection::reason`] is the metrics label.
#[derive(Debug)]
pub enum Rejection {
    Io(SourceError),
    /// Not a ProxyConfig object or DSSE envelope.
    Parse(String),
    /// No signature by a trusted key.
    UntrustedKey(VerifyError),
    /// Tampered: bad signature, wrong payload type, bad base64.
    Signature(VerifyError),
    /// Signed, but the payload is not a canonical ProxyConfig.
    Payload(VerifyError),
    /// Signed for another workload, or `--workload` is malformed.
    Workload(String),
    /// The object's `spec.digest` is not the signed payload's.
    Digest {
        stated: String,
        signed: String,
    },
    /// Older than the config in force (a lower sequence), or the same
    /// sequence with other content.
    Rollback(Rollback),
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Io(_) => "io",
            Rejection::Parse(_) => "parse",
            Rejection::UntrustedKey(_) => "untrusted-key",
            Rejection::Signature(_) => "signature",
            Rejection::Payload(_) => "payload",
            Rejection::Workload(_) => "workload",
            Rejection::Digest { .. } => "digest",
            Rejection::Rollback(_) => "rollback",
        }
    }

    pub fn from_verify(e: VerifyError) -> Rejection {
        match e {
            VerifyError::NoTrustedKeys | VerifyError::UntrustedKey { .. } => Rejection::UntrustedKey(e),
            VerifyError::PayloadType { .. } | VerifyError::Base64 { .. } | VerifyError::BadSignature { .. } => {
                Rejection::Signature(e)
            }
            VerifyError::Payload(_) | VerifyError::NotCanonical => Rejection::Payload(e),
            VerifyError::WrongWorkload(_) => Rejection::Workload(e.to_string()),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Io(e) => write!(f, "cannot read: {e}"),
            Rejection::Parse(e) => write!(f, "not a ProxyConfig object or DSSE envelope: {e}"),
            Rejection::UntrustedKey(e) | Rejection::Signature(e) | Rejection::Payload(e) => write!(f, "{e}"),
            Rejection::Workload(e) => f.write_str(e),
            Rejection::Digest { stated, signed } => {
                write!(f, "spec.digest {stated} is not the signed payload's digest {signed}")
            }
            Rejection::Rollback(r) => write!(f, "{r}"),
        }
    }
}

/// The parts of the ProxyConfig object `meshc build` writes that matter
/// here; the rest (metadata, the unsigned copies of workload and identity)
/// is ignored because only the envelope is trusted.
#[derive(Deserialize)]
struct ConfigObject {
    kind: String,
    spec: ObjectSpec,
}

#[derive(Deserialize)]
struct ObjectSpec {
    #[serde(default)]
    digest: Option<String>,
    envelope: Envelope,
}

impl Verifier {
    /// `Kind/namespace/name` as a [`WorkloadRef`].
    pub fn workload_ref(&self) -> Result<WorkloadRef, String> {
        let mut parts = self.workload.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(kind), Some(namespace), Some(name))
                if !kind.is_empty() && !namespace.is_empty() && !name.is_empty() =>
            {
                Ok(WorkloadRef { kind: kind.into(), namespace: namespace.into(), name: name.into() })
            }
            _ => Err(format!("--workload `{}` is not Kind/namespace/name", self.workload)),
        }
    }

    /// Parses and verifies one file's bytes: a ProxyConfig object (JSON,
    /// optionally after a `---` line) or a bare DSSE envelope.
    pub fn open(&self, bytes: &[u8]) -> Result<Verified, Rejection> {
        let expected = self.workload_ref().map_err(Rejection::Workload)?;
        let (envelope, stated) = parse_document(bytes)?;
        let config =
            envelope::verify_for_workload(&envelope, &self.trusted, &expected).map_err(Rejection::from_verify)?;
        let signed = envelope::payload_digest(&envelope).map_err(Rejection::from_verify)?;
        if let Some(stated) = stated.filter(|d| *d != signed) {
            return Err(Rejection::Digest { stated, signed });
        }
        Ok(Verified { config, digest: signed, key_id: self.deciding_key_id(&envelope) })
    }

    /// The key that verified: `verified_payload` lets the first signature
    /// by a trusted key decide, so that is the one named.
    fn deciding_key_id(&self, envelope: &Envelope) -> String {
        let trusted: Vec<String> = self.trusted.iter().map(envelope::key_id).collect();
        envelope.signatures.iter().find(|s| trusted.contains(&s.keyid)).map(|s| s.keyid.clone()).unwrap_or_default()
    }
}

/// The envelope, and the digest the object states (bare envelopes state none).
fn parse_document(bytes: &[u8]) -> Result<(Envelope, Option<String>), Rejection> {
    let text = std::str::from_utf8(bytes).map_err(|e| Rejection::Parse(format!("not UTF-8: {e}")))?;
    let text = strip_document_marker(text);
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Rejection::Parse(e.to_string()))?;
    let is_envelope = value.get("payloadType").is_some();
    if is_envelope {
        let envelope = serde_json::from_value(value).map_err(|e| Rejection::Parse(format!("envelope: {e}")))?;
        return Ok((envelope, None));
    }
    let object: ConfigObject = serde_json::from_value(value)
        .map_err(|e| Rejection::Parse(format!("expected a ProxyConfig object or a DSSE envelope: {e}")))?;
    if object.kind != "ProxyConfig" {
        return Err(Rejection::Parse(format!("kind is `{}`, expected ProxyConfig", object.kind)));
    }
    Ok((object.spec.envelope, object.spec.digest))
}

/// meshc writes each object as a YAML document of JSON: `---` then the JSON.
fn strip_document_marker(text: &str) -> &str {
    let text = text.trim_start();
    match text.strip_prefix("---") {
        Some(rest) if rest.starts_with(['\n', '\r']) || rest.trim().is_empty() => rest,
        _ => text,
    }
}
