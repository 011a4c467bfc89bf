//! Loopback harness for the outbound tests: real backends (hyper servers),
//! a real discovery file, a verified-config channel and the real
//! `outbound::serve` listeners, driven by real HTTP/1 and h2 clients.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_common::identity::Identity;
use mesh_proxy::discovery::file::StaticFile;
use mesh_proxy::metrics::Metrics;
use mesh_proxy::state::{self, ConfigTx, Loaded};
use mesh_proxy::{Ctx, Settings};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// What a backend saw of a request.
pub struct Seen {
    pub n: usize,
    pub version: Version,
    pub authority: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Backend {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

type Respond = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

/// A loopback HTTP/1 + h2 server answering with `respond(seen)`; the
/// response body is the returned string.
pub async fn backend(respond: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Backend {
    backend_delayed(Duration::ZERO, respond).await
}

/// As [`backend`], answering after `delay`.
pub async fn backend_delayed(
    delay: Duration,
    respond: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static,
) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let respond: Arc<Respond> = Arc::new(respond);
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (respond, counter) = (respond.clone(), counter.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (respond, counter) = (respond.clone(), counter.clone());
                    async move {
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        let version = req.version();
                        let authority = req
                            .uri()
                            .authority()
                            .map(|a| a.to_string())
                            .or_else(|| req.headers().get("host").map(|h| h.to_str().unwrap().to_string()))
                            .unwrap_or_default();
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let seen = Seen { n, version, authority, headers: parts.headers, body };
                        tokio::time::sleep(delay).await;
                        let (status, text) = respond(&seen);
                        let mut resp = Response::new(Full::new(Bytes::from(text)));
                        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Backend { addr, hits }
}

/// A CA and a workload certificate in the layout `Identity::load` reads.
pub fn identity_dir() -> tempfile::TempDir {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["client.test.serviceaccount.identity.linkerd.cluster.local".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("tls.crt"), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    dir
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `{"services":[...]}` for the discovery file: `(namespace, name, port, endpoints)`.
pub fn discovery_json(services: &[(&str, &str, u16, Vec<SocketAddr>)]) -> String {
    let services: Vec<serde_json::Value> = services
        .iter()
        .map(|(ns, name, port, eps)| {
            let eps: Vec<_> = eps.iter().map(|a| serde_json::json!({"addr": a.to_string()})).collect();
            serde_json::json!({"namespace": ns, "name": name, "ports": [{"port": port, "endpoints": eps}]})
        })
        .collect();
    serde_json::json!({ "services": services }).to_string()
}

/// A verified config whose outbound part is `outbound` (JSON of `Outbound`).
pub fn loaded(outbound: serde_json::Value) -> Arc<Loaded> {
    let config = serde_json::from_value(serde_json::json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "test", "name": "client"},
        "identity": "client.test.serviceaccount.identity.linkerd.cluster.local",
        "inbound": {"ports": [], "defaultServer": {
            "meta": {"kind": "default", "name": "all-unauthenticated"},
            "protocol": {"kind": "detect", "timeoutMs": 10000},
            "authorizations": []}},
        "outbound": outbound,
    }))
    .unwrap();
    Arc::new(Loaded { config, generation: 1, digest: "sha256:test".into(), key_id: "test".into() })
}

pub struct Proxy {
    /// The `--outbound` HTTP listener.
    pub http: SocketAddr,
    pub ctx: Arc<Ctx>,
    pub config: ConfigTx,
    pub discovery_file: std::path::PathBuf,
    pub serve: tokio::task::JoinHandle<std::io::Result<()>>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Starts `outbound::serve` with an `--outbound` listener plus `extra`
/// flags; `outbound` is the config's outbound JSON (`None`: no config yet).
pub async fn proxy(outbound: Option<serde_json::Value>, discovery: &str, extra: &[String]) -> Proxy {
    let id_dir = identity_dir();
    let work = tempfile::tempdir().unwrap();
    let discovery_file = work.path().join("endpoints.json");
    std::fs::write(&discovery_file, discovery).unwrap();
    let http = free_addr();
    let mut args: Vec<String> = [
        "mesh-proxy",
        "--workload=Deployment/test/client",
        "--config=/dev/null",
        "--trust-key=/dev/null",
        "--reload-interval=20ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--identity-dir={}", id_dir.path().display()));
    args.push(format!("--discovery={}", discovery_file.display()));
    args.push(format!("--outbound={http}"));
    args.extend(extra.iter().cloned());
    let settings = Settings::try_parse_from(args).unwrap();
    let (tx, rx) = state::channel();
    if let Some(o) = outbound {
        tx.send_replace(Some(loaded(o)));
    }
    let identity = Identity::load(id_dir.path()).unwrap();
    let discovery = StaticFile::spawn(discovery_file.clone(), settings.reload_interval).unwrap();
    let ctx = Arc::new(Ctx::new(settings, rx, identity, discovery, Arc::new(Metrics::new())));
    let serve = tokio::spawn(mesh_proxy::outbound::serve(ctx.clone()));
    for _ in 0..200 {
        if serve.is_finished() || TcpStream::connect(http).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Proxy { http, ctx, config: tx, discovery_file, serve, _dirs: (id_dir, work) }
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// One request on a fresh connection to `addr`, HTTP/1.1 or h2 (h2's
/// `:authority` and HTTP/1's `Host` are both `authority`).
pub async fn send(addr: SocketAddr, version: Version, req: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let resp = if version == Version::HTTP_2 {
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        tx.send_request(req).await.unwrap()
    } else {
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        tx.send_request(req).await.unwrap()
    };
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Reply { status, headers: parts.headers, body: String::from_utf8_lossy(&body).into_owned() }
}

/// `GET path` for `authority`, in the given version.
pub fn get(version: Version, authority: &str, path: &str) -> Request<Full<Bytes>> {
    request(version, "GET", authority, path, Bytes::new())
}

pub fn request(version: Version, method: &str, authority: &str, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    let builder = Request::builder().method(method);
    let builder = if version == Version::HTTP_2 {
        builder.version(Version::HTTP_2).uri(format!("http://{authority}{path}"))
    } else {
        builder.uri(path).header("host", authority)
    };
    builder.body(Full::new(body)).unwrap()
}
