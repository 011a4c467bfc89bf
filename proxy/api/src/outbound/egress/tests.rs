//! `decide_egress` against Linkerd's rules: network choice as
//! `resolve_egress_network` (own namespace is decided by the lowering; here
//! the smallest block, then list order), and the default egress route.

use super::*;
use crate::config::PathMatch;

fn net(s: &str, except: &[&str]) -> Network {
    Network { net: s.parse().unwrap(), except: except.iter().map(|e| e.parse().unwrap()).collect() }
}

fn network(name: &str, policy: TrafficPolicy, nets: Vec<Network>) -> EgressNetwork {
    EgressNetwork { namespace: "app".into(), name: name.into(), traffic_policy: policy, networks: nets, ports: vec![] }
}

fn egress(networks: Vec<EgressNetwork>) -> Egress {
    Egress { cluster_networks: vec!["10.0.0.0/8".parse().unwrap()], networks }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn name_of<'a>(d: &EgressDecision<'a>) -> Option<&'a str> {
    match d {
        EgressDecision::Network { network, .. } => Some(network.name.as_str()),
        _ => None,
    }
}

fn path_route(name: &str, prefix: &str, target: EgressTarget) -> EgressHttpRoute {
    EgressRoute {
        meta: Meta::resource("HTTPRoute", name),
        hostnames: vec![],
        rules: vec![EgressRule {
            matches: vec![HttpMatch { path: Some(PathMatch::Prefix(prefix.into())), ..Default::default() }],
            filters: vec![],
            backends: vec![EgressBackend { target, weight: 1 }],
            timeouts: Timeouts::default(),
        }],
    }
}

#[test]
fn an_address_in_the_cluster_networks_is_not_egress() {
    let e = egress(vec![network("all", TrafficPolicy::Deny, vec![net("0.0.0.0/0", &[])])]);
    assert_eq!(decide_egress(&e, ip("10.1.2.3"), 80, EgressTraffic::Opaque), EgressDecision::InCluster);
}

#[test]
fn no_network_covering_the_address_falls_back_to_forwarding() {
    let e = egress(vec![network("corp", TrafficPolicy::Deny, vec![net("192.0.2.0/24", &[])])]);
    assert_eq!(decide_egress(&e, ip("198.51.100.1"), 443, EgressTraffic::Opaque), EgressDecision::Fallback);
}

#[test]
fn the_smallest_matched_block_wins_then_list_order() {
    // test_picks_smallest_cidr and test_picks_alphabetical_order in Linkerd's egress_network.rs.
    let wide = network("a-wide", TrafficPolicy::Allow, vec![net("192.168.0.0/16", &[])]);
    let narrow = network("b-narrow", TrafficPolicy::Deny, vec![net("192.168.0.0/24", &[])]);
    let twin = network("c-twin", TrafficPolicy::Allow, vec![net("192.168.0.0/24", &[])]);
    let e = Egress { cluster_networks: vec![], networks: vec![wide, narrow, twin] };
    assert_eq!(name_of(&decide_egress(&e, ip("192.168.0.4"), 80, EgressTraffic::Opaque)), Some("b-narrow"));
    assert_eq!(name_of(&decide_egress(&e, ip("192.168.7.4"), 80, EgressTraffic::Opaque)), Some("a-wide"));
}

#[test]
fn an_exception_takes_the_address_out_of_the_network() {
    // test_respects_exception.
    let b = network("b", TrafficPolicy::Deny, vec![net("192.168.0.0/16", &["192.168.0.4/32"])]);
    let d = network("d", TrafficPolicy::Allow, vec![net("192.168.0.0/16", &[])]);
    let e = Egress { cluster_networks: vec![], networks: vec![b, d] };
    assert_eq!(name_of(&decide_egress(&e, ip("192.168.0.4"), 80, EgressTraffic::Opaque)), Some("d"));
    // Elsewhere b's block (2^16 - 1) is smaller than d's.
    assert_eq!(name_of(&decide_egress(&e, ip("192.168.0.5"), 80, EgressTraffic::Opaque)), Some("b"));
}

#[test]
fn deny_refuses_each_protocol_its_own_way() {
    let e = egress(vec![network("all", TrafficPolicy::Deny, vec![net("0.0.0.0/0", &["10.0.0.0/8"])])]);
    let req = HttpRequest::get("/");
    let outcome = |t| match decide_egress(&e, ip("203.0.113.9"), 80, t) {
        EgressDecision::Network { outcome, .. } => outcome,
        other => panic!("{other:?}"),
    };
    assert_eq!(outcome(EgressTraffic::Http(&req)).refusal(), Some(Refusal::Http403));
    assert_eq!(outcome(EgressTraffic::Tls { sni: "example.com" }).refusal(), Some(Refusal::Close));
    assert_eq!(outcome(EgressTraffic::Opaque).refusal(), Some(Refusal::Close));
}

#[test]
fn a_matching_route_wins_over_the_traffic_policy_and_others_get_the_policy() {
    let mut n = network("all", TrafficPolicy::Deny, vec![net("0.0.0.0/0", &["10.0.0.0/8"])]);
    n.ports = vec![EgressPort {
        http_routes: vec![path_route("api", "/api", EgressTarget::Original)],
        ..EgressPort::new(80)
    }];
    let e = egress(vec![n]);
    let dst = ip("203.0.113.9");
    let api = HttpRequest::get("/api/v1");
    match decide_egress(&e, dst, 80, EgressTraffic::Http(&api)) {
        EgressDecision::Network { outcome: EgressOutcome::Route { route, rule, .. }, .. } => {
            assert_eq!(route.name, "api");
            assert_eq!(rule.backends[0].target, EgressTarget::Original);
        }
        other => panic!("{other:?}"),
    }
    let other = HttpRequest::get("/admin");
    let d = decide_egress(&e, dst, 80, EgressTraffic::Http(&other));
    let EgressDecision::Network { outcome, .. } = d else { panic!() };
    assert_eq!(outcome.refusal(), Some(Refusal::Http403));
    // Routes are per port: port 8080 has none, so the policy applies to /api too.
    let d = decide_egress(&e, dst, 8080, EgressTraffic::Http(&api));
    let EgressDecision::Network { outcome, .. } = d else { panic!() };
    assert_eq!(outcome.refusal(), Some(Refusal::Http403));
}

#[test]
fn a_rule_whose_backends_are_all_invalid_fails_with_500() {
    let mut n = network("all", TrafficPolicy::Allow, vec![net("0.0.0.0/0", &[])]);
    let broken = EgressTarget::Invalid { reason: "Service x/y does not exist".into() };
    n.ports = vec![EgressPort { http_routes: vec![path_route("r", "/", broken)], ..EgressPort::new(80) }];
    let e = Egress { cluster_networks: vec![], networks: vec![n] };
    let req = HttpRequest::get("/");
    let EgressDecision::Network { outcome, .. } = decide_egress(&e, ip("203.0.113.9"), 80, EgressTraffic::Http(&req))
    else {
        panic!()
    };
    assert_eq!(outcome.refusal(), Some(Refusal::Http500));
}

#[test]
fn block_size_does_not_overflow_for_the_whole_ipv6_space() {
    assert_eq!(block_size(&net("::/0", &[])), u128::MAX);
    assert_eq!(block_size(&net("0.0.0.0/0", &["10.0.0.0/8"])), (1u128 << 32) - (1u128 << 24));
}

fn backend(target: EgressTarget) -> Vec<EgressBackend> {
    vec![EgressBackend { target, weight: 1 }]
}

fn tls_route(name: &str, snis: &[&str], target: EgressTarget) -> EgressTlsRoute {
    let snis = snis
        .iter()
        .map(|s| match s.strip_prefix("*.") {
            Some(suffix) => HostMatch::Suffix(suffix.into()),
            None => HostMatch::Exact((*s).into()),
        })
        .collect();
    EgressTlsRoute { meta: Meta::resource("TLSRoute", name), snis, backends: backend(target) }
}

fn decided<'a>(e: &'a Egress, port: u16, t: EgressTraffic<'_>) -> EgressOutcome<'a> {
    match decide_egress(e, ip("203.0.113.9"), port, t) {
        EgressDecision::Network { outcome, .. } => outcome,
        other => panic!("{other:?}"),
    }
}

fn route_name<'a>(o: &EgressOutcome<'a>) -> Option<&'a str> {
    match o {
        EgressOutcome::Connection { route, .. } | EgressOutcome::Route { route, .. } => Some(route.name.as_str()),
        _ => None,
    }
}

#[test]
fn tls_routes_pick_by_sni_and_the_rest_get_the_tls_default_route() {
    // tls::protocol appends tls-egress-deny (no SNIs, so it matches every name
    // and ranks below any route that names one): unmatched names are closed.
    let mut n = network("all", TrafficPolicy::Deny, vec![net("0.0.0.0/0", &["10.0.0.0/8"])]);
    let svc = EgressTarget::Service { namespace: "app".into(), name: "mirror".into(), port: 443 };
    n.ports = vec![EgressPort {
        tls_routes: vec![
            tls_route("wild", &["*.example.com"], EgressTarget::Original),
            tls_route("exact", &["api.example.com"], svc.clone()),
        ],
        ..EgressPort::new(443)
    }];
    let e = egress(vec![n]);
    let api = decided(&e, 443, EgressTraffic::Tls { sni: "api.example.com" });
    assert_eq!(route_name(&api), Some("exact"), "an exact name beats a suffix");
    assert_eq!(api.refusal(), None);
    let www = decided(&e, 443, EgressTraffic::Tls { sni: "www.example.com" });
    assert_eq!(route_name(&www), Some("wild"));
    let other = decided(&e, 443, EgressTraffic::Tls { sni: "example.org" });
    assert_eq!(other, EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Deny, via: DefaultRoute::Tls });
    assert_eq!(other.refusal(), Some(Refusal::Close));
    // A TLS port's connection must bring an SNI: plain HTTP is closed, whatever the policy.
    let req = HttpRequest::get("/");
    assert_eq!(decided(&e, 443, EgressTraffic::Http(&req)), EgressOutcome::SniRequired);
    assert_eq!(EgressOutcome::SniRequired.refusal(), Some(Refusal::Close));
    assert_eq!(e.networks[0].reads(443), EgressRead::Sni);
    assert_eq!(e.networks[0].reads(80), EgressRead::Detect);
}

#[test]
fn a_tls_route_without_names_wins_over_the_default_route_it_ties_with() {
    let mut n = network("all", TrafficPolicy::Deny, vec![net("0.0.0.0/0", &["10.0.0.0/8"])]);
    n.ports =
        vec![EgressPort { tls_routes: vec![tls_route("any", &[], EgressTarget::Original)], ..EgressPort::new(443) }];
    let e = egress(vec![n]);
    let o = decided(&e, 443, EgressTraffic::Tls { sni: "anything.test" });
    assert_eq!(route_name(&o), Some("any"));
    assert_eq!(o.refusal(), None);
}

#[test]
fn a_tcp_route_takes_every_connection_with_no_default_route_behind_it() {
    // tcp::protocol appends the default egress route only when there is no TCPRoute.
    let mut n = network("all", TrafficPolicy::Deny, vec![net("0.0.0.0/0", &["10.0.0.0/8"])]);
    let tcp = EgressTcpRoute { meta: Meta::resource("TCPRoute", "db"), backends: backend(EgressTarget::Original) };
    n.ports = vec![EgressPort { tcp_route: Some(tcp), ..EgressPort::new(5432) }];
    let e = egress(vec![n]);
    let req = HttpRequest::get("/");
    for t in [EgressTraffic::Opaque, EgressTraffic::Http(&req), EgressTraffic::Tls { sni: "db.example.com" }] {
        let o = decided(&e, 5432, t);
        assert_eq!(route_name(&o), Some("db"));
        assert_eq!(o.refusal(), None);
        assert!(o.is_connection());
    }
    assert_eq!(e.networks[0].reads(5432), EgressRead::Nothing);
    // Another port has no routes: the opaque default route denies.
    assert_eq!(decided(&e, 5433, EgressTraffic::Opaque).refusal(), Some(Refusal::Close));
}

#[test]
fn tls_on_an_http_routed_port_takes_the_opaque_default_route() {
    let mut n = network("all", TrafficPolicy::Allow, vec![net("0.0.0.0/0", &["10.0.0.0/8"])]);
    n.ports = vec![EgressPort {
        http_routes: vec![path_route("api", "/api", EgressTarget::Original)],
        ..EgressPort::new(443)
    }];
    let e = egress(vec![n]);
    let o = decided(&e, 443, EgressTraffic::Tls { sni: "api.example.com" });
    assert_eq!(o, EgressOutcome::TrafficPolicy { policy: TrafficPolicy::Allow, via: DefaultRoute::Opaque });
}

#[test]
fn a_connection_route_whose_backends_are_all_invalid_closes() {
    let mut n = network("all", TrafficPolicy::Allow, vec![net("0.0.0.0/0", &[])]);
    let broken = EgressTarget::Invalid { reason: "Service app/x does not exist".into() };
    let tcp = EgressTcpRoute { meta: Meta::resource("TCPRoute", "db"), backends: backend(broken) };
    n.ports = vec![EgressPort { tcp_route: Some(tcp), ..EgressPort::new(5432) }];
    let e = Egress { cluster_networks: vec![], networks: vec![n] };
    assert_eq!(decided(&e, 5432, EgressTraffic::Opaque).refusal(), Some(Refusal::Close));
}
