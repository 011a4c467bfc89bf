//! Per-port, per-connection and per-request decisions: the functions the
//! proxy calls to enforce a [`crate::ProxyConfig`] and meshc's analysis calls
//! to prove what it allows.
//!
//! Flow (linkerd2-proxy inbound): a port either bypasses the proxy or has a
//! server. Opaque and TLS servers authorize the connection against the
//! server's authorizations plus localhost, else close it. HTTP-routed
//! servers pick a route first (none → 404), then authorize against the
//! route's authorizations, the server's, then localhost (none → 403).

use crate::authz::{AuthzMatch, authorize};
use crate::client::{Client, GrpcRequest, HttpRequest, RequestView};
use crate::config::{Authorization, Inbound, InboundServer, Meta, Protocol};
use crate::route::{RouteSelection, select_grpc_route_for_http, select_http_route};
use std::net::IpAddr;

/// What governs inbound traffic to one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortPolicy<'a> {
    /// The port is in `skip_ports`: traffic never reaches the proxy, so no
    /// policy and no mTLS apply.
    Skipped,
    Server(&'a InboundServer),
}

impl Inbound {
    /// The policy for `port`: skipped, its explicit server, else the default
    /// server (the proxy discovers policy for any port, declared or not).
    pub fn lookup(&self, port: u16) -> PortPolicy<'_> {
        if self.skip_ports.iter().any(|r| r.contains(port)) {
            return PortPolicy::Skipped;
        }
        let explicit = self.ports.iter().find(|p| p.port == port);
        PortPolicy::Server(explicit.map_or(&self.default_server, |p| &p.server))
    }

    /// Whether traffic from `source` bypasses the proxy on every port
    /// (`skip-subnets`). Callers combine it with [`Self::lookup`]; it is
    /// separate so a proof can say which of the two bypasses applied.
    pub fn skips_source(&self, source: IpAddr) -> bool {
        self.skip_subnets.iter().any(|net| net.contains(&source))
    }
}

/// Outcome of one HTTP (or gRPC) request on an HTTP-routed server.
///
/// `route` indexes `server.grpc_routes` when the server's protocol is
/// `Grpc`, else `server.http_routes`; `rule` indexes that route's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVerdict<'a> {
    Allowed {
        route: usize,
        rule: usize,
        authz: AuthzMatch<'a>,
    },
    /// A route matched but no authorization permits the client.
    Unauthorized {
        route: usize,
        rule: usize,
    },
    /// No route matched the request.
    NoRoute,
}

impl HttpVerdict<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, HttpVerdict::Allowed { .. })
    }

    /// The proxy's HTTP status: 403 unauthorized, 404 no route. An allowed
    /// request is forwarded and the application answers; 200 stands for
    /// that (a redirect filter on the rule would answer 3xx instead).
    pub fn http_status(&self) -> u16 {
        match self {
            HttpVerdict::Allowed { .. } => 200,
            HttpVerdict::Unauthorized { .. } => 403,
            HttpVerdict::NoRoute => 404,
        }
    }

    /// The grpc-status a gRPC client sees: 7 PERMISSION_DENIED, 5 NOT_FOUND;
    /// 0 (OK) stands for "forwarded to the application".
    pub fn grpc_status(&self) -> u32 {
        match self {
            HttpVerdict::Allowed { .. } => 0,
            HttpVerdict::Unauthorized { .. } => 7,
            HttpVerdict::NoRoute => 5,
        }
    }

    /// The selected route, if any.
    pub fn selection(&self) -> Option<RouteSelection> {
        match *self {
            HttpVerdict::Allowed { route, rule, .. } | HttpVerdict::Unauthorized { route, rule } => {
                Some(RouteSelection { route, rule })
            }
            HttpVerdict::NoRoute => None,
        }
    }

    /// The selected route's meta, looked up in the list the verdict's
    /// indices refer to.
    pub fn route_meta<'s>(&self, server: &'s InboundServer) -> Option<&'s Meta> {
        let route = self.selection()?.route;
        if server.protocol == Protocol::Grpc {
            server.grpc_routes.get(route).map(|r| &r.meta)
        } else {
            server.http_routes.get(route).map(|r| &r.meta)
        }
    }
}

/// Decides one HTTP request on a server the proxy routes per request.
///
/// The route list is chosen by the server's protocol, not by the request,
/// as the proxy does: a `Grpc` server matches every request against its gRPC
/// routes, any other protocol against its HTTP routes. An empty route list
/// matches nothing (→ `NoRoute`): lowering must emit Linkerd's default routes
/// explicitly. Opaque and TLS servers never route; use [`decide`] or
/// [`decide_tcp`] for them.
pub fn decide_http<'a, R: RequestView + ?Sized>(
    server: &'a InboundServer,
    client: &Client,
    req: &R,
) -> HttpVerdict<'a> {
    let routed = if server.protocol == Protocol::Grpc {
        select_grpc_route_for_http(&server.grpc_routes, req)
            .map(|s| (s, server.grpc_routes[s.route].authorizations.as_slice()))
    } else {
        select_http_route(&server.http_routes, req).map(|s| (s, server.http_routes[s.route].authorizations.as_slice()))
    };
    let Some((RouteSelection { route, rule }, route_authzs)) = routed else {
        return HttpVerdict::NoRoute;
    };
    match authorize(route_authzs, &server.authorizations, client) {
        Some(authz) => HttpVerdict::Allowed { route, rule, authz },
        None => HttpVerdict::Unauthorized { route, rule },
    }
}

/// Decides one gRPC call: `POST /<service>/<method>` through
/// [`decide_http`], so a gRPC server uses its gRPC routes and an HTTP-routed
/// server (Detect, HTTP/1, HTTP/2) its HTTP routes, as on a cluster.
pub fn decide_grpc<'a>(server: &'a InboundServer, client: &Client, req: &GrpcRequest) -> HttpVerdict<'a> {
    decide_http(server, client, &req.to_http())
}

/// Outcome of a connection the proxy handles as TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpVerdict<'a> {
    Allowed {
        authz: AuthzMatch<'a>,
    },
    /// The proxy accepted the TCP handshake, then closes the connection.
    Closed,
}

impl TcpVerdict<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, TcpVerdict::Allowed { .. })
    }
}

/// Decides a connection handled as TCP: on an Opaque or TLS server, or
/// non-HTTP traffic on a Detect server. Only server-level authorizations
/// (plus localhost) apply; route authorizations never do.
pub fn decide_tcp<'a>(server: &'a InboundServer, client: &Client) -> TcpVerdict<'a> {
    const NO_ROUTE_AUTHZS: &[Authorization] = &[];
    match authorize(NO_ROUTE_AUTHZS, &server.authorizations, client) {
        Some(authz) => TcpVerdict::Allowed { authz },
        None => TcpVerdict::Closed,
    }
}

/// An HTTP request's outcome on any server: per request on HTTP-routed
/// servers, per connection on Opaque and TLS servers (the request travels
/// inside an authorized connection, or the connection is closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    Http(HttpVerdict<'a>),
    Tcp(TcpVerdict<'a>),
}

impl Verdict<'_> {
    pub fn is_allowed(&self) -> bool {
        match self {
            Verdict::Http(v) => v.is_allowed(),
            Verdict::Tcp(v) => v.is_allowed(),
        }
    }
}

/// Decides an HTTP request against a server of any protocol.
pub fn decide<'a>(server: &'a InboundServer, client: &Client, req: &HttpRequest) -> Verdict<'a> {
    if server.protocol.is_http() {
        Verdict::Http(decide_http(server, client, req))
    } else {
        Verdict::Tcp(decide_tcp(server, client))
    }
}
