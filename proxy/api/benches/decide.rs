//! Per-request decision cost (issue 7: an authorization decision under 1 µs).
//!
//! The config is shaped like what `meshc build` emits for a busy workload: a
//! Server with three HTTPRoutes of several rules each, five authorizations
//! mixing networks, identity lists and suffixes, and a meshed, identified
//! client whose request matches only the last route — so route ranking and
//! the authorization scan both do their full work. It is written as JSON in
//! the config's own wire format because `meshc` depends on this crate and
//! cannot be a dev-dependency of it.
//!
//! Run: `cargo bench -p mesh-proxy-api --bench decide`.

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_proxy_api::{Client, HttpRequest, InboundServer, OutboundService, authorize, decide_http, route_outbound};
use serde_json::json;
use std::hint::black_box;

const CLIENT_ID: &str = "checkout.shop.serviceaccount.identity.linkerd.cluster.local";

fn mtls(identities: &[&str], suffixes: &[&str]) -> serde_json::Value {
    json!({"kind": "tlsAuthenticated", "identities": identities, "suffixes": suffixes})
}

fn authz(name: &str, nets: &[&str], authn: serde_json::Value) -> serde_json::Value {
    let networks: Vec<_> = nets.iter().map(|n| json!({"net": n})).collect();
    json!({"meta": {"kind": "authorizationpolicy", "name": name}, "networks": networks, "authentication": authn})
}

fn rule(path: serde_json::Value, method: Option<&str>, header: Option<(&str, &str)>) -> serde_json::Value {
    let mut m = json!({"path": path});
    if let Some(method) = method {
        m["method"] = json!(method);
    }
    if let Some((name, value)) = header {
        m["headers"] = json!([{"name": name, "value": {"type": "exact", "value": value}}]);
    }
    json!({"matches": [m]})
}

fn prefix(p: &str) -> serde_json::Value {
    json!({"type": "prefix", "value": p})
}

fn route(name: &str, rules: Vec<serde_json::Value>, authzs: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"meta": {"kind": "httproute", "name": name}, "hostnames": [], "rules": rules, "authorizations": authzs})
}

/// Server authorizations: four that the client fails (wrong network, wrong
/// identities, wrong suffix, plaintext-only network) and the last one it passes.
fn server_authorizations() -> Vec<serde_json::Value> {
    vec![
        authz("monitoring", &["10.200.0.0/16"], json!({"kind": "unauthenticated"})),
        authz(
            "admins",
            &["0.0.0.0/0", "::/0"],
            mtls(
                &["ops.admin.serviceaccount.identity.linkerd.cluster.local", "spiffe://cluster.local/ns/admin/sa/ci"],
                &[],
            ),
        ),
        authz("batch-ns", &["0.0.0.0/0", "::/0"], mtls(&[], &[".batch.serviceaccount.identity.linkerd.cluster.local"])),
        authz("node-probes", &["192.168.0.0/16"], json!({"kind": "tlsUnauthenticated"})),
        authz("shop-ns", &["10.0.0.0/8"], mtls(&[], &[".shop.serviceaccount.identity.linkerd.cluster.local"])),
    ]
}

fn inbound_server() -> InboundServer {
    let routes = vec![
        route(
            "admin",
            vec![
                rule(json!({"type": "exact", "value": "/admin/config"}), Some("PUT"), None),
                rule(prefix("/admin/users"), None, Some(("x-admin", "yes"))),
                rule(json!({"type": "regex", "value": "/admin/jobs/[0-9]+"}), Some("DELETE"), None),
            ],
            vec![authz(
                "admin-route",
                &["0.0.0.0/0"],
                mtls(&["ops.admin.serviceaccount.identity.linkerd.cluster.local"], &[]),
            )],
        ),
        route(
            "catalog",
            vec![
                rule(prefix("/catalog"), Some("GET"), None),
                rule(prefix("/search"), Some("GET"), None),
                rule(json!({"type": "exact", "value": "/healthz"}), None, None),
            ],
            vec![],
        ),
        route(
            "orders",
            vec![
                rule(prefix("/orders/export"), Some("GET"), Some(("x-export", "csv"))),
                rule(prefix("/cart"), Some("PUT"), None),
                rule(prefix("/orders"), Some("POST"), None),
            ],
            vec![],
        ),
    ];
    let server = json!({
        "meta": {"kind": "server", "name": "shop-api"},
        "protocol": {"kind": "http1"},
        "authorizations": server_authorizations(),
        "httpRoutes": routes,
    });
    serde_json::from_value(server).expect("the benchmark's InboundServer matches the config schema")
}

fn outbound_service() -> OutboundService {
    let backend = |name: &str, weight: u32| json!({"target": {"kind": "service", "namespace": "shop", "name": name, "port": 8080}, "weight": weight});
    let svc_rule = |path: &str, method: &str, backends: serde_json::Value| json!({"matches": [{"path": prefix(path), "method": method}], "backends": backends});
    let svc = json!({
        "namespace": "shop",
        "name": "orders",
        "ports": [{
            "port": 8080,
            "protocol": {"kind": "http1"},
            "httpRoutes": [
                {"meta": {"kind": "httproute", "name": "reads"}, "rules": [
                    svc_rule("/catalog", "GET", json!([backend("orders", 1)])),
                    svc_rule("/search", "GET", json!([backend("orders", 1)])),
                ]},
                {"meta": {"kind": "httproute", "name": "canary"}, "rules": [
                    svc_rule("/orders", "POST", json!([backend("orders", 90), backend("orders-canary", 10)])),
                ]},
            ],
        }],
    });
    serde_json::from_value(svc).expect("the benchmark's OutboundService matches the config schema")
}

fn request() -> HttpRequest {
    HttpRequest::post("/orders/1234/items?expand=true")
        .with_host("orders.shop.svc.cluster.local:8080")
        .with_header("content-type", "application/json")
        .with_header("user-agent", "checkout/1.4")
}

fn benches(c: &mut Criterion) {
    let server = inbound_server();
    let client = Client::identified("10.42.1.17".parse().expect("ip"), CLIENT_ID);
    let req = request();
    assert!(decide_http(&server, &client, &req).is_allowed(), "the benchmark request must take the allowed path");

    c.bench_function("decide_http/3 routes, 5 authorizations, match last route", |b| {
        b.iter(|| decide_http(black_box(&server), black_box(&client), black_box(&req)).is_allowed())
    });
    c.bench_function("authorize/5 server authorizations, last permits", |b| {
        b.iter(|| authorize(black_box(&[]), black_box(&server.authorizations), black_box(&client)).is_some())
    });

    let svc = outbound_service();
    assert!(route_outbound(&svc, 8080, &req).is_some(), "the benchmark request must route");
    c.bench_function("route_outbound/2 routes, weighted canary", |b| {
        b.iter(|| route_outbound(black_box(&svc), black_box(8080), black_box(&req)).is_some())
    });
}

criterion_group!(decide, benches);
criterion_main!(decide);
