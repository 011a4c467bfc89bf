//! Workload certificates from the runtime (`POST /v1/certificate`,
//! runtime/API.md): bootstrap before `Identity::load`, then renewal at 70%
//! of the lifetime, like Linkerd's proxy.
//!
//! The identity directory must already hold `ca.crt` (the trust anchors,
//! provisioned like Linkerd's trust-anchor ConfigMap): the runtime's own
//! certificate is checked against it, with the name `--runtime-identity`,
//! and the request carries no client certificate, only the ServiceAccount
//! token, re-read from its file on every request (projected tokens rotate).
//!
//! A new certificate is validated exactly as `Identity::load` would (key
//! matches, chains to ca.crt, valid now, our name) before it replaces
//! tls.crt, so a bad answer never reaches the disk. Files are replaced by
//! rename (tls.key 0600); the identity reloader picks the new certificate
//! up. Renewal keeps the key; a failed renewal is retried with backoff while
//! the old certificate keeps serving.

use crate::source::http::{Backoff, RuntimeClient, TlsSource};
use mesh_common::identity::material::{Files, Material};
use mesh_common::identity::pki::{CA_CRT, TLS_CRT, TLS_KEY, write_file};
use mesh_proxy_api::IdentityDomain;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Linkerd renews at 70% of a certificate's lifetime.
const RENEW_AT: f64 = 0.7;

#[derive(Clone, Debug)]
pub struct CsrSettings {
    /// `https://host:port` of the runtime.
    pub runtime: String,
    /// The identity the runtime's certificate must carry.
    pub runtime_identity: String,
    pub token_file: PathBuf,
    /// The identity directory (ca.crt in, tls.crt and tls.key out).
    pub dir: PathBuf,
    /// The identity to request (the CSR's only DNS SAN).
    pub name: String,
    pub timing: CsrTiming,
}

#[derive(Clone, Copy, Debug)]
pub struct CsrTiming {
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Bootstrap gives up after this: a proxy without a certificate cannot
    /// serve, and exiting lets the orchestrator report and restart it.
    pub bootstrap_deadline: Duration,
    pub request_timeout: Duration,
}

impl Default for CsrTiming {
    fn default() -> CsrTiming {
        CsrTiming {
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            bootstrap_deadline: Duration::from_secs(120),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// `--identity-name`, or the Linkerd name of `--service-account` in the
/// namespace of `--workload` (`Kind/namespace/name`) within `domain`
/// (`--control-plane-namespace`, `--trust-domain`).
pub fn identity_name(
    explicit: Option<&str>,
    service_account: Option<&str>,
    workload: &str,
    domain: &IdentityDomain,
) -> Result<String, String> {
    if let Some(name) = explicit {
        return Ok(name.to_string());
    }
    let sa = service_account.ok_or("--token-file needs --identity-name or --service-account")?;
    let ns = workload
        .split('/')
        .nth(1)
        .filter(|ns| !ns.is_empty())
        .ok_or_else(|| format!("--workload `{workload}` is not Kind/namespace/name"))?;
    Ok(domain.service_account(ns, sa))
}

#[derive(Serialize)]
struct CertificateRequest<'a> {
    csr: &'a str,
    token: &'a str,
}

#[derive(Deserialize)]
struct CertificateResponse {
    certificate: String,
}

/// The certificate in the directory, if `Identity::load` would accept it
/// for `name`: its validity.
struct Current {
    not_before: SystemTime,
    not_after: SystemTime,
}

impl CsrSettings {
    /// Makes sure the directory holds a usable certificate for our name,
    /// requesting one (with a new key) if it does not; retries until
    /// `bootstrap_deadline`.
    pub async fn bootstrap(&self) -> Result<(), String> {
        match self.current() {
            Ok(_) => return Ok(()),
            Err(why) => {
                tracing::info!(identity = %self.name, reason = %why, "requesting a certificate from the runtime")
            }
        }
        let deadline = tokio::time::Instant::now() + self.timing.bootstrap_deadline;
        let mut backoff = Backoff::new(self.timing.retry_min, self.timing.retry_max);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("key generation: {e}"))?;
        loop {
            let err = match self.issue(&key, true).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let pause = backoff.next_delay();
            if tokio::time::Instant::now() + pause > deadline {
                return Err(format!("no certificate for {} from the runtime: {err}", self.name));
            }
            tracing::warn!(identity = %self.name, error = %err, retry_in = ?pause, "certificate request failed");
            tokio::time::sleep(pause).await;
        }
    }

    /// Renews at 70% of each certificate's lifetime until `shutdown`.
    pub async fn renew(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.timing.retry_min, self.timing.retry_max);
        // After a renewal, wait at least this much even if the new
        // certificate is already past 70% (very short lifetimes, skewed
        // clocks), so the runtime is never asked in a tight loop.
        let mut floor = Duration::ZERO;
        loop {
            let wait = match self.current() {
                Ok(c) => renewal_delay(c.not_before, c.not_after, SystemTime::now()).max(floor),
                Err(e) => {
                    tracing::warn!(identity = %self.name, error = %e, "current certificate unusable; renewing now");
                    floor
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            floor = match self.renew_once().await {
                Ok(not_after) => {
                    tracing::info!(identity = %self.name, expires = ?not_after, "certificate renewed");
                    backoff.reset();
                    self.timing.retry_min
                }
                Err(e) => {
                    let pause = backoff.next_delay();
                    tracing::warn!(identity = %self.name, error = %e, retry_in = ?pause, "certificate renewal failed; the current certificate keeps serving");
                    pause
                }
            };
        }
    }

    /// One renewal with the key on disk (a new key if it is unreadable).
    async fn renew_once(&self) -> Result<SystemTime, String> {
        let existing =
            std::fs::read_to_string(self.dir.join(TLS_KEY)).ok().and_then(|pem| KeyPair::from_pem(&pem).ok());
        match existing {
            Some(key) => self.issue(&key, false).await,
            None => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("key generation: {e}"))?;
                self.issue(&key, true).await
            }
        }
    }

    /// Requests a certificate for `key`, validates it, and writes it (and
    /// the key when `write_key`). Returns its expiry.
    async fn issue(&self, key: &KeyPair, write_key: bool) -> Result<SystemTime, String> {
        let csr = self.csr(key)?;
        let token = read_token(&self.token_file)?;
        let body = serde_json::to_vec(&CertificateRequest { csr: &csr, token: &token }).map_err(|e| e.to_string())?;
        let client = RuntimeClient::new(&self.runtime, &self.runtime_identity, self.anchors_only())?;
        let reply = client.post_json("/v1/certificate", body, self.timing.request_timeout).await?;
        if !reply.status.is_success() {
            return Err(format!("runtime refused the CSR ({}): {}", reply.status, reply.error_message()));
        }
        let resp: CertificateResponse =
            serde_json::from_slice(&reply.body).map_err(|e| format!("bad certificate response: {e}"))?;
        let key_pem = key.serialize_pem();
        let material = self.validate(resp.certificate.as_bytes(), key_pem.as_bytes())?;
        if write_key {
            write_file(&self.dir.join(TLS_KEY), &key_pem, true)?;
        }
        write_file(&self.dir.join(TLS_CRT), &resp.certificate, false)?;
        Ok(material.not_after)
    }

    fn csr(&self, key: &KeyPair) -> Result<String, String> {
        let mut params =
            CertificateParams::new(vec![self.name.clone()]).map_err(|e| format!("`{}`: {e}", self.name))?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, self.name.as_str());
        let csr = params.serialize_request(key).map_err(|e| format!("CSR: {e}"))?;
        csr.pem().map_err(|e| format!("CSR: {e}"))
    }

    /// The issued chain with our key and the anchors on disk, checked as
    /// `Identity::load` checks them, plus the name we asked for.
    fn validate(&self, chain: &[u8], key: &[u8]) -> Result<Material, String> {
        let ca = read(&self.dir, CA_CRT)?;
        let files = Files::new(chain.to_vec(), key.to_vec(), ca.into_bytes());
        let material = Material::parse(&self.dir, &files, &provider())
            .map_err(|e| format!("the runtime's certificate is unusable: {e}"))?;
        if material.name != self.name {
            return Err(format!("the runtime issued a certificate for {}, not {}", material.name, self.name));
        }
        Ok(material)
    }

    /// What is in the directory now, if usable for our name.
    fn current(&self) -> Result<Current, String> {
        let files = Files::read(&self.dir)?;
        let material = Material::parse(&self.dir, &files, &provider())?;
        if material.name != self.name {
            return Err(format!("{} names {}, not {}", self.dir.join(TLS_CRT).display(), material.name, self.name));
        }
        Ok(Current { not_before: material.not_before, not_after: material.not_after })
    }

    /// TLS to the runtime without a client certificate, trusting ca.crt as
    /// it is on disk at each connection (anchors rotate).
    fn anchors_only(&self) -> TlsSource {
        let ca_path = self.dir.join(CA_CRT);
        Arc::new(move || {
            let pem = std::fs::read(&ca_path).map_err(|e| format!("{}: {e}", ca_path.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for der in CertificateDer::pem_slice_iter(&pem) {
                let der = der.map_err(|e| format!("{}: {e}", ca_path.display()))?;
                roots.add(der).map_err(|e| format!("{}: {e}", ca_path.display()))?;
            }
            let mut config = rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
    }
}

/// How long until 70% of the lifetime `not_before..not_after` has passed.
pub fn renewal_delay(not_before: SystemTime, not_after: SystemTime, now: SystemTime) -> Duration {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let at = not_before + lifetime.mul_f64(RENEW_AT);
    at.duration_since(now).unwrap_or_default()
}

fn read_token(path: &Path) -> Result<String, String> {
    let token = std::fs::read_to_string(path).map_err(|e| format!("token {}: {e}", path.display()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("token {} is empty", path.display()));
    }
    Ok(token.to_string())
}

fn read(dir: &Path, file: &str) -> Result<String, String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_seventy_percent() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = t0 + Duration::from_secs(100);
        assert_eq!(renewal_delay(t0, end, t0), Duration::from_secs(70));
        assert_eq!(renewal_delay(t0, end, t0 + Duration::from_secs(50)), Duration::from_secs(20));
        assert_eq!(renewal_delay(t0, end, t0 + Duration::from_secs(90)), Duration::ZERO, "overdue: now");
        assert_eq!(renewal_delay(end, t0, end), Duration::ZERO, "inverted validity: no lifetime, due at once");
    }

    #[test]
    fn the_name_comes_from_the_flag_or_the_service_account() {
        let wl = "Deployment/shop/web";
        let linkerd = IdentityDomain::default();
        assert_eq!(identity_name(Some("x.example"), None, wl, &linkerd).unwrap(), "x.example");
        assert_eq!(
            identity_name(None, Some("web"), wl, &IdentityDomain::new("linkerd", "example.org")).unwrap(),
            "web.shop.serviceaccount.identity.linkerd.example.org"
        );
        assert_eq!(
            identity_name(None, Some("web"), wl, &IdentityDomain::new("mesh-system", "cluster.local")).unwrap(),
            "web.shop.serviceaccount.identity.mesh-system.cluster.local"
        );
        assert!(identity_name(None, None, wl, &linkerd).unwrap_err().contains("--service-account"));
        assert!(identity_name(None, Some("web"), "web", &linkerd).unwrap_err().contains("Kind/namespace/name"));
    }

    #[test]
    fn a_csr_names_only_our_identity() {
        let s = CsrSettings {
            runtime: "https://rt:8443".into(),
            runtime_identity: "rt.example".into(),
            token_file: "/nonexistent".into(),
            dir: "/nonexistent".into(),
            name: "web.shop.serviceaccount.identity.linkerd.cluster.local".into(),
            timing: CsrTiming::default(),
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = s.csr(&key).unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        assert_eq!(parsed.params.subject_alt_names, vec![rcgen::SanType::DnsName(s.name.clone().try_into().unwrap())]);
        use rcgen::PublicKeyData;
        assert_eq!(parsed.public_key.der_bytes(), key.der_bytes(), "the CSR carries our key");
    }
}
