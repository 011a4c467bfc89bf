//! Egress on the wire (tests/e2e/repos/egress): web's proxy polices its
//! connections to hosts outside the cluster, played by loopback addresses in
//! 127.9.0.0/16 that meshc.yaml leaves out of the cluster networks. iptables
//! redirects web's connections to 127.9.0.0/16 to its proxy's transparent
//! listener (the proxy's own connections, from the pod address, are not
//! redirected). Every outcome is compared with `meshc reach --to egress:`.

use super::mesh::{self, Launch, Mesh};
use meshc::query::classes::Classes;
use meshc::query::egress::{EgressProtocol, reach_egress, traffic_of};
use meshc::query::evaluate::Verdict;
use meshc::query::reach::{parse_client, request_of};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TRANSPARENT_PORT: u16 = 15999;
const HTTP_HOST: &str = "127.9.0.1:80";
const TLS_HOST: &str = "127.9.0.2:443";
const TCP_HOST: &str = "127.9.0.3:5432";
const CLOSED_HOST: &str = "127.9.0.4:6000";

pub struct Egress {
    pub mesh: Mesh,
    pub build: mesh::Build,
}

pub fn start() -> Egress {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("repos/egress");
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
    let n = |name: &str| order.iter().position(|n| *n == name).expect("workload has a config");
    let domain = &o.resolved.settings.trust_domain;
    let ep = serde_json::json!({
        "addr": SocketAddr::new(mesh::pod_ip(n("mirror")), 8080).to_string(),
        "identity": format!("mirror.shop.serviceaccount.identity.linkerd.{domain}"),
    });
    let discovery = serde_json::json!({ "services": [
        { "namespace": "shop", "name": "mirror", "ports": [{ "port": 80, "endpoints": [ep] }] },
    ]});
    let client_ip = "10.40.7.7";
    let mut proxy_flags = BTreeMap::new();
    proxy_flags.insert("web".to_string(), vec!["--outbound-transparent".into(), format!("0.0.0.0:{TRANSPARENT_PORT}")]);
    let launch = Launch {
        build: &build,
        client_ip: client_ip.parse().unwrap(),
        discovery,
        echo_flags: BTreeMap::new(),
        transparent: false,
        runtime: None,
        proxy_flags,
    };
    let mesh = Mesh::start(&launch);
    let port = TRANSPARENT_PORT.to_string();
    super::netns::iptables(&[
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        "127.9.0.0/16",
        "!",
        "-s",
        client_ip,
        "-j",
        "REDIRECT",
        "--to-ports",
        &port,
    ]);
    Egress { mesh, build }
}

/// The external hosts: HTTP answers `external`, the others greet with a line.
pub async fn external_hosts() {
    let http = TcpListener::bind(HTTP_HOST).await.expect("bind the external HTTP host");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = http.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let _ = s.read(&mut buf).await;
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nexternal";
                let _ = s.write_all(reply).await;
            });
        }
    });
    for (addr, greeting) in [(TLS_HOST, "external-tls\n"), (TCP_HOST, "external-tcp\n"), (CLOSED_HOST, "external\n")] {
        let l = TcpListener::bind(addr).await.expect("bind an external host");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(greeting.as_bytes()).await;
                });
            }
        });
    }
}

/// Sends `first` to `addr` (through iptables, to web's proxy) and returns
/// everything received until the connection closes.
async fn exchange(addr: &str, first: &[u8]) -> Vec<u8> {
    let Ok(mut c) = TcpStream::connect(addr).await else { return Vec::new() };
    if c.write_all(first).await.is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await;
    out
}

/// What the wire showed, in reach's terms: verdict, HTTP status, where it went.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    verdict: Verdict,
    status: Option<u32>,
    reached: Option<String>,
}

fn http_seen(reply: &[u8]) -> Seen {
    let text = String::from_utf8_lossy(reply);
    let status: Option<u32> = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let echo = text.lines().find_map(|l| l.strip_prefix("x-echo-name: ")).map(|n| format!("service {}", n.trim()));
    let reached = echo.or_else(|| text.ends_with("external").then(|| "original".to_owned()));
    match status {
        Some(200) => Seen { verdict: Verdict::Allow, status: None, reached },
        Some(403) => Seen { verdict: Verdict::Deny, status: Some(403), reached: None },
        Some(500) => Seen { verdict: Verdict::NoRoute, status: Some(500), reached: None },
        s => Seen { verdict: Verdict::Depends, status: s, reached: Some(format!("unexpected reply {text:?}")) },
    }
}

fn stream_seen(reply: &[u8]) -> Seen {
    let text = String::from_utf8_lossy(reply).trim().to_owned();
    match text.as_str() {
        "" => Seen { verdict: Verdict::Deny, status: None, reached: None },
        "external-tls" | "external-tcp" | "external" => {
            Seen { verdict: Verdict::Allow, status: None, reached: Some("original".to_owned()) }
        }
        other => Seen { verdict: Verdict::Depends, status: None, reached: Some(format!("unexpected reply {other:?}")) },
    }
}

/// What `meshc reach --from deploy/shop/web --to egress:DST` answers.
fn predicted(
    e: &Egress,
    to: &str,
    traffic: impl FnOnce(&meshc::query::egress_ref::EgressRef) -> EgressProtocol,
) -> Seen {
    let o = &e.build.outcome;
    let classes = Classes::derive(&o.resolved, &o.configs);
    let client = parse_client(o, &classes, "deploy/shop/web").expect("client");
    let target = meshc::query::egress_ref::parse(&format!("egress:{to}")).expect("egress ref").expect("valid");
    let r = reach_egress(o, &client, &target, &traffic(&target)).expect("reach answers");
    let reached = r.backends.first().filter(|_| r.verdict == Verdict::Allow).map(|b| match (&b.service, b.kind) {
        (Some(s), "service") => {
            format!("service {}", s.split('/').nth(1).and_then(|n| n.split(':').next()).unwrap_or(s))
        }
        (_, kind) => kind.to_owned(),
    });
    Seen { verdict: r.verdict, status: r.status, reached }
}

fn compare(what: &str, wire: Seen, reach: Seen, mesh: &Mesh) -> usize {
    assert_eq!(wire, reach, "{what}: the wire (left) and meshc reach (right) disagree\n{}", mesh.dump_logs());
    println!("egress {what}: {wire:?} as meshc reach predicts");
    1
}

/// Every case through web's proxy, each compared with meshc reach.
pub async fn outcomes_match_meshc_reach(e: &Egress) -> usize {
    let mut checked = 0;
    for path in ["/allowed/x", "/mirror/x", "/other"] {
        let req = format!("GET {path} HTTP/1.1\r\nhost: api.example.com\r\nconnection: close\r\n\r\n");
        let wire = http_seen(&exchange(HTTP_HOST, req.as_bytes()).await);
        let reach = predicted(e, HTTP_HOST, |t| {
            traffic_of(t, request_of(Some("GET"), Some(path), Some("api.example.com"), std::iter::empty()), None)
        });
        checked += compare(&format!("HTTP GET {path} to {HTTP_HOST}"), wire, reach, &e.mesh);
    }
    for sni in ["api.example.com", "www.example.com"] {
        let wire = stream_seen(&exchange(TLS_HOST, &super::stream_routes::client_hello(sni)).await);
        let reach = predicted(e, TLS_HOST, |t| traffic_of(t, None, Some(sni.to_owned())));
        checked += compare(&format!("TLS SNI {sni} to {TLS_HOST}"), wire, reach, &e.mesh);
    }
    for (host, what) in [(TCP_HOST, "TCPRoute db"), (CLOSED_HOST, "no route")] {
        let wire = stream_seen(&exchange(host, b"\x00opaque\n").await);
        let reach = predicted(e, host, |_| EgressProtocol::Opaque);
        checked += compare(&format!("opaque TCP to {host} ({what})"), wire, reach, &e.mesh);
    }
    checked
}
