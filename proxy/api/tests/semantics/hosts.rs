//! Route hostnames: matching and precedence (reference §7.4).

use crate::common::*;
use mesh_proxy_api::*;

#[test]
fn routes_with_hostnames_need_a_matching_host() {
    let routes = [with_hosts(route_with("r", vec![prefix("/")]), &["web.example.com", "*.svc.local"])];
    let at = |host: &str| select_http_route(&routes, &HttpRequest::get("/").with_host(host));
    assert_eq!(at("web.example.com"), sel(0, 0));
    assert_eq!(at("WEB.Example.com:8080"), sel(0, 0), "case and port are ignored");
    assert_eq!(at("a.svc.local"), sel(0, 0));
    assert_eq!(at("a.b.svc.local"), sel(0, 0));
    assert_eq!(at("svc.local"), None, "a wildcard needs a label in front");
    assert_eq!(at("api.example.com"), None);
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/")), None, "no host at all");
}

#[test]
fn hostname_precedence_exact_beats_wildcard() {
    // linkerd2-proxy http/tests.rs `hostname_precedence`: same path, the
    // explicit host wins even when listed second.
    let routes = [
        with_hosts(route_with("wild", vec![exact("/foo")]), &["*.example.com"]),
        with_hosts(route_with("exact", vec![exact("/foo")]), &["foo.example.com"]),
    ];
    let req = HttpRequest::get("/foo").with_host("foo.example.com");
    assert_eq!(select_http_route(&routes, &req), sel(1, 0));
}

#[test]
fn longer_host_patterns_win_within_a_kind() {
    let routes = [
        with_hosts(route_with("short", vec![prefix("/")]), &["*.example.com"]),
        with_hosts(route_with("long", vec![prefix("/")]), &["*.eu.example.com"]),
    ];
    let req = HttpRequest::get("/").with_host("a.eu.example.com");
    assert_eq!(select_http_route(&routes, &req), sel(1, 0));
}

#[test]
fn any_host_match_beats_a_more_specific_route_without_hostnames() {
    // Host is compared before the path.
    let routes = [
        route_with("no-host", vec![exact("/foo/bar")]),
        with_hosts(route_with("host", vec![prefix("/")]), &["*.example.com"]),
    ];
    let req = HttpRequest::get("/foo/bar").with_host("web.example.com");
    assert_eq!(select_http_route(&routes, &req), sel(1, 0));
}

#[test]
fn host_from_gateway_hostname() {
    assert_eq!(HostMatch::from_hostname("*.example.com"), HostMatch::Suffix("example.com".into()));
    assert_eq!(HostMatch::from_hostname("example.com"), HostMatch::Exact("example.com".into()));
}
