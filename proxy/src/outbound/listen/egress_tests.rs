//! Egress enforcement on transparent connections to addresses that are no
//! Service (here 127.0.0.1 ports, outside the cluster network 10.0.0.0/8,
//! covered by EgressNetwork test/ext, Deny): each case is what
//! `decide_egress` says, acted on (403 with `l5d-proxy-error`, closed,
//! passed through, redirected).

use super::to_original_dst;
use crate::discovery::{Discovery, Endpoint, Endpoints, ServiceKey};
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::outbound::connect::Dialer;
use crate::outbound::sni::tests::client_hello;
use crate::state::{self, Loaded};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Service test/mirror (the redirect target) has one endpoint; no address is a Service.
struct Mirror(SocketAddr);

impl Discovery for Mirror {
    fn endpoints(&self, svc: &ServiceKey) -> watch::Receiver<Endpoints> {
        let eps = if svc.name == "mirror" { vec![Endpoint { addr: self.0, identity: None }] } else { vec![] };
        let (tx, rx) = watch::channel(Arc::new(eps));
        std::mem::forget(tx);
        rx
    }
    fn service_at(&self, _: SocketAddr) -> Option<ServiceKey> {
        None
    }
}

/// Answers every connection with `reply` once the client has sent something.
async fn server(reply: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
            });
        }
    });
    addr
}

const HTTP_OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nexternal";

fn meta(kind: &str, name: &str) -> serde_json::Value {
    serde_json::json!({"kind": kind, "name": name, "group": "gateway.networking.k8s.io"})
}

fn original() -> serde_json::Value {
    serde_json::json!([{"target": {"kind": "original"}, "weight": 1}])
}

struct Hosts {
    http_allowed: SocketAddr,
    http_denied: SocketAddr,
    tls: SocketAddr,
    tcp: SocketAddr,
}

/// A proxy whose listener sends every connection to `dst`, as iptables would.
async fn proxy_to(ob: &Arc<Outbound>, dst: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let ob = ob.clone();
    tokio::spawn(async move {
        let token = CancellationToken::new();
        while let Ok((s, peer)) = l.accept().await {
            let (ob, token) = (ob.clone(), token.clone());
            tokio::spawn(async move { to_original_dst(&token, ob, s, peer, dst).await });
        }
    });
    addr
}

async fn setup() -> (Arc<Outbound>, Hosts) {
    let hosts = Hosts {
        http_allowed: server(HTTP_OK).await,
        http_denied: server(HTTP_OK).await,
        tls: server(b"external-tls").await,
        tcp: server(b"external-tcp").await,
    };
    let mirror = server(b"mirror").await;
    let ports = serde_json::json!([
        {"port": hosts.http_allowed.port(), "httpRoutes": [
            {"meta": meta("httproute", "any"), "rules": [{"matches": [], "backends": original()}]}]},
        {"port": hosts.tls.port(), "tlsRoutes": [
            {"meta": meta("tlsroute", "api"), "snis": [{"type": "exact", "value": "api.example.com"}], "backends": original()},
            {"meta": meta("tlsroute", "wild"), "snis": [{"type": "suffix", "value": "example.com"}],
             "backends": [{"target": {"kind": "service", "namespace": "test", "name": "mirror", "port": 443}, "weight": 1}]}]},
        {"port": hosts.tcp.port(), "tcpRoute": {"meta": meta("tcproute", "db"), "backends": original()}},
    ]);
    let egress = serde_json::json!({"clusterNetworks": ["10.0.0.0/8"], "networks": [{
        "namespace": "test", "name": "ext", "trafficPolicy": "Deny",
        "networks": [{"net": "127.0.0.0/8"}], "ports": ports}]});
    let config = serde_json::from_value(serde_json::json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "test", "name": "client"},
        "identity": "client.test.serviceaccount.identity.linkerd.cluster.local",
        "inbound": {"ports": [], "defaultServer": {
            "meta": {"kind": "default", "name": "all-unauthenticated"},
            "protocol": {"kind": "detect", "timeoutMs": 1000}, "authorizations": []}},
        "outbound": {"services": [], "egress": egress},
    }))
    .unwrap();
    let (tx, rx) = state::channel();
    tx.send_replace(Some(Arc::new(Loaded { config, generation: 1, digest: String::new(), key_id: String::new() })));
    std::mem::forget(tx);
    let dialer = Dialer { pod_ips: Arc::new([]), tls: Arc::new(|| unreachable!("plaintext endpoints only")) };
    let ob = Outbound {
        detect_timeout: Duration::from_millis(300),
        ..Outbound::new(rx, Arc::new(Mirror(mirror)), Arc::new(Metrics::new()), "cluster.local".into(), dialer)
    };
    (Arc::new(ob), hosts)
}

/// Sends `first`, returns everything the proxy sends back until it closes.
async fn exchange(addr: SocketAddr, first: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(first).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    read.expect("the proxy answers or closes in time").ok();
    out
}

const GET: &[u8] = b"GET /anything HTTP/1.1\r\nhost: api.example.com\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn http_is_refused_with_403_unless_a_route_allows_it() {
    let (ob, hosts) = setup().await;
    let denied = String::from_utf8_lossy(&exchange(proxy_to(&ob, hosts.http_denied).await, GET).await).into_owned();
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(
        denied.contains("l5d-proxy-error: EgressNetwork test/ext: traffic not allowed (http-egress-deny)"),
        "{denied}"
    );
    let allowed = String::from_utf8_lossy(&exchange(proxy_to(&ob, hosts.http_allowed).await, GET).await).into_owned();
    assert!(allowed.starts_with("HTTP/1.1 200") && allowed.ends_with("external"), "{allowed}");
}

#[tokio::test]
async fn tls_is_passed_redirected_or_closed_by_sni() {
    let (ob, hosts) = setup().await;
    let tls = proxy_to(&ob, hosts.tls).await;
    assert_eq!(exchange(tls, &client_hello(Some("api.example.com"))).await, b"external-tls");
    assert_eq!(exchange(tls, &client_hello(Some("www.example.com"))).await, b"mirror");
    // No route names example.org: tls-egress-deny closes the connection.
    assert_eq!(exchange(tls, &client_hello(Some("example.org"))).await, b"");
    // A TLS port requires an SNI: plain HTTP is closed.
    assert_eq!(exchange(tls, GET).await, b"");
}

#[tokio::test]
async fn opaque_tcp_takes_the_tcp_route_or_is_closed() {
    let (ob, hosts) = setup().await;
    assert_eq!(exchange(proxy_to(&ob, hosts.tcp).await, b"hello").await, b"external-tcp");
    // Not HTTP, on a port without a TCPRoute: tcp-egress-deny.
    assert_eq!(exchange(proxy_to(&ob, hosts.http_denied).await, b"\x00\x01binary").await, b"");
}
