//! `mesh-proxy-api`: the contract between meshc and mesh-proxy.
//!
//! [`ProxyConfig`] is what meshc lowers a workload's policy into and what the
//! proxy enforces. The decision functions ([`authorize`], route selection,
//! [`decide_http`] and friends) are the ones the proxy calls per request,
//! and the ones meshc's analysis calls to prove reachability, so the
//! verifier checks exactly what will be enforced.
//! Pure: no I/O, no async.

pub mod authz;
pub mod bundle;
pub mod canonical;
pub mod client;
pub mod config;
pub mod decide;
pub mod endpoints;
pub mod envelope;
pub mod identity;
pub mod names;
pub mod outbound;
pub mod ratelimit;
pub mod route;
pub mod schema;
pub mod sequence;
pub mod service_policy;

pub use authz::{
    AuthnMismatch, AuthzAttempt, AuthzMatch, AuthzSource, IdentityMatch, NetworkMismatch, authorize, explain_authorize,
    identity_match_from_str, is_dns_identity, localhost_authorization,
};
pub use client::{Client, ClientTls, GrpcRequest, HttpRequest, RequestView};
pub use config::*;
pub use decide::{HttpVerdict, PortPolicy, TcpVerdict, Verdict, decide, decide_grpc, decide_http, decide_tcp};
pub use identity::IdentityDomain;
pub use outbound::{Outbound, OutboundRoute, OutboundService, RouteTarget, RuleBackends, pick_backend, route_outbound};
pub use ratelimit::{Bucket, BucketKey, Buckets, LocalRateLimit, RateLimitOverride, Scope, buckets};
pub use route::{
    MatchedRoute, RankedRule, RouteSelection, rank_grpc_routes_for_http, rank_http_routes, select_grpc_route,
    select_grpc_route_for_http, select_http_route, validate_regex,
};
pub use schema::proxy_config_schema;
