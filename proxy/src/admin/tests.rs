use super::*;
use crate::metrics::Labels;
use crate::state::Loaded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    addr: std::net::SocketAddr,
    tx: state::ConfigTx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = state::channel();
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let admin = Admin { config: rx, metrics: metrics.clone(), identity: None };
    let task = tokio::spawn(serve_listener(listener, admin, shutdown.clone()));
    Server { addr, tx, metrics, shutdown, task }
}

/// (status, headers, body) of one request over a fresh connection.
async fn get(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut raw)).await.unwrap().unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn loaded() -> Loaded {
    let config = crate::state::deny_all_config();
    Loaded { config, generation: 1, digest: "sha256:ab".into(), key_id: "k".into() }
}

#[tokio::test]
async fn live_is_always_200_and_ready_waits_for_a_config() {
    let s = start().await;
    assert_eq!(get(s.addr, "GET", "/live").await.0, 200);
    let (status, _, body) = get(s.addr, "GET", "/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("no verified config"), "{body}");
    s.tx.send_replace(Some(Arc::new(loaded())));
    let (status, _, body) = get(s.addr, "GET", "/ready").await;
    assert_eq!(status, 200);
    assert!(body.contains("generation 1"), "{body}");
    // Live stays 200 whatever the config: a restart would not load one sooner.
    let (status, _, body) = get(s.addr, "GET", "/live").await;
    assert_eq!((status, body.as_str()), (200, "live\n"));
}

#[tokio::test]
async fn metrics_are_served_in_openmetrics_text() {
    let s = start().await;
    let labels = Labels { direction: "inbound", target: "server:web".into(), verdict: "allow", ..Labels::default() };
    s.metrics.request(&labels, Duration::from_millis(1));
    let (status, head, body) = get(s.addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/openmetrics-text"), "{head}");
    assert!(body.contains("mesh_proxy_requests_total{direction=\"inbound\",target=\"server:web\""), "{body}");
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let s = start().await;
    assert_eq!(get(s.addr, "GET", "/").await.0, 404);
    assert_eq!(get(s.addr, "GET", "/metricsx").await.0, 404);
    let (status, head, _) = get(s.addr, "POST", "/ready").await;
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, head"), "{head}");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let mut s = start().await;
    // An idle keep-alive connection must not hold shutdown up.
    let idle = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    s.shutdown.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), &mut s.task).await.expect("server stops");
    assert!(r.unwrap().is_ok());
    drop(idle);
    assert!(tokio::net::TcpStream::connect(s.addr).await.is_err(), "still accepting after shutdown");
}
