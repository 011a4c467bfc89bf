//! End-to-end decisions on one server (reference §3.3, §7.2, §7.3, §10.2).

use crate::common::*;
use mesh_proxy_api::*;

const HTTP1: Protocol = Protocol::Http1;

fn detect() -> Protocol {
    Protocol::Detect { timeout_ms: 10_000 }
}

/// e2e_authorization_policy.rs `targets_route`: Server `web` (HTTP/1), an
/// Exact "/" route authorized for meshed clients, an Exact "/roux" route
/// without authorization.
fn targets_route_server(server_authzs: Vec<Authorization>) -> InboundServer {
    let root = with_authz(route_with("root", vec![exact("/")]), vec![mesh_tls("root-meshed", &["*"])]);
    let roux = route_with("roux", vec![exact("/roux")]);
    server(HTTP1, server_authzs, vec![root, roux])
}

#[test]
fn targets_route() {
    let s = targets_route_server(vec![]);
    let curl = meshed("10.42.0.9", WEB_ID);
    let root = decide_http(&s, &curl, &HttpRequest::get("/"));
    assert!(matches!(root, HttpVerdict::Allowed { route: 0, rule: 0, authz } if authz.source == AuthzSource::Route(0)));
    assert_eq!(root.http_status(), 200);
    assert_eq!(decide_http(&s, &curl, &HttpRequest::get("/noroute")).http_status(), 404);
    assert_eq!(decide_http(&s, &unmeshed("10.42.0.10"), &HttpRequest::get("/")).http_status(), 403);
    let roux = decide_http(&s, &curl, &HttpRequest::get("/roux"));
    assert_eq!(roux, HttpVerdict::Unauthorized { route: 1, rule: 0 });
    assert_eq!(roux.http_status(), 403);
}

#[test]
fn targets_route_after_a_server_policy_is_added() {
    let s = targets_route_server(vec![mesh_tls("server-meshed", &["*"])]);
    let curl = meshed("10.42.0.9", WEB_ID);
    let roux = decide_http(&s, &curl, &HttpRequest::get("/roux"));
    assert!(matches!(roux, HttpVerdict::Allowed { route: 1, authz, .. } if authz.source == AuthzSource::Server(0)));
    // Server-level authorizations cover routes but do not create them.
    assert_eq!(decide_http(&s, &curl, &HttpRequest::get("/noroute")).http_status(), 404);
    assert_eq!(decide_http(&s, &unmeshed("10.42.0.10"), &HttpRequest::get("/roux")).http_status(), 403);
}

#[test]
fn a_route_authorization_permits_only_its_route() {
    let a = with_authz(route_with("a", vec![prefix("/a")]), vec![allow_all("a-open")]);
    let b = route_with("b", vec![prefix("/b")]);
    let s = server(HTTP1, vec![], vec![a, b]);
    let client = unmeshed("10.0.0.1");
    assert!(decide_http(&s, &client, &HttpRequest::get("/a")).is_allowed());
    assert_eq!(decide_http(&s, &client, &HttpRequest::get("/b")).http_status(), 403);
}

/// A default server under `deny` (§1.4): the `default` route (Prefix "/",
/// no route authorizations) and the `probe` route (GET + Exact probe paths,
/// unauthenticated from the probe networks).
fn deny_default_server() -> InboundServer {
    let default = route_with("default", vec![prefix("/")]);
    let get = |p: &str| HttpMatch { method: Some("GET".into()), ..exact(p) };
    let probe_authz = Authorization {
        meta: Meta::default_named("probe"),
        networks: everywhere(),
        authentication: Authentication::Unauthenticated,
    };
    let probe = with_authz(route_with("probe", vec![get("/live"), get("/ready")]), vec![probe_authz]);
    let mut s = server(detect(), vec![], vec![default, probe]);
    s.meta = Meta::default_named("deny");
    s
}

#[test]
fn probes_pass_under_deny_everything_else_is_forbidden() {
    let s = deny_default_server();
    let kubelet = unmeshed("192.168.1.10");
    let ready = decide_http(&s, &kubelet, &HttpRequest::get("/ready"));
    assert!(matches!(ready, HttpVerdict::Allowed { route: 1, .. }));
    assert_eq!(decide_http(&s, &kubelet, &HttpRequest::get("/metrics")).http_status(), 403);
    // POST /ready falls to the default route: 403, not 404.
    assert_eq!(
        decide_http(&s, &kubelet, &HttpRequest::post("/ready")),
        HttpVerdict::Unauthorized { route: 0, rule: 0 }
    );
    assert_eq!(decide_tcp(&s, &kubelet), TcpVerdict::Closed);
}

#[test]
fn localhost_is_allowed_even_under_deny_but_still_needs_a_route() {
    let s = deny_default_server();
    let local = decide_http(&s, &unmeshed("127.0.0.1"), &HttpRequest::get("/metrics"));
    assert!(matches!(local, HttpVerdict::Allowed { authz, .. } if authz.source == AuthzSource::Localhost));
    let routed = server(HTTP1, vec![], vec![route_with("api", vec![prefix("/api")])]);
    assert_eq!(decide_http(&routed, &unmeshed("::1"), &HttpRequest::get("/x")), HttpVerdict::NoRoute);
    assert!(decide_tcp(&routed, &unmeshed("127.0.0.1")).is_allowed());
}

#[test]
fn audit_allows_everyone_but_does_not_bypass_routing() {
    let s = server(HTTP1, vec![audit()], vec![route_with("api", vec![prefix("/api")])]);
    let stranger = unmeshed("203.0.113.7");
    let v = decide_http(&s, &stranger, &HttpRequest::get("/api/x"));
    assert!(matches!(v, HttpVerdict::Allowed { authz, .. } if authz.is_audit()));
    assert_eq!(decide_http(&s, &stranger, &HttpRequest::get("/other")).http_status(), 404);
}

#[test]
fn audit_behind_a_real_policy_reports_the_real_one() {
    // The first match is reported: audit logs only what nothing else allowed.
    let s = server(HTTP1, vec![mesh_tls("meshed", &["*"]), audit()], vec![route_with("all", vec![prefix("/")])]);
    let v = decide_http(&s, &meshed("10.0.0.1", WEB_ID), &HttpRequest::get("/"));
    assert!(matches!(v, HttpVerdict::Allowed { authz, .. } if !authz.is_audit()));
    let v = decide_http(&s, &unmeshed("10.0.0.1"), &HttpRequest::get("/"));
    assert!(matches!(v, HttpVerdict::Allowed { authz, .. } if authz.is_audit()));
}

#[test]
fn an_empty_route_list_routes_nothing() {
    let s = server(HTTP1, vec![allow_all("open")], vec![]);
    assert_eq!(decide_http(&s, &unmeshed("10.0.0.1"), &HttpRequest::get("/")), HttpVerdict::NoRoute);
}

#[test]
fn grpc_servers_route_with_grpc_routes_and_answer_grpc_statuses() {
    let mut vote = grpc_route("vote", vec![grpc_match(Some("emojivoto.v1.VotingService"), None)]);
    vote.authorizations = vec![mesh_tls("web", &[WEB_ID])];
    let mut s = server(Protocol::Grpc, vec![], vec![route_with("ignored", vec![prefix("/")])]);
    s.grpc_routes = vec![vote];
    let web = meshed("10.0.0.1", WEB_ID);
    let ok = decide_grpc(&s, &web, &GrpcRequest::new("emojivoto.v1.VotingService", "VoteDoughnut"));
    assert!(ok.is_allowed());
    assert_eq!(ok.grpc_status(), 0);
    assert_eq!(ok.route_meta(&s).map(|m| m.name.as_str()), Some("vote"));
    let other = decide_grpc(&s, &web, &GrpcRequest::new("emojivoto.v1.EmojiService", "ListAll"));
    assert_eq!((other, other.grpc_status()), (HttpVerdict::NoRoute, 5));
    let stranger = decide_grpc(&s, &meshed("10.0.0.2", VOTE_ID), &GrpcRequest::new("emojivoto.v1.VotingService", "X"));
    assert_eq!(stranger.grpc_status(), 7);
    // Plain HTTP on a gRPC server meets the gRPC routes, not the HTTP ones.
    assert_eq!(decide_http(&s, &web, &HttpRequest::get("/")), HttpVerdict::NoRoute);
}

#[test]
fn grpc_calls_on_http_servers_use_http_routes() {
    let s =
        server(detect(), vec![], vec![with_authz(route_with("svc", vec![prefix("/pkg.Svc")]), vec![allow_all("o")])]);
    let v = decide_grpc(&s, &unmeshed("10.0.0.1"), &GrpcRequest::new("pkg.Svc", "Call"));
    assert!(matches!(v, HttpVerdict::Allowed { route: 0, rule: 0, .. }));
    assert_eq!(v.route_meta(&s).map(|m| m.name.as_str()), Some("svc"));
}

#[test]
fn tcp_uses_server_authorizations_only() {
    let route = with_authz(route_with("open-route", vec![prefix("/")]), vec![allow_all("route-open")]);
    let s = server(detect(), vec![mesh_tls("meshed", &["*"])], vec![route]);
    let stranger = unmeshed("10.0.0.1");
    assert!(decide_http(&s, &stranger, &HttpRequest::get("/")).is_allowed());
    assert_eq!(decide_tcp(&s, &stranger), TcpVerdict::Closed);
    let web = meshed("10.0.0.1", WEB_ID);
    assert!(matches!(decide_tcp(&s, &web), TcpVerdict::Allowed { authz } if authz.source == AuthzSource::Server(0)));
}

#[test]
fn opaque_servers_decide_per_connection() {
    let s = server(Protocol::Opaque, vec![mesh_tls("meshed", &["*"])], vec![]);
    let web = meshed("10.0.0.1", WEB_ID);
    assert!(matches!(decide(&s, &web, &HttpRequest::get("/anything")), Verdict::Tcp(TcpVerdict::Allowed { .. })));
    assert_eq!(decide(&s, &unmeshed("10.0.0.1"), &HttpRequest::get("/")), Verdict::Tcp(TcpVerdict::Closed));
    let http = server(HTTP1, vec![], vec![]);
    assert_eq!(decide(&http, &web, &HttpRequest::get("/")), Verdict::Http(HttpVerdict::NoRoute));
}

fn inbound() -> Inbound {
    Inbound {
        ports: vec![PortServer { port: 8080, server: server(HTTP1, vec![], vec![]) }],
        default_server: deny_default_server(),
        skip_ports: vec![PortRange { start: 4567, end: 4568 }],
        skip_subnets: vec!["10.96.0.0/12".parse().unwrap()],
    }
}

#[test]
fn port_lookup() {
    let inbound = inbound();
    assert_eq!(inbound.lookup(4567), PortPolicy::Skipped);
    assert_eq!(inbound.lookup(4568), PortPolicy::Skipped);
    assert!(matches!(inbound.lookup(8080), PortPolicy::Server(s) if s.meta.kind == "server"));
    // Any other port, declared or not, gets the default server.
    assert!(matches!(inbound.lookup(9999), PortPolicy::Server(s) if s.meta == Meta::default_named("deny")));
    assert!(inbound.skips_source(ip("10.100.0.1")));
    assert!(!inbound.skips_source(ip("10.0.0.1")));
}
