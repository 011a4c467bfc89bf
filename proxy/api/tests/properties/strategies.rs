//! Generators for configs, clients and requests.

use mesh_proxy_api::*;
use proptest::prelude::*;
use std::net::IpAddr;

pub const IDS: &[&str] = &[
    "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
    "vote.emojivoto.serviceaccount.identity.linkerd.cluster.local",
    "web.books.serviceaccount.identity.linkerd.cluster.local",
    "spiffe://cluster.local/ns/emojivoto/sa/web",
];
pub const ID_PATTERNS: &[&str] = &[
    "*",
    "*.emojivoto.serviceaccount.identity.linkerd.cluster.local",
    "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
    "spiffe://cluster.local/ns/emojivoto/sa/web",
    "**.books.serviceaccount.identity.linkerd.cluster.local",
];
pub const IPS: &[&str] = &["10.0.0.1", "10.1.2.3", "192.168.1.1", "127.0.0.1", "::1", "fd00::1", "203.0.113.5"];
pub const CIDRS: &[&str] =
    &["0.0.0.0/0", "::/0", "10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16", "fd00::/8", "127.0.0.1/32"];
pub const HOSTS: &[&str] = &["web", "web.example.com", "a.web.example.com", "WEB.example.com:8080", "[::1]:80"];
pub const HOST_PATTERNS: &[&str] = &["web", "web.example.com", "*.example.com", "*.web.example.com"];

pub fn pick(items: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(items).prop_map(str::to_string)
}

pub fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(/[ab]{0,2}){0,3}/?",
        1 => "\\PC{0,10}",
    ]
}

pub fn path_match() -> impl Strategy<Value = PathMatch> {
    prop_oneof![
        path().prop_map(PathMatch::Exact),
        path().prop_map(PathMatch::Prefix),
        prop_oneof![Just("/a.*".to_string()), Just("(".to_string()), Just("/[ab]+".to_string()), path()]
            .prop_map(PathMatch::Regex),
    ]
}

pub fn string_match() -> impl Strategy<Value = StringMatch> {
    prop_oneof![
        "[xy]{0,2}".prop_map(StringMatch::Exact),
        prop_oneof![Just("x+".to_string()), Just("[".to_string())].prop_map(StringMatch::Regex),
    ]
}

pub fn header_match() -> impl Strategy<Value = HeaderMatch> {
    ("X-[ab]", string_match()).prop_map(|(name, value)| HeaderMatch { name, value })
}

pub fn http_match() -> impl Strategy<Value = HttpMatch> {
    (
        proptest::option::of(path_match()),
        proptest::collection::vec(header_match(), 0..3),
        proptest::collection::vec(
            ("[pq]", string_match()).prop_map(|(name, value)| QueryParamMatch { name, value }),
            0..2,
        ),
        proptest::option::of(prop_oneof![Just("GET".to_string()), Just("POST".to_string())]),
    )
        .prop_map(|(path, headers, query_params, method)| HttpMatch { path, headers, query_params, method })
}

pub fn hostnames() -> impl Strategy<Value = Vec<HostMatch>> {
    proptest::collection::vec(pick(HOST_PATTERNS).prop_map(|h| HostMatch::from_hostname(&h)), 0..2)
}

pub fn authentication() -> impl Strategy<Value = Authentication> {
    prop_oneof![
        Just(Authentication::Unauthenticated),
        Just(Authentication::TlsUnauthenticated),
        proptest::collection::vec(pick(ID_PATTERNS), 0..3)
            .prop_map(|ids| { Authentication::tls_authenticated(ids.iter().map(|s| identity_match_from_str(s))) }),
    ]
}

pub fn authorization() -> impl Strategy<Value = Authorization> {
    let network = (pick(CIDRS), proptest::collection::vec(pick(CIDRS), 0..2)).prop_map(|(net, except)| Network {
        net: net.parse().unwrap(),
        except: except.iter().map(|e| e.parse().unwrap()).collect(),
    });
    ("[a-c]", proptest::collection::vec(network, 0..3), authentication()).prop_map(
        |(name, networks, authentication)| Authorization {
            meta: Meta::resource("AuthorizationPolicy", &name),
            networks,
            authentication,
        },
    )
}

pub fn authorizations() -> impl Strategy<Value = Vec<Authorization>> {
    proptest::collection::vec(authorization(), 0..3)
}

pub fn http_route() -> impl Strategy<Value = HttpRoute> {
    let rule = proptest::collection::vec(http_match(), 0..3).prop_map(|matches| HttpRule { matches, filters: vec![] });
    (hostnames(), proptest::collection::vec(rule, 0..3), authorizations()).prop_map(
        |(hostnames, rules, authorizations)| HttpRoute {
            meta: Meta::resource("HTTPRoute", "r"),
            hostnames,
            rules,
            authorizations,
        },
    )
}

pub fn grpc_route() -> impl Strategy<Value = GrpcRoute> {
    let name = || proptest::option::of(prop_oneof![Just(String::new()), "[st]{1,2}".prop_map(|s| s)]);
    let m = (name(), name(), proptest::collection::vec(header_match(), 0..2))
        .prop_map(|(service, method, headers)| GrpcMatch { service, method, headers });
    let rule = proptest::collection::vec(m, 0..3).prop_map(|matches| GrpcRule { matches });
    (hostnames(), proptest::collection::vec(rule, 0..3), authorizations()).prop_map(
        |(hostnames, rules, authorizations)| GrpcRoute {
            meta: Meta::resource("GRPCRoute", "g"),
            hostnames,
            rules,
            authorizations,
        },
    )
}

pub fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Detect { timeout_ms: 10_000 }),
        Just(Protocol::Http1),
        Just(Protocol::Http2),
        Just(Protocol::Grpc),
        Just(Protocol::Opaque),
        Just(Protocol::Tls),
    ]
}

pub fn server() -> impl Strategy<Value = InboundServer> {
    (
        protocol(),
        authorizations(),
        proptest::collection::vec(http_route(), 0..4),
        proptest::collection::vec(grpc_route(), 0..3),
    )
        .prop_map(|(protocol, authorizations, http_routes, grpc_routes)| InboundServer {
            meta: Meta::resource("Server", "s"),
            protocol,
            authorizations,
            http_routes,
            grpc_routes,
            rate_limit: None,
        })
}

pub fn client() -> impl Strategy<Value = Client> {
    let tls = prop_oneof![
        Just(ClientTls::Plaintext),
        Just(ClientTls::Unidentified),
        pick(IDS).prop_map(ClientTls::Identified),
    ];
    (pick(IPS), tls).prop_map(|(ip, tls)| Client { addr: ip.parse::<IpAddr>().unwrap(), tls })
}

pub fn request() -> impl Strategy<Value = HttpRequest> {
    let header = ("[xX]-[ab]", "[xy]{0,3}");
    (
        prop_oneof![Just("GET"), Just("POST"), Just("get")],
        path(),
        proptest::option::of("[pq](=[xy]{0,2})?(&[pq]=[xy%+]{0,3})?"),
        proptest::option::of(pick(HOSTS)),
        proptest::collection::vec(header, 0..3),
    )
        .prop_map(|(method, path, query, host, headers)| HttpRequest {
            method: method.to_string(),
            path,
            query,
            host,
            headers,
        })
}
