//! Verdicts for one client on one port of one workload, per request or per
//! route, computed with the proxy's own decision functions
//! (`mesh_proxy_api::decide`, `explain_authorize`), and the evidence a
//! proof is built from.

use ipnet::IpNet;
use mesh_proxy_api::{
    AuthzAttempt, Client, HttpRequest, InboundServer, Meta, PortPolicy, Protocol, ProxyConfig, RankedRule,
    explain_authorize, rank_grpc_routes_for_http, rank_http_routes,
};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Allow,
    Deny,
    NoRoute,
    /// The answer turns on something git does not hold (where a client pod
    /// is in the pod CIDR); the condition is stated alongside.
    Depends,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::NoRoute => "no-route",
            Verdict::Depends => "depends",
        }
    }
}

/// What governs the client's traffic to the port.
#[derive(Clone, Copy, Debug)]
pub enum Gate<'c> {
    /// The workload has no proxy: nothing is enforced.
    NoProxy,
    /// The port is in skip-inbound-ports.
    SkippedPort,
    /// The client's address is in skip-subnets.
    SkippedSubnet(IpNet),
    Server(&'c InboundServer),
}

pub fn gate<'c>(config: Option<&'c ProxyConfig>, port: u16, client: &Client) -> Gate<'c> {
    let Some(c) = config else { return Gate::NoProxy };
    match c.inbound.lookup(port) {
        PortPolicy::Skipped => Gate::SkippedPort,
        PortPolicy::Server(_) if c.inbound.skips_source(client.addr) => {
            let net = c.inbound.skip_subnets.iter().find(|n| n.contains(&client.addr)).copied();
            Gate::SkippedSubnet(net.expect("skips_source found one"))
        }
        PortPolicy::Server(s) => Gate::Server(s),
    }
}

/// How traffic is handled on the server: which unit a verdict is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// HTTP requests, per route.
    Http,
    /// gRPC calls, per route.
    Grpc,
    /// A TCP connection (opaque, TLS, or non-HTTP on a detect port).
    Connection,
    /// No proxy or a bypass: everything goes through.
    Bypass,
}

/// One verdict, with what decided it.
#[derive(Clone, Debug)]
pub struct Decision<'c> {
    pub unit: Unit,
    /// Index into the server's route list, and the rule that matched (with a request).
    pub route: Option<(usize, Option<usize>)>,
    pub verdict: Verdict,
    /// Authorizations tried, in order; the last one matched when allowed.
    pub attempts: Vec<AuthzAttempt<'c>>,
    /// With a request: every matching rule, best first.
    pub ranked: Vec<RankedRule>,
}

impl Decision<'_> {
    fn bypass() -> Self {
        Decision { unit: Unit::Bypass, route: None, verdict: Verdict::Allow, attempts: Vec::new(), ranked: Vec::new() }
    }

    /// The status the client sees when denied; `None` when allowed (the
    /// application answers) or when the connection is closed.
    /// The status the client sees. Linkerd answers in gRPC form (HTTP 200
    /// and `grpc-status`) when the request is gRPC (HTTP/2 with an
    /// `application/grpc` content type), whatever the server's protocol
    /// (linkerd2-proxy `errors/respond.rs`); `grpc_request` is `None` when
    /// no concrete request is asked about, and the route kind decides.
    pub fn status(&self, grpc_request: Option<bool>) -> Option<u32> {
        let grpc = grpc_request.unwrap_or(self.unit == Unit::Grpc);
        match (self.verdict, self.unit) {
            (Verdict::Allow | Verdict::Depends, _) | (_, Unit::Connection | Unit::Bypass) => None,
            (Verdict::Deny, _) => Some(if grpc { 7 } else { 403 }),
            (Verdict::NoRoute, _) => Some(if grpc { 5 } else { 404 }),
        }
    }

    /// The authorization that allowed, if any.
    pub fn authorization(&self) -> Option<&Meta> {
        self.attempts.last().filter(|a| a.matched()).map(|a| &a.authorization.meta)
    }
}

pub fn route_meta(server: &InboundServer, route: usize) -> &Meta {
    if server.protocol == Protocol::Grpc { &server.grpc_routes[route].meta } else { &server.http_routes[route].meta }
}

fn route_unit(server: &InboundServer) -> Unit {
    if server.protocol == Protocol::Grpc { Unit::Grpc } else { Unit::Http }
}

fn verdict_of(attempts: &[AuthzAttempt]) -> Verdict {
    if attempts.last().is_some_and(AuthzAttempt::matched) { Verdict::Allow } else { Verdict::Deny }
}

fn connection<'c>(server: &'c InboundServer, client: &Client) -> Decision<'c> {
    let attempts = explain_authorize(&[], &server.authorizations, client);
    Decision { unit: Unit::Connection, route: None, verdict: verdict_of(&attempts), attempts, ranked: Vec::new() }
}

/// The decision for one request, exactly as `mesh_proxy_api::decide` makes it.
pub fn for_request<'c>(gate: Gate<'c>, client: &Client, req: &HttpRequest) -> Decision<'c> {
    let Gate::Server(server) = gate else { return Decision::bypass() };
    if !server.protocol.is_http() {
        return connection(server, client);
    }
    let ranked = if server.protocol == Protocol::Grpc {
        rank_grpc_routes_for_http(&server.grpc_routes, req)
    } else {
        rank_http_routes(&server.http_routes, req)
    };
    let unit = route_unit(server);
    let Some(best) = ranked.first() else {
        return Decision { unit, route: None, verdict: Verdict::NoRoute, attempts: Vec::new(), ranked };
    };
    let (route, rule) = (best.selection.route, best.selection.rule);
    let route_authzs = match server.protocol {
        Protocol::Grpc => &server.grpc_routes[route].authorizations,
        _ => &server.http_routes[route].authorizations,
    };
    let attempts = explain_authorize(route_authzs, &server.authorizations, client);
    Decision { unit, route: Some((route, Some(rule))), verdict: verdict_of(&attempts), attempts, ranked }
}

/// Without a request: one decision per route (a client may be allowed on
/// some and not others), plus the connection-level one for non-HTTP
/// traffic on a detect port. Opaque and TLS ports have only the latter.
pub fn per_route<'c>(gate: Gate<'c>, client: &Client) -> Vec<Decision<'c>> {
    let Gate::Server(server) = gate else { return vec![Decision::bypass()] };
    if !server.protocol.is_http() {
        return vec![connection(server, client)];
    }
    let unit = route_unit(server);
    let routes: Vec<&[mesh_proxy_api::Authorization]> = if unit == Unit::Grpc {
        server.grpc_routes.iter().map(|r| r.authorizations.as_slice()).collect()
    } else {
        server.http_routes.iter().map(|r| r.authorizations.as_slice()).collect()
    };
    let mut out: Vec<Decision> = routes
        .into_iter()
        .enumerate()
        .map(|(i, authzs)| {
            let attempts = explain_authorize(authzs, &server.authorizations, client);
            Decision { unit, route: Some((i, None)), verdict: verdict_of(&attempts), attempts, ranked: Vec::new() }
        })
        .collect();
    if matches!(server.protocol, Protocol::Detect { .. }) {
        out.push(connection(server, client));
    }
    out
}
