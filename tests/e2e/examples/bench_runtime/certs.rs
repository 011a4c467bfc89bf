//! Certificate issuance under load: N clients, each on its own TLS
//! connection without a client certificate (as a bootstrapping proxy),
//! posting pre-generated CSRs with their ServiceAccount tokens.

use crate::source::{RUNTIME_ID, token};
use crate::workloads::identity;
use mesh_proxy::source::http::{RuntimeClient, TlsSource};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request body ready to send (the runtime does not refuse a CSR it has
/// seen before, so one per client is reused).
pub struct Request(Vec<u8>);

/// A P-256 key and CSR for workload `i`, as mesh-proxy makes them.
fn csr(i: usize) -> Result<String, String> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("key: {e}"))?;
    let params = CertificateParams::new(vec![identity(i)]).map_err(|e| format!("CSR: {e}"))?;
    let csr = params.serialize_request(&key).map_err(|e| format!("CSR: {e}"))?;
    csr.pem().map_err(|e| format!("CSR: {e}"))
}

/// `n` requests, and what generating one CSR costs (key + signature).
pub fn pregenerate(n: usize) -> Result<(Vec<Request>, Duration), String> {
    let start = Instant::now();
    let requests = (0..n)
        .map(|i| Ok(Request(serde_json::json!({"csr": csr(i)?, "token": token(i)}).to_string().into_bytes())))
        .collect::<Result<Vec<_>, String>>()?;
    Ok((requests, start.elapsed() / n.max(1) as u32))
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    pub issued: u64,
    pub refused: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.issued as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A client trusting `anchors_pem`, without a client certificate,
/// offering `alpn` (none: HTTP/1.1 only).
pub fn anchors_only(anchors_pem: &str, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
        roots.add(c.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// `clients` workers post back to back for `duration` (after one request
/// each to open their connections, not counted).
pub async fn run(
    api: SocketAddr,
    anchors_pem: &str,
    requests: &Arc<Vec<Request>>,
    clients: usize,
    duration: Duration,
) -> Result<Outcome, String> {
    let config = anchors_only(anchors_pem, &[b"h2", b"http/1.1"])?;
    let tls: TlsSource = Arc::new(move || Ok(config.clone()));
    let mut workers = Vec::with_capacity(clients);
    let barrier = Arc::new(tokio::sync::Barrier::new(clients));
    for w in 0..clients {
        let client = RuntimeClient::new(&format!("https://{api}"), RUNTIME_ID, tls.clone())?;
        let (requests, barrier) = (requests.clone(), barrier.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            let body = |k: usize| requests[(w + k * clients) % requests.len()].0.clone();
            let _ = client.post_json("/v1/certificate", body(0), Duration::from_secs(10)).await;
            barrier.wait().await;
            let start = Instant::now();
            let mut k = 1;
            while start.elapsed() < duration {
                match client.post_json("/v1/certificate", body(k), Duration::from_secs(10)).await {
                    Ok(r) if r.status == http::StatusCode::OK => out.issued += 1,
                    Ok(_) => out.refused += 1,
                    Err(_) => out.failed += 1,
                }
                k += 1;
            }
            out.elapsed = start.elapsed();
            out
        }));
    }
    let mut total = Outcome::default();
    for w in workers {
        let o = w.await.map_err(|e| format!("a client task failed: {e}"))?;
        total.issued += o.issued;
        total.refused += o.refused;
        total.failed += o.failed;
        total.elapsed = total.elapsed.max(o.elapsed);
    }
    Ok(total)
}
