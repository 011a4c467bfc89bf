//! Outbound on the wire with podinfo-canary: the frontend's proxy splits
//! `GET /api…` 90/10 between primary and canary, sends `x-canary: always`
//! to the canary, retries 5xx twice (masking a flaky primary), times out
//! at 2 s, and answers 404 itself for requests no rule matches.

use super::clients::{self, Observed, Req};
use super::mesh::{self, Launch, Mesh};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const HOST: &str = "podinfo.podinfo.svc.cluster.local:9898";

pub struct Canary {
    pub mesh: Mesh,
    /// The frontend app's address: where its requests to its proxy come from.
    pub frontend: IpAddr,
    pub outbound: SocketAddr,
}

/// Endpoints of podinfo, podinfo-primary and podinfo-canary, where
/// `Mesh::start` puts the pods (numbered in workload order among those with
/// configs), each with podinfo's identity.
pub fn discovery(build: &mesh::Build) -> serde_json::Value {
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
    let id = format!("podinfo.podinfo.serviceaccount.identity.linkerd.{}", o.resolved.settings.trust_domain);
    let ep = |name: &str| serde_json::json!({ "addr": SocketAddr::new(ip_of(name), 9898).to_string(), "identity": id });
    let svc = |name: &str, eps: Vec<serde_json::Value>| serde_json::json!({ "namespace": "podinfo", "name": name, "ports": [{ "port": 9898, "endpoints": eps }] });
    let discovery = serde_json::json!({ "services": [
        svc("podinfo", vec![ep("podinfo-primary"), ep("podinfo-canary")]),
        svc("podinfo-primary", vec![ep("podinfo-primary")]),
        svc("podinfo-canary", vec![ep("podinfo-canary")]),
    ]});
    discovery
}

/// The frontend, primary and canary, with every seventh primary answer a 503.
pub fn start(build: &mesh::Build) -> Canary {
    let discovery = discovery(build);
    let mut echo_flags = BTreeMap::new();
    echo_flags.insert("podinfo-primary".to_string(), vec!["--fail-every".to_string(), "7".to_string()]);
    let client_ip = "10.40.7.7".parse().unwrap();
    let mesh = Mesh::start(&Launch {
        build,
        client_ip,
        discovery,
        echo_flags,
        transparent: false,
        runtime: None,
        proxy_flags: BTreeMap::new(),
    });
    let f = mesh.workload("frontend");
    let (frontend, outbound) = (f.admin.ip(), f.outbound);
    Canary { mesh, frontend, outbound }
}

async fn send(c: &Canary, req: &Req) -> Observed {
    clients::http(c.frontend, c.outbound, None, req, HOST).await
}

fn app_of(o: &Observed) -> Option<&str> {
    match o {
        Observed::Response { status: 200, app: Some(a), .. } => Some(a),
        _ => None,
    }
}

/// 90/10 within four standard deviations, and every request answered 200
/// although one in seven of the primary's answers is a 503.
pub async fn split_and_retries(c: &Canary) {
    const N: usize = 1000;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..N {
        let seen = send(c, &Req::get("/api/echo")).await;
        let app = app_of(&seen).unwrap_or_else(|| panic!("GET /api/echo: {seen:?}\n{}", c.mesh.dump_logs()));
        *counts.entry(app.to_string()).or_default() += 1;
    }
    let canary = counts.get("podinfo-canary").copied().unwrap_or(0) as f64 / N as f64;
    let sigma = (0.1f64 * 0.9 / N as f64).sqrt();
    println!("split over {N} requests: {counts:?} (canary {:.3}, expected 0.100 ± {:.3})", canary, 4.0 * sigma);
    assert!((canary - 0.1).abs() <= 4.0 * sigma, "canary share {canary} is not 10% ± 4σ: {counts:?}");
}

pub async fn header_routing(c: &Canary) {
    for _ in 0..50 {
        let seen = send(c, &Req::get("/anything").with_header("x-canary", "always")).await;
        assert_eq!(app_of(&seen), Some("podinfo-canary"), "x-canary: always went elsewhere: {seen:?}");
    }
}

pub async fn unmatched_requests_get_404_from_the_client_proxy(c: &Canary) {
    for req in [Req::get("/other"), Req { method: "POST", ..Req::get("/api/echo") }] {
        let seen = send(c, &req).await;
        assert!(
            matches!(seen, Observed::Response { status: 404, app: None, .. }),
            "{} {}: {seen:?}",
            req.method,
            req.path
        );
    }
}

pub async fn request_timeout(c: &Canary) {
    let start = Instant::now();
    let seen = send(c, &Req::get("/api/slow").with_header("x-echo-delay-ms", "5000")).await;
    let took = start.elapsed();
    assert!(matches!(seen, Observed::Response { status: 504, app: None, .. }), "slow request: {seen:?}");
    assert!(took < Duration::from_millis(2600), "the 2s route timeout took {took:?}");
}
