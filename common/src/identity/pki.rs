//! Test PKI: a trust anchor, an issuer and workload certificates, made with
//! rcgen, which `mesh-certs` and the tests use; the runtime's CA shares
//! the file names, `WorkloadCert` and the writers. The proxy itself only
//! ever reads certificates.
//!
//! Names follow Linkerd, through [`IdentityDomain`]: the issuer is
//! `identity.<control-plane-ns>.<trust-domain>` and a workload is
//! `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`.
//! Keys are ECDSA P-256, which ring signs and verifies quickly, so tests can
//! mint certificates for many workloads.

use mesh_proxy_api::IdentityDomain;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// File names of an identity directory, as `Identity::load` reads it.
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
/// File names of a CA directory (`mesh-certs init`).
pub const CA_KEY: &str = "ca.key";
pub const ISSUER_CRT: &str = "issuer.crt";
pub const ISSUER_KEY: &str = "issuer.key";

/// Allowance for clocks that run slightly behind the issuer's.
const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// X.509 GeneralizedTime ends with year 9999 (seconds since the epoch).
const MAX_X509_TIME: Duration = Duration::from_secs(253_402_300_799);
const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// When a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// Valid from a few minutes ago (clock skew) until `d` from now.
    pub fn valid_for(d: Duration) -> Validity {
        let now = SystemTime::now();
        // Past the X.509 range, `since_epoch` reports the error when issuing.
        let not_after = now.checked_add(d).unwrap_or(UNIX_EPOCH + MAX_X509_TIME + Duration::from_secs(1));
        Validity { not_before: now - CLOCK_SKEW, not_after }
    }
    /// Ended an hour ago.
    pub fn expired() -> Validity {
        let now = SystemTime::now();
        Validity { not_before: now - Duration::from_secs(7200), not_after: now - Duration::from_secs(3600) }
    }
    /// Starts in an hour.
    pub fn not_yet_valid() -> Validity {
        let now = SystemTime::now();
        Validity { not_before: now + Duration::from_secs(3600), not_after: now + Duration::from_secs(7200) }
    }
}

/// A workload's certificate chain (leaf, then issuer) and PKCS#8 key, PEM.
#[derive(Clone, Debug)]
pub struct WorkloadCert {
    pub name: String,
    pub chain_pem: String,
    pub key_pem: String,
}

/// A trust anchor and the issuer it signed.
pub struct TestPki {
    domain: IdentityDomain,
    anchor_pem: String,
    anchor: Issuer<'static, KeyPair>,
    issuer_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// A fresh anchor and issuer for Linkerd's default control plane
    /// namespace, both valid for ten years.
    pub fn new(trust_domain: &str) -> Result<TestPki, String> {
        TestPki::for_domain(IdentityDomain::new(
            mesh_proxy_api::identity::DEFAULT_CONTROL_PLANE_NAMESPACE,
            trust_domain,
        ))
    }

    /// A fresh anchor and an issuer named for `domain`, both valid for ten years.
    pub fn for_domain(domain: IdentityDomain) -> Result<TestPki, String> {
        let validity = Validity::valid_for(TEN_YEARS);
        let anchor_key = new_key()?;
        let anchor_cn = format!("root.{}.{}", domain.control_plane_namespace(), domain.trust_domain());
        let anchor_params = ca_params(&anchor_cn, validity, None)?;
        let anchor_pem = anchor_params.self_signed(&anchor_key).map_err(rcgen_err("trust anchor"))?.pem();
        let anchor = Issuer::new(anchor_params, anchor_key);
        let (issuer_pem, issuer) = new_issuer(&domain, &anchor, validity)?;
        Ok(TestPki { domain, anchor_pem, anchor, issuer_pem, issuer })
    }

    /// Reads a CA directory written by [`TestPki::write_ca_dir`]; the
    /// control plane namespace and trust domain come from the issuer's name.
    pub fn load(dir: &Path) -> Result<TestPki, String> {
        let anchor_pem = read(dir, CA_CRT)?;
        let anchor = load_issuer(dir, &anchor_pem, CA_KEY)?;
        let issuer_pem = read(dir, ISSUER_CRT)?;
        let issuer = load_issuer(dir, &issuer_pem, ISSUER_KEY)?;
        let domain = issuer_cn(&issuer_pem).as_deref().and_then(IdentityDomain::from_issuer).ok_or_else(|| {
            format!(
                "{}: subject CN is not `identity.<control-plane-ns>.<trust-domain>`",
                dir.join(ISSUER_CRT).display()
            )
        })?;
        Ok(TestPki { domain, anchor_pem, anchor, issuer_pem, issuer })
    }

    pub fn trust_domain(&self) -> &str {
        self.domain.trust_domain()
    }

    pub fn domain(&self) -> &IdentityDomain {
        &self.domain
    }

    /// The trust anchor certificate (what goes in a workload's `ca.crt`).
    pub fn anchors_pem(&self) -> &str {
        &self.anchor_pem
    }

    pub fn issuer_pem(&self) -> &str {
        &self.issuer_pem
    }

    /// Replaces the issuer with a new one signed by the same anchor (issuer
    /// rotation: workloads keep their `ca.crt`).
    pub fn rotate_issuer(&mut self, validity: Validity) -> Result<(), String> {
        let (pem, issuer) = new_issuer(&self.domain, &self.anchor, validity)?;
        self.issuer_pem = pem;
        self.issuer = issuer;
        Ok(())
    }

    /// Writes ca.crt, ca.key, issuer.crt and issuer.key.
    pub fn write_ca_dir(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write_file(&dir.join(CA_CRT), &self.anchor_pem, false)?;
        write_file(&dir.join(CA_KEY), &self.anchor.key().serialize_pem(), true)?;
        write_file(&dir.join(ISSUER_CRT), &self.issuer_pem, false)?;
        write_file(&dir.join(ISSUER_KEY), &self.issuer.key().serialize_pem(), true)
    }

    /// A certificate for ServiceAccount `sa` in namespace `ns`.
    pub fn issue_workload(&self, sa: &str, ns: &str, validity: Validity) -> Result<WorkloadCert, String> {
        self.issue_name(&self.domain.service_account(ns, sa), validity)
    }

    /// A workload certificate whose SAN DNS name is `name`, usable for both
    /// TLS server and client authentication.
    pub fn issue_name(&self, name: &str, validity: Validity) -> Result<WorkloadCert, String> {
        let key = new_key()?;
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(rcgen_err(name))?;
        params.distinguished_name.push(DnType::CommonName, name);
        set_validity(&mut params, validity)?;
        params.serial_number = Some(random_serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&key, &self.issuer).map_err(rcgen_err(name))?;
        Ok(WorkloadCert {
            name: name.to_string(),
            chain_pem: format!("{}{}", leaf.pem(), self.issuer_pem),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes an identity directory: tls.crt, tls.key and ca.crt. Each file is
/// written to a temporary name and renamed, so a reloader never reads half a
/// file.
pub fn write_identity_dir(dir: &Path, cert: &WorkloadCert, anchors_pem: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_file(&dir.join(CA_CRT), anchors_pem, false)?;
    write_file(&dir.join(TLS_KEY), &cert.key_pem, true)?;
    write_file(&dir.join(TLS_CRT), &cert.chain_pem, false)
}

/// Writes `contents` atomically (temporary file, then rename); keys are
/// readable by their owner only.
pub fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut tmp_name = path.file_name().ok_or_else(|| format!("{}: not a file path", path.display()))?.to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mode = if secret { 0o600 } else { 0o644 };
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(err)?;
    // No fsync: the rename is what readers need to see whole files, and
    // test identities need not survive a crash.
    f.write_all(contents.as_bytes()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn new_issuer(
    domain: &IdentityDomain,
    anchor: &Issuer<'_, KeyPair>,
    validity: Validity,
) -> Result<(String, Issuer<'static, KeyPair>), String> {
    let key = new_key()?;
    let params = ca_params(&domain.issuer(), validity, Some(0))?;
    let pem = params.signed_by(&key, anchor).map_err(rcgen_err("issuer"))?.pem();
    Ok((pem, Issuer::new(params, key)))
}

/// A CA certificate; `path_len` limits how many CAs may follow it.
fn ca_params(cn: &str, validity: Validity, path_len: Option<u8>) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, validity)?;
    Ok(params)
}

/// rcgen takes `time::OffsetDateTime`; starting from rcgen's own epoch value
/// and adding a std `Duration` avoids a direct dependency on `time`.
fn set_validity(params: &mut CertificateParams, validity: Validity) -> Result<(), String> {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch(validity.not_before)?;
    params.not_after = epoch + since_epoch(validity.not_after)?;
    Ok(())
}

fn since_epoch(t: SystemTime) -> Result<Duration, String> {
    let d = t.duration_since(UNIX_EPOCH).map_err(|_| "certificate time before 1970".to_string())?;
    if d > MAX_X509_TIME {
        return Err("certificate time after year 9999".into());
    }
    Ok(d)
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    // A positive INTEGER: the high bit clear, and no leading zero byte.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn new_key() -> Result<KeyPair, String> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("key generation"))
}

fn load_issuer(dir: &Path, cert_pem: &str, key_file: &str) -> Result<Issuer<'static, KeyPair>, String> {
    let key_path = dir.join(key_file);
    let key_pem = read(dir, key_file)?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key_path.display()))?;
    Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| format!("{}: {e}", dir.display()))
}

fn issuer_cn(pem: &str) -> Option<String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    cert.subject().iter_common_name().next()?.as_str().ok().map(str::to_string)
}

fn read(dir: &Path, file: &str) -> Result<String, String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_certificate_carries_the_linkerd_name_and_both_usages() {
        use rustls_pki_types::pem::PemObject;
        let pki = TestPki::new("cluster.local").unwrap();
        let cert = pki.issue_workload("web", "emojivoto", Validity::valid_for(Duration::from_secs(3600))).unwrap();
        assert_eq!(cert.name, "web.emojivoto.serviceaccount.identity.linkerd.cluster.local");
        let ders = rustls_pki_types::CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(ders.len(), 2, "leaf then issuer");
        let (_, leaf) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
        let (_, issuer) = x509_parser::parse_x509_certificate(&ders[1]).unwrap();
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        assert_eq!(format!("{:?}", san.value.general_names), format!("[DNSName(\"{}\")]", cert.name));
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!leaf.is_ca() && issuer.is_ca());
        assert_eq!(leaf.issuer(), issuer.subject());
        assert_eq!(issuer.subject().to_string(), "CN=identity.linkerd.cluster.local");
    }

    #[test]
    fn ca_directory_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::for_domain(IdentityDomain::new("mesh-system", "example.org")).unwrap();
        pki.write_ca_dir(dir.path()).unwrap();
        let loaded = TestPki::load(dir.path()).unwrap();
        assert_eq!(loaded.domain(), &IdentityDomain::new("mesh-system", "example.org"));
        assert_eq!(loaded.anchors_pem(), pki.anchors_pem());
        assert_eq!(loaded.issuer_pem(), pki.issuer_pem());
        let cert = loaded.issue_workload("a", "b", Validity::valid_for(Duration::from_secs(60))).unwrap();
        assert!(cert.chain_pem.ends_with(pki.issuer_pem()));
        assert_eq!(cert.name, "a.b.serviceaccount.identity.mesh-system.example.org");
    }

    #[test]
    fn out_of_range_validity_is_an_error_not_a_panic() {
        let pki = TestPki::new("cluster.local").unwrap();
        let forever = Validity::valid_for(Duration::from_secs(u64::MAX));
        assert!(pki.issue_workload("a", "b", forever).unwrap_err().contains("9999"));
        let ancient = Validity { not_before: UNIX_EPOCH - Duration::from_secs(1), not_after: SystemTime::now() };
        assert!(pki.issue_workload("a", "b", ancient).unwrap_err().contains("1970"));
    }
}
