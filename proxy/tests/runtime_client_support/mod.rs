//! A small runtime on loopback that follows runtime/API.md: mTLS with
//! optional client certificates, `/v1/config` and `/v1/endpoints` long
//! polls, and `POST /v1/certificate` signing CSRs with a test issuer.
//! Tests change what it serves, force a status, or stop and restart it.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_common::identity::peer_identity;
use mesh_common::identity::pki::{self, TestPki, Validity};
use rcgen::{CertificateSigningRequestParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub const TD: &str = "cluster.local";
pub const RUNTIME_ID: &str = "mesh-runtime.mesh-system.serviceaccount.identity.linkerd.cluster.local";

#[derive(Clone, Debug, PartialEq)]
pub struct ConfigEntry {
    pub body: Bytes,
    pub digest: String,
    /// The identity allowed to fetch it (the config's signed `identity`).
    pub identity: String,
}

pub struct State {
    pub config: watch::Sender<Option<ConfigEntry>>,
    /// `ns/svc/port` → (version, endpoints JSON array).
    pub endpoints: watch::Sender<HashMap<String, (String, serde_json::Value)>>,
    /// Answer every GET with this status instead.
    pub force: Mutex<Option<StatusCode>>,
    pub tokens: Mutex<HashMap<String, String>>,
    pub lifetime: Mutex<Duration>,
    pub issued: AtomicUsize,
    pub config_gets: AtomicUsize,
    issuer: Issuer<'static, KeyPair>,
    issuer_pem: String,
}

pub struct FakeRuntime {
    pub addr: SocketAddr,
    pub pki: TestPki,
    pub state: Arc<State>,
    server: Arc<rustls::ServerConfig>,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl FakeRuntime {
    pub async fn start() -> FakeRuntime {
        let pki = TestPki::new(TD).unwrap();
        let ca = tempfile::tempdir().unwrap();
        pki.write_ca_dir(ca.path()).unwrap();
        let issuer_key = KeyPair::from_pem(&std::fs::read_to_string(ca.path().join(pki::ISSUER_KEY)).unwrap()).unwrap();
        let issuer = Issuer::from_ca_cert_pem(pki.issuer_pem(), issuer_key).unwrap();
        let state = Arc::new(State {
            config: watch::channel(None).0,
            endpoints: watch::channel(HashMap::new()).0,
            force: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            lifetime: Mutex::new(Duration::from_secs(3600)),
            issued: AtomicUsize::new(0),
            config_gets: AtomicUsize::new(0),
            issuer,
            issuer_pem: pki.issuer_pem().to_string(),
        });
        let server = server_config(&pki);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut rt = FakeRuntime { addr, pki, state, server, accept: None };
        rt.accept = Some(tokio::spawn(serve(listener, rt.server.clone(), rt.state.clone())));
        rt
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Closes the listener and every open connection.
    pub fn stop(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
        }
    }

    /// Listens again on the same address, with the same state.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.accept = Some(tokio::spawn(serve(listener, self.server.clone(), self.state.clone())));
    }

    pub fn set_config(&self, entry: Option<ConfigEntry>) {
        self.state.config.send_replace(entry);
    }

    pub fn set_endpoints(&self, key: &str, version: &str, endpoints: serde_json::Value) {
        self.state.endpoints.send_modify(|m| {
            m.insert(key.to_string(), (version.to_string(), endpoints));
        });
    }

    pub fn force(&self, status: Option<u16>) {
        *self.state.force.lock().unwrap() = status.map(|s| StatusCode::from_u16(s).unwrap());
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

fn server_config(pki: &TestPki) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = pki.issue_name(RUNTIME_ID, Validity::valid_for(Duration::from_secs(86_400))).unwrap();
    let chain = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pki.anchors_pem().as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Connections live in a JoinSet owned by this task, so aborting it closes them all.
async fn serve(listener: TcpListener, config: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut conns = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let caller = peer_identity(tls.get_ref().1);
            let svc = hyper::service::service_fn(move |req| {
                let (state, caller) = (state.clone(), caller.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(&state, caller, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let body = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
    Response::builder().status(status).body(Full::new(body)).unwrap()
}

fn error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "error": msg }))
}

async fn handle(state: &State, caller: Option<String>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if req.method() == Method::POST && path == "/v1/certificate" {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        return certificate(state, &body);
    }
    if let Some(status) = *state.force.lock().unwrap() {
        return error(status, "forced by the test");
    }
    let Some(caller) = caller else { return error(StatusCode::FORBIDDEN, "client certificate required") };
    let wait = Duration::from_secs(query.get("wait").and_then(|w| w.parse().ok()).unwrap_or(30));
    if path == "/v1/config" {
        state.config_gets.fetch_add(1, Ordering::Relaxed);
        return config(state, &caller, query.get("after"), wait).await;
    }
    if let Some(key) = path.strip_prefix("/v1/endpoints/") {
        return endpoints(state, key, query.get("after"), wait).await;
    }
    error(StatusCode::NOT_FOUND, "no such path")
}

/// Holds the request while `current` still matches `after`.
async fn long_poll<T: Clone, R>(
    tx: &watch::Sender<T>,
    wait: Duration,
    current: impl Fn(&T) -> Option<R>,
    same: impl Fn(&R) -> bool,
) -> Option<R> {
    let mut rx = tx.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now = current(&rx.borrow_and_update());
        match now {
            Some(r) if !same(&r) => return Some(r),
            None => return None,
            Some(_) => {}
        }
        if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
            return None;
        }
    }
}

async fn config(state: &State, caller: &str, after: Option<&String>, wait: Duration) -> Response<Full<Bytes>> {
    let Some(now) = state.config.borrow().clone() else { return error(StatusCode::NOT_FOUND, "no config") };
    if now.identity != caller {
        return error(StatusCode::FORBIDDEN, "identity mismatch");
    }
    let got = long_poll(&state.config, wait, |c| c.clone(), |c| Some(&c.digest) == after).await;
    match got {
        Some(c) => Response::builder().header("x-mesh-digest", c.digest).body(Full::new(c.body)).unwrap(),
        None if state.config.borrow().is_none() => error(StatusCode::NOT_FOUND, "no config"),
        None => reply(StatusCode::NOT_MODIFIED, serde_json::Value::Null),
    }
}

async fn endpoints(state: &State, key: &str, after: Option<&String>, wait: Duration) -> Response<Full<Bytes>> {
    let current = |m: &HashMap<String, (String, serde_json::Value)>| {
        Some(m.get(key).cloned().unwrap_or_else(|| ("0".to_string(), serde_json::json!([]))))
    };
    match long_poll(&state.endpoints, wait, current, |(v, _)| Some(v) == after).await {
        Some((version, eps)) => reply(StatusCode::OK, serde_json::json!({ "version": version, "endpoints": eps })),
        None => reply(StatusCode::NOT_MODIFIED, serde_json::Value::Null),
    }
}

fn certificate(state: &State, body: &[u8]) -> Response<Full<Bytes>> {
    #[derive(serde::Deserialize)]
    struct Req {
        csr: String,
        token: String,
    }
    let Ok(req) = serde_json::from_slice::<Req>(body) else { return error(StatusCode::BAD_REQUEST, "bad body") };
    let Some(identity) = state.tokens.lock().unwrap().get(&req.token).cloned() else {
        return error(StatusCode::FORBIDDEN, "token refused");
    };
    let Ok(mut csr) = CertificateSigningRequestParams::from_pem(&req.csr) else {
        return error(StatusCode::BAD_REQUEST, "bad CSR");
    };
    if csr.params.subject_alt_names != vec![SanType::DnsName(identity.clone().try_into().unwrap())] {
        return error(StatusCode::BAD_REQUEST, "CSR does not name the token's identity");
    }
    let lifetime = *state.lifetime.lock().unwrap();
    let now = SystemTime::now();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let since = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    csr.params.not_before = epoch + since(now - Duration::from_secs(1));
    csr.params.not_after = epoch + since(now + lifetime);
    csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    csr.params.use_authority_key_identifier_extension = true;
    csr.params.serial_number = Some(rcgen::SerialNumber::from(fastrand::u64(1..)));
    let leaf = csr.signed_by(&state.issuer).unwrap();
    state.issued.fetch_add(1, Ordering::Relaxed);
    reply(
        StatusCode::OK,
        serde_json::json!({ "certificate": format!("{}{}", leaf.pem(), state.issuer_pem), "expiresAt": "unused" }),
    )
}
