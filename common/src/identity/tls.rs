//! The rustls configs, and the resolver that lets a reload swap the
//! certificate under them.
//!
//! Mesh traffic is TLS 1.3 only, and session resumption is off on both
//! sides: every handshake then checks the current certificate against the
//! current anchors and clock, and a rotated or expired certificate is never
//! carried over by a resumed session. Connections are long-lived and pooled,
//! so the full handshake is rare.

use rustls::client::{ResolvesClientCert, Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use std::sync::{Arc, RwLock};

const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Our certificate and key, for both sides of the handshake.
#[derive(Debug)]
pub(super) struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    pub(super) fn new(key: Arc<CertifiedKey>) -> Resolver {
        Resolver { current: RwLock::new(key) }
    }

    pub(super) fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// *ring*'s provider with Linkerd's cipher suite order
/// (`linkerd/rustls/src/crypto.rs`, `TLS_SUPPORTED_CIPHERSUITES`):
/// AES-128-GCM first. *ring*'s own order starts with AES-256-GCM, whose
/// extra rounds cost every byte of every body between two pods more CPU.
pub(super) fn mesh_provider() -> CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, default_provider};
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..default_provider()
    }
}

/// Server and client configs that trust `anchors` and present `resolver`'s key.
pub(super) fn configs(
    anchors: &Arc<RootCertStore>,
    resolver: &Arc<Resolver>,
    provider: &Arc<CryptoProvider>,
) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), String> {
    Ok((server_config(anchors, resolver, provider)?, client_config(anchors, resolver, provider)?))
}

fn server_config(
    anchors: &Arc<RootCertStore>,
    resolver: &Arc<Resolver>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, String> {
    // Unmeshed clients may speak TLS without a certificate; a certificate
    // that is sent must still verify.
    let verifier = WebPkiClientVerifier::builder_with_provider(anchors.clone(), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("server TLS config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

fn client_config(
    anchors: &Arc<RootCertStore>,
    resolver: &Arc<Resolver>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ClientConfig>, String> {
    let verifier = WebPkiServerVerifier::builder_with_provider(anchors.clone(), provider.clone())
        .build()
        .map_err(|e| format!("server verifier: {e}"))?;
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("client TLS config: {e}"))?
        .with_webpki_verifier(verifier)
        .with_client_cert_resolver(resolver.clone());
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}
