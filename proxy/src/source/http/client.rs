//! The HTTPS client the runtime clients share (config, endpoints,
//! certificates): one pooled hyper client per runtime URL, h2 when the
//! runtime offers it (so every long poll shares one connection), HTTP/1.1
//! otherwise. The server must prove `--runtime-identity`, whatever host the
//! URL names.

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pings on an idle h2 connection, so a runtime that vanished without a FIN
/// is noticed before the long poll's own timeout.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// Configs are a few KiB; this bounds what a broken server can make us buffer.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The client TLS config for the next connection. Called per connection so
/// a rotated workload certificate or trust anchor is used at once.
pub type TlsSource = Arc<dyn Fn() -> Result<Arc<ClientConfig>, String> + Send + Sync>;

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// `x-mesh-digest`, when sent.
    pub digest: Option<String>,
    pub body: Bytes,
}

impl Reply {
    /// The runtime's `{"error": "…"}` message, or the body as text.
    pub fn error_message(&self) -> String {
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error: String,
        }
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(e) => e.error,
            Err(_) => String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned(),
        }
    }
}

pub struct RuntimeClient {
    base: String,
    client: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for RuntimeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl RuntimeClient {
    /// `url` is `https://host[:port]`; `server_name` is the identity the
    /// runtime's certificate must carry.
    pub fn new(url: &str, server_name: &str, tls: TlsSource) -> Result<RuntimeClient, String> {
        let uri: Uri = url.parse().map_err(|e| format!("--runtime `{url}`: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("--runtime `{url}`: expected https://host:port"));
        }
        let authority = uri.authority().ok_or_else(|| format!("--runtime `{url}`: no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("--runtime `{url}`: expected no path (https://host:port)"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let addr = (host, authority.port_u16().unwrap_or(443));
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("--runtime-identity `{server_name}`: {e}"))?;
        let connector = Connector { addr: Arc::new(addr), server_name, tls };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_keep_alive_interval(KEEPALIVE)
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .build(connector);
        Ok(RuntimeClient { base: format!("https://{authority}"), client })
    }

    /// `GET path_and_query`, the whole exchange bounded by `timeout`.
    pub async fn get(&self, path_and_query: &str, timeout: Duration) -> Result<Reply, String> {
        self.send(Method::GET, path_and_query, Bytes::new(), timeout).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: Vec<u8>, timeout: Duration) -> Result<Reply, String> {
        self.send(Method::POST, path, Bytes::from(body), timeout).await
    }

    async fn send(&self, method: Method, path: &str, body: Bytes, timeout: Duration) -> Result<Reply, String> {
        let uri = format!("{}{path}", self.base);
        let req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| format!("{method} {uri}: {e}"))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| describe(&e))?;
            let status = resp.status();
            let digest = resp.headers().get("x-mesh-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(Reply { status, digest, body: body.to_bytes() })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r.map_err(|e| format!("{method} {uri}: {e}")),
            Err(_) => Err(format!("{method} {uri}: no answer within {timeout:?}")),
        }
    }
}

/// hyper-util's errors say "client error (Connect)"; the cause says why.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// A path segment: percent-encodes everything outside RFC 3986's
/// unreserved set, so a name can never add a segment or a query.
pub fn encode_segment(s: &str) -> String {
    encode(s, b"")
}

/// A query value. `/` and `:` are legal there and stay literal, so
/// `workload=Deployment/shop/web&after=sha256:…` reads as API.md writes it.
pub fn encode_query(s: &str) -> String {
    encode(s, b"/:")
}

fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Clone)]
struct Connector {
    addr: Arc<(String, u16)>,
    server_name: ServerName<'static>,
    tls: TlsSource,
}

impl Connector {
    async fn connect(self) -> io::Result<TokioIo<RuntimeConn>> {
        let config = (self.tls)().map_err(io::Error::other)?;
        let (host, port) = (self.addr.0.as_str(), self.addr.1);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {host}:{port} timed out")))??;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(config);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(self.server_name, tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("TLS to {host}:{port} timed out")))??;
        Ok(TokioIo::new(RuntimeConn(Box::new(stream))))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<RuntimeConn>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect())
    }
}

/// A TLS connection to the runtime that tells hyper which protocol ALPN chose.
pub struct RuntimeConn(Box<TlsStream<TcpStream>>);

impl Connection for RuntimeConn {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.0.get_ref().1.alpn_protocol() == Some(b"h2") { connected.negotiated_h2() } else { connected }
    }
}

impl AsyncRead for RuntimeConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for RuntimeConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().0.as_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_their_segment() {
        assert_eq!(encode_segment("shop/web"), "shop%2Fweb");
        assert_eq!(encode_segment("web-1.shop_x~"), "web-1.shop_x~");
        assert_eq!(encode_query("Deployment/shop/web"), "Deployment/shop/web");
        assert_eq!(encode_query("sha256:ab&x=1#"), "sha256:ab%26x%3D1%23");
    }

    #[test]
    fn runtime_urls_must_be_https_without_a_path() {
        let tls: TlsSource = Arc::new(|| Err("unused".into()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = rt.enter();
        assert!(RuntimeClient::new("https://runtime.mesh-system:8443", "rt.example", tls.clone()).is_ok());
        assert!(RuntimeClient::new("http://runtime:80", "rt.example", tls.clone()).unwrap_err().contains("https"));
        assert!(RuntimeClient::new("https://runtime/v1", "rt.example", tls.clone()).unwrap_err().contains("path"));
        assert!(RuntimeClient::new("https://runtime", "not a name!", tls).unwrap_err().contains("--runtime-identity"));
    }
}
