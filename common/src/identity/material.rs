//! Reading and validating an identity directory. Nothing here is trusted
//! until it passes: key matches certificate, the leaf chains to an anchor in
//! ca.crt for both server and client use, and it is valid now.

use super::pki::{CA_CRT, TLS_CRT, TLS_KEY};
use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The raw contents of the three files, kept to notice changes.
#[derive(Clone, PartialEq, Eq)]
pub struct Files {
    crt: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

impl Files {
    pub fn read(dir: &Path) -> Result<Files, String> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        Ok(Files { crt: read(TLS_CRT)?, key: read(TLS_KEY)?, ca: read(CA_CRT)? })
    }

    /// Files not on disk yet (a certificate just issued), validated before
    /// they are written.
    pub fn new(crt: Vec<u8>, key: Vec<u8>, ca: Vec<u8>) -> Files {
        Files { crt, key, ca }
    }
}

/// A validated identity: what the TLS configs are built from.
pub struct Material {
    pub certified: Arc<CertifiedKey>,
    pub anchors: Arc<RootCertStore>,
    /// The trust anchors as read, to tell whether configs must be rebuilt.
    pub anchors_der: Vec<CertificateDer<'static>>,
    pub name: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Material {
    /// Validates `files` (read from `dir`, which only names them in errors).
    pub fn parse(dir: &Path, files: &Files, provider: &Arc<CryptoProvider>) -> Result<Material, String> {
        let at = |file: &str| dir.join(file).display().to_string();
        let chain = certs(&files.crt).map_err(|e| format!("{}: {e}", at(TLS_CRT)))?;
        let anchors_der = certs(&files.ca).map_err(|e| format!("{}: {e}", at(CA_CRT)))?;
        let mut anchors = RootCertStore::empty();
        for (i, der) in anchors_der.iter().enumerate() {
            anchors
                .add(der.clone())
                .map_err(|e| format!("{}: certificate {} is not a usable trust anchor: {e}", at(CA_CRT), i + 1))?;
        }
        let anchors = Arc::new(anchors);
        let key = PrivateKeyDer::from_pem_slice(&files.key)
            .map_err(|e| format!("{}: no PEM private key: {e}", at(TLS_KEY)))?;
        let signer = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("{}: unsupported private key: {e}", at(TLS_KEY)))?;
        let certified = CertifiedKey::new(chain, signer);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => return Err(format!("{} does not match the certificate in {}: {e}", at(TLS_KEY), at(TLS_CRT))),
        }
        let leaf = LeafInfo::parse(&certified.cert[0]).map_err(|e| format!("{}: {e}", at(TLS_CRT)))?;
        verify_chain(&certified.cert, &leaf.name, &anchors, provider)
            .map_err(|e| format!("{}: not trusted by {}: {e}", at(TLS_CRT), at(CA_CRT)))?;
        Ok(Material {
            certified: Arc::new(certified),
            anchors,
            anchors_der,
            name: leaf.name,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
        })
    }
}

/// What we need from a leaf certificate besides what rustls checks.
pub(super) struct LeafInfo {
    pub name: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl LeafInfo {
    pub(super) fn parse(der: &CertificateDer<'_>) -> Result<LeafInfo, String> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| format!("leaf certificate does not parse: {e}"))?;
        let name = dns_san(&cert).ok_or("leaf certificate has no DNS subject alternative name")?;
        let validity = cert.validity();
        Ok(LeafInfo {
            name,
            not_before: to_system_time(validity.not_before.timestamp()),
            not_after: to_system_time(validity.not_after.timestamp()),
        })
    }
}

/// The first DNS SAN: the identity, in Linkerd's scheme.
pub(super) fn dns_san(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(name) => Some(name.to_string()),
        _ => None,
    })
}

fn to_system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs()),
    }
}

fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs =
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

/// The chain must work the way peers will use it: as a server presenting
/// `name`, and as a client.
fn verify_chain(
    chain: &[CertificateDer<'static>],
    name: &str,
    anchors: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<(), String> {
    let now = UnixTime::now();
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| format!("`{name}` is not a DNS name: {e}"))?;
    let server = rustls::client::WebPkiServerVerifier::builder_with_provider(anchors.clone(), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    server.verify_server_cert(&chain[0], &chain[1..], &server_name, &[], now).map_err(|e| e.to_string())?;
    let client = WebPkiClientVerifier::builder_with_provider(anchors.clone(), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    client.verify_client_cert(&chain[0], &chain[1..], now).map_err(|e| e.to_string())?;
    Ok(())
}
