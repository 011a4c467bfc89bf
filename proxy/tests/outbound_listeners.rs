//! The outbound listeners' lifecycle on loopback: opaque TCP listeners,
//! endpoints arriving through a discovery reload, graceful drain on
//! shutdown, and bind failures reported as errors.

mod outbound_support;

use http::Version;
use outbound_support::{backend, backend_delayed, discovery_json, get, proxy, send};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const H1: Version = Version::HTTP_11;

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test]
async fn outbound_tcp_forwards_bytes_to_the_service() {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let listen = free_addr();
    let p = proxy(
        Some(json!({"services": []})),
        &discovery_json(&[("test", "db", 5432, vec![echo_addr])]),
        &[format!("--outbound-tcp={listen}=db.test:5432")],
    )
    .await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    c.write_all(b"not http at all\x00\x01").await.unwrap();
    let mut buf = [0u8; 17];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"not http at all\x00\x01");
    drop(p);
}

#[tokio::test]
async fn endpoints_added_to_the_discovery_file_are_used_without_restart() {
    let b = backend(|_| (200, "up".into())).await;
    let p = proxy(Some(json!({"services": []})), &discovery_json(&[]), &[]).await;
    assert_eq!(send(p.http, H1, get(H1, "late.test", "/")).await.status, 503);
    std::fs::write(&p.discovery_file, discovery_json(&[("test", "late", 80, vec![b.addr])])).unwrap();
    let mut status = 0;
    for _ in 0..100 {
        status = send(p.http, H1, get(H1, "late.test", "/")).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_in_flight_requests_finish() {
    let b = backend_delayed(Duration::from_millis(300), |_| (200, "done".into())).await;
    let p = proxy(Some(json!({"services": []})), &discovery_json(&[("test", "web", 80, vec![b.addr])]), &[]).await;
    let addr = p.http;
    let in_flight = tokio::spawn(async move { send(addr, H1, get(H1, "web.test", "/")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.ctx.shutdown.cancel();
    p.ctx.tasks.close();
    let r = in_flight.await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "done"), "drained, not cut");
    tokio::time::timeout(Duration::from_secs(5), p.ctx.tasks.wait()).await.unwrap();
    p.serve.await.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn a_listener_that_cannot_bind_fails_serve() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let p =
        proxy(Some(json!({"services": []})), &discovery_json(&[]), &[format!("--outbound-tcp={addr}=db.test:5432")])
            .await;
    let err = tokio::time::timeout(Duration::from_secs(5), p.serve).await.unwrap().unwrap().unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}
