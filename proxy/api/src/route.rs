//! Route selection: which route and rule of a server handles a request.
//!
//! Follows linkerd2-proxy's precedence. Every (route, rule) that matches
//! gets a score; the greatest wins and ties go to the earliest route, then
//! the earliest rule. The score compares, in order:
//!
//! 1. host: any hostname match beats a route without hostnames; an exact
//!    match beats a suffix match; a longer pattern beats a shorter one;
//! 2. HTTP: matched path length, then number of header matches, then
//!    number of query-param matches, then whether a method is given.
//!    gRPC: matched service-name length, then method-name length, then
//!    number of header matches.
//!
//! Within a rule, the best of its matches counts. A rule without matches
//! matches every request with the lowest score (for HTTP, that of a Prefix
//! `/`: a match that sets no path also scores as `/`).

mod fields;
mod host;
mod path;

use crate::client::{GrpcRequest, HttpRequest, RequestView};
use crate::config::{GrpcMatch, GrpcRoute, HostMatch, HttpMatch, HttpRoute};
use crate::outbound::{OutboundGrpcRoute, OutboundHttpRoute};
use host::HostScore;

pub(crate) use fields::regex_matches_whole;
pub use fields::validate_regex;

/// The selected route (index into the route list) and rule (index into
/// that route's `rules`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteSelection {
    pub route: usize,
    pub rule: usize,
}

/// Precedence of one HTTP match; field order is comparison order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct HttpScore {
    path_len: usize,
    headers: usize,
    query_params: usize,
    method: bool,
}

/// What an empty rule, or a match without a path, scores: Prefix "/".
const HTTP_BASE: HttpScore = HttpScore { path_len: 1, headers: 0, query_params: 0, method: false };

/// Precedence of one gRPC match; field order is comparison order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct GrpcScore {
    service_len: usize,
    method_len: usize,
    headers: usize,
}

/// A route of either side (inbound on a Server, outbound on a Service):
/// its hostnames and each rule's matches are all that selection reads.
pub trait MatchedRoute {
    type Match;
    fn hostnames(&self) -> &[HostMatch];
    fn rule_matches(&self) -> impl Iterator<Item = &[Self::Match]>;
}

macro_rules! matched_route {
    ($($route:ty => $m:ty),*) => {$(
        impl MatchedRoute for $route {
            type Match = $m;
            fn hostnames(&self) -> &[HostMatch] {
                &self.hostnames
            }
            fn rule_matches(&self) -> impl Iterator<Item = &[$m]> {
                self.rules.iter().map(|rule| rule.matches.as_slice())
            }
        }
    )*};
}

matched_route!(HttpRoute => HttpMatch, GrpcRoute => GrpcMatch, OutboundHttpRoute => HttpMatch, OutboundGrpcRoute => GrpcMatch);

/// The best HTTP route for `req`, or `None` (the proxy answers 404). The
/// same precedence applies to a client proxy's routes to a Service port.
pub fn select_http_route<R: MatchedRoute<Match = HttpMatch>, Q: RequestView + ?Sized>(
    routes: &[R],
    req: &Q,
) -> Option<RouteSelection> {
    select(
        routes,
        |route| route.hostnames(),
        |route| best_rule(route.rule_matches(), HTTP_BASE, |m| http_match_score(m, req)),
        req.host(),
    )
}

/// The best gRPC route for a call, or `None` (grpc-status NOT_FOUND).
pub fn select_grpc_route(routes: &[GrpcRoute], req: &GrpcRequest) -> Option<RouteSelection> {
    select_grpc_route_for_http(routes, &req.to_http())
}

/// gRPC route selection for an arbitrary HTTP request, which is what a gRPC
/// server's proxy does: a request that is not `POST /<service>/<method>`
/// matches only rules without matches. Also for a client proxy's gRPC routes.
pub fn select_grpc_route_for_http<R: MatchedRoute<Match = GrpcMatch>, Q: RequestView + ?Sized>(
    routes: &[R],
    req: &Q,
) -> Option<RouteSelection> {
    select(
        routes,
        |route| route.hostnames(),
        |route| best_rule(route.rule_matches(), GrpcScore::default(), |m| grpc_match_score(m, req)),
        req.host(),
    )
}

/// One (route, rule) that matches a request, and the precedence it scored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankedRule {
    pub selection: RouteSelection,
    /// The score in words, e.g. `path match 6 chars, 0 headers, 0 query params, method`.
    pub precedence: String,
}

/// Every HTTP (route, rule) that matches `req`, best first, equal scores in
/// route then rule order: the first is what [`select_http_route`] picks.
/// For proofs that must say why one route won over others.
pub fn rank_http_routes(routes: &[HttpRoute], req: &HttpRequest) -> Vec<RankedRule> {
    rank(
        routes,
        |route| &route.hostnames,
        req.host.as_deref(),
        |route| {
            route.rules.iter().map(|rule| best_match(&rule.matches, HTTP_BASE, |m| http_match_score(m, req))).collect()
        },
    )
}

/// [`rank_http_routes`] for a gRPC server's routes and an HTTP request.
pub fn rank_grpc_routes_for_http(routes: &[GrpcRoute], req: &HttpRequest) -> Vec<RankedRule> {
    rank(
        routes,
        |route| &route.hostnames,
        req.host.as_deref(),
        |route| {
            route
                .rules
                .iter()
                .map(|rule| best_match(&rule.matches, GrpcScore::default(), |m| grpc_match_score(m, req)))
                .collect()
        },
    )
}

fn rank<R, S: Ord + Copy + std::fmt::Display>(
    routes: &[R],
    hostnames: impl Fn(&R) -> &[HostMatch],
    authority: Option<&str>,
    rule_scores: impl Fn(&R) -> Vec<Option<S>>,
) -> Vec<RankedRule> {
    let host = authority.map(host::authority_host);
    let mut all = Vec::new();
    for (route_idx, route) in routes.iter().enumerate() {
        let Some(host_score) = host::route_host_score(hostnames(route), host) else { continue };
        for (rule_idx, score) in rule_scores(route).into_iter().enumerate() {
            if let Some(score) = score {
                all.push(((host_score, score), RouteSelection { route: route_idx, rule: rule_idx }));
            }
        }
    }
    // Stable: equal scores keep route, then rule order.
    all.sort_by_key(|e| std::cmp::Reverse(e.0));
    all.into_iter()
        .map(|((host, score), selection)| {
            let host = match host {
                None => "no hostname".to_owned(),
                Some(h) => h.to_string(),
            };
            RankedRule { selection, precedence: format!("{host}, {score}") }
        })
        .collect()
}

/// A rule's score: its best match, or `implicit` when it has no matches.
fn best_match<M, S: Ord + Copy>(matches: &[M], implicit: S, score: impl Fn(&M) -> Option<S>) -> Option<S> {
    if matches.is_empty() { Some(implicit) } else { matches.iter().filter_map(score).max() }
}

impl std::fmt::Display for HttpScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let method = if self.method { "method" } else { "no method" };
        write!(
            f,
            "path match {} chars, {} headers, {} query params, {method}",
            self.path_len, self.headers, self.query_params
        )
    }
}

impl std::fmt::Display for GrpcScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service {} chars, method {} chars, {} headers", self.service_len, self.method_len, self.headers)
    }
}

/// Best-first selection across routes, shared by HTTP and gRPC. `best_rule`
/// gives a route's winning (score, rule index), if any rule matches.
fn select<R, S: Ord>(
    routes: &[R],
    hostnames: impl Fn(&R) -> &[HostMatch],
    best_rule: impl Fn(&R) -> Option<(S, usize)>,
    authority: Option<&str>,
) -> Option<RouteSelection> {
    let host = authority.map(host::authority_host);
    let candidates = routes.iter().enumerate().filter_map(|(route_idx, route)| {
        let host_score: Option<HostScore> = host::route_host_score(hostnames(route), host)?;
        let (rule_score, rule_idx) = best_rule(route)?;
        let selection = RouteSelection { route: route_idx, rule: rule_idx };
        Some(((host_score, rule_score), selection))
    });
    first_best(candidates).map(|(_, selection)| selection)
}

/// The winning rule of one route: each rule scores its best match (order
/// among a rule's matches is irrelevant), a rule without matches scores
/// `implicit`, and the first of equally scored rules wins.
fn best_rule<'m, M: 'm, S: Ord + Copy>(
    rules: impl Iterator<Item = &'m [M]>,
    implicit: S,
    score: impl Fn(&M) -> Option<S>,
) -> Option<(S, usize)> {
    let scored = rules.enumerate().filter_map(|(idx, matches)| Some((best_match(matches, implicit, &score)?, idx)));
    first_best(scored)
}

/// The maximum by score, keeping the earliest element among equals (unlike
/// `Iterator::max_by_key`, which keeps the last).
fn first_best<S: Ord, T>(items: impl Iterator<Item = (S, T)>) -> Option<(S, T)> {
    items.reduce(|best, next| if next.0 > best.0 { next } else { best })
}

/// All conditions of one match must hold (AND).
fn http_match_score<Q: RequestView + ?Sized>(m: &HttpMatch, req: &Q) -> Option<HttpScore> {
    if m.method.as_ref().is_some_and(|method| method != req.method()) {
        return None;
    }
    let path_len = match &m.path {
        Some(p) => path::match_len(p, req.path())?,
        None => HTTP_BASE.path_len,
    };
    if !m.headers.iter().all(|h| fields::header_matches(h, req)) {
        return None;
    }
    if !m.query_params.iter().all(|q| fields::query_param_matches(q, req)) {
        return None;
    }
    Some(HttpScore {
        path_len,
        headers: m.headers.len(),
        query_params: m.query_params.len(),
        method: m.method.is_some(),
    })
}

fn grpc_match_score<Q: RequestView + ?Sized>(m: &GrpcMatch, req: &Q) -> Option<GrpcScore> {
    if req.method() != "POST" {
        return None;
    }
    let (service, method) = split_rpc_path(req.path())?;
    let service_len = exact_len(m.service.as_deref(), service)?;
    let method_len = exact_len(m.method.as_deref(), method)?;
    if !m.headers.iter().all(|h| fields::header_matches(h, req)) {
        return None;
    }
    Some(GrpcScore { service_len, method_len, headers: m.headers.len() })
}

/// `/<service>/<method>[/...]` → (service, method); anything after a third
/// slash is ignored, as the proxy does.
fn split_rpc_path(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.split('/');
    if !parts.next()?.is_empty() {
        return None;
    }
    Some((parts.next()?, parts.next()?))
}

/// `None` or `""` accepts anything and scores 0 (Linkerd's API encodes "any"
/// as an empty string); otherwise an exact, case-sensitive comparison
/// scoring the name's length.
fn exact_len(want: Option<&str>, got: &str) -> Option<usize> {
    match want.filter(|w| !w.is_empty()) {
        None => Some(0),
        Some(w) => (w == got).then_some(w.len()),
    }
}
