//! Shared by the identity tests: identity directories, raw rustls peers
//! (for certificates `Identity::load` would refuse), and one TLS exchange
//! over a real loopback socket.
#![allow(dead_code)]

use mesh_common::identity::pki::{self, TestPki, Validity, WorkloadCert};
use mesh_common::identity::{Identity, peer_identity};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub const TD: &str = "cluster.local";
pub const DAY: Duration = Duration::from_secs(86_400);

/// An identity directory for `sa` in `emojivoto`, and the loaded identity.
pub fn workload(pki: &TestPki, sa: &str) -> (tempfile::TempDir, Arc<Identity>) {
    let dir = tempfile::tempdir().unwrap();
    let cert = pki.issue_workload(sa, "emojivoto", Validity::valid_for(DAY)).unwrap();
    pki::write_identity_dir(dir.path(), &cert, pki.anchors_pem()).unwrap();
    let id = Identity::load(dir.path()).unwrap();
    (dir, id)
}

/// How rustls reports a chain that does not lead to our anchor. Another CA
/// with the same names as ours (as every test PKI for one trust domain has)
/// is found by name and then fails the signature check.
pub fn untrusted(err: &str) -> bool {
    err.contains("UnknownIssuer") || err.contains("BadSignature")
}

pub fn name(sa: &str) -> String {
    mesh_proxy_api::IdentityDomain::new("linkerd", TD).service_account("emojivoto", sa)
}

fn roots(anchors_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    Arc::new(roots)
}

fn chain_and_key(cert: &WorkloadCert) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    (chain, PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap())
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client outside `Identity`: trusts `anchors_pem`, presents `cert` if any.
pub fn raw_client(anchors_pem: &str, cert: Option<&WorkloadCert>) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(anchors_pem));
    Arc::new(match cert {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let (chain, key) = chain_and_key(cert);
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

/// A server outside `Identity` presenting `cert`, requiring no client cert.
pub fn raw_server(cert: &WorkloadCert) -> Arc<ServerConfig> {
    let (chain, key) = chain_and_key(cert);
    Arc::new(
        ServerConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// What the server side of one exchange saw.
pub type ServerResult = Result<Option<String>, String>;

/// Accepts one connection, handshakes, answers one line with `hello <peer>`.
pub async fn serve_once(config: Arc<ServerConfig>) -> (SocketAddr, tokio::task::JoinHandle<ServerResult>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let tls = TlsAcceptor::from(config).accept(tcp).await.map_err(|e| e.to_string())?;
        let peer = peer_identity(tls.get_ref().1);
        let mut tls = BufReader::new(tls);
        let mut line = String::new();
        tls.read_line(&mut line).await.map_err(|e| e.to_string())?;
        let reply = format!("hello {}\n", peer.as_deref().unwrap_or("anonymous"));
        tls.get_mut().write_all(reply.as_bytes()).await.map_err(|e| e.to_string())?;
        tls.get_mut().shutdown().await.map_err(|e| e.to_string())?;
        Ok(peer)
    });
    (addr, task)
}

/// Connects expecting the server to be `server_name`, sends a line, returns
/// the reply. In TLS 1.3 a rejected client certificate shows up as an error
/// on the first read, so the exchange is part of the handshake check.
pub async fn exchange(config: Arc<ClientConfig>, addr: SocketAddr, server_name: &str) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let sni = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(config).connect(sni, tcp).await.map_err(|e| e.to_string())?;
    let mut tls = BufReader::new(tls);
    tls.get_mut().write_all(b"hi\n").await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    let n = tls.read_line(&mut line).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed before a reply".into());
    }
    Ok(line.trim_end().to_string())
}

/// One client/server exchange over loopback, with a deadline so a stuck
/// handshake fails the test instead of hanging it.
pub async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> (ServerResult, Result<String, String>) {
    let (addr, server_task) = serve_once(server).await;
    let client_result = tokio::time::timeout(Duration::from_secs(10), exchange(client, addr, server_name))
        .await
        .unwrap_or_else(|_| Err("client timed out".into()));
    let server_result = tokio::time::timeout(Duration::from_secs(10), server_task)
        .await
        .map_err(|_| "server timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .and_then(|r| r);
    (server_result, client_result)
}

pub fn write(dir: &Path, file: &str, contents: &str) {
    pki::write_file(&dir.join(file), contents, false).unwrap();
}
