//! Properties of the decision functions over generated configs and requests.
//! Strategies draw from small alphabets so paths, hosts, headers and
//! identities collide often enough to exercise precedence and matching.

mod strategies;

use mesh_proxy_api::*;
use proptest::prelude::*;
use strategies::*;

fn selection_of(v: &HttpVerdict) -> Option<(usize, usize)> {
    v.selection().map(|s| (s.route, s.rule))
}

proptest! {
    #[test]
    fn decisions_never_panic(s in server(), c in client(), req in request(), svc in "\\PC{0,6}", m in "\\PC{0,6}") {
        let _ = decide(&s, &c, &req);
        let _ = decide_grpc(&s, &c, &GrpcRequest::new(&svc, &m));
        let _ = explain_authorize(&[], &s.authorizations, &c);
    }

    #[test]
    fn adding_an_authorization_never_revokes(
        s in server(), c in client(), req in request(), extra in authorization(), to_route in any::<bool>(), at in 0usize..4,
    ) {
        let before = decide_http(&s, &c, &req);
        let mut grown = s.clone();
        let target = match (to_route, before.selection()) {
            (true, Some(sel)) if grown.protocol == Protocol::Grpc => &mut grown.grpc_routes[sel.route].authorizations,
            (true, Some(sel)) => &mut grown.http_routes[sel.route].authorizations,
            _ => &mut grown.authorizations,
        };
        target.insert(at.min(target.len()), extra);
        let after = decide_http(&grown, &c, &req);
        // Authorizations never change which route is selected ...
        prop_assert_eq!(selection_of(&before), selection_of(&after));
        // ... and only widen who is allowed.
        prop_assert!(!before.is_allowed() || after.is_allowed());
        prop_assert!(!decide_tcp(&s, &c).is_allowed() || decide_tcp(&grown, &c).is_allowed());
    }

    #[test]
    fn explain_agrees_with_authorize(route in authorizations(), srv in authorizations(), c in client()) {
        let found = authorize(&route, &srv, &c);
        let attempts = explain_authorize(&route, &srv, &c);
        let (last, earlier) = attempts.split_last().expect("localhost is always tried");
        prop_assert!(earlier.iter().all(|a| !a.matched()));
        match found {
            Some(m) => {
                prop_assert!(last.matched());
                prop_assert_eq!(m.source, last.source);
                prop_assert_eq!(m.authorization, last.authorization);
            }
            None => {
                prop_assert!(!last.matched());
                prop_assert_eq!(attempts.len(), route.len() + srv.len() + 1);
            }
        }
    }

    #[test]
    fn server_authorizations_cover_every_route(s in server(), c in client(), req in request()) {
        // What the server-level check allows, every selected route allows.
        prop_assume!(s.protocol.is_http());
        let v = decide_http(&s, &c, &req);
        let unauthorized = matches!(v, HttpVerdict::Unauthorized { .. });
        prop_assert!(!(decide_tcp(&s, &c).is_allowed() && unauthorized));
    }

    #[test]
    fn localhost_is_never_unauthorized(s in server(), req in request(), v6 in any::<bool>()) {
        let c = Client::plaintext(if v6 { "::1" } else { "127.0.0.1" }.parse().unwrap());
        let unauthorized = matches!(decide_http(&s, &c, &req), HttpVerdict::Unauthorized { .. });
        prop_assert!(!unauthorized);
        prop_assert!(decide_tcp(&s, &c).is_allowed());
    }

    #[test]
    fn root_prefix_matches_every_slash_path(rest in "\\PC{0,20}", query in proptest::option::of("\\PC{0,8}")) {
        let routes = [route(vec![rule(vec![match_path(PathMatch::Prefix("/".into()))])])];
        let req = HttpRequest { query, ..HttpRequest::get(&format!("/{rest}")) };
        prop_assert_eq!(select_http_route(&routes, &req), Some(RouteSelection { route: 0, rule: 0 }));
    }

    #[test]
    fn prefix_matches_whole_segments_only(seg in "[a-z0-9.-]{1,6}", tail in "[a-z0-9.-]{1,6}", slashes in 0usize..3) {
        let routes = [route(vec![rule(vec![match_path(PathMatch::Prefix(format!("/{seg}{}", "/".repeat(slashes))))])])];
        let hit = |p: String| select_http_route(&routes, &HttpRequest::get(&p)).is_some();
        let (itself, dir) = (hit(format!("/{seg}")), hit(format!("/{seg}/")));
        let (child, sibling) = (hit(format!("/{seg}/{tail}")), hit(format!("/{seg}{tail}")));
        prop_assert!(itself && dir && child);
        prop_assert!(!sibling);
    }

    #[test]
    fn catch_all_loses_to_any_more_specific_match(
        segs in proptest::collection::vec("[a-z]{1,4}", 1..4), catch_all_first in any::<bool>(), kind in 0u8..4,
    ) {
        let path = format!("/{}", segs.join("/"));
        let specific = match kind {
            0 => match_path(PathMatch::Exact(path.clone())),
            1 => match_path(PathMatch::Prefix(format!("/{}", segs[0]))),
            2 => HttpMatch { headers: vec![HeaderMatch { name: "x-a".into(), value: StringMatch::Exact("1".into()) }], ..HttpMatch::default() },
            _ => HttpMatch { method: Some("GET".into()), ..HttpMatch::default() },
        };
        let catch_all = route(vec![rule(vec![])]);
        let specific = route(vec![rule(vec![specific])]);
        let (routes, specific_idx) = if catch_all_first { ([catch_all, specific], 1) } else { ([specific, catch_all], 0) };
        let req = HttpRequest::get(&path).with_header("x-a", "1");
        prop_assert_eq!(select_http_route(&routes, &req).map(|s| s.route), Some(specific_idx));
        // A request the specific route does not match still finds the catch-all.
        let miss = HttpRequest::post("/zzzzz");
        prop_assert_eq!(select_http_route(&routes, &miss).map(|s| s.route), Some(1 - specific_idx));
    }

    #[test]
    fn the_first_of_identical_routes_wins(
        routes in proptest::collection::vec(http_route(), 0..4),
        grpc in proptest::collection::vec(grpc_route(), 0..3),
        req in request(),
    ) {
        // Repeating the whole list changes nothing: every tie goes to the
        // earlier copy.
        let doubled: Vec<HttpRoute> = routes.iter().chain(&routes).cloned().collect();
        prop_assert_eq!(select_http_route(&routes, &req), select_http_route(&doubled, &req));
        let doubled: Vec<GrpcRoute> = grpc.iter().chain(&grpc).cloned().collect();
        prop_assert_eq!(select_grpc_route_for_http(&grpc, &req), select_grpc_route_for_http(&doubled, &req));
    }

    #[test]
    fn host_port_and_case_do_not_change_selection(routes in proptest::collection::vec(http_route(), 0..4), req in request(), port in 1u16..) {
        let Some(host) = req.host.clone() else { return Ok(()) };
        prop_assume!(!host.contains(':'));
        let shouted = HttpRequest { host: Some(format!("{}:{port}", host.to_ascii_uppercase())), ..req.clone() };
        prop_assert_eq!(select_http_route(&routes, &req), select_http_route(&routes, &shouted));
    }

    #[test]
    fn ranking_starts_with_the_selected_rule(routes in proptest::collection::vec(http_route(), 0..4), grpc in proptest::collection::vec(grpc_route(), 0..3), req in request()) {
        let first = rank_http_routes(&routes, &req).first().map(|r| r.selection);
        prop_assert_eq!(first, select_http_route(&routes, &req));
        let first = rank_grpc_routes_for_http(&grpc, &req).first().map(|r| r.selection);
        prop_assert_eq!(first, select_grpc_route_for_http(&grpc, &req));
    }

    #[test]
    fn header_name_case_does_not_change_selection(routes in proptest::collection::vec(http_route(), 0..4), req in request()) {
        let mut shouted = req.clone();
        for (name, _) in &mut shouted.headers {
            *name = name.to_ascii_uppercase();
        }
        prop_assert_eq!(select_http_route(&routes, &req), select_http_route(&routes, &shouted));
    }
}

fn match_path(p: PathMatch) -> HttpMatch {
    HttpMatch { path: Some(p), ..HttpMatch::default() }
}

fn rule(matches: Vec<HttpMatch>) -> HttpRule {
    HttpRule { matches, filters: vec![] }
}

fn route(rules: Vec<HttpRule>) -> HttpRoute {
    HttpRoute { meta: Meta::resource("HTTPRoute", "r"), hostnames: vec![], rules, authorizations: vec![] }
}
