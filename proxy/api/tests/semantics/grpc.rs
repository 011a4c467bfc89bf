//! gRPC route matching and precedence (reference §7.4; linkerd2-proxy
//! `http/route/src/grpc/{match.rs,tests.rs}`).

use crate::common::*;
use mesh_proxy_api::*;

fn call(service: &str, method: &str) -> GrpcRequest {
    GrpcRequest::new(service, method)
}

#[test]
fn a_rule_without_matches_matches_any_call() {
    let routes = [grpc_route("default", vec![])];
    assert_eq!(select_grpc_route(&routes, &call("a.B", "C")), sel(0, 0));
}

#[test]
fn an_empty_match_accepts_any_service_and_method() {
    let routes = [grpc_route("any", vec![grpc_match(None, None)])];
    assert_eq!(select_grpc_route(&routes, &call("emojivoto.v1.VotingService", "VoteDoughnut")), sel(0, 0));
}

#[test]
fn service_and_method_are_exact() {
    let routes = [grpc_route("vote", vec![grpc_match(Some("emojivoto.v1.VotingService"), Some("VoteDoughnut"))])];
    assert!(select_grpc_route(&routes, &call("emojivoto.v1.VotingService", "VoteDoughnut")).is_some());
    assert!(select_grpc_route(&routes, &call("emojivoto.v1.VotingService", "VotePoop")).is_none());
    assert!(select_grpc_route(&routes, &call("emojivoto.v1.votingservice", "VoteDoughnut")).is_none());
}

#[test]
fn only_post_service_method_requests_satisfy_a_match() {
    let routes = [grpc_route("any", vec![grpc_match(None, None)])];
    assert!(select_grpc_route_for_http(&routes, &HttpRequest::post("/svc/m")).is_some());
    assert!(select_grpc_route_for_http(&routes, &HttpRequest::get("/svc/m")).is_none());
    assert!(select_grpc_route_for_http(&routes, &HttpRequest::post("/svc")).is_none());
    // ... but a rule without matches takes anything.
    let default = [grpc_route("default", vec![])];
    assert!(select_grpc_route_for_http(&default, &HttpRequest::get("/healthz")).is_some());
}

#[test]
fn hostname_precedence() {
    let m = || vec![grpc_match(Some("foo"), Some("bar"))];
    let mut wild = grpc_route("wild", m());
    wild.hostnames = vec![HostMatch::from_hostname("*.example.com")];
    let mut exact = grpc_route("exact", m());
    exact.hostnames = vec![HostMatch::from_hostname("foo.example.com")];
    let req = call("foo", "bar").with_host("foo.example.com");
    assert_eq!(select_grpc_route(&[wild, exact], &req), sel(1, 0));
}

#[test]
fn method_precedence() {
    let routes = [
        grpc_route("service", vec![grpc_match(Some("foo"), None)]),
        grpc_route("method", vec![grpc_match(Some("foo"), Some("bar"))]),
    ];
    assert_eq!(select_grpc_route(&routes, &call("foo", "bar")), sel(1, 0));
}

#[test]
fn service_length_is_compared_before_method_length() {
    let routes = [
        grpc_route("method-only", vec![grpc_match(None, Some("a-very-long-method"))]),
        grpc_route("service-only", vec![grpc_match(Some("s"), None)]),
    ];
    assert_eq!(select_grpc_route(&routes, &call("s", "a-very-long-method")), sel(1, 0));
}

#[test]
fn header_count_precedence() {
    let with_headers = |n: usize| GrpcMatch {
        headers: (0..n).map(|i| header(&format!("x-{i}"), "v")).collect(),
        ..GrpcMatch::default()
    };
    let routes = [grpc_route("two", vec![with_headers(2)]), grpc_route("three", vec![with_headers(3)])];
    let req = call("s", "m").with_header("x-0", "v").with_header("x-1", "v").with_header("x-2", "v");
    assert_eq!(select_grpc_route(&routes, &req), sel(1, 0));
    let missing_one = call("s", "m").with_header("x-0", "v").with_header("x-1", "v");
    assert_eq!(select_grpc_route(&routes, &missing_one), sel(0, 0));
}

#[test]
fn first_identical_wins() {
    let routes = [grpc_route("a", vec![]), grpc_route("b", vec![])];
    assert_eq!(select_grpc_route(&routes, &call("s", "m")), sel(0, 0));
}

#[test]
fn calls_carry_the_grpc_content_type() {
    let routes = [grpc_route(
        "grpc-only",
        vec![GrpcMatch { headers: vec![header("content-type", "application/grpc")], ..GrpcMatch::default() }],
    )];
    assert!(select_grpc_route(&routes, &call("s", "m")).is_some());
    let http = call("s", "m").to_http();
    assert_eq!((http.method.as_str(), http.path.as_str()), ("POST", "/s/m"));
}
