//! Peers that open a TLS handshake and stall: they are closed after the
//! handshake timeout, and while they last they hold inbound connection
//! slots only, never the app's own outbound ones.

mod inbound_support;

use inbound_support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The first bytes of a TLS ClientHello record, then nothing.
async fn stalled_client_hello(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    s
}

/// How long until the proxy closes `s` (`None`: still open after `limit`).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn metric_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_at_the_timeout_and_counted() {
    let p = proxy(app(&[]).await, no_services(), &["--tls-handshake-timeout=300ms"]).await;
    let mut stalled = stalled_client_hello(p.inbound).await;
    let took = closed_within(&mut stalled, Duration::from_secs(5)).await;
    let took = took.expect("a peer that stalls mid-handshake is still connected after 5 s");
    assert!(took >= Duration::from_millis(250), "closed after {took:?}, before the timeout");
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    let metrics = p.metrics();
    let refused = r#"mesh_proxy_connections_refused_total{direction="inbound",reason="tls-handshake-timeout"}"#;
    assert_eq!(metric_line(&metrics, refused), Some(format!("{refused} 1").as_str()), "{metrics}");
}

#[tokio::test]
async fn stalled_inbound_peers_cannot_starve_the_apps_outbound_traffic() {
    let app = app(&[]).await;
    let limits = ["--max-inbound-connections=2", "--max-outbound-connections=2", "--tls-handshake-timeout=60s"];
    let p = proxy(app, service(app, None), &limits).await;
    let _stalled = [stalled_client_hello(p.inbound).await, stalled_client_hello(p.inbound).await];
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A third inbound peer is over the inbound limit: closed at once, counted.
    let mut third = TcpStream::connect(p.inbound).await.unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(2)).await.is_some(), "over the limit but kept open");
    let metrics = p.metrics();
    let refused = r#"mesh_proxy_connections_refused_total{direction="inbound",reason="limit"}"#;
    assert_eq!(metric_line(&metrics, refused), Some(format!("{refused} 1").as_str()), "{metrics}");

    // The app's own requests still go out.
    let reply =
        tokio::time::timeout(Duration::from_secs(3), get(p.outbound, None, "web.test.svc.cluster.local:80", &[]))
            .await
            .expect("an outbound request waited behind stalled inbound peers");
    assert_eq!(reply.status, 200, "{}", reply.body);
}
