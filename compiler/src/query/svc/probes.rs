//! The requests `who-can-reach svc/...` and `matrix --services` send: `GET /`,
//! then one per HTTP route rule of the port (as the client's namespace sees
//! it), made from the rule's first match, so that a Service whose routes
//! serve only `/api` is not reported as reached by nobody.

use super::target::ServiceTarget;
use crate::pipeline::Outcome;
use mesh_proxy_api::outbound::OutboundProtocol;
use mesh_proxy_api::{HttpMatch, HttpRequest, PathMatch, StringMatch};

/// `GET /` first, then each rule's request, without repeats. A match on a
/// path regex, a header regex or a query parameter cannot be made concrete
/// from the match alone: such rules send no request of their own.
pub fn probes(o: &Outcome, t: &ServiceTarget, client_ns: Option<&str>) -> Vec<HttpRequest> {
    let mut out = vec![HttpRequest::new("GET", "/")];
    let Some(si) = o.outbound.find(&t.namespace, &t.name) else { return out };
    let svc = o.outbound.service_for(si, client_ns.unwrap_or(""));
    let Some(port) = svc.ports.iter().find(|p| p.port == t.port) else { return out };
    if svc.profile.is_some() || port.protocol == OutboundProtocol::Opaque {
        return out;
    }
    let firsts = port.http_routes.iter().flat_map(|r| &r.rules).filter_map(|rule| rule.matches.first());
    for req in firsts.filter_map(concrete) {
        if !out.iter().any(|r| same(r, &req)) {
            out.push(req);
        }
    }
    out
}

fn same(a: &HttpRequest, b: &HttpRequest) -> bool {
    a.method == b.method && a.path == b.path && a.headers == b.headers
}

/// A request the match selects, when its parts are literal.
fn concrete(m: &HttpMatch) -> Option<HttpRequest> {
    if !m.query_params.is_empty() {
        return None;
    }
    let path = match &m.path {
        None => "/",
        Some(PathMatch::Exact(p) | PathMatch::Prefix(p)) => p.as_str(),
        Some(PathMatch::Regex(_)) => return None,
    };
    let mut req = HttpRequest::new(m.method.as_deref().unwrap_or("GET"), path);
    for h in &m.headers {
        let StringMatch::Exact(v) = &h.value else { return None };
        req = req.with_header(&h.name, v);
    }
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proxy_api::{HeaderMatch, QueryParamMatch};

    #[test]
    fn literal_matches_become_requests_and_patterns_do_not() {
        let m = HttpMatch {
            path: Some(PathMatch::Prefix("/api".into())),
            headers: vec![HeaderMatch { name: "x-canary".into(), value: StringMatch::Exact("always".into()) }],
            query_params: Vec::new(),
            method: Some("POST".into()),
        };
        let req = concrete(&m).expect("literal");
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api"));
        assert_eq!(req.headers, vec![("x-canary".to_owned(), "always".to_owned())]);
        let regex = HttpMatch { path: Some(PathMatch::Regex("/b.*".into())), ..m.clone() };
        assert!(concrete(&regex).is_none());
        let header_regex = HttpMatch {
            headers: vec![HeaderMatch { name: "x".into(), value: StringMatch::Regex(".*".into()) }],
            ..m.clone()
        };
        assert!(concrete(&header_regex).is_none());
        let query = HttpMatch {
            query_params: vec![QueryParamMatch { name: "q".into(), value: StringMatch::Exact("1".into()) }],
            ..m
        };
        assert!(concrete(&query).is_none());
    }
}
