//! Signed configs: RFC 8785 canonical JSON in a DSSE envelope, signed with
//! ed25519. The format is specified in `proxy/api/README.md` so that other
//! implementations can verify it; this module is the reference.
//!
//! Pure: keys come in as PEM text and envelopes as values, never from files.

use crate::config::{ProxyConfig, WorkloadRef};
use base64ct::{Base64, Encoding};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes};
use ed25519_dalek::{Signature, Signer};
/// Re-exported so that callers use the same ed25519-dalek as this crate.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// DSSE `payloadType` of a signed [`ProxyConfig`].
pub const PROXY_CONFIG_PAYLOAD_TYPE: &str = "application/vnd.meshc.proxyconfig+json;version=v1alpha1";
/// DSSE `payloadType` of a signed links file (mesh-runtime's `--links`
/// document): which gateway identity and which remote runtime a source
/// cluster's runtime believes, signed like the configs it serves beside.
pub const LINKS_PAYLOAD_TYPE: &str = "application/vnd.meshc.links+json;version=v1alpha1";

/// A DSSE envelope (<https://github.com/secure-systems-lab/dsse>, JSON form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    pub payload_type: String,
    /// Standard base64 (RFC 4648 §4, with padding) of the canonical JSON.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    pub keyid: String,
    /// Standard base64 of the 64-byte ed25519 signature over the PAE.
    pub sig: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// No trusted keys were given: nothing could ever verify.
    NoTrustedKeys,
    PayloadType {
        expected: String,
        found: String,
    },
    Base64 {
        field: &'static str,
    },
    /// No signature is by a trusted key; `keyids` are the ones present.
    UntrustedKey {
        keyids: Vec<String>,
    },
    /// A signature by a trusted key that does not verify.
    BadSignature {
        keyid: String,
    },
    /// The payload is not JSON of the expected shape.
    Payload(String),
    /// The payload parses but is not in RFC 8785 canonical form.
    NotCanonical,
    /// Boxed: two references would make every `Result` large.
    WrongWorkload(Box<WrongWorkload>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrongWorkload {
    pub expected: WorkloadRef,
    pub found: WorkloadRef,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::NoTrustedKeys => write!(f, "no trusted public keys given"),
            VerifyError::PayloadType { expected, found } => {
                write!(f, "payloadType is `{found}`, expected `{expected}`")
            }
            VerifyError::Base64 { field } => write!(f, "{field} is not valid standard base64"),
            VerifyError::UntrustedKey { keyids } if keyids.is_empty() => write!(f, "envelope has no signatures"),
            VerifyError::UntrustedKey { keyids } => {
                write!(f, "signed by untrusted key id(s) {}", keyids.join(", "))
            }
            VerifyError::BadSignature { keyid } => write!(f, "signature by key {keyid} does not verify"),
            VerifyError::Payload(e) => write!(f, "payload does not decode: {e}"),
            VerifyError::NotCanonical => write!(f, "payload is not canonical JSON (RFC 8785)"),
            VerifyError::WrongWorkload(w) => write!(
                f,
                "config is for {} {}/{}, expected {} {}/{}",
                w.found.kind, w.found.namespace, w.found.name, w.expected.kind, w.expected.namespace, w.expected.name
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// A key file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// DSSE pre-authentication encoding: what is actually signed. Binding the
/// type into the signed bytes stops a signature over one kind of payload
/// being replayed as another.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

pub use crate::canonical::canonical_json;

/// `sha256:<64 lower-case hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// The key id: the first 16 lower-case hex digits of SHA-256 over the raw
/// 32-byte ed25519 public key. Derived, so no registry of ids is needed.
pub fn key_id(key: &VerifyingKey) -> String {
    hex(&Sha256::digest(key.as_bytes())[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs the canonical JSON of `value` as a DSSE envelope of `payload_type`.
pub fn sign_value<T: Serialize>(value: &T, payload_type: &str, key: &SigningKey) -> Result<Envelope, String> {
    let payload = canonical_json(value)?;
    let sig: Signature = key.sign(&pae(payload_type, &payload));
    Ok(Envelope {
        payload_type: payload_type.to_owned(),
        payload: Base64::encode_string(&payload),
        signatures: vec![EnvelopeSignature {
            keyid: key_id(&key.verifying_key()),
            sig: Base64::encode_string(&sig.to_bytes()),
        }],
    })
}

/// Signs a [`ProxyConfig`].
pub fn sign(config: &ProxyConfig, key: &SigningKey) -> Envelope {
    // A ProxyConfig holds only strings, integers, and containers of them,
    // so canonicalisation cannot fail (no floats, no non-string map keys).
    sign_value(config, PROXY_CONFIG_PAYLOAD_TYPE, key).expect("ProxyConfig serializes to JSON")
}

/// The decoded payload bytes of `envelope`, once a signature by one of
/// `trusted` verifies over them.
pub fn verified_payload(
    envelope: &Envelope,
    payload_type: &str,
    trusted: &[VerifyingKey],
) -> Result<Vec<u8>, VerifyError> {
    if trusted.is_empty() {
        return Err(VerifyError::NoTrustedKeys);
    }
    if envelope.payload_type != payload_type {
        return Err(VerifyError::PayloadType {
            expected: payload_type.to_owned(),
            found: envelope.payload_type.clone(),
        });
    }
    let payload = Base64::decode_vec(&envelope.payload).map_err(|_| VerifyError::Base64 { field: "payload" })?;
    let signed = pae(payload_type, &payload);
    // The first signature by a trusted key decides: a trusted key id with a
    // bad signature is tampering, not something a later signature excuses.
    for s in &envelope.signatures {
        let Some(key) = trusted.iter().find(|k| key_id(k) == s.keyid) else {
            continue;
        };
        let bytes = Base64::decode_vec(&s.sig).map_err(|_| VerifyError::Base64 { field: "signature" })?;
        let sig = Signature::from_slice(&bytes).map_err(|_| VerifyError::BadSignature { keyid: s.keyid.clone() })?;
        // verify_strict rejects small-order keys and non-canonical
        // signature encodings, so a signature has exactly one valid form.
        key.verify_strict(&signed, &sig).map_err(|_| VerifyError::BadSignature { keyid: s.keyid.clone() })?;
        return Ok(payload);
    }
    Err(VerifyError::UntrustedKey { keyids: envelope.signatures.iter().map(|s| s.keyid.clone()).collect() })
}

/// Verifies `envelope` and decodes its payload as `T`. The payload must be
/// exactly the canonical JSON of the decoded value, so that one config has
/// one signed form and its digest names it.
pub fn open_value<T: Serialize + DeserializeOwned>(
    envelope: &Envelope,
    payload_type: &str,
    trusted: &[VerifyingKey],
) -> Result<T, VerifyError> {
    let payload = verified_payload(envelope, payload_type, trusted)?;
    let value: T = serde_json::from_slice(&payload).map_err(|e| VerifyError::Payload(e.to_string()))?;
    if canonical_json(&value).map_err(VerifyError::Payload)? != payload {
        return Err(VerifyError::NotCanonical);
    }
    Ok(value)
}

/// Verifies a signed [`ProxyConfig`].
pub fn verify(envelope: &Envelope, trusted: &[VerifyingKey]) -> Result<ProxyConfig, VerifyError> {
    open_value(envelope, PROXY_CONFIG_PAYLOAD_TYPE, trusted)
}

/// Verifies a signed [`ProxyConfig`] and that it is `expected`'s, so a
/// config signed for one workload cannot be served to another.
pub fn verify_for_workload(
    envelope: &Envelope,
    trusted: &[VerifyingKey],
    expected: &WorkloadRef,
) -> Result<ProxyConfig, VerifyError> {
    let config = verify(envelope, trusted)?;
    if &config.workload != expected {
        let wrong = WrongWorkload { expected: expected.clone(), found: config.workload };
        return Err(VerifyError::WrongWorkload(Box::new(wrong)));
    }
    Ok(config)
}

/// The SHA-256 digest of an envelope's payload, without verifying it.
pub fn payload_digest(envelope: &Envelope) -> Result<String, VerifyError> {
    let payload = Base64::decode_vec(&envelope.payload).map_err(|_| VerifyError::Base64 { field: "payload" })?;
    Ok(digest(&payload))
}

/// A private key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem_block(pem))
        .map_err(|e| KeyError(format!("not an ed25519 PKCS#8 PEM private key: {e}")))
}

/// A public key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`). Lines before
/// the PEM block (such as `# keyid: ...`) are skipped.
pub fn verifying_key_from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem_block(pem))
        .map_err(|e| KeyError(format!("not an ed25519 SPKI PEM public key: {e}")))
}

/// The text from the first PEM boundary on: key files may carry comment
/// lines before it (meshc writes the key id there).
fn pem_block(text: &str) -> &str {
    text.find("-----BEGIN").map_or(text, |i| &text[i..])
}

/// PKCS#8 v1 PEM of a private key (RFC 8410, the seed only). ed25519-dalek
/// would write v2 with the public key attached, which OpenSSL 3.0 cannot
/// read; v1 is what `openssl genpkey` writes and every reader accepts.
pub fn signing_key_to_pem(key: &SigningKey) -> Result<String, KeyError> {
    let v1 = KeypairBytes { secret_key: key.to_bytes(), public_key: None };
    v1.to_pkcs8_pem(LineEnding::LF).map(|p| p.to_string()).map_err(|e| KeyError(e.to_string()))
}

/// SPKI PEM of a public key.
pub fn verifying_key_to_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF).map_err(|e| KeyError(e.to_string()))
}
