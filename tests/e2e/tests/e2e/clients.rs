//! Real clients: plaintext or mesh TLS, from a chosen source address,
//! speaking HTTP/1.1, HTTP/2 (gRPC) or raw TCP.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What the client saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// An HTTP response: its status, `grpc-status` if any, and which app
    /// answered (`x-echo-name`), if one did.
    Response { status: u16, grpc: Option<u32>, app: Option<String> },
    /// TCP: the app echoed (its name).
    Echoed(String),
    /// The connection was closed or reset without an answer.
    Closed(String),
}

/// How a client connects: plaintext, or mesh TLS as `tls.1`'s identity
/// expecting the server to be `tls.0`.
#[derive(Clone)]
pub struct Tls {
    pub server_identity: String,
    pub config: Arc<rustls::ClientConfig>,
}

pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub grpc: bool,
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn get(path: &str) -> Self {
        Req { method: "GET", path: path.into(), grpc: false, headers: Vec::new() }
    }
    pub fn grpc(path: &str) -> Self {
        Req { method: "POST", path: path.into(), grpc: true, headers: Vec::new() }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn to_api(&self) -> mesh_proxy_api::HttpRequest {
        let mut r = mesh_proxy_api::HttpRequest::new(self.method, &self.path);
        if self.grpc {
            r = r.with_header("content-type", "application/grpc");
        }
        for (k, v) in &self.headers {
            r = r.with_header(k, v);
        }
        r
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn connect(from: IpAddr, to: SocketAddr, tls: Option<&Tls>) -> Result<Box<dyn Io>, String> {
    let tcp = mesh_proxy::net::connect_from(Some(from), to).await.map_err(|e| format!("connect: {e}"))?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(t) => {
            let name = ServerName::try_from(t.server_identity.clone()).map_err(|e| e.to_string())?;
            let s = tokio_rustls::TlsConnector::from(t.config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            Ok(Box::new(s))
        }
    }
}

/// Sends one request on a new connection and reports what came back.
pub async fn http(from: IpAddr, to: SocketAddr, tls: Option<&Tls>, req: &Req, host: &str) -> Observed {
    match tokio::time::timeout(Duration::from_secs(10), http_inner(from, to, tls, req, host)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Observed::Closed(e),
        Err(_) => Observed::Closed("timed out".into()),
    }
}

async fn http_inner(
    from: IpAddr,
    to: SocketAddr,
    tls: Option<&Tls>,
    req: &Req,
    host: &str,
) -> Result<Observed, String> {
    exchange(connect(from, to, tls).await?, req, host).await
}

/// Sends `req` on a connection already open (HTTP/1.1, or h2 for gRPC) and
/// reports the answer: the pod tests' apps open theirs inside a pod.
pub async fn exchange<I>(io: I, req: &Req, host: &str) -> Result<Observed, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let mut builder = http::Request::builder().method(req.method);
    builder = if req.grpc {
        builder
            .uri(format!("http://{host}{}", req.path))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
    } else {
        builder.uri(&req.path).header("host", host)
    };
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    // A gRPC message: not compressed, 5 bytes of payload.
    let body = if req.grpc { Bytes::from_static(b"\0\0\0\0\x05hello") } else { Bytes::new() };
    let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let rsp = if req.grpc {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        send.send_request(request).await.map_err(|e| format!("request: {e}"))?
    } else {
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        send.send_request(request).await.map_err(|e| format!("request: {e}"))?
    };
    let status = rsp.status().as_u16();
    let app = rsp
        .headers()
        .get("x-echo-name")
        .or_else(|| rsp.headers().get(http::header::SERVER).filter(|v| *v == "mesh-proxy-admin"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut grpc = grpc_status(rsp.headers());
    let collected = rsp.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
    if let Some(trailers) = collected.trailers() {
        grpc = grpc.or(grpc_status(trailers));
    }
    Ok(Observed::Response { status, grpc, app })
}

fn grpc_status(h: &http::HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Opens a TCP connection, writes a line, and reads the echo.
pub async fn tcp(from: IpAddr, to: SocketAddr, tls: Option<&Tls>) -> Observed {
    let attempt = async {
        let mut io = connect(from, to, tls).await?;
        io.write_all(b"ping\n").await.map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 256];
        while !buf.ends_with(b"ping\n") {
            let n = io.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!("closed after {} bytes", buf.len()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        Ok(Observed::Echoed(text.lines().next().unwrap_or_default().to_string()))
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Observed::Closed(e),
        Err(_) => Observed::Closed("timed out".into()),
    }
}

/// A plain HTTP/1.0 GET for readiness polling, without a runtime.
pub fn blocking_get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nhost: admin\r\n\r\n")?;
    let mut rsp = String::new();
    s.read_to_string(&mut rsp)?;
    rsp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other("no status"))
}

/// The whole body of a GET, for `/metrics`.
pub fn blocking_get_body(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nhost: admin\r\n\r\n")?;
    let mut rsp = String::new();
    s.read_to_string(&mut rsp)?;
    Ok(rsp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A mesh TLS client config presenting `cert`, trusting `anchors_pem`.
/// Built here without the proxy's load-time checks, so a test can present
/// an expired certificate or one from a foreign PKI.
pub fn client_config(cert: &mesh_common::identity::pki::WorkloadCert, anchors_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for anchor in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
        roots.add(anchor.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}
