//! The limits a client meets: connections, long polls per identity and in
//! all, certificate requests per identity and in all.

use crate::support::*;
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

const OTHER_ID: &str = "other.podinfo.serviceaccount.identity.linkerd.cluster.local";

async fn metric_lines(admin: std::net::SocketAddr) -> String {
    admin_get(admin, "/metrics").await.1
}

/// The current version of podinfo's endpoints, to poll after.
async fn endpoints_version(addr: std::net::SocketAddr, tls: Arc<rustls::ClientConfig>) -> String {
    let r = get(addr, tls, "/v1/endpoints/podinfo/podinfo/9898").await;
    r.json()["version"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_cannot_hold_every_long_poll() {
    let files = Files::new();
    let mut s = files.settings();
    s.limits.max_watches = 4;
    s.limits.max_watches_per_identity = 2;
    let rt = mesh_runtime::start(s).await.unwrap();
    let anchors = files.pki.anchors_pem().to_owned();
    let frontend = config("frontend");
    let greedy = tls_config(Some(&files.identity(&frontend.identity)), &anchors);
    let version = endpoints_version(rt.api_addr, greedy.clone()).await;
    let poll = format!("/v1/endpoints/podinfo/podinfo/9898?after={version}&wait=5");

    let held: Vec<_> = (0..2).map(|_| tokio::spawn(get(rt.api_addr, greedy.clone(), &poll))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its third is refused with 429: its own share is used up.
    let r = get(rt.api_addr, greedy.clone(), &poll).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    assert!(r.json()["error"].as_str().unwrap().contains("too many open watches"));

    // Another workload's config poll is still held, not refused.
    let primary = config("podinfo-primary");
    let podinfo = tls_config(Some(&files.identity(&primary.identity)), &anchors);
    let digest = get(rt.api_addr, podinfo.clone(), &config_path(&workload_key(&primary), None, None)).await.digest();
    let config_poll = config_path(&workload_key(&primary), Some(&digest), Some(1));
    let r = get(rt.api_addr, podinfo.clone(), &config_poll).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED, "held for its wait: {:?}", r.body);

    // With every slot taken (2 + 2), a third identity gets 503.
    let podinfo_polls: Vec<_> = (0..2).map(|_| tokio::spawn(get(rt.api_addr, podinfo.clone(), &poll))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = tls_config(Some(&files.identity(OTHER_ID)), &anchors);
    let r = get(rt.api_addr, other, &poll).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.headers["retry-after"], "1");

    let metrics = metric_lines(rt.admin_addr).await;
    assert!(metrics.contains(r#"mesh_runtime_watches_refused_total{reason="identity-quota"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"mesh_runtime_watches_refused_total{reason="capacity"} 1"#), "{metrics}");
    assert!(metrics.contains("mesh_runtime_long_polls_open 4"), "{metrics}");
    for p in held.into_iter().chain(podinfo_polls) {
        assert_eq!(p.await.unwrap().status, StatusCode::NOT_MODIFIED);
    }
    rt.shutdown.cancel();
    rt.stopped().await;
}

/// A TLS connection to the API, or the error that ended it.
async fn tls_connect(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from(RUNTIME_ID).unwrap();
    tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_counted() {
    let files = Files::new();
    let mut s = files.settings();
    s.limits.max_connections = 2;
    let rt = mesh_runtime::start(s).await.unwrap();
    let tls = tls_config(Some(&files.identity(OTHER_ID)), files.pki.anchors_pem());
    let first = tls_connect(rt.api_addr, tls.clone()).await.unwrap();
    let _second = tls_connect(rt.api_addr, tls.clone()).await.unwrap();
    let third = tls_connect(rt.api_addr, tls.clone()).await;
    assert!(third.is_err(), "a third connection is closed before its handshake completes");
    let metrics = metric_lines(rt.admin_addr).await;
    assert!(metrics.contains(r#"mesh_runtime_connections_refused_total{listener="api"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"mesh_runtime_connections_open{listener="api"} 2"#), "{metrics}");

    // A connection closed frees its place.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = get(rt.api_addr, tls.clone(), "/v1/endpoints/podinfo/podinfo/9898").await;
    assert_eq!(r.status, StatusCode::OK);
    rt.shutdown.cancel();
    rt.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_requests_are_rate_limited_per_identity_and_overall() {
    let files = Files::new();
    let mut s = files.settings();
    // One token in 100 s: nothing refills during the test.
    s.limits.cert_rate = 0.01;
    s.limits.cert_burst = 4;
    s.limits.cert_rate_per_identity = 0.01;
    s.limits.cert_burst_per_identity = 2;
    let rt = mesh_runtime::start(s).await.unwrap();
    let tls = tls_config(None, files.pki.anchors_pem());
    let ask = |token: &str| serde_json::json!({"csr": csr(FRONTEND_ID).1, "token": token});

    for _ in 0..2 {
        let r = post_json(rt.api_addr, tls.clone(), "/v1/certificate", ask("good-frontend")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    // The frontend's burst is spent: 429, and the wait is the time to its next token.
    let r = post_json(rt.api_addr, tls.clone(), "/v1/certificate", ask("good-frontend")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((90..=100).contains(&wait), "{wait}");
    assert!(r.json()["error"].as_str().unwrap().contains("for this identity"));

    // That refusal came before the review and took nothing from the overall
    // budget: two more requests (made-up tokens, 403) fit in its 4.
    for _ in 0..2 {
        let r = post_json(rt.api_addr, tls.clone(), "/v1/certificate", ask("made-up")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    }
    let r = post_json(rt.api_addr, tls.clone(), "/v1/certificate", ask("made-up")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert!(r.headers.contains_key("retry-after"));

    let metrics = metric_lines(rt.admin_addr).await;
    assert!(metrics.contains(r#"mesh_runtime_certificates_refused_total{reason="identity-rate"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"mesh_runtime_certificates_refused_total{reason="overall-rate"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"mesh_runtime_certificates_refused_total{reason="unknown-token"} 2"#), "{metrics}");
    assert!(metrics.contains("mesh_runtime_certificates_issued_total 2"), "{metrics}");
    rt.shutdown.cancel();
    rt.stopped().await;
}
