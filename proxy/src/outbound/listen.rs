//! The outbound listeners and their accept loops: one connection permit
//! each, connection tasks in `ctx.tasks`, graceful HTTP shutdown on drain.

use super::http::{Target, handle};
use super::{Outbound, egress, sni, target, tcp};
use crate::Ctx;
use crate::ctx::Direction;
use crate::detect::{self, Protocol, Rewind};
use crate::discovery::ServiceKey;
use crate::metrics::LastRequest;
use bytes::Bytes;
use hyper::service::service_fn;
use mesh_proxy_api::outbound::OutboundProtocol;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
enum Mode {
    Http,
    Tcp(ServiceKey),
    Transparent,
}

/// Binds every configured outbound listener (a bind failure is returned at
/// once) and serves until `ctx.shutdown`; returns early only on error.
pub async fn serve(ctx: Arc<Ctx>) -> io::Result<()> {
    let ob = Outbound::from_ctx(&ctx);
    let mut listeners = Vec::new();
    if let Some(addr) = ctx.settings.outbound {
        listeners.push((crate::listen::bind(addr, "outbound").await?, Mode::Http));
    }
    for (addr, svc) in &ctx.settings.outbound_tcp {
        let key = target::parse_service(svc, &ctx.settings.cluster_domain, 80)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--outbound-tcp: {e}")))?;
        listeners.push((crate::listen::bind(*addr, "outbound").await?, Mode::Tcp(key)));
    }
    if let Some(addr) = ctx.settings.outbound_transparent {
        listeners.push((crate::listen::bind(addr, "outbound").await?, Mode::Transparent));
    }
    let mut loops = JoinSet::new();
    for (listener, mode) in listeners {
        loops.spawn(accept_loop(ctx.clone(), ob.clone(), listener, mode));
    }
    while let Some(r) = loops.join_next().await {
        r.map_err(io::Error::other)??;
    }
    ctx.shutdown.cancelled().await;
    Ok(())
}

async fn accept_loop(ctx: Arc<Ctx>, ob: Arc<Outbound>, listener: TcpListener, mode: Mode) -> io::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, ?mode, "outbound listener ready");
    crate::listen::accept_until_shutdown(&ctx.clone(), &listener, Direction::Outbound, |stream, peer, permit| {
        ctx.tasks.spawn(connection(ctx.clone(), ob.clone(), mode.clone(), stream, (peer, local), permit));
    })
    .await
}

async fn connection(
    ctx: Arc<Ctx>,
    ob: Arc<Outbound>,
    mode: Mode,
    stream: TcpStream,
    (peer, local): (SocketAddr, SocketAddr),
    _permit: OwnedSemaphorePermit,
) {
    let _open = ctx.metrics.connection_open("outbound");
    // Boxed, each way of serving apart: see `inbound::connection`.
    match mode {
        Mode::Http => Box::pin(serve_http(&ctx.shutdown, ob, Target::Authority(Arc::default()), peer, stream)).await,
        Mode::Tcp(key) => Box::pin(tcp_listener(&ob, &key, stream)).await,
        Mode::Transparent => Box::pin(transparent(&ctx.shutdown, ob, stream, (peer, local))).await,
    }
}

/// `--outbound-tcp`: the Service port's TLSRoutes or TCPRoute apply as for
/// a transparent connection; without them, straight to the Service.
async fn tcp_listener(ob: &Outbound, key: &ServiceKey, mut stream: TcpStream) {
    match tcp::routing(ob, key) {
        tcp::Routing::Tls => {
            let (sni, prefix) = sni::read_sni(&mut stream, ob.detect_timeout).await;
            tcp::route(ob, key, stream, prefix, sni.as_deref()).await
        }
        tcp::Routing::Tcp => tcp::route(ob, key, stream, Bytes::new(), None).await,
        tcp::Routing::None => tcp::forward(ob, key, stream, Bytes::new()).await,
    }
}

async fn transparent(
    shutdown: &CancellationToken,
    ob: Arc<Outbound>,
    stream: TcpStream,
    (peer, local): (SocketAddr, SocketAddr),
) {
    let dst = match crate::net::original_dst(&stream) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(error = %e, "transparent connection without an original destination; closing");
            return;
        }
    };
    if dst == local {
        tracing::info!(%dst, "connection was not redirected (it targets this listener); closing");
        return;
    }
    to_original_dst(shutdown, ob, stream, peer, dst).await;
}

/// Serves a transparent connection headed for `dst`.
async fn to_original_dst(
    shutdown: &CancellationToken,
    ob: Arc<Outbound>,
    mut stream: TcpStream,
    peer: SocketAddr,
    dst: SocketAddr,
) {
    // A Service first, then egress (Linkerd's `lookup_ip` order).
    let key = match ob.discovery.lookup_service_at(dst).await {
        Ok(Some(key)) => key,
        Ok(None) => return Box::pin(egress::serve(shutdown, ob, stream, peer, dst)).await,
        Err(e) => {
            // Going straight to a cluster IP would skip the Service's routes and mTLS.
            tracing::warn!(%dst, error = %e, "cannot tell which Service this address is; closing");
            return;
        }
    };
    match tcp::routing(&ob, &key) {
        tcp::Routing::Tls => {
            let (sni, prefix) = sni::read_sni(&mut stream, ob.detect_timeout).await;
            return Box::pin(tcp::route(&ob, &key, stream, prefix, sni.as_deref())).await;
        }
        tcp::Routing::Tcp => return Box::pin(tcp::route(&ob, &key, stream, Bytes::new(), None)).await,
        tcp::Routing::None => {}
    }
    match port_protocol(&ob, &key) {
        OutboundProtocol::Opaque => Box::pin(tcp::forward(&ob, &key, stream, Bytes::new())).await,
        OutboundProtocol::Http1 | OutboundProtocol::Http2 => {
            Box::pin(serve_http(shutdown, ob, Target::Fixed(key), peer, stream)).await
        }
        OutboundProtocol::Detect => match detect::detect(&mut stream, ob.detect_timeout).await {
            Ok((Protocol::Http, prefix)) => {
                Box::pin(serve_http(shutdown, ob, Target::Fixed(key), peer, Rewind::new(prefix, stream))).await
            }
            Ok((Protocol::Tcp, prefix)) => Box::pin(tcp::forward(&ob, &key, stream, prefix)).await,
            Err(e) => tracing::debug!(error = %e, "detection failed; closing"),
        },
    }
}

/// The protocol the config gives a Service port (default: by the opaque
/// port list); with no config yet, detection.
fn port_protocol(ob: &Outbound, key: &ServiceKey) -> OutboundProtocol {
    let Some(loaded) = crate::state::current(&ob.config) else { return OutboundProtocol::Detect };
    let outbound = &loaded.config.outbound;
    let listed = outbound.service(&key.namespace, &key.name).and_then(|s| s.ports.iter().find(|p| p.port == key.port));
    match listed {
        // An opaque port stays TCP even under a ServiceProfile: it carries no HTTP to route.
        Some(p) => p.protocol,
        None => outbound.default_protocol(key.port),
    }
}

/// Serves HTTP/1 and h2 from the app (at `peer`) until the connection closes.
pub(super) async fn serve_http<I>(
    shutdown: &CancellationToken,
    ob: Arc<Outbound>,
    target: Target,
    peer: SocketAddr,
    io: I,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max_header_bytes = ob.max_header_bytes;
    let last = Arc::new(LastRequest::default());
    let svc = service_fn(move |req| handle(ob.clone(), target.clone(), peer, last.clone(), req));
    mesh_common::http_server::serve_connection(
        io,
        svc,
        mesh_common::http_server::ConnLimits::headers(max_header_bytes),
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod route_tests;

#[cfg(test)]
mod egress_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{Discovery, Endpoint, Endpoints};
    use crate::metrics::Metrics;
    use crate::outbound::connect::Dialer;
    use crate::state::{self, Loaded};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::watch;

    const CLUSTER_IP: &str = "10.96.0.10:80";

    /// One Service, `test/web:80`, at CLUSTER_IP with one endpoint.
    struct OneService(SocketAddr);
    impl Discovery for OneService {
        fn endpoints(&self, _: &ServiceKey) -> watch::Receiver<Endpoints> {
            let (tx, rx) = watch::channel(Arc::new(vec![Endpoint { addr: self.0, identity: None }]));
            std::mem::forget(tx);
            rx
        }
        fn service_at(&self, addr: SocketAddr) -> Option<ServiceKey> {
            (addr == CLUSTER_IP.parse().unwrap()).then(|| ServiceKey {
                namespace: "test".into(),
                name: "web".into(),
                port: 80,
            })
        }
    }

    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// A one-response HTTP/1.1 server.
    async fn http_ok() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nvia-web").await;
                });
            }
        });
        addr
    }

    /// A transparent listener whose every connection is "headed" for `dst`.
    async fn transparent_to(endpoint: SocketAddr, dst: &str, default_opaque: bool) -> SocketAddr {
        transparent_with(Arc::new(OneService(endpoint)), dst, default_opaque).await
    }

    /// A discovery that cannot say which Service an address is (the runtime is down).
    struct LookupFails;
    impl Discovery for LookupFails {
        fn endpoints(&self, _: &ServiceKey) -> watch::Receiver<Endpoints> {
            watch::channel(Arc::new(Vec::new())).1
        }
        fn service_at(&self, _: SocketAddr) -> Option<ServiceKey> {
            None
        }
        fn lookup_service_at(&self, _: SocketAddr) -> crate::discovery::Lookup<'_> {
            Box::pin(std::future::ready(Err("runtime unreachable".to_string())))
        }
    }

    async fn transparent_with(discovery: Arc<dyn Discovery>, dst: &str, default_opaque: bool) -> SocketAddr {
        let outbound = if default_opaque {
            serde_json::json!({"services": [], "defaultOpaquePorts": [{"start": 80, "end": 80}]})
        } else {
            serde_json::json!({"services": []})
        };
        let config = serde_json::from_value(serde_json::json!({
            "apiVersion": "meshc.io/v1alpha1",
            "workload": {"kind": "Deployment", "namespace": "test", "name": "client"},
            "identity": "client.test.serviceaccount.identity.linkerd.cluster.local",
            "inbound": {"ports": [], "defaultServer": {
                "meta": {"kind": "default", "name": "all-unauthenticated"},
                "protocol": {"kind": "detect", "timeoutMs": 1000}, "authorizations": []}},
            "outbound": outbound,
        }))
        .unwrap();
        let (tx, rx) = state::channel();
        tx.send_replace(Some(Arc::new(Loaded { config, generation: 1, digest: String::new(), key_id: String::new() })));
        std::mem::forget(tx);
        let dialer = Dialer { pod_ips: Arc::new([]), tls: Arc::new(|| unreachable!("plaintext endpoints only")) };
        let ob = Outbound {
            detect_timeout: Duration::from_millis(200),
            ..Outbound::new(rx, discovery, Arc::new(Metrics::new()), "cluster.local".into(), dialer)
        };
        let ob = Arc::new(ob);
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let dst: SocketAddr = dst.parse().unwrap();
        tokio::spawn(async move {
            let token = CancellationToken::new();
            while let Ok((s, peer)) = l.accept().await {
                let (ob, token) = (ob.clone(), token.clone());
                tokio::spawn(async move { to_original_dst(&token, ob, s, peer, dst).await });
            }
        });
        addr
    }

    async fn exchange(addr: SocketAddr, send: &[u8], want: usize) -> Vec<u8> {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(send).await.unwrap();
        let mut buf = vec![0; want];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf)).await.unwrap().unwrap();
        buf
    }

    #[tokio::test]
    async fn detected_http_is_routed_to_the_service_behind_the_cluster_ip() {
        let addr = transparent_to(http_ok().await, CLUSTER_IP, false).await;
        let reply = exchange(addr, b"GET / HTTP/1.1\r\nhost: anything\r\n\r\n", 12).await;
        assert_eq!(&reply, b"HTTP/1.1 200");
    }

    #[tokio::test]
    async fn detected_non_http_goes_as_tcp() {
        let addr = transparent_to(echo().await, CLUSTER_IP, false).await;
        assert_eq!(exchange(addr, b"\x16\x03\x01hello", 8).await, b"\x16\x03\x01hello");
    }

    #[tokio::test]
    async fn opaque_ports_forward_http_bytes_untouched() {
        let addr = transparent_to(echo().await, CLUSTER_IP, true).await;
        let req = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(exchange(addr, req, req.len()).await, req);
    }

    /// Passing it through would reach the Service's pods without its
    /// routes, policy or mTLS: the connection is closed instead.
    #[tokio::test]
    async fn a_failed_lookup_closes_the_connection_instead_of_passing_through() {
        let echo = echo().await;
        let addr = transparent_with(Arc::new(LookupFails), &echo.to_string(), false).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let _ = c.write_all(b"raw").await;
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await.unwrap();
        assert!(read.is_err() || buf.is_empty(), "closed without an answer, got {buf:?}");
    }

    #[tokio::test]
    async fn unknown_destinations_pass_through() {
        let echo = echo().await;
        let addr = transparent_to(echo, &echo.to_string(), false).await;
        assert_eq!(exchange(addr, b"raw", 3).await, b"raw");
    }
}
