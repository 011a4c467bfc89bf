//! TCPRoute and TLSRoute splits on the wire (tests/e2e/repos/stream-routes,
//! the golden case outbound-tcp-tls-routes): web's proxy sends db:5432
//! connections 80/20 to db and db-v2, and api:443 connections by their
//! ClientHello's SNI, 3:1 to api and api-v2 for api.example.com. Each
//! backend's echo app greets with its name, which says where a connection went.

use super::mesh::{self, Launch, Mesh};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Streams {
    pub mesh: Mesh,
    /// web's `--outbound-tcp` listeners for db:5432 and api:443.
    pub db: SocketAddr,
    pub api: SocketAddr,
}

pub fn start() -> Streams {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("repos/stream-routes");
    let build = mesh::build_dir(&repo);
    let o = &build.outcome;
    let order: Vec<&str> = o
        .resolved
        .workloads
        .iter()
        .enumerate()
        .filter(|(wi, _)| o.configs[*wi].is_some())
        .map(|(_, w)| w.name.as_str())
        .collect();
    let ip_of = |name: &str| mesh::pod_ip(order.iter().position(|n| *n == name).expect("workload has a config"));
    let domain = &o.resolved.settings.trust_domain;
    let svc = |name: &str, port: u16, target: u16| {
        let id = format!("{name}.shop.serviceaccount.identity.linkerd.{domain}");
        let ep = serde_json::json!({ "addr": SocketAddr::new(ip_of(name), target).to_string(), "identity": id });
        serde_json::json!({ "namespace": "shop", "name": name, "ports": [{ "port": port, "endpoints": [ep] }] })
    };
    let discovery = serde_json::json!({ "services": [
        svc("api", 443, 8443), svc("api-v2", 443, 8443), svc("db", 5432, 5432), svc("db-v2", 5432, 5432),
    ]});
    let web = mesh::app_ip_of(order.iter().position(|n| *n == "web").expect("web has a config"));
    let (db, api) = (SocketAddr::new(web, 15432), SocketAddr::new(web, 15443));
    let mut proxy_flags = BTreeMap::new();
    proxy_flags.insert(
        "web".to_string(),
        vec![
            "--outbound-tcp".into(),
            format!("{db}=db.shop:5432"),
            "--outbound-tcp".into(),
            format!("{api}=api.shop:443"),
        ],
    );
    let launch = Launch {
        build: &build,
        client_ip: "10.40.7.7".parse().unwrap(),
        discovery,
        echo_flags: BTreeMap::new(),
        transparent: false,
        runtime: None,
        proxy_flags,
    };
    let mesh = Mesh::start(&launch);
    Streams { mesh, db, api }
}

/// Sends `first` and returns the greeting line of the backend reached, or
/// `None` when the connection is closed without one.
async fn greeting(addr: SocketAddr, first: &[u8]) -> Option<String> {
    let mut c = TcpStream::connect(addr).await.ok()?;
    c.write_all(first).await.ok()?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while c.read(&mut byte).await.ok()? == 1 {
            if byte[0] == b'\n' {
                return Some(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.push(byte[0]);
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.ok().flatten()
}

/// Counts of backends over `n` connections each sending `first`.
async fn tally(s: &Streams, addr: SocketAddr, first: &[u8], n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let name = greeting(addr, first).await.unwrap_or_else(|| panic!("no greeting\n{}", s.mesh.dump_logs()));
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// `share` of `n` within four binomial standard deviations: a correct proxy
/// fails this with probability about 6e-5.
fn assert_share(what: &str, got: usize, n: usize, share: f64) {
    let (n_f, got_f) = (n as f64, got as f64);
    let sigma = (n_f * share * (1.0 - share)).sqrt();
    let expected = n_f * share;
    assert!((got_f - expected).abs() <= 4.0 * sigma, "{what}: {got} of {n}, expected {expected} ± {:.1}", 4.0 * sigma);
}

pub async fn tcp_split(s: &Streams) {
    const N: usize = 400;
    let counts = tally(s, s.db, b"ping\n", N).await;
    assert_eq!(counts.keys().map(String::as_str).collect::<Vec<_>>(), ["db", "db-v2"], "{counts:?}");
    // Weights 80:20 → p = 0.8, σ = √(400·0.8·0.2) = 8: 320 ± 32.
    assert_share("db:5432 connections to db", counts["db"], N, 0.8);
    println!("TCPRoute db-split: {counts:?} of {N} connections (80/20 expected)");
}

pub async fn tls_split_by_sni(s: &Streams) {
    const N: usize = 400;
    let hello = client_hello("api.example.com");
    let counts = tally(s, s.api, &hello, N).await;
    assert_eq!(counts.keys().map(String::as_str).collect::<Vec<_>>(), ["api", "api-v2"], "{counts:?}");
    // api-exact's weights 3:1 → p = 0.75, σ = √(400·0.75·0.25) ≈ 8.7: 300 ± 35.
    assert_share("api.example.com connections to api", counts["api"], N, 0.75);
    println!("TLSRoute api-exact: {counts:?} of {N} connections (3:1 expected)");
    // api-wild sends every other name under example.com to api alone.
    let wild = tally(s, s.api, &client_hello("www.example.com"), 20).await;
    assert_eq!(wild.get("api"), Some(&20), "{wild:?}");
    // No route matches example.com itself: web's proxy closes the connection.
    assert_eq!(greeting(s.api, &client_hello("example.com")).await, None);
}

/// The first flight of a real TLS client (rustls) asking for `sni`: its
/// ClientHello record. The proxy routes on it without terminating TLS, so
/// the test never needs the handshake to finish. (mesh-proxy's own unit
/// tests build hellos by hand for the byte-level cases: no SNI, truncation.)
pub fn client_hello(sni: &str) -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).expect("a DNS name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client connection");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("ClientHello written");
    hello
}
