//! Connections to one endpoint: from the pod's address, mTLS when the
//! endpoint has an identity (the server must prove exactly that identity),
//! plaintext otherwise; pooled per endpoint (`crate::pool`). An endpoint
//! at the pod's own address is this pod: plaintext to the app, as Linkerd
//! (see `Dialer::is_local`).

use super::body::BoxBody;
use crate::discovery::Endpoint;
use crate::gateway::header;
use crate::net::ReadAhead;
use crate::pool::{self, Dial, Dialing, Pool};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Gives up on an endpoint that does not accept in this time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The client TLS config of the moment (the workload certificate rotates).
pub type TlsSource = Arc<dyn Fn() -> Arc<rustls::ClientConfig> + Send + Sync>;

/// How connections are made: from where, with which TLS config.
#[derive(Clone)]
pub struct Dialer {
    /// The pod's addresses (`--pod-ip`): connections are made from the one
    /// of the destination's family, and an endpoint at any is this pod.
    pub pod_ips: Arc<[IpAddr]>,
    pub tls: TlsSource,
}

/// A connection to an endpoint, plain or mTLS (reading ahead under TLS:
/// see [`ReadAhead`]).
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<ReadAhead<TcpStream>>>),
}

impl Dialer {
    /// Connects to `ep`; with an identity, the TLS handshake verifies that
    /// the server's certificate names exactly that identity.
    pub async fn connect(&self, ep: &Endpoint) -> io::Result<Conn> {
        self.connect_with(ep, || (self.tls)()).await
    }

    /// Connects to `ep` for an opaque connection to the Service port
    /// `authority` (`<name>.<ns>.svc.<domain>:<port>`): over mTLS the
    /// transport header's ALPN is offered too, and when the server selects
    /// it (a gateway: see [`crate::gateway::header`]) the header naming
    /// `authority` is written before anything else.
    pub async fn connect_opaque(&self, ep: &Endpoint, authority: &str) -> io::Result<Conn> {
        let with_header = || {
            let mut config = (*(self.tls)()).clone();
            config.alpn_protocols.insert(0, header::ALPN.to_vec());
            Arc::new(config)
        };
        let mut conn = self.connect_with(ep, with_header).await?;
        if let Conn::Tls(tls) = &mut conn
            && tls.get_ref().1.alpn_protocol() == Some(header::ALPN)
        {
            tls.write_all(&header::encode(authority)).await?;
            tls.flush().await?;
        }
        Ok(conn)
    }

    /// `config` is asked for only when the connection is mTLS: a plaintext
    /// endpoint (unmeshed, or this pod's own) needs no client identity.
    async fn connect_with(
        &self,
        ep: &Endpoint,
        config: impl FnOnce() -> Arc<rustls::ClientConfig>,
    ) -> io::Result<Conn> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, crate::net::connect_from(self.source_for(ep.addr), ep.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {} timed out", ep.addr)))??;
        let Some(identity) = self.tls_identity(ep) else { return Ok(Conn::Plain(tcp)) };
        let name = ServerName::try_from(identity.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("identity `{identity}`: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config());
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, ReadAhead::new(tcp)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("TLS to {} timed out", ep.addr)))??;
        Ok(Conn::Tls(Box::new(stream)))
    }

    /// Whether `ep` is this pod: a Service the app calls may have the app's
    /// own pod among its endpoints. linkerd2-proxy marks an endpoint at one
    /// of its inbound addresses local (`outbound::http::concrete`, `is_local`
    /// from `LINKERD2_PROXY_INBOUND_IPS`) and connects in plaintext
    /// (`NoClientTls::Loopback`) to the app's port: the connection, opened
    /// as the proxy's uid to the pod's own address, leaves through `lo` and
    /// `mesh-proxy init`'s rules return it, so it never meets the inbound
    /// proxy. mTLS there would reach the app, not a proxy, and fail.
    /// Every address of the pod counts (`inbound_ips` is a set: a
    /// dual-stack pod's IPv6 address is as much its own as its IPv4 one).
    pub fn is_local(&self, ep: &Endpoint) -> bool {
        self.pod_ips.contains(&ep.addr.ip())
    }

    /// The pod address a connection to `dst` is made from: the first of
    /// the destination's family, none when the pod has no such address.
    pub fn source_for(&self, dst: SocketAddr) -> Option<IpAddr> {
        self.pod_ips.iter().copied().find(|ip| ip.is_ipv4() == dst.is_ipv4())
    }

    /// The identity a connection to `ep` makes the server prove in the TLS
    /// handshake: the endpoint's, unless the connection is plaintext (an
    /// unmeshed endpoint, or this pod: linkerd2-proxy's `NoClientTls`).
    /// Only such an identity may name the server to the app.
    pub fn tls_identity<'e>(&self, ep: &'e Endpoint) -> Option<&'e str> {
        ep.identity.as_deref().filter(|_| !self.is_local(ep))
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    /// Forwarded, so hyper sends a head and body chunks in one `writev`
    /// (plaintext) or one TLS record, instead of first copying them into
    /// one buffer: it copies when the stream says it cannot write vectors.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Connections to one endpoint (`crate::pool`): HTTP/1.1 kept for reuse,
/// HTTP/2 shared. A request keeps its version: h2 (and so gRPC) goes out
/// as h2, HTTP/1.x as HTTP/1.1. Whatever the request URI says, they go to
/// this endpoint (the URI carries the Service authority, so h2's
/// `:authority` and HTTP/1's `Host` stay what the app sent).
pub struct EndpointClient {
    pool: Pool<BoxBody, TokioIo<Conn>>,
    /// What every connection of this client proves ([`Dialer::tls_identity`]).
    tls_identity: Option<String>,
}

impl EndpointClient {
    /// `max_header_bytes`: the largest response head let through
    /// (`--max-header-bytes`).
    pub fn new(dialer: &Dialer, endpoint: &Endpoint, max_header_bytes: usize) -> Self {
        let tls_identity = dialer.tls_identity(endpoint).map(str::to_owned);
        let pool = Pool::new(dial(dialer, endpoint)).for_heads_of(max_header_bytes);
        EndpointClient { pool, tls_identity }
    }

    /// The identity the server proved on this client's connections; none
    /// when they are plaintext.
    pub fn tls_identity(&self) -> Option<&str> {
        self.tls_identity.as_deref()
    }

    /// For one request only: its connection closes after the response.
    pub fn single_use(dialer: &Dialer, endpoint: &Endpoint, max_header_bytes: usize) -> Self {
        let tls_identity = dialer.tls_identity(endpoint).map(str::to_owned);
        let pool = Pool::single_use(dial(dialer, endpoint)).for_heads_of(max_header_bytes);
        EndpointClient { pool, tls_identity }
    }

    pub async fn send(&self, req: Request<BoxBody>) -> Result<Response<Incoming>, pool::Error> {
        self.pool.send(req).await
    }
}

fn dial(dialer: &Dialer, endpoint: &Endpoint) -> Dial<TokioIo<Conn>> {
    let (dialer, endpoint) = (dialer.clone(), endpoint.clone());
    Arc::new(move || -> Dialing<TokioIo<Conn>> {
        let (dialer, endpoint) = (dialer.clone(), endpoint.clone());
        Box::pin(async move { dialer.connect(&endpoint).await.map(TokioIo::new) })
    })
}

/// The peer an endpoint connection goes to; for logs.
pub fn describe(ep: &Endpoint) -> String {
    match &ep.identity {
        Some(id) => format!("{} ({id})", ep.addr),
        None => format!("{} (plaintext)", ep.addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WEB: &str = "web.test.serviceaccount.identity.linkerd.cluster.local";

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A TLS server presenting `WEB`'s certificate, and a client config
    /// trusting its CA (what `Identity::client_config` provides in the proxy).
    async fn tls_server() -> (std::net::SocketAddr, Arc<rustls::ClientConfig>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![WEB.to_string()])
            .unwrap()
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(b"hi").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        (addr, Arc::new(client))
    }

    #[tokio::test]
    async fn meshed_endpoints_must_prove_their_identity() {
        let (addr, client) = tls_server().await;
        let dialer = Dialer { pod_ips: Arc::new([]), tls: Arc::new(move || client.clone()) };
        let right = Endpoint { addr, identity: Some(WEB.into()) };
        let mut conn = dialer.connect(&right).await.unwrap();
        assert!(matches!(conn, Conn::Tls(_)));
        let mut buf = [0u8; 2];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");

        let wrong =
            Endpoint { addr, identity: Some("other.test.serviceaccount.identity.linkerd.cluster.local".into()) };
        let err = dialer.connect(&wrong).await.err().unwrap();
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[tokio::test]
    async fn unmeshed_endpoints_are_plaintext_and_bad_identities_are_errors() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dialer = Dialer { pod_ips: Arc::new([]), tls: Arc::new(|| unreachable!("no TLS for plaintext endpoints")) };
        let conn = dialer.connect(&Endpoint { addr, identity: None }).await.unwrap();
        assert!(matches!(conn, Conn::Plain(_)));
        let bad = dialer.connect(&Endpoint { addr, identity: Some("not a name!".into()) }).await.err().unwrap();
        assert!(bad.to_string().contains("not a name!"), "{bad}");
    }

    /// The pod's own address as an endpoint (its Service selects it): the
    /// app answers there in plaintext, whatever identity discovery names.
    #[tokio::test]
    async fn an_endpoint_at_the_pods_own_address_is_plaintext_to_the_app() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dialer =
            Dialer { pod_ips: Arc::new([addr.ip()]), tls: Arc::new(|| unreachable!("no TLS to the pod's own app")) };
        let own = Endpoint { addr, identity: Some(WEB.into()) };
        assert!(dialer.is_local(&own));
        let conn = dialer.connect(&own).await.unwrap();
        assert!(matches!(conn, Conn::Plain(_)));
        // No handshake: nothing proves the identity discovery names.
        assert_eq!(dialer.tls_identity(&own), None);
        // Another pod at another address keeps mTLS.
        let other = Endpoint { addr: "127.0.0.2:80".parse().unwrap(), identity: Some(WEB.into()) };
        assert!(!dialer.is_local(&other));
        assert_eq!(dialer.tls_identity(&other), Some(WEB));
    }

    /// A dual-stack pod (`--pod-ip fd00::7,ADDR`): the address listed second
    /// is as much the pod's own as the first, and a connection is made
    /// from the pod's address of the destination's family.
    #[tokio::test]
    async fn every_address_of_a_dual_stack_pod_is_its_own() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let v6: IpAddr = "fd00::7".parse().unwrap();
        let tls: TlsSource = Arc::new(|| unreachable!("no TLS to the pod's own app"));
        let dialer = Dialer { pod_ips: Arc::new([v6, addr.ip()]), tls };
        let own = Endpoint { addr, identity: Some(WEB.into()) };
        assert!(dialer.is_local(&own));
        assert!(matches!(dialer.connect(&own).await.unwrap(), Conn::Plain(_)));
        assert!(dialer.is_local(&Endpoint { addr: SocketAddr::new(v6, 80), identity: Some(WEB.into()) }));
        assert_eq!(dialer.source_for(addr), Some(addr.ip()));
        assert_eq!(dialer.source_for(SocketAddr::new(v6, 80)), Some(v6));
        let v4_only = Dialer { pod_ips: Arc::new([addr.ip()]), tls: dialer.tls.clone() };
        assert_eq!(v4_only.source_for("[fd00::9]:80".parse().unwrap()), None);
    }
}
