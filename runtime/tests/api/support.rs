//! A runtime in file mode over a real `meshc build` of an example, and an
//! HTTPS client that speaks to it as a proxy would.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mesh_common::identity::Identity;
use mesh_common::identity::pki::{TestPki, Validity, write_identity_dir};
use mesh_proxy_api::envelope::{SigningKey, verifying_key_to_pem};
use mesh_proxy_api::{AccessLogFormat, ProxyConfig};
use meshc::emit::{self, BuildInfo, write};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const HOUR: Duration = Duration::from_secs(3600);
pub const FRONTEND_ID: &str = "frontend.podinfo.serviceaccount.identity.linkerd.cluster.local";
pub const RUNTIME_ID: &str = "mesh-runtime.mesh-system.serviceaccount.identity.linkerd.cluster.local";

pub fn configs() -> Vec<ProxyConfig> {
    static CONFIGS: OnceLock<Vec<ProxyConfig>> = OnceLock::new();
    CONFIGS
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/podinfo-canary");
            let outcome = meshc::pipeline::compile(&meshc::load::Input::Path(dir), &Default::default()).unwrap();
            outcome.configs.into_iter().flatten().collect()
        })
        .clone()
}

pub fn workload_key(c: &ProxyConfig) -> String {
    format!("{}/{}/{}", c.workload.kind, c.workload.namespace, c.workload.name)
}

/// The example's config for Deployment `name`.
pub fn config(name: &str) -> ProxyConfig {
    configs().into_iter().find(|c| c.workload.name == name).unwrap()
}

/// Each build signs a higher sequence than the one before, as successive
/// commits would.
fn next_sequence() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `meshc build --out dist` of `configs`, as the command writes it.
pub fn write_build(dist: &Path, configs: &[ProxyConfig], key: &SigningKey, revision: &str) {
    let info = BuildInfo { source_revision: revision.into(), sequence: next_sequence(), error_findings: 0 };
    let all: Vec<Option<ProxyConfig>> = configs.iter().cloned().map(Some).collect();
    let built = emit::build(&all, key, &info).unwrap();
    write::write_dir(dist, &built).unwrap();
}

/// The example with `name`'s config changed (so its digest changes).
pub fn changed(name: &str) -> Vec<ProxyConfig> {
    let mut cs = configs();
    let c = cs.iter_mut().find(|c| c.workload.name == name).unwrap();
    c.access_log =
        Some(if c.access_log == Some(AccessLogFormat::Json) { AccessLogFormat::Apache } else { AccessLogFormat::Json });
    cs
}

pub const ENDPOINTS: &str = r#"{"services":[{"namespace":"podinfo","name":"podinfo","clusterIP":"10.96.0.10",
  "ports":[{"port":9898,"endpoints":[
    {"addr":"10.40.0.11:9898","identity":"podinfo.podinfo.serviceaccount.identity.linkerd.cluster.local"},
    {"addr":"10.40.0.12:9898"}]}]}]}"#;

pub const TOKENS: &str = r#"{"tokens":[
  {"token":"good-frontend","namespace":"podinfo","serviceAccount":"frontend"},
  {"token":"old-frontend","namespace":"podinfo","serviceAccount":"frontend","expiresAt":"2020-01-01T00:00:00Z"}]}"#;

/// Files a runtime is started with.
pub struct Files {
    pub tmp: tempfile::TempDir,
    pub dist: PathBuf,
    pub ca_dir: PathBuf,
    pub pubkey: PathBuf,
    pub endpoints: PathBuf,
    pub tokens: PathBuf,
    pub pki: TestPki,
    pub key: SigningKey,
}

impl Files {
    pub fn new() -> Files {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let key = SigningKey::from_bytes(&[7; 32]);
        let pubkey = d.join("meshc.pub");
        std::fs::write(&pubkey, verifying_key_to_pem(&key.verifying_key()).unwrap()).unwrap();
        let dist = d.join("dist");
        write_build(&dist, &configs(), &key, "r1");
        let pki = TestPki::new("cluster.local").unwrap();
        let ca_dir = d.join("ca");
        pki.write_ca_dir(&ca_dir).unwrap();
        std::fs::remove_file(ca_dir.join("ca.key")).unwrap(); // the runtime never needs the anchor's key
        let endpoints = d.join("endpoints.json");
        std::fs::write(&endpoints, ENDPOINTS).unwrap();
        let tokens = d.join("tokens.json");
        std::fs::write(&tokens, TOKENS).unwrap();
        Files { tmp, dist, ca_dir, pubkey, endpoints, tokens, pki, key }
    }

    pub fn settings(&self) -> mesh_runtime::Settings {
        mesh_runtime::Settings {
            dir: Some(self.dist.clone()),
            trust_keys: vec![self.pubkey.clone()],
            ca_dir: Some(self.ca_dir.clone()),
            kube: mesh_runtime::KubeSettings::default(),
            endpoints: Some(self.endpoints.clone()),
            tokens: Some(self.tokens.clone()),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            identity_dir: None,
            identity: None,
            control_plane_namespace: "linkerd".into(),
            trust_domain: "cluster.local".into(),
            cert_lifetime: Duration::from_secs(24 * 3600),
            state_dir: None,
            poll_interval: Duration::from_millis(200),
            links: None,
            limits: mesh_runtime::Limits { max_watches: 100, ..mesh_runtime::Limits::default() },
            webhook: mesh_runtime::WebhookSettings::default(),
            log_format: "text".into(),
        }
    }

    /// A proxy's identity for `identity`, issued by the test PKI.
    pub fn identity(&self, identity: &str) -> Arc<Identity> {
        let dir = self.tmp.path().join("ids").join(identity);
        let cert = self.pki.issue_name(identity, Validity::valid_for(HOUR)).unwrap();
        write_identity_dir(&dir, &cert, self.pki.anchors_pem()).unwrap();
        Identity::load(&dir).unwrap()
    }

    /// The config file of Deployment `name` under dist/configs.
    pub fn config_file(&self, name: &str) -> PathBuf {
        let ns = config(name).workload.namespace;
        self.dist.join("configs").join(ns).join(format!("deployment-{name}.yaml"))
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
    pub fn digest(&self) -> String {
        self.headers.get("x-mesh-digest").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
}

/// A TLS client config: with the proxy's certificate, or (for
/// `/v1/certificate`) none, trusting only the mesh's anchors.
pub fn tls_config(client: Option<&Identity>, anchors_pem: &str) -> Arc<rustls::ClientConfig> {
    match client {
        Some(id) => id.client_config(),
        None => {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        }
    }
}

/// One request over a new TLS connection (h2 when ALPN picks it).
pub async fn request(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, req: Request<Full<Bytes>>) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(RUNTIME_ID).unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.unwrap();
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body }
}

/// Builds the request now, so the future owns everything (and can be spawned).
pub fn get(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, path: &str) -> impl Future<Output = Reply> + 'static {
    let req = Request::get(format!("https://{RUNTIME_ID}{path}")).body(Full::new(Bytes::new())).unwrap();
    request(addr, tls, req)
}

pub async fn post_json(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, path: &str, body: serde_json::Value) -> Reply {
    let req = Request::post(format!("https://{RUNTIME_ID}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    request(addr, tls, req).await
}

/// Plain HTTP/1.1 GET on the admin port.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get(path).header("host", "admin").body(Full::new(Bytes::new())).unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `/v1/config?workload=…` with optional `after` and `wait`.
pub fn config_path(workload: &str, after: Option<&str>, wait: Option<u64>) -> String {
    let mut p = format!("/v1/config?workload={}", workload.replace('/', "%2F"));
    if let Some(a) = after {
        p.push_str(&format!("&after={a}"));
    }
    if let Some(w) = wait {
        p.push_str(&format!("&wait={w}"));
    }
    p
}

/// A new key and a CSR for `name`.
pub fn csr(name: &str) -> (rcgen::KeyPair, String) {
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = CertificateParams::new(vec![name.to_owned()]).unwrap().serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

/// The signed sequence of the bundle in a build directory.
pub fn sequence_of(dist: &Path) -> u64 {
    let text = std::fs::read_to_string(dist.join("bundle.yaml")).unwrap();
    let bundle: serde_json::Value = serde_json::from_str(text.trim_start_matches("---").trim()).unwrap();
    bundle["spec"]["sequence"].as_u64().unwrap()
}
