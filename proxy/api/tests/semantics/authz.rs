//! Authorization semantics (reference §3.2, §3.3, §4.2, §5, §1.5).

use crate::common::*;
use mesh_proxy_api::*;

fn suffix(s: &str) -> IdentityMatch {
    IdentityMatch::Suffix(s.into())
}

fn exact_id(s: &str) -> IdentityMatch {
    IdentityMatch::Exact(s.into())
}

#[test]
fn identity_strings_parse_like_the_policy_controller() {
    // §4.2: "*" is any identity; "*.a.b" a suffix at any depth; everything
    // else, including malformed wildcards, is an exact string.
    assert_eq!(identity_match_from_str("*"), suffix(""));
    assert_eq!(
        identity_match_from_str("*.emojivoto.serviceaccount.identity.linkerd.cluster.local"),
        suffix(".emojivoto.serviceaccount.identity.linkerd.cluster.local")
    );
    assert_eq!(identity_match_from_str("**.x"), exact_id("**.x"));
    assert_eq!(identity_match_from_str("foo.*.bar"), exact_id("foo.*.bar"));
    assert_eq!(identity_match_from_str("*x.y"), exact_id("*x.y"));
    assert_eq!(identity_match_from_str(WEB_ID), exact_id(WEB_ID));
}

#[test]
fn malformed_wildcards_match_nothing_real() {
    let a = mesh_tls("a", &["**.emojivoto.serviceaccount.identity.linkerd.cluster.local"]);
    let b = mesh_tls("b", &["web.*.serviceaccount.identity.linkerd.cluster.local"]);
    let client = meshed("10.0.0.1", WEB_ID);
    assert!(!a.permits(&client));
    assert!(!b.permits(&client));
}

#[test]
fn unauthenticated_admits_every_tls_state() {
    let a = allow_all("open");
    for client in [unmeshed("10.0.0.1"), Client::unidentified(ip("10.0.0.1")), meshed("10.0.0.1", WEB_ID)] {
        assert!(a.permits(&client), "{client:?}");
    }
}

#[test]
fn tls_unauthenticated_needs_tls_but_no_identity() {
    let a = authz("tls", everywhere(), Authentication::TlsUnauthenticated);
    assert_eq!(a.authentication.check(&ClientTls::Plaintext), Err(AuthnMismatch::TlsRequired));
    assert!(a.permits(&Client::unidentified(ip("10.0.0.1"))));
    assert!(a.permits(&meshed("10.0.0.1", WEB_ID)));
}

#[test]
fn tls_authenticated_needs_a_listed_identity() {
    let a = mesh_tls("web-only", &[WEB_ID]);
    let authn = &a.authentication;
    assert_eq!(authn.check(&ClientTls::Identified(WEB_ID.into())), Ok(()));
    assert_eq!(authn.check(&ClientTls::Identified(VOTE_ID.into())), Err(AuthnMismatch::IdentityNotAllowed));
    assert_eq!(authn.check(&ClientTls::Unidentified), Err(AuthnMismatch::IdentityRequired));
    assert_eq!(authn.check(&ClientTls::Plaintext), Err(AuthnMismatch::TlsRequired));
}

#[test]
fn star_admits_any_mesh_identity_but_not_plaintext() {
    let a = mesh_tls("any-meshed", &["*"]);
    assert!(a.permits(&meshed("10.0.0.1", WEB_ID)));
    assert!(a.permits(&meshed("10.0.0.1", OTHER_NS_ID)));
    assert!(!a.permits(&unmeshed("10.0.0.1")));
    assert!(!a.permits(&Client::unidentified(ip("10.0.0.1"))));
}

#[test]
fn namespace_suffix_matches_every_service_account_in_it_and_only_there() {
    let a = mesh_tls("emojivoto", &["*.emojivoto.serviceaccount.identity.linkerd.cluster.local"]);
    assert!(a.permits(&meshed("10.0.0.1", WEB_ID)));
    assert!(a.permits(&meshed("10.0.0.1", VOTE_ID)));
    // "at any depth"
    assert!(a.permits(&meshed("10.0.0.1", "x.y.emojivoto.serviceaccount.identity.linkerd.cluster.local")));
    assert!(!a.permits(&meshed("10.0.0.1", OTHER_NS_ID)));
    // The suffix keeps its leading dot: a label that merely ends in
    // "emojivoto" is a different namespace.
    assert!(!a.permits(&meshed("10.0.0.1", "web.notemojivoto.serviceaccount.identity.linkerd.cluster.local")));
}

#[test]
fn spiffe_identities_need_an_exact_match() {
    let spiffe = "spiffe://cluster.local/ns/emojivoto/sa/web";
    let listed = mesh_tls("listed", &[spiffe]);
    assert!(listed.permits(&meshed("10.0.0.1", spiffe)));
    assert!(!listed.permits(&meshed("10.0.0.1", "spiffe://cluster.local/ns/emojivoto/sa/vote")));

    // A suffix that textually covers the URI does not count, not even "*".
    for ids in [&["*"][..], &["*.local/ns/emojivoto/sa/web"][..]] {
        let a = mesh_tls("suffix", ids);
        assert_eq!(
            a.authentication.check(&ClientTls::Identified(spiffe.into())),
            Err(AuthnMismatch::UriIdentityNeedsExactMatch),
            "{ids:?}"
        );
    }
}

#[test]
fn networks_include_cidr_and_exclude_excepts() {
    let n = net_except("10.0.0.0/8", &["10.1.0.0/16"]);
    assert!(n.contains(ip("10.2.3.4")));
    assert!(!n.contains(ip("10.1.3.4")));
    assert!(!n.contains(ip("192.168.1.1")));
    assert!(!net("10.0.0.0/8").contains(ip("::ffff:10.0.0.1")), "families do not mix");
}

#[test]
fn networks_are_ored_within_one_authorization() {
    let a = authz("two-nets", vec![net("10.0.0.0/8"), net("192.168.0.0/16")], Authentication::Unauthenticated);
    assert!(a.permits(&unmeshed("10.9.9.9")));
    assert!(a.permits(&unmeshed("192.168.9.9")));
    assert!(!a.permits(&unmeshed("172.16.0.1")));
}

#[test]
fn one_authorization_is_network_and_identity() {
    // e2e `both`: the IP must be allowed AND the client meshed.
    let both = authz("both", vec![net("10.0.0.0/8")], Authentication::tls_authenticated([suffix("")]));
    let (server, route) = (vec![both], vec![]);
    assert!(authorize(&route, &server, &meshed("10.0.0.7", WEB_ID)).is_some());
    assert!(authorize(&route, &server, &meshed("192.168.0.7", WEB_ID)).is_none());
    assert!(authorize(&route, &server, &unmeshed("10.0.0.7")).is_none());
}

#[test]
fn authorizations_are_ored() {
    // e2e `either`: one policy for an IP, another for meshed clients.
    let by_ip = authz("by-ip", vec![net("192.168.0.7/32")], Authentication::Unauthenticated);
    let by_mesh = mesh_tls("by-mesh", &["*"]);
    let server = vec![by_ip, by_mesh];
    let found = |c: &Client| authorize(&[], &server, c).map(|m| m.source);
    assert_eq!(found(&unmeshed("192.168.0.7")), Some(AuthzSource::Server(0)));
    assert_eq!(found(&meshed("10.0.0.1", WEB_ID)), Some(AuthzSource::Server(1)));
    assert_eq!(found(&unmeshed("10.0.0.1")), None);
}

#[test]
fn route_authorizations_come_before_server_ones() {
    let route = vec![allow_all("route-open")];
    let server = vec![allow_all("server-open")];
    let m = authorize(&route, &server, &unmeshed("10.0.0.1")).unwrap();
    assert_eq!(m.source, AuthzSource::Route(0));
    assert_eq!(m.authorization.meta.name, "route-open");
}

#[test]
fn localhost_is_always_appended() {
    // §1.5: even with no authorization at all (deny), 127.0.0.1 and ::1 pass.
    let m = authorize(&[], &[], &unmeshed("127.0.0.1")).unwrap();
    assert_eq!(m.source, AuthzSource::Localhost);
    assert_eq!(m.authorization, &localhost_authorization());
    assert_eq!(m.authorization.meta, Meta::default_named("localhost"));
    assert!(authorize(&[], &[], &unmeshed("::1")).is_some());
    // Only the /32: the rest of 127/8 is not localhost to the proxy.
    assert!(authorize(&[], &[], &unmeshed("127.0.0.2")).is_none());
}

#[test]
fn audit_matches_everyone_and_is_marked() {
    let server = vec![audit()];
    let m = authorize(&[], &server, &unmeshed("203.0.113.9")).unwrap();
    assert!(m.is_audit());
    assert!(!authorize(&[], &[], &unmeshed("127.0.0.1")).unwrap().is_audit());
}

#[test]
fn an_authorization_without_networks_matches_nobody() {
    let server = vec![authz("no-nets", vec![], Authentication::Unauthenticated)];
    assert!(authorize(&[], &server, &unmeshed("10.0.0.1")).is_none());
}

#[test]
fn explain_lists_every_tried_authorization_and_why() {
    let route = vec![mesh_tls("route-mtls", &[VOTE_ID])];
    let server = vec![
        authz("lan", vec![net_except("10.0.0.0/8", &["10.0.0.0/24"])], Authentication::Unauthenticated),
        authz("mesh-lan", vec![net("10.0.0.0/8")], Authentication::TlsUnauthenticated),
    ];
    let client = unmeshed("10.0.0.5");
    let attempts = explain_authorize(&route, &server, &client);
    let summary: Vec<_> = attempts.iter().map(|a| (a.source, a.network, a.authentication)).collect();
    assert_eq!(
        summary,
        vec![
            (AuthzSource::Route(0), None, Some(AuthnMismatch::TlsRequired)),
            (
                AuthzSource::Server(0),
                Some(NetworkMismatch::Excepted {
                    net: "10.0.0.0/8".parse().unwrap(),
                    except: "10.0.0.0/24".parse().unwrap()
                }),
                None
            ),
            (AuthzSource::Server(1), None, Some(AuthnMismatch::TlsRequired)),
            (AuthzSource::Localhost, Some(NetworkMismatch::NotListed), None),
        ]
    );
    assert!(attempts.iter().all(|a| !a.matched()));
    assert!(authorize(&route, &server, &client).is_none());
}

#[test]
fn explain_stops_at_the_first_match() {
    let server = vec![mesh_tls("mtls", &["*"]), allow_all("open"), allow_all("never-tried")];
    let attempts = explain_authorize(&[], &server, &unmeshed("10.0.0.5"));
    assert_eq!(attempts.len(), 2);
    assert!(!attempts[0].matched());
    assert!(attempts[1].matched());
    assert_eq!(attempts[1].source, AuthzSource::Server(1));
}
