//! `reach --to egress:HOST:PORT` for TLS (by SNI) and opaque TCP, on the
//! golden case `tests/golden/egress-stream-routes` (its README is the
//! manifest's comments). Shop's clients are under EgressNetwork
//! shop/internet, Deny, everything outside the cluster:
//! - port 443: TLSRoute api-exact (api.example.com, pass through) and
//!   example-wild (*.example.com, redirected to Service mirror:443); the
//!   TCPRoute https-any there is conflicted;
//! - port 5432: TCPRoute db (pass through); db-late is never sent.
//!
//! Each expectation follows from `docs/semantics/egress.md` ("TLSRoutes and
//! TCPRoutes with an EgressNetwork parent").

use meshc::load::Input;
use meshc::pipeline::{self, Options, Outcome};
use meshc::query::classes::Classes;
use meshc::query::egress::{EgressProtocol, EgressReach, reach_egress, traffic_of};
use meshc::query::egress_ref;
use meshc::query::evaluate::Verdict;
use meshc::query::reach::{parse_client, request_of};
use std::path::Path;

fn outcome() -> Outcome {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/egress-stream-routes/input");
    pipeline::compile(&Input::Path(dir), &Options::default()).expect("the golden case loads")
}

enum Send<'a> {
    Tls(Option<&'a str>),
    Http(&'a str),
    Tcp,
}

fn ask(o: &Outcome, to: &str, send: Send<'_>) -> EgressReach {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let client = parse_client(o, &classes, "deploy/shop/client").expect("client");
    let target = egress_ref::parse(to).expect("an egress reference").expect("well formed");
    let traffic = match send {
        Send::Tls(sni) => traffic_of(&target, None, sni.map(str::to_owned)),
        Send::Http(path) => traffic_of(&target, request_of(Some("GET"), Some(path), None, std::iter::empty()), None),
        Send::Tcp => EgressProtocol::Opaque,
    };
    reach_egress(o, &client, &target, &traffic).expect("an answer")
}

fn route(r: &EgressReach) -> Option<String> {
    r.route.as_ref().map(|x| format!("{} {}", x.kind, x.name))
}

fn backends(r: &EgressReach) -> Vec<String> {
    r.backends.iter().map(|b| format!("{} {}", b.kind, b.service.as_deref().unwrap_or("-"))).collect()
}

#[test]
fn tls_is_decided_by_sni_exactly() {
    let o = outcome();
    // The exact name beats the wildcard: passed through to the dialled address.
    let r = ask(&o, "egress:192.0.2.10:443", Send::Tls(Some("api.example.com")));
    assert_eq!((r.verdict, r.protocol), (Verdict::Allow, "tls"), "{r:?}");
    assert_eq!(route(&r).as_deref(), Some("TLSRoute api-exact"));
    assert_eq!(backends(&r), ["original -"]);
    assert!(r.condition.is_none(), "no longer depends: {r:?}");
    // Another name under example.com: the wildcard route redirects to mirror.
    let r = ask(&o, "egress:192.0.2.10:443", Send::Tls(Some("www.example.com")));
    assert_eq!((r.verdict, route(&r).as_deref()), (Verdict::Allow, Some("TLSRoute example-wild")));
    assert_eq!(backends(&r), ["service shop/mirror:443"]);
    // No route names example.org: tls-egress-deny (last, no names) closes it.
    let r = ask(&o, "egress:192.0.2.10:443", Send::Tls(Some("example.org")));
    assert_eq!((r.verdict, r.status, route(&r)), (Verdict::Deny, None, None), "{r:?}");
    let last = r.proof.last().expect("proof").detail.clone();
    assert!(last.contains("tls-egress-deny") && last.contains("example.org"), "{last}");
    // The proof names the network and the route that won.
    let r = ask(&o, "egress:192.0.2.10:443", Send::Tls(Some("api.example.com")));
    let text: Vec<String> = r.proof.iter().map(|s| s.detail.clone()).collect();
    assert!(text.iter().any(|d| d.contains("EgressNetwork shop/internet (trafficPolicy Deny)")), "{text:?}");
    assert!(text.iter().any(|d| d.contains("TLSRoute api-exact names it exactly")), "{text:?}");
}

#[test]
fn tls_on_443_defaults_to_the_host_as_sni_and_a_dns_name_is_exact_too() {
    let o = outcome();
    // One network covers every external address: a name's answer does not turn on its address.
    let r = ask(&o, "egress:api.example.com:443", Send::Tls(None));
    assert_eq!((r.verdict, route(&r).as_deref()), (Verdict::Allow, Some("TLSRoute api-exact")), "{r:?}");
    let r = ask(&o, "egress:www.example.com:443", Send::Tls(None));
    assert_eq!(backends(&r), ["service shop/mirror:443"]);
}

#[test]
fn plain_http_on_a_tls_routed_port_is_closed() {
    // TLSRoutes serve 443, so the proxy requires an SNI (NewDetectRequiredSni).
    let o = outcome();
    let r = ask(&o, "egress:192.0.2.10:443", Send::Http("/"));
    assert_eq!((r.verdict, r.status, r.protocol), (Verdict::Deny, None, "http"), "{r:?}");
}

#[test]
fn opaque_tcp_takes_the_tcp_route_or_the_policy() {
    let o = outcome();
    // db takes every connection on 5432; no default route is sent behind a TCPRoute.
    let r = ask(&o, "egress:192.0.2.10:5432", Send::Tcp);
    assert_eq!((r.verdict, r.protocol, route(&r).as_deref()), (Verdict::Allow, "tcp", Some("TCPRoute db")), "{r:?}");
    assert_eq!(backends(&r), ["original -"]);
    // HTTP on 5432 is a connection like any other to the TCPRoute.
    let r = ask(&o, "egress:192.0.2.10:5432", Send::Http("/"));
    assert_eq!((r.verdict, route(&r).as_deref()), (Verdict::Allow, Some("TCPRoute db")));
    // Port 6000 has no route: tcp-egress-deny closes the connection.
    let r = ask(&o, "egress:192.0.2.10:6000", Send::Tcp);
    assert_eq!((r.verdict, r.status), (Verdict::Deny, None), "{r:?}");
    assert!(r.proof.last().unwrap().detail.contains("tcp-egress-deny"));
    // TLS on a port without TLSRoutes is opaque to detection: the same.
    let r = ask(&o, "egress:192.0.2.10:8443", Send::Tls(Some("api.example.com")));
    assert_eq!((r.verdict, r.status), (Verdict::Deny, None));
}

#[test]
fn the_client_config_carries_the_connection_routes() {
    let o = outcome();
    let c = o.configs.iter().flatten().find(|c| c.workload.name == "client").expect("meshed client");
    let net = &c.outbound.egress.networks[0];
    let p443 = net.ports.iter().find(|p| p.port == 443).expect("port 443");
    let names: Vec<&str> = p443.tls_routes.iter().map(|r| r.meta.name.as_str()).collect();
    // No creationTimestamp on either: by name.
    assert_eq!(names, ["api-exact", "example-wild"]);
    assert!(p443.tcp_route.is_none(), "https-any is conflicted");
    let p5432 = net.ports.iter().find(|p| p.port == 5432).expect("port 5432");
    assert_eq!(p5432.tcp_route.as_ref().map(|r| r.meta.name.as_str()), Some("db"));
}
