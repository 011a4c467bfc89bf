//! Connection routing against linkerd2-proxy's rules: SNI precedence
//! (`linkerd/tls/route/src/tests.rs`), the port's one route kind, no SNI.

use super::*;
use crate::outbound::BackendTarget;

fn backend(name: &str, weight: u32) -> Backend {
    let target = BackendTarget::Service { namespace: "shop".into(), name: name.into(), port: 443 };
    Backend { target, weight, filters: vec![] }
}

fn meta(name: &str) -> Meta {
    Meta { kind: "tlsroute".into(), name: name.into(), group: Some("gateway.networking.k8s.io".into()) }
}

fn tls(name: &str, snis: &[&str]) -> OutboundTlsRoute {
    let snis = snis
        .iter()
        .map(|s| match s.strip_prefix("*.") {
            Some(sfx) => HostMatch::Suffix(sfx.into()),
            None => HostMatch::Exact((*s).into()),
        })
        .collect();
    OutboundTlsRoute { meta: meta(name), snis, backends: vec![backend(name, 1)] }
}

fn port(protocol: OutboundProtocol, tls_routes: Vec<OutboundTlsRoute>, tcp: Option<&str>) -> OutboundService {
    let tcp_route = tcp.map(|n| OutboundTcpRoute { meta: meta(n), backends: vec![backend(n, 3), backend("v1", 1)] });
    OutboundService {
        namespace: "shop".into(),
        name: "api".into(),
        ports: vec![OutboundPort {
            port: 443,
            protocol,
            http_routes: vec![],
            grpc_routes: vec![],
            tls_routes,
            tcp_route,
        }],
        timeouts: Default::default(),
        retry: None,
        failure_accrual: None,
        profile: None,
    }
}

fn routed<'a>(svc: &'a OutboundService, sni: Option<&str>) -> Option<&'a str> {
    match route_connection(svc, 443, sni)? {
        ConnectionRoute::Route { route, .. } => Some(route.name.as_str()),
        _ => None,
    }
}

#[test]
fn an_exact_sni_beats_a_wildcard_listed_first() {
    let svc =
        port(OutboundProtocol::Detect, vec![tls("wild", &["*.example.com"]), tls("exact", &["foo.example.com"])], None);
    assert_eq!(routed(&svc, Some("foo.example.com")), Some("exact"));
    assert_eq!(routed(&svc, Some("bar.example.com")), Some("wild"));
}

#[test]
fn a_longer_suffix_beats_a_shorter_one_and_a_route_without_snis_ranks_last() {
    let routes = vec![tls("any", &[]), tls("short", &["*.com"]), tls("long", &["*.example.com"])];
    let svc = port(OutboundProtocol::Detect, routes, None);
    assert_eq!(routed(&svc, Some("a.example.com")), Some("long"));
    assert_eq!(routed(&svc, Some("a.other.com")), Some("short"));
    assert_eq!(routed(&svc, Some("a.org")), Some("any"));
}

#[test]
fn of_identical_routes_the_first_wins() {
    let svc = port(OutboundProtocol::Detect, vec![tls("first", &[]), tls("second", &[])], None);
    assert_eq!(routed(&svc, Some("api.github.io")), Some("first"));
}

#[test]
fn a_wildcard_does_not_match_its_own_suffix_and_exact_ignores_a_trailing_dot() {
    let svc =
        port(OutboundProtocol::Detect, vec![tls("t", &["*.test.example.com"]), tls("e", &["x.example.com"])], None);
    assert_eq!(route_connection(&svc, 443, Some("test.example.com")), Some(ConnectionRoute::NoRoute));
    assert_eq!(routed(&svc, Some("X.Example.com.")), Some("e"));
}

#[test]
fn without_an_sni_a_tls_port_closes_the_connection() {
    let svc = port(OutboundProtocol::Detect, vec![tls("any", &[])], None);
    assert_eq!(route_connection(&svc, 443, None), Some(ConnectionRoute::NoRoute));
}

#[test]
fn a_tcp_route_serves_opaque_and_detected_ports_and_requests_see_an_opaque_port() {
    for protocol in [OutboundProtocol::Opaque, OutboundProtocol::Detect] {
        let svc = port(protocol, vec![], Some("split"));
        assert_eq!(routed(&svc, None), Some("split"));
        let req = crate::HttpRequest::new("GET", "/");
        assert_eq!(crate::route_outbound(&svc, 443, &req), Some(crate::OutboundRoute::Opaque));
    }
}

#[test]
fn tls_routes_outrank_a_tcp_route_on_a_detected_port() {
    let svc = port(OutboundProtocol::Detect, vec![tls("sni", &["a.b"])], Some("split"));
    assert_eq!(routed(&svc, Some("a.b")), Some("sni"));
    assert_eq!(route_connection(&svc, 443, Some("c.d")), Some(ConnectionRoute::NoRoute));
}

#[test]
fn ports_without_connection_routes_route_requests_or_go_to_the_service() {
    let svc = port(OutboundProtocol::Detect, vec![], None);
    assert_eq!(route_connection(&svc, 443, None), Some(ConnectionRoute::Requests));
    let svc = port(OutboundProtocol::Opaque, vec![], None);
    let to_svc = ConnectionRoute::Service { namespace: "shop", name: "api", port: 443 };
    assert_eq!(route_connection(&svc, 443, Some("x")), Some(to_svc));
    assert_eq!(route_connection(&svc, 80, None), None);
}
