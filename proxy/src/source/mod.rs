//! Signed config sources. A source yields raw bytes; the loader verifies
//! them (signature against the trusted keys, workload, digest) and publishes
//! only what verifies, keeping the last good config otherwise.
//!
//! Rollback: every signed config carries its build's sequence
//! ([`ProxyConfig::sequence`]); a config with a lower sequence than the one
//! in force, or the same sequence with other content, is refused (reason
//! `rollback`) and the newer one stays. The proxy keeps no state across
//! restarts: after one it takes the first config that verifies, and the
//! runtime's durable floor is what stops an older build there.
//! `generation` counts what this process accepted, not the config's age.

pub mod file;
pub mod http;

use crate::metrics::Metrics;
use crate::state::{ConfigTx, Loaded};
use mesh_proxy_api::envelope::{self, Envelope, VerifyError, VerifyingKey};
use mesh_proxy_api::sequence::{self, Held, Rollback};
use mesh_proxy_api::{ProxyConfig, WorkloadRef};
use serde::Deserialize;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use file::FileSource;
pub use http::RuntimeSource;

/// Where signed configs come from: a file, or the runtime controller's
/// long poll ([`RuntimeSource`]).
pub trait ConfigSource: Send {
    /// Waits until the config changes and returns its new bytes, or the
    /// error that now stops it being read. Implementations yield only
    /// changes: the same bytes, or the same error, are not yielded twice
    /// in a row, so an unchanged config is not re-verified or re-counted.
    fn next(&mut self) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send;
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

    fn from_verify(e: VerifyError) -> Rejection {
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

/// Verifies `bytes` and publishes it as the next generation unless it is the
/// config already in force or older than it. Returns the rejection so
/// callers can test it.
pub fn load(bytes: &[u8], verifier: &Verifier, tx: &ConfigTx, metrics: &Metrics) -> Result<(), Rejection> {
    let verified = verifier.open(bytes)?;
    let current = tx.borrow().clone();
    if current.as_ref().is_some_and(|c| c.digest == verified.digest) {
        tracing::debug!(digest = %verified.digest, "config unchanged");
        return Ok(());
    }
    let held = current.as_ref().map(|c| Held { sequence: c.config.sequence, digest: &c.digest });
    let offered = Held { sequence: verified.config.sequence, digest: &verified.digest };
    sequence::admit(held, offered).map_err(Rejection::Rollback)?;
    let generation = current.map_or(0, |c| c.generation) + 1;
    tracing::info!(generation, digest = %verified.digest, key_id = %verified.key_id, "config loaded");
    let Verified { config, digest, key_id } = verified;
    tx.send_replace(Some(Arc::new(Loaded { config, generation, digest, key_id })));
    metrics.config_accepted(generation);
    Ok(())
}

/// Drives `source` until `shutdown`: every change is verified and published,
/// or refused with a warning and a count while the last good config stays.
pub async fn run<S: ConfigSource>(
    mut source: S,
    verifier: Verifier,
    tx: ConfigTx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = source.next() => next,
        };
        let result = next.map_err(Rejection::Io).and_then(|bytes| load(&bytes, &verifier, &tx, &metrics));
        if let Err(rejection) = result {
            let kept = tx.borrow().as_ref().map(|c| c.generation);
            match kept {
                Some(g) => {
                    tracing::warn!(reason = rejection.reason(), "config refused, keeping generation {g}: {rejection}")
                }
                None => tracing::warn!(reason = rejection.reason(), "config refused, none loaded yet: {rejection}"),
            }
            metrics.config_rejected(rejection.reason());
        }
    }
}

/// Watches `path` and publishes every config that verifies.
pub async fn watch_file(
    path: PathBuf,
    interval: Duration,
    verifier: Verifier,
    tx: ConfigTx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    run(FileSource::new(path, interval), verifier, tx, metrics, shutdown).await;
}

#[cfg(test)]
mod tests;
