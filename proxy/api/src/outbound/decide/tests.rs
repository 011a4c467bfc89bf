use super::*;
use crate::client::HttpRequest;
use crate::config::{HeaderMatch, HttpMatch, PathMatch, StringMatch};
use crate::outbound::{OutboundHttpRoute, OutboundHttpRule, OutboundPort, StatusRange};

fn svc_backend(name: &str, weight: u32) -> Backend {
    Backend {
        target: BackendTarget::Service { namespace: "shop".into(), name: name.into(), port: 80 },
        weight,
        filters: vec![],
    }
}

fn rule(matches: Vec<HttpMatch>, backends: Vec<Backend>) -> OutboundHttpRule {
    OutboundHttpRule { matches, filters: vec![], backends, timeouts: Timeouts::default(), retry: None }
}

fn service(routes: Vec<OutboundHttpRoute>) -> OutboundService {
    OutboundService {
        namespace: "shop".into(),
        name: "api".into(),
        ports: vec![OutboundPort {
            port: 80,
            protocol: OutboundProtocol::Detect,
            http_routes: routes,
            grpc_routes: vec![],
            tls_routes: vec![],
            tcp_route: None,
        }],
        timeouts: Timeouts { request_ms: Some(5000), ..Timeouts::default() },
        retry: Some(Retry {
            http_statuses: vec![StatusRange { min: 500, max: 599 }],
            grpc_codes: vec![],
            limit: 1,
            timeout_ms: None,
        }),
        failure_accrual: None,
        profile: None,
    }
}

fn route(name: &str, rules: Vec<OutboundHttpRule>) -> OutboundHttpRoute {
    OutboundHttpRoute { meta: Meta::resource("HTTPRoute", name), hostnames: vec![], rules }
}

#[test]
fn no_routes_is_the_default_route_with_service_policy() {
    let svc = service(vec![]);
    let Some(OutboundRoute::Default { target }) = route_outbound(&svc, 80, &HttpRequest::get("/x")) else {
        panic!("expected the default route")
    };
    assert_eq!(target.timeouts.request_ms, Some(5000));
    assert_eq!(target.retry.map(|r| r.limit), Some(1));
    assert_eq!(target.backends, RuleBackends::Service { namespace: "shop", name: "api", port: 80 });
    assert!(route_outbound(&svc, 81, &HttpRequest::get("/x")).is_none(), "no such port");
}

#[test]
fn header_routing_and_404_for_unmatched() {
    let canary = HttpMatch {
        headers: vec![HeaderMatch { name: "x-canary".into(), value: StringMatch::Exact("1".into()) }],
        ..HttpMatch::default()
    };
    let api = HttpMatch { path: Some(PathMatch::Prefix("/api".into())), ..HttpMatch::default() };
    let r = route(
        "split",
        vec![rule(vec![api.clone()], vec![svc_backend("v1", 1)]), rule(vec![canary], vec![svc_backend("v2", 1)])],
    );
    let svc = service(vec![r]);
    let pick = |req: &HttpRequest| match route_outbound(&svc, 80, req) {
        Some(OutboundRoute::Rule { selection, .. }) => Some(selection.rule),
        Some(OutboundRoute::NotFound) => None,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(pick(&HttpRequest::get("/api/x")), Some(0));
    assert_eq!(pick(&HttpRequest::get("/other").with_header("X-Canary", "1")), Some(1));
    assert_eq!(pick(&HttpRequest::get("/other")), None);
    assert_eq!(route_outbound(&svc, 80, &HttpRequest::get("/other")).and_then(|o| o.local_status()), Some(404));
}

#[test]
fn rule_timeouts_replace_service_timeouts_and_rule_retry_replaces_service_retry() {
    let mut r = rule(vec![], vec![svc_backend("v1", 1)]);
    r.timeouts.response_ms = Some(100);
    r.retry = Some(Retry { http_statuses: vec![], grpc_codes: vec![], limit: 3, timeout_ms: Some(50) });
    let svc = service(vec![route("r", vec![r])]);
    let Some(OutboundRoute::Rule { target, .. }) = route_outbound(&svc, 80, &HttpRequest::get("/")) else { panic!() };
    assert_eq!(*target.timeouts, Timeouts { response_ms: Some(100), ..Timeouts::default() });
    assert_eq!(target.retry.map(|r| r.limit), Some(3));
}

#[test]
fn all_zero_weights_fail_with_500() {
    let svc = service(vec![route("r", vec![rule(vec![], vec![svc_backend("a", 0), svc_backend("b", 0)])])]);
    let outcome = route_outbound(&svc, 80, &HttpRequest::get("/")).unwrap();
    assert_eq!(outcome.local_status(), Some(500));
    assert!(pick_backend(&[svc_backend("a", 0)], 7).is_none());
}

#[test]
fn weighted_pick_follows_weights() {
    let backends = [svc_backend("a", 1), svc_backend("b", 3), svc_backend("zero", 0)];
    let mut counts = [0u32; 3];
    let n = 4000u64;
    for i in 0..n {
        // i/n of the way through the roll's range, exactly.
        let roll = ((u128::from(i) << 64) / u128::from(n)) as u64;
        let b = pick_backend(&backends, roll).unwrap();
        counts[backends.iter().position(|x| x == b).unwrap()] += 1;
    }
    assert_eq!(counts, [1000, 3000, 0]);
    assert_eq!(pick_backend(&backends, u64::MAX).map(|b| b.weight), Some(3));
}

#[test]
fn profile_conditions_and_response_classes() {
    let cond = RequestCondition::All(vec![
        RequestCondition::Method("GET".into()),
        RequestCondition::PathRegex("/books/[0-9]+".into()),
        RequestCondition::Not(Box::new(RequestCondition::PathRegex("/books/0".into()))),
    ]);
    assert!(cond.matches(&HttpRequest::get("/books/12")));
    assert!(!cond.matches(&HttpRequest::get("/books/12/x")), "anchored");
    assert!(!cond.matches(&HttpRequest::get("/books/0")));
    assert!(!cond.matches(&HttpRequest::post("/books/12")));
    let route = ProfileRoute {
        name: "r".into(),
        condition: cond,
        response_classes: vec![crate::outbound::ResponseClass {
            condition: ResponseCondition::Status(StatusRange { min: 404, max: 404 }),
            is_failure: true,
        }],
        is_retryable: true,
        timeout_ms: None,
    };
    assert!(Profile::is_failure(Some(&route), 404));
    assert!(Profile::is_failure(Some(&route), 503));
    assert!(!Profile::is_failure(None, 404));
}
