//! Routes of whole connections on a Service port: TLSRoutes (by the SNI of
//! the client's ClientHello, which the proxy reads without terminating TLS)
//! and TCPRoutes (every connection). Each sends the connection to one
//! backend picked by weight (`pick_backend`).
//!
//! Linkerd's policy controller (`grpc/src/outbound.rs::to_proto`) gives a
//! port at most one kind of route: gRPC, else HTTP, else TLS, else TCP on a
//! port with protocol detection; only TCP on an opaque port; only HTTP and
//! gRPC on an `http`/`h2c` port. meshc lowers ports the same way, so a port
//! never holds two kinds; [`route_connection`] still applies that order.

use super::{Backend, OutboundPort, OutboundProtocol, OutboundService};
use crate::config::{HostMatch, Meta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A TLSRoute on a Service port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTlsRoute {
    pub meta: Meta,
    /// SNI names; empty matches every SNI (but a ClientHello with an SNI is still required).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snis: Vec<HostMatch>,
    /// Weighted random choice; never empty (a rule without backendRefs lists the parent Service).
    pub backends: Vec<Backend>,
}

/// The TCPRoute on a Service port (Linkerd sends only the oldest one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTcpRoute {
    pub meta: Meta,
    /// Weighted random choice; never empty.
    pub backends: Vec<Backend>,
}

/// How a client proxy routes one connection to a Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionRoute<'a> {
    /// No connection routes: HTTP is detected (or declared) and each request
    /// is routed by `route_outbound`; anything else goes to the Service as TCP.
    Requests,
    /// An opaque port without a TCPRoute: the connection goes to the Service.
    Service { namespace: &'a str, name: &'a str, port: u16 },
    /// A TCPRoute, or the TLSRoute that matched the SNI: one backend by weight.
    Route { route: &'a Meta, backends: &'a [Backend], sni: Option<SniMatch> },
    /// TLSRoutes serve the port and none matches the SNI, or the client sent
    /// no ClientHello with an SNI: the proxy closes the connection.
    NoRoute,
}

/// How well an SNI matched a TLSRoute, ordered as linkerd2-proxy ranks
/// them (`linkerd/tls/route/src/sni.rs`): any exact match beats any suffix
/// match; within a kind, the longer name wins. A route without SNIs ranks
/// below both (`None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SniMatch {
    Suffix(usize),
    Exact(usize),
}

impl OutboundPort {
    /// Whether this port routes whole connections (a TCPRoute or TLSRoutes)
    /// rather than requests.
    pub fn routes_connections(&self) -> bool {
        self.http_routes.is_empty()
            && self.grpc_routes.is_empty()
            && (!self.tls_routes.is_empty() || self.tcp_route.is_some())
    }
}

/// Routes a connection to `svc`'s `port` whose ClientHello named `sni`
/// (`None`: no ClientHello, or one without SNI); `None` when the Service
/// has no such port.
pub fn route_connection<'a>(svc: &'a OutboundService, port: u16, sni: Option<&str>) -> Option<ConnectionRoute<'a>> {
    let p = svc.ports.iter().find(|p| p.port == port)?;
    let to_service = ConnectionRoute::Service { namespace: &svc.namespace, name: &svc.name, port };
    // A ServiceProfile with routes or dstOverrides replaces Linkerd's route policy.
    if svc.profile.is_some() {
        let opaque = p.protocol == OutboundProtocol::Opaque;
        return Some(if opaque { to_service } else { ConnectionRoute::Requests });
    }
    let tcp = |r: &'a OutboundTcpRoute| ConnectionRoute::Route { route: &r.meta, backends: &r.backends, sni: None };
    let outcome = match p.protocol {
        OutboundProtocol::Opaque => p.tcp_route.as_ref().map_or(to_service, tcp),
        OutboundProtocol::Http1 | OutboundProtocol::Http2 => ConnectionRoute::Requests,
        OutboundProtocol::Detect if !p.http_routes.is_empty() || !p.grpc_routes.is_empty() => ConnectionRoute::Requests,
        OutboundProtocol::Detect if !p.tls_routes.is_empty() => {
            match sni.and_then(|s| select_tls_route(&p.tls_routes, s)) {
                Some((r, m)) => ConnectionRoute::Route { route: &r.meta, backends: &r.backends, sni: m },
                None => ConnectionRoute::NoRoute,
            }
        }
        OutboundProtocol::Detect => p.tcp_route.as_ref().map_or(ConnectionRoute::Requests, tcp),
    };
    Some(outcome)
}

/// The TLSRoute for `sni`: the best match, the first of equals (routes are
/// in Linkerd's order: oldest first, then by name).
pub fn select_tls_route<'a>(
    routes: &'a [OutboundTlsRoute],
    sni: &str,
) -> Option<(&'a OutboundTlsRoute, Option<SniMatch>)> {
    select_by_sni(routes, |r| &r.snis, sni)
}

/// The route whose SNI names best match `sni`, as linkerd2-proxy's
/// `linkerd_tls_route::find` ranks them: a route without names matches
/// every SNI and ranks lowest; of equals, the first wins. Shared by
/// Service-parent and EgressNetwork-parent TLSRoutes.
pub fn select_by_sni<'a, R>(
    routes: &'a [R],
    snis: impl Fn(&R) -> &[HostMatch],
    sni: &str,
) -> Option<(&'a R, Option<SniMatch>)> {
    let mut best: Option<(&R, Option<SniMatch>)> = None;
    for r in routes {
        let names = snis(r);
        let m = if names.is_empty() {
            None
        } else {
            match names.iter().filter_map(|h| sni_match(h, sni)).max() {
                Some(m) => Some(m),
                None => continue,
            }
        };
        if best.as_ref().is_none_or(|(_, b)| m > *b) {
            best = Some((r, m));
        }
    }
    best
}

/// Whether `sni` matches `host`. An SNI's trailing dot is ignored unless the
/// route's name has one. The proxy lowercases the SNI it reads
/// (`linkerd_dns::NameRef::to_owned`); route names are lowercase (the CRD's pattern).
pub fn sni_match(host: &HostMatch, sni: &str) -> Option<SniMatch> {
    let sni = sni.to_ascii_lowercase();
    match host {
        HostMatch::Exact(h) => {
            let s = if h.ends_with('.') { sni.as_str() } else { sni.strip_suffix('.').unwrap_or(&sni) };
            (s == h).then_some(SniMatch::Exact(h.len()))
        }
        HostMatch::Suffix(suffix) => {
            let s = if suffix.ends_with('.') { sni.as_str() } else { sni.strip_suffix('.').unwrap_or(&sni) };
            s.strip_suffix(suffix.as_str())?.strip_suffix('.')?;
            Some(SniMatch::Suffix(suffix.len() + 1))
        }
    }
}

#[cfg(test)]
mod tests;
