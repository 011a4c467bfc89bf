//! Builders that read like the Linkerd resources they stand for.

use mesh_proxy_api::*;
use std::net::IpAddr;

pub const WEB_ID: &str = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";
pub const VOTE_ID: &str = "voting.emojivoto.serviceaccount.identity.linkerd.cluster.local";
pub const OTHER_NS_ID: &str = "web.books.serviceaccount.identity.linkerd.cluster.local";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn net(cidr: &str) -> Network {
    Network { net: cidr.parse().unwrap(), except: vec![] }
}

pub fn net_except(cidr: &str, except: &[&str]) -> Network {
    Network { net: cidr.parse().unwrap(), except: except.iter().map(|e| e.parse().unwrap()).collect() }
}

/// 0.0.0.0/0 and ::/0: an AuthorizationPolicy without NetworkAuthentication.
pub fn everywhere() -> Vec<Network> {
    vec![net("0.0.0.0/0"), net("::/0")]
}

pub fn authz(name: &str, networks: Vec<Network>, authentication: Authentication) -> Authorization {
    Authorization { meta: Meta::resource("AuthorizationPolicy", name), networks, authentication }
}

/// Any client from any network.
pub fn allow_all(name: &str) -> Authorization {
    authz(name, everywhere(), Authentication::Unauthenticated)
}

/// MeshTLSAuthentication with these `identities` strings, from anywhere.
pub fn mesh_tls(name: &str, identities: &[&str]) -> Authorization {
    let parsed = identities.iter().map(|s| identity_match_from_str(s));
    authz(name, everywhere(), Authentication::tls_authenticated(parsed))
}

pub fn audit() -> Authorization {
    Authorization {
        meta: Meta::default_named("audit"),
        networks: everywhere(),
        authentication: Authentication::Unauthenticated,
    }
}

pub fn meshed(addr: &str, identity: &str) -> Client {
    Client::identified(ip(addr), identity)
}

pub fn unmeshed(addr: &str) -> Client {
    Client::plaintext(ip(addr))
}

pub fn prefix(p: &str) -> HttpMatch {
    HttpMatch { path: Some(PathMatch::Prefix(p.into())), ..HttpMatch::default() }
}

pub fn exact(p: &str) -> HttpMatch {
    HttpMatch { path: Some(PathMatch::Exact(p.into())), ..HttpMatch::default() }
}

pub fn regex(p: &str) -> HttpMatch {
    HttpMatch { path: Some(PathMatch::Regex(p.into())), ..HttpMatch::default() }
}

pub fn header(name: &str, value: &str) -> HeaderMatch {
    HeaderMatch { name: name.into(), value: StringMatch::Exact(value.into()) }
}

pub fn query(name: &str, value: StringMatch) -> QueryParamMatch {
    QueryParamMatch { name: name.into(), value }
}

pub fn rule(matches: Vec<HttpMatch>) -> HttpRule {
    HttpRule { matches, filters: vec![] }
}

pub fn route(name: &str, rules: Vec<HttpRule>) -> HttpRoute {
    HttpRoute { meta: Meta::resource("HTTPRoute", name), hostnames: vec![], rules, authorizations: vec![] }
}

/// A route with one rule holding `matches`.
pub fn route_with(name: &str, matches: Vec<HttpMatch>) -> HttpRoute {
    route(name, vec![rule(matches)])
}

pub fn with_hosts(mut r: HttpRoute, hosts: &[&str]) -> HttpRoute {
    r.hostnames = hosts.iter().map(|h| HostMatch::from_hostname(h)).collect();
    r
}

pub fn with_authz(mut r: HttpRoute, authzs: Vec<Authorization>) -> HttpRoute {
    r.authorizations = authzs;
    r
}

pub fn server(protocol: Protocol, authorizations: Vec<Authorization>, http_routes: Vec<HttpRoute>) -> InboundServer {
    InboundServer {
        meta: Meta::resource("Server", "web"),
        protocol,
        authorizations,
        http_routes,
        grpc_routes: vec![],
        rate_limit: None,
    }
}

pub fn grpc_match(service: Option<&str>, method: Option<&str>) -> GrpcMatch {
    GrpcMatch { service: service.map(Into::into), method: method.map(Into::into), headers: vec![] }
}

pub fn grpc_route(name: &str, matches: Vec<GrpcMatch>) -> GrpcRoute {
    GrpcRoute {
        meta: Meta::resource("GRPCRoute", name),
        hostnames: vec![],
        rules: vec![GrpcRule { matches }],
        authorizations: vec![],
    }
}

pub fn sel(route: usize, rule: usize) -> Option<RouteSelection> {
    Some(RouteSelection { route, rule })
}
