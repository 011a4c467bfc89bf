//! The issuer: signs workload certificates from CSRs.
//!
//! Reads a CA directory as `mesh-certs init` writes it, but only what
//! the runtime needs: `issuer.crt`, `issuer.key` and `ca.crt` (the trust
//! anchors; the anchor's private key stays offline). Names follow Linkerd,
//! through `mesh_proxy_api::IdentityDomain`, the format meshc signs configs with.

use mesh_common::identity::pki::{self, WorkloadCert};
use mesh_proxy_api::IdentityDomain;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Allowance for workload clocks that run slightly behind ours.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

pub struct Ca {
    domain: IdentityDomain,
    issuer: Issuer<'static, KeyPair>,
    issuer_pem: String,
    anchors_pem: String,
    issuer_not_after: SystemTime,
}

/// A signed certificate: PEM chain (leaf, then issuer) and its end.
#[derive(Clone, Debug)]
pub struct Issued {
    pub chain_pem: String,
    pub not_after: SystemTime,
}

/// Why a CSR was refused: `BadCsr` is the caller's malformed request (400),
/// `WrongName` asks for an identity the token does not grant (403).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CsrError {
    BadCsr(String),
    WrongName { asked: Vec<String>, granted: String },
    Internal(String),
}

impl CsrError {
    pub fn reason(&self) -> &'static str {
        match self {
            CsrError::BadCsr(_) => "bad-csr",
            CsrError::WrongName { .. } => "wrong-name",
            CsrError::Internal(_) => "internal",
        }
    }
}

impl fmt::Display for CsrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsrError::BadCsr(e) => write!(f, "bad CSR: {e}"),
            CsrError::WrongName { asked, granted } => {
                write!(f, "the CSR asks for [{}]; the token grants only `{granted}`", asked.join(", "))
            }
            CsrError::Internal(e) => write!(f, "cannot sign: {e}"),
        }
    }
}

/// Where the issuer's certificate and key were read from, for errors.
pub struct Sources {
    pub cert: String,
    pub key: String,
}

fn read(dir: &Path, file: &str) -> Result<String, String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Ca {
    /// Loads `dir`/issuer.crt, issuer.key and ca.crt, and checks that the
    /// key is the issuer's, the issuer is a CA named as `domain` names it
    /// (`identity.<control-plane-ns>.<trust-domain>`), and one of the anchors
    /// signed it.
    pub fn load(dir: &Path, domain: &IdentityDomain) -> Result<Ca, String> {
        let issuer_pem = read(dir, pki::ISSUER_CRT)?;
        let key_pem = read(dir, pki::ISSUER_KEY)?;
        let anchors_pem = read(dir, pki::CA_CRT)?;
        let names = Sources {
            cert: dir.join(pki::ISSUER_CRT).display().to_string(),
            key: dir.join(pki::ISSUER_KEY).display().to_string(),
        };
        Ca::from_pem(&issuer_pem, &key_pem, anchors_pem, &names, domain)
    }

    /// The same checks as [`Ca::load`], on PEM text from elsewhere (a
    /// Secret and a ConfigMap); `names` says where it came from in errors.
    pub fn from_pem(
        issuer_pem: &str,
        key_pem: &str,
        anchors_pem: String,
        names: &Sources,
        domain: &IdentityDomain,
    ) -> Result<Ca, String> {
        let (cert_at, key_at) = (&names.cert, &names.key);
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("{key_at}: {e}"))?;
        let der = CertificateDer::from_pem_slice(issuer_pem.as_bytes()).map_err(|e| format!("{cert_at}: {e}"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| format!("{cert_at}: {e}"))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(format!("{key_at} is not the key of {cert_at}"));
        }
        if !cert.is_ca() {
            return Err(format!("{cert_at}: not a CA certificate"));
        }
        let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or("");
        // An issuer for another control plane namespace or trust domain
        // would sign names no config authorizes.
        if cn != domain.issuer() {
            return Err(format!(
                "{cert_at}: subject CN `{cn}` is not `{}` (the issuer of --control-plane-namespace {} and --trust-domain {})",
                domain.issuer(),
                domain.control_plane_namespace(),
                domain.trust_domain()
            ));
        }
        check_signed_by_anchor(&cert, &anchors_pem).map_err(|e| format!("{cert_at}: {e}"))?;
        let issuer_not_after = UNIX_EPOCH + Duration::from_secs(cert.validity().not_after.timestamp().max(0) as u64);
        let issuer = Issuer::from_ca_cert_pem(issuer_pem, key).map_err(|e| format!("{cert_at}: {e}"))?;
        Ok(Ca { domain: domain.clone(), issuer, issuer_pem: issuer_pem.to_owned(), anchors_pem, issuer_not_after })
    }

    pub fn trust_domain(&self) -> &str {
        self.domain.trust_domain()
    }

    pub fn domain(&self) -> &IdentityDomain {
        &self.domain
    }

    pub fn anchors_pem(&self) -> &str {
        &self.anchors_pem
    }

    pub fn issuer_expires_at(&self) -> SystemTime {
        self.issuer_not_after
    }

    /// `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`.
    pub fn identity(&self, namespace: &str, service_account: &str) -> String {
        self.domain.service_account(namespace, service_account)
    }

    /// Signs `csr_pem` for `identity`: the CSR's signature must hold and its
    /// only SAN must be that DNS name. Everything else in the CSR (subject,
    /// usages, CA flag) is ignored; the certificate gets ours.
    pub fn sign_csr(&self, csr_pem: &str, identity: &str, lifetime: Duration) -> Result<Issued, CsrError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| CsrError::BadCsr(e.to_string()))?;
        let asked: Vec<String> = csr.params.subject_alt_names.iter().map(san_text).collect();
        if asked.len() != 1 || asked[0] != format!("DNS:{identity}") {
            return Err(CsrError::WrongName { asked, granted: identity.to_string() });
        }
        self.sign(&csr.public_key, identity, lifetime).map_err(CsrError::Internal)
    }

    /// A key and certificate for `name`: the runtime's own serving identity.
    pub fn issue_own(&self, name: &str, lifetime: Duration) -> Result<WorkloadCert, String> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("key generation: {e}"))?;
        let issued = self.sign(&key, name, lifetime)?;
        Ok(WorkloadCert { name: name.to_string(), chain_pem: issued.chain_pem, key_pem: key.serialize_pem() })
    }

    fn sign(&self, public_key: &impl PublicKeyData, name: &str, lifetime: Duration) -> Result<Issued, String> {
        let now = SystemTime::now();
        let not_after = now.checked_add(lifetime).unwrap_or(self.issuer_not_after).min(self.issuer_not_after);
        if not_after <= now {
            return Err("the issuer certificate has expired".into());
        }
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(|e| format!("{name}: {e}"))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = offset(now - CLOCK_SKEW)?;
        params.not_after = offset(not_after)?;
        params.serial_number = Some(random_serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(public_key, &self.issuer).map_err(|e| format!("{name}: {e}"))?;
        // The certificate stores whole seconds.
        let not_after = UNIX_EPOCH + Duration::from_secs(since_epoch(not_after)?.as_secs());
        Ok(Issued { chain_pem: format!("{}{}", leaf.pem(), self.issuer_pem), not_after })
    }
}

fn san_text(san: &SanType) -> String {
    match san {
        SanType::DnsName(n) => format!("DNS:{}", n.as_str()),
        other => format!("{other:?}"),
    }
}

/// One of the PEM certificates in `anchors_pem` signed `cert`.
fn check_signed_by_anchor(
    cert: &x509_parser::certificate::X509Certificate<'_>,
    anchors_pem: &str,
) -> Result<(), String> {
    let anchors = CertificateDer::pem_slice_iter(anchors_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("trust anchors: {e}"))?;
    let signed = anchors.iter().any(|der| {
        x509_parser::parse_x509_certificate(der)
            .is_ok_and(|(_, anchor)| cert.verify_signature(Some(anchor.public_key())).is_ok())
    });
    if signed { Ok(()) } else { Err("not signed by any certificate in ca.crt".into()) }
}

fn since_epoch(t: SystemTime) -> Result<Duration, String> {
    t.duration_since(UNIX_EPOCH).map_err(|_| "certificate time before 1970".to_string())
}

/// rcgen's time type.
fn offset(t: SystemTime) -> Result<time::OffsetDateTime, String> {
    Ok(rcgen::date_time_ymd(1970, 1, 1) + since_epoch(t)?)
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    // A positive INTEGER: the high bit clear, and no leading zero byte.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_common::identity::pki::TestPki;

    fn ca() -> (tempfile::TempDir, Ca) {
        let dir = tempfile::tempdir().unwrap();
        TestPki::new("cluster.local").unwrap().write_ca_dir(dir.path()).unwrap();
        let ca = Ca::load(dir.path(), &IdentityDomain::default()).unwrap();
        (dir, ca)
    }

    fn csr(names: &[&str]) -> String {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn leaf_of(chain: &str) -> (Vec<String>, SystemTime, SystemTime) {
        let ders = CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(ders.len(), 2, "leaf then issuer");
        let (_, leaf) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
        let (_, issuer) = x509_parser::parse_x509_certificate(&ders[1]).unwrap();
        leaf.verify_signature(Some(issuer.public_key())).unwrap();
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        let names = san.value.general_names.iter().map(|n| n.to_string()).collect();
        let t = |ts: i64| UNIX_EPOCH + Duration::from_secs(ts as u64);
        (names, t(leaf.validity().not_before.timestamp()), t(leaf.validity().not_after.timestamp()))
    }

    #[test]
    fn loads_the_issuer_and_its_trust_domain() {
        let (_d, ca) = ca();
        assert_eq!(ca.trust_domain(), "cluster.local");
        assert_eq!(ca.identity("podinfo", "web"), "web.podinfo.serviceaccount.identity.linkerd.cluster.local");
        assert!(ca.issuer_expires_at() > SystemTime::now() + Duration::from_secs(365 * 86_400));
    }

    #[test]
    fn signs_a_csr_for_exactly_the_granted_name() {
        let (_d, ca) = ca();
        let name = ca.identity("podinfo", "web");
        let issued = ca.sign_csr(&csr(&[&name]), &name, Duration::from_secs(86_400)).unwrap();
        let (names, not_before, not_after) = leaf_of(&issued.chain_pem);
        assert_eq!(names, vec![format!("DNSName({name})")]);
        assert_eq!(not_after, issued.not_after);
        let lifetime = not_after.duration_since(not_before).unwrap();
        assert!(lifetime >= Duration::from_secs(86_400) && lifetime <= Duration::from_secs(86_400 + 301));
    }

    #[test]
    fn refuses_other_names_and_bad_csrs() {
        let (_d, ca) = ca();
        let name = ca.identity("podinfo", "web");
        let other = ca.identity("podinfo", "admin");
        let day = Duration::from_secs(86_400);
        assert!(matches!(ca.sign_csr(&csr(&[&other]), &name, day), Err(CsrError::WrongName { .. })));
        assert!(matches!(ca.sign_csr(&csr(&[&name, &other]), &name, day), Err(CsrError::WrongName { .. })));
        assert!(matches!(ca.sign_csr(&csr(&[]), &name, day), Err(CsrError::WrongName { .. })));
        assert!(matches!(ca.sign_csr("not a csr", &name, day), Err(CsrError::BadCsr(_))));
        // A byte of the signed request changed: the signature no longer holds.
        let good = csr(&[&name]);
        let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(good.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        let tampered = pem_of(&bytes);
        assert!(matches!(ca.sign_csr(&tampered, &name, day), Err(CsrError::BadCsr(_))));
    }

    fn pem_of(der: &[u8]) -> String {
        use base64ct::{Base64, Encoding};
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            Base64::encode_string(der)
        )
    }

    #[test]
    fn a_key_that_is_not_the_issuers_is_refused_at_load() {
        let (dir, _) = ca();
        let other = tempfile::tempdir().unwrap();
        TestPki::new("cluster.local").unwrap().write_ca_dir(other.path()).unwrap();
        std::fs::copy(other.path().join(pki::ISSUER_KEY), dir.path().join(pki::ISSUER_KEY)).unwrap();
        let linkerd = IdentityDomain::default();
        assert!(Ca::load(dir.path(), &linkerd).err().unwrap().contains("is not the key of"));
        std::fs::copy(other.path().join(pki::ISSUER_CRT), dir.path().join(pki::ISSUER_CRT)).unwrap();
        assert!(Ca::load(dir.path(), &linkerd).err().unwrap().contains("not signed by any certificate in ca.crt"));
    }

    #[test]
    fn issues_names_of_its_control_plane_namespace_and_refuses_another_domains_issuer() {
        let domain = IdentityDomain::new("mesh-system", "cluster.local");
        let dir = tempfile::tempdir().unwrap();
        TestPki::for_domain(domain.clone()).unwrap().write_ca_dir(dir.path()).unwrap();
        let ca = Ca::load(dir.path(), &domain).unwrap();
        assert_eq!(ca.identity("podinfo", "web"), "web.podinfo.serviceaccount.identity.mesh-system.cluster.local");
        let err = Ca::load(dir.path(), &IdentityDomain::default()).err().unwrap();
        assert!(
            err.contains("identity.mesh-system.cluster.local") && err.contains("--control-plane-namespace"),
            "{err}"
        );
    }
}
