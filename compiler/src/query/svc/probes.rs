//! The requests `who-can-reach svc/...` and `matrix --services` send: `GET /`,
//! then one per HTTP route rule of the port (as the client's namespace sees
//! it), made from the rule's first match, so that a Service whose routes
//! serve only `/api` is not reported as reached by nobody; on a port that
//! TLSRoutes serve, a TLS connection per exact SNI they name.

use super::target::ServiceTarget;
use crate::pipeline::Outcome;
use mesh_proxy_api::outbound::OutboundProtocol;
use mesh_proxy_api::{HostMatch, HttpMatch, HttpRequest, PathMatch, StringMatch};

/// What a client sends to a Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Http(HttpRequest),
    /// A TLS connection whose ClientHello names this SNI.
    Tls(String),
}

impl Probe {
    /// The request to route: a TLS probe carries none, `GET /` stands in.
    pub fn request(&self) -> HttpRequest {
        match self {
            Probe::Http(req) => req.clone(),
            Probe::Tls(_) => HttpRequest::new("GET", "/"),
        }
    }

    pub fn sni(&self) -> Option<&str> {
        match self {
            Probe::Http(_) => None,
            Probe::Tls(sni) => Some(sni),
        }
    }

    /// `GET /books x-canary=always`, or `TLS SNI api.example.com`.
    pub fn label(&self) -> String {
        match self {
            Probe::Http(req) => {
                format!("{} {}", req.method, req.path)
                    + &req.headers.iter().map(|(k, v)| format!(" {k}={v}")).collect::<String>()
            }
            Probe::Tls(sni) => format!("TLS SNI {sni}"),
        }
    }
}

/// `GET /` first, then each rule's request, without repeats, then a TLS
/// connection per exact SNI of the port's TLSRoutes. A match on a path
/// regex, a header regex or a query parameter cannot be made concrete
/// from the match alone: such rules send no request of their own; nor
/// does a wildcard hostname.
pub fn probes(o: &Outcome, t: &ServiceTarget, client_ns: Option<&str>) -> Vec<Probe> {
    let mut out = vec![Probe::Http(HttpRequest::new("GET", "/"))];
    let Some(si) = o.outbound.find(&t.namespace, &t.name) else { return out };
    let svc = o.outbound.service_for(si, client_ns.unwrap_or(""));
    let Some(port) = svc.ports.iter().find(|p| p.port == t.port) else { return out };
    if svc.profile.is_some() || port.protocol == OutboundProtocol::Opaque {
        return out;
    }
    let firsts = port.http_routes.iter().flat_map(|r| &r.rules).filter_map(|rule| rule.matches.first());
    for req in firsts.filter_map(concrete).map(Probe::Http) {
        if !out.iter().any(|r| same(r, &req)) {
            out.push(req);
        }
    }
    let snis = port.tls_routes.iter().flat_map(|r| &r.snis).filter_map(|h| match h {
        HostMatch::Exact(name) => Some(Probe::Tls(name.clone())),
        HostMatch::Suffix(_) => None,
    });
    for probe in snis {
        if !out.contains(&probe) {
            out.push(probe);
        }
    }
    out
}

fn same(a: &Probe, b: &Probe) -> bool {
    match (a, b) {
        (Probe::Http(a), Probe::Http(b)) => a.method == b.method && a.path == b.path && a.headers == b.headers,
        _ => a == b,
    }
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
