//! Loopback harness for the inbound tests: a real app (a hyper server that
//! reports the headers it received), the real `inbound::serve` and
//! `outbound::serve` listeners on one `Ctx`, and clients with or without a
//! mesh certificate.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_common::identity::Identity;
use mesh_common::identity::pki::{TestPki, Validity, write_identity_dir};
use mesh_proxy::discovery::file::StaticFile;
use mesh_proxy::metrics::Metrics;
use mesh_proxy::state::{self, Loaded};
use mesh_proxy::{Ctx, Settings};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

pub const SERVER: &str = "web.test.serviceaccount.identity.linkerd.cluster.local";
pub const CLIENT: &str = "client.test.serviceaccount.identity.linkerd.cluster.local";
const HOUR: Duration = Duration::from_secs(3600);

/// An app that answers every request 200 with the request's headers as
/// `name: value` lines, plus whatever response headers `respond_with` names.
pub async fn app(respond_with: &'static [(&'static str, &'static str)]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = service_fn(move |req: Request<Incoming>| async move {
                let seen: String =
                    req.headers().iter().map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("?"))).collect();
                let mut rsp = Response::new(Full::new(Bytes::from(seen)));
                for (k, v) in respond_with {
                    rsp.headers_mut().append(*k, http::HeaderValue::from_static(v));
                }
                Ok::<_, std::convert::Infallible>(rsp)
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// The config: every port an HTTP/1 server with one route that admits anyone.
pub fn open_config() -> Arc<Loaded> {
    let anyone = serde_json::json!({
        "meta": {"kind": "default", "name": "all-unauthenticated"},
        "networks": [{"net": "0.0.0.0/0"}],
        "authentication": {"kind": "unauthenticated"}});
    let config = serde_json::from_value(serde_json::json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "test", "name": "web"},
        "identity": SERVER,
        "inbound": {"ports": [], "defaultServer": {
            "meta": {"kind": "default", "name": "all-unauthenticated"},
            "protocol": {"kind": "http1"},
            "authorizations": [anyone],
            "httpRoutes": [{
                "meta": {"kind": "default", "name": "default"},
                "rules": [{"matches": [{"path": {"type": "prefix", "value": "/"}}]}],
                "authorizations": [anyone]}]}},
        "outbound": {"services": []},
    }))
    .unwrap();
    Arc::new(Loaded { config, generation: 1, digest: "sha256:test".into(), key_id: "test".into() })
}

pub struct Proxy {
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub ctx: Arc<Ctx>,
    pub pki: TestPki,
    _dir: tempfile::TempDir,
    /// The verified config in force; tests may replace it.
    pub config: state::ConfigTx,
}

pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Starts inbound (`--inbound FREE=app`) and outbound listeners with the
/// open config, identity `SERVER`, `discovery` as its endpoints (see
/// [`service`]) and `extra` flags.
pub async fn proxy(app: SocketAddr, discovery: serde_json::Value, extra: &[&str]) -> Proxy {
    proxy_on(free_addr(), app, discovery, extra).await
}

/// As [`proxy`], with the inbound listener on `inbound`.
pub async fn proxy_on(inbound: SocketAddr, app: SocketAddr, discovery: serde_json::Value, extra: &[&str]) -> Proxy {
    let pki = TestPki::new("cluster.local").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = pki.issue_name(SERVER, Validity::valid_for(HOUR)).unwrap();
    write_identity_dir(dir.path(), &cert, pki.anchors_pem()).unwrap();
    let outbound = free_addr();
    let discovery_file = dir.path().join("endpoints.json");
    std::fs::write(&discovery_file, discovery.to_string()).unwrap();
    let mut args: Vec<String> =
        ["mesh-proxy", "--workload=Deployment/test/web", "--config=/dev/null", "--trust-key=/dev/null"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    args.push(format!("--identity-dir={}", dir.path().display()));
    args.push(format!("--inbound={inbound}={app}"));
    args.push(format!("--outbound={outbound}"));
    args.push(format!("--discovery={}", discovery_file.display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let settings = Settings::try_parse_from(args).unwrap();
    let (tx, rx) = state::channel();
    tx.send_replace(Some(open_config()));
    let identity = Identity::load(dir.path()).unwrap();
    let discovery = StaticFile::spawn(discovery_file, settings.reload_interval).unwrap();
    let ctx = Arc::new(Ctx::new(settings, rx, identity, discovery, Arc::new(Metrics::new())));
    tokio::spawn(mesh_proxy::inbound::serve(ctx.clone()));
    tokio::spawn(mesh_proxy::outbound::serve(ctx.clone()));
    for addr in [inbound, outbound] {
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Proxy { inbound, outbound, ctx, pki, _dir: dir, config: tx }
}

impl Proxy {
    /// A client TLS config presenting a certificate for `id`, trusting the PKI.
    pub fn client_tls(&self, id: &str) -> Arc<rustls::ClientConfig> {
        let cert = self.pki.issue_name(id, Validity::valid_for(HOUR)).unwrap();
        let chain = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(self.pki.anchors_pem().as_bytes()) {
            roots.add(der.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    pub fn metrics(&self) -> String {
        self.ctx.metrics.encode()
    }
}

/// Discovery with one Service, `web.test:80`, at `addr` (meshed as
/// `identity` when given); the proxy's own inbound listener works as a
/// meshed endpoint, since it presents `SERVER`.
pub fn service(addr: SocketAddr, identity: Option<&str>) -> serde_json::Value {
    let mut endpoint = serde_json::json!({ "addr": addr.to_string() });
    if let Some(id) = identity {
        endpoint["identity"] = id.into();
    }
    serde_json::json!({"services": [{"namespace": "test", "name": "web",
        "ports": [{"port": 80, "endpoints": [endpoint]}]}]})
}

pub fn no_services() -> serde_json::Value {
    serde_json::json!({ "services": [] })
}

/// What a client got back.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// One HTTP/1.1 request with `headers` on a fresh connection to `addr`,
/// over mTLS when `tls` is given.
pub async fn get(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    authority: &str,
    headers: &[(&str, &str)],
) -> Reply {
    get_from(None, addr, tls, authority, headers).await
}

/// As [`get`], from source address `from` (a loopback address other than
/// 127.0.0.1 is no `localhost` client to the policy).
pub async fn get_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    authority: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().uri("/").header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let tcp = mesh_proxy::net::connect_from(from, addr).await.unwrap();
    let resp = match tls {
        Some(config) => {
            let name = ServerName::try_from(SERVER.to_string()).unwrap();
            let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap();
            send(stream, req).await
        }
        None => send(tcp, req).await,
    };
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Reply { status, headers: parts.headers, body: String::from_utf8_lossy(&body).into_owned() }
}

async fn send<S>(io: S, req: Request<Full<Bytes>>) -> Response<Incoming>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
    tokio::spawn(conn);
    tx.send_request(req).await.unwrap()
}

/// The app's report of one request header, if it received it.
pub fn header_seen<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}
