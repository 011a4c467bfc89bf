//! TCPRoute and TLSRoute enforcement on transparent connections: a split
//! by weight, SNI routing without terminating TLS, and connections no route
//! takes being closed.

use super::to_original_dst;
use crate::discovery::{Discovery, Endpoint, Endpoints, ServiceKey};
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::outbound::connect::Dialer;
use crate::outbound::sni::tests::client_hello;
use crate::state::{self, Loaded};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const WEB: &str = "10.96.0.10";

/// Service `test/web` at WEB (ports 80 and 443); `test/web-a` and `test/web-b`
/// (each port) have one endpoint each.
struct Services(HashMap<String, SocketAddr>);

impl Discovery for Services {
    fn endpoints(&self, svc: &ServiceKey) -> watch::Receiver<Endpoints> {
        let eps = self.0.get(&svc.name).map(|&addr| vec![Endpoint { addr, identity: None }]).unwrap_or_default();
        let (tx, rx) = watch::channel(Arc::new(eps));
        std::mem::forget(tx);
        rx
    }
    fn service_at(&self, addr: SocketAddr) -> Option<ServiceKey> {
        (addr.ip().to_string() == WEB).then(|| ServiceKey {
            namespace: "test".into(),
            name: "web".into(),
            port: addr.port(),
        })
    }
}

/// A backend that answers every connection with `tag` after reading what
/// the client sent first, so a test sees which backend it reached and that
/// the first bytes (the ClientHello) arrived unchanged.
async fn tagged(tag: &'static [u8]) -> (SocketAddr, Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                log.lock().unwrap().push(buf[..n].to_vec());
                let _ = s.write_all(tag).await;
            });
        }
    });
    (addr, seen)
}

fn backend(name: &str, port: u16, weight: u32) -> serde_json::Value {
    serde_json::json!({"target": {"kind": "service", "namespace": "test", "name": name, "port": port}, "weight": weight})
}

fn meta(kind: &str, name: &str) -> serde_json::Value {
    serde_json::json!({"kind": kind, "name": name, "group": "gateway.networking.k8s.io"})
}

/// web:80 opaque with a TCPRoute splitting 3:1 to web-a and web-b; web:443
/// detected with TLSRoutes: `a.example.com` to web-a, `*.example.com` to web-b.
async fn proxy(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let web = serde_json::json!({"namespace": "test", "name": "web", "ports": [
        {"port": 80, "protocol": {"kind": "opaque"},
         "tcpRoute": {"meta": meta("tcproute", "split"), "backends": [backend("web-a", 80, 3), backend("web-b", 80, 1)]}},
        {"port": 443, "protocol": {"kind": "detect"}, "tlsRoutes": [
            {"meta": meta("tlsroute", "exact"), "snis": [{"type": "exact", "value": "a.example.com"}], "backends": [backend("web-a", 443, 1)]},
            {"meta": meta("tlsroute", "wild"), "snis": [{"type": "suffix", "value": "example.com"}], "backends": [backend("web-b", 443, 1)]}]}]});
    let config = serde_json::from_value(serde_json::json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "test", "name": "client"},
        "identity": "client.test.serviceaccount.identity.linkerd.cluster.local",
        "inbound": {"ports": [], "defaultServer": {
            "meta": {"kind": "default", "name": "all-unauthenticated"},
            "protocol": {"kind": "detect", "timeoutMs": 1000}, "authorizations": []}},
        "outbound": {"services": [web]},
    }))
    .unwrap();
    let (tx, rx) = state::channel();
    tx.send_replace(Some(Arc::new(Loaded { config, generation: 1, digest: String::new(), key_id: String::new() })));
    std::mem::forget(tx);
    let discovery = Services(HashMap::from([("web-a".to_owned(), a), ("web-b".to_owned(), b)]));
    let dialer = Dialer { pod_ips: Arc::new([]), tls: Arc::new(|| unreachable!("plaintext endpoints only")) };
    let ob = Outbound {
        detect_timeout: Duration::from_millis(300),
        ..Outbound::new(rx, Arc::new(discovery), Arc::new(Metrics::new()), "cluster.local".into(), dialer)
    };
    let ob = Arc::new(ob);
    let mut addrs = Vec::new();
    for port in [80u16, 443] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap());
        let dst: SocketAddr = format!("{WEB}:{port}").parse().unwrap();
        let ob = ob.clone();
        tokio::spawn(async move {
            let token = CancellationToken::new();
            while let Ok((s, peer)) = l.accept().await {
                let (ob, token) = (ob.clone(), token.clone());
                tokio::spawn(async move { to_original_dst(&token, ob, s, peer, dst).await });
            }
        });
    }
    (addrs[0], addrs[1])
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

#[tokio::test]
async fn a_tcp_route_splits_connections_by_weight() {
    let ((a, _), (b, _)) = (tagged(b"A").await, tagged(b"B").await);
    let (tcp, _) = proxy(a, b).await;
    const N: u32 = 400;
    let mut to_a = 0;
    for _ in 0..N {
        match exchange(tcp, b"hello").await.as_slice() {
            b"A" => to_a += 1,
            b"B" => {}
            other => panic!("unexpected reply {other:?}"),
        }
    }
    // Weight 3:1 → p = 0.75; binomial σ = √(400·0.75·0.25) ≈ 8.7, so 300 ± 4σ (±35)
    // fails a correct proxy with probability below 1e-4.
    assert!((265..=335).contains(&to_a), "{to_a} of {N} connections went to web-a (expected 300 ± 35)");
}

#[tokio::test]
async fn tls_routes_pick_the_backend_by_sni_and_forward_the_hello_unchanged() {
    let ((a, seen_a), (b, _)) = (tagged(b"A").await, tagged(b"B").await);
    let (_, tls) = proxy(a, b).await;
    let hello = client_hello(Some("a.example.com"));
    assert_eq!(exchange(tls, &hello).await, b"A", "the exact SNI wins over the wildcard");
    assert_eq!(seen_a.lock().unwrap().last(), Some(&hello), "the ClientHello reaches the backend unchanged");
    assert_eq!(exchange(tls, &client_hello(Some("www.example.com"))).await, b"B");
}

#[tokio::test]
async fn tls_connections_no_route_takes_are_closed() {
    let ((a, _), (b, _)) = (tagged(b"A").await, tagged(b"B").await);
    let (_, tls) = proxy(a, b).await;
    assert_eq!(exchange(tls, &client_hello(Some("example.org"))).await, b"", "no route matches the SNI");
    assert_eq!(exchange(tls, &client_hello(None)).await, b"", "a ClientHello without SNI");
    assert_eq!(exchange(tls, b"GET / HTTP/1.1\r\nhost: web\r\n\r\n").await, b"", "plaintext has no SNI");
}
