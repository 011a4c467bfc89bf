//! HTTP route matching and precedence (reference §7.4).

use crate::common::*;
use mesh_proxy_api::*;

fn matches(m: HttpMatch, req: &HttpRequest) -> bool {
    select_http_route(&[route_with("r", vec![m])], req).is_some()
}

#[test]
fn prefix_is_segment_aware() {
    let foo = || prefix("/foo");
    assert!(matches(foo(), &HttpRequest::get("/foo")));
    assert!(matches(foo(), &HttpRequest::get("/foo/")));
    assert!(matches(foo(), &HttpRequest::get("/foo/bar")));
    assert!(!matches(foo(), &HttpRequest::get("/foobar")));
    assert!(!matches(foo(), &HttpRequest::get("/fo")));
    assert!(!matches(foo(), &HttpRequest::get("/")));
}

#[test]
fn prefix_trailing_slash_is_trimmed() {
    assert!(matches(prefix("/foo/"), &HttpRequest::get("/foo")));
    assert!(matches(prefix("/foo/"), &HttpRequest::get("/foo/bar")));
    assert!(!matches(prefix("/foo/"), &HttpRequest::get("/foobar")));
}

#[test]
fn root_prefix_matches_everything() {
    for p in ["/", "/a", "/a/b/c", "/a?x=1"] {
        assert!(matches(prefix("/"), &HttpRequest::get(p)), "{p}");
    }
}

#[test]
fn exact_is_literal() {
    assert!(matches(exact("/foo"), &HttpRequest::get("/foo")));
    assert!(!matches(exact("/foo"), &HttpRequest::get("/foo/")));
    assert!(!matches(exact("/foo"), &HttpRequest::get("/foo/bar")));
    assert!(!matches(exact("/Foo"), &HttpRequest::get("/foo")));
    // The query string is not part of the path.
    assert!(matches(exact("/foo"), &HttpRequest::get("/foo?x=1")));
}

#[test]
fn regex_must_match_the_entire_path() {
    assert!(matches(regex(r"/foo/\d+"), &HttpRequest::get("/foo/42")));
    assert!(!matches(regex(r"/foo/\d+"), &HttpRequest::get("/foo/42/x")));
    assert!(!matches(regex(r"/foo/\d+"), &HttpRequest::get("/x/foo/42")));
}

#[test]
fn an_invalid_regex_never_matches() {
    assert!(!matches(regex("/foo/("), &HttpRequest::get("/foo/(")));
    let routes = [route_with("bad", vec![regex("(")]), route_with("ok", vec![prefix("/")])];
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/(")), sel(1, 0));
}

#[test]
fn header_names_are_case_insensitive_values_are_not() {
    let m = || HttpMatch { headers: vec![header("X-Canary", "true")], ..HttpMatch::default() };
    assert!(matches(m(), &HttpRequest::get("/").with_header("x-canary", "true")));
    assert!(matches(m(), &HttpRequest::get("/").with_header("X-CANARY", "true")));
    assert!(!matches(m(), &HttpRequest::get("/").with_header("x-canary", "TRUE")));
    assert!(!matches(m(), &HttpRequest::get("/")));
    // Any value of a repeated header may match.
    let repeated = HttpRequest::get("/").with_header("x-canary", "no").with_header("x-canary", "true");
    assert!(matches(m(), &repeated));
}

#[test]
fn header_regex_must_match_the_whole_value() {
    let m = || HttpMatch {
        headers: vec![HeaderMatch { name: "x-user".into(), value: StringMatch::Regex("admin-\\d+".into()) }],
        ..HttpMatch::default()
    };
    assert!(matches(m(), &HttpRequest::get("/").with_header("x-user", "admin-7")));
    assert!(!matches(m(), &HttpRequest::get("/").with_header("x-user", "admin-7x")));
    assert!(!matches(m(), &HttpRequest::get("/").with_header("x-user", "not-admin-7")));
}

#[test]
fn query_params_are_decoded_and_matched_by_name() {
    let m = |v: StringMatch| HttpMatch { query_params: vec![query("q", v)], ..HttpMatch::default() };
    let ex = |s: &str| StringMatch::Exact(s.into());
    assert!(matches(m(ex("a b")), &HttpRequest::get("/?x=1&q=a%20b")));
    assert!(matches(m(ex("a b")), &HttpRequest::get("/?q=a+b")));
    assert!(matches(m(ex("")), &HttpRequest::get("/?q")));
    assert!(!matches(m(ex("a")), &HttpRequest::get("/?Q=a")));
    assert!(!matches(m(ex("a")), &HttpRequest::get("/")));
    assert!(matches(m(StringMatch::Regex("v\\d".into())), &HttpRequest::get("/?q=v1")));
    assert!(!matches(m(StringMatch::Regex("v\\d".into())), &HttpRequest::get("/?q=v12")));
}

#[test]
fn method_is_exact_and_case_sensitive() {
    let m = || HttpMatch { method: Some("GET".into()), ..HttpMatch::default() };
    assert!(matches(m(), &HttpRequest::get("/")));
    assert!(!matches(m(), &HttpRequest::post("/")));
    assert!(!matches(m(), &HttpRequest::new("get", "/")));
}

#[test]
fn conditions_in_one_match_are_anded_matches_in_a_rule_ored() {
    let both = HttpMatch { method: Some("POST".into()), ..prefix("/api") };
    assert!(matches(both.clone(), &HttpRequest::post("/api/x")));
    assert!(!matches(both.clone(), &HttpRequest::get("/api/x")));
    assert!(!matches(both, &HttpRequest::post("/other")));

    let either = route_with("r", vec![exact("/a"), exact("/b")]);
    assert!(select_http_route(std::slice::from_ref(&either), &HttpRequest::get("/b")).is_some());
    assert!(select_http_route(&[either], &HttpRequest::get("/c")).is_none());
}

#[test]
fn a_rule_without_matches_matches_everything() {
    let routes = [route("catch-all", vec![rule(vec![])])];
    assert_eq!(select_http_route(&routes, &HttpRequest::delete("/x/y?z")), sel(0, 0));
}

#[test]
fn path_length_precedence() {
    // linkerd2-proxy http/tests.rs `path_length_precedence`.
    let routes = [route_with("prefix", vec![prefix("/foo")]), route_with("exact", vec![exact("/foo/bar")])];
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/foo/bar")), sel(1, 0));
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/foo/baz")), sel(0, 0));
}

#[test]
fn path_kinds_compare_by_length_only() {
    // Exact and Prefix of the same length tie, so the first listed wins.
    let routes = [route_with("prefix", vec![prefix("/foo")]), route_with("exact", vec![exact("/foo")])];
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/foo")), sel(0, 0));
    // A regex counts the whole request path, so it can beat a long prefix.
    let routes = [route_with("prefix", vec![prefix("/foo/bar")]), route_with("re", vec![regex("/foo/.*")])];
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/foo/bar/baz")), sel(1, 0));
}

#[test]
fn header_count_precedence() {
    let two = HttpMatch { headers: vec![header("x-foo", "bar"), header("x-baz", "qux")], ..HttpMatch::default() };
    let three = HttpMatch {
        headers: vec![header("x-foo", "bar"), header("x-baz", "qux"), header("x-biz", "qyx")],
        ..HttpMatch::default()
    };
    let routes = [route_with("two", vec![two]), route_with("three", vec![three])];
    let req = HttpRequest::get("/").with_header("x-foo", "bar").with_header("x-baz", "qux").with_header("x-biz", "qyx");
    assert_eq!(select_http_route(&routes, &req), sel(1, 0));
}

#[test]
fn headers_outrank_query_params_which_outrank_method() {
    let one_header = HttpMatch { headers: vec![header("x-a", "1")], ..HttpMatch::default() };
    let two_params = HttpMatch {
        query_params: vec![query("a", StringMatch::Exact("1".into())), query("b", StringMatch::Exact("2".into()))],
        ..HttpMatch::default()
    };
    let with_method = HttpMatch { method: Some("GET".into()), ..HttpMatch::default() };
    let req = HttpRequest::get("/?a=1&b=2").with_header("x-a", "1");
    let routes = [
        route_with("method", vec![with_method.clone()]),
        route_with("params", vec![two_params.clone()]),
        route_with("header", vec![one_header]),
    ];
    assert_eq!(select_http_route(&routes, &req), sel(2, 0));
    let routes = [route_with("method", vec![with_method]), route_with("params", vec![two_params])];
    assert_eq!(select_http_route(&routes, &req), sel(1, 0));
}

#[test]
fn path_outranks_headers() {
    let routes = [
        route_with("header", vec![HttpMatch { headers: vec![header("x-a", "1")], ..prefix("/api") }]),
        route_with("longer-path", vec![prefix("/api/v1")]),
    ];
    let req = HttpRequest::get("/api/v1/x").with_header("x-a", "1");
    assert_eq!(select_http_route(&routes, &req), sel(1, 0));
}

#[test]
fn a_match_without_a_path_scores_like_root_prefix() {
    // A header-only match has path length 1, so any longer path wins.
    let routes = [
        route_with("header-only", vec![HttpMatch { headers: vec![header("x-a", "1")], ..HttpMatch::default() }]),
        route_with("api", vec![prefix("/api")]),
    ];
    let req = HttpRequest::get("/api/x").with_header("x-a", "1");
    assert_eq!(select_http_route(&routes, &req), sel(1, 0));
}

#[test]
fn first_identical_wins() {
    // linkerd2-proxy http/tests.rs `first_identical_wins`: first rule of the
    // first route, even with redundant rules and routes after it.
    let routes = [route("a", vec![rule(vec![]), rule(vec![])]), route("b", vec![rule(vec![])])];
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/")), sel(0, 0));
    let routes = [route_with("a", vec![prefix("/x")]), route_with("b", vec![prefix("/x")])];
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/x")), sel(0, 0));
}

#[test]
fn the_best_match_of_a_rule_counts() {
    let routes = [route("r", vec![rule(vec![prefix("/")]), rule(vec![prefix("/"), exact("/a/b")])])];
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/a/b")), sel(0, 1));
    assert_eq!(select_http_route(&routes, &HttpRequest::get("/c")), sel(0, 0));
}

#[test]
fn regex_validation_agrees_with_matching() {
    assert!(validate_regex(r"/foo/\d+").is_ok());
    let err = validate_regex("/foo/(").unwrap_err();
    assert!(!err.is_empty());
    // What fails validation is exactly what never matches.
    assert!(!matches(regex("/foo/("), &HttpRequest::get("/foo/(")));
}
