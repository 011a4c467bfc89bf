//! What the client-side proxy does with one request to one Service port:
//! which route and rule it takes, with what timeouts and retries, or the
//! error it answers itself (404 for no route, 500 for a broken backend).

use super::{Backend, BackendTarget, OutboundProtocol, OutboundService, Profile, ProfileRoute, Retry, Timeouts};
use super::{RequestCondition, ResponseCondition};
use crate::client::RequestView;
use crate::config::{HttpFilter, Meta};
use crate::route::{RouteSelection, regex_matches_whole, select_grpc_route_for_http, select_http_route};

/// The outcome of routing one request on the client side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboundRoute<'a> {
    /// The port routes whole connections, not requests: an opaque port (to
    /// the Service, or its TCPRoute) or a port served by a TCPRoute or
    /// TLSRoutes. `route_connection` says where the connection goes.
    Opaque,
    /// No routes: the default route to the Service itself.
    Default { target: RouteTarget<'a> },
    /// A route rule matched.
    Rule { route: &'a Meta, selection: RouteSelection, target: RouteTarget<'a> },
    /// A ServiceProfile governs the Service; `route` is the first profile
    /// route whose condition matches (`None`: default behaviour).
    Profile { profile: &'a Profile, route: Option<&'a ProfileRoute> },
    /// Routes exist and none matched: the proxy answers 404 (gRPC: NOT_FOUND).
    NotFound,
}

/// Where a routed request goes and how it is timed and retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTarget<'a> {
    pub backends: RuleBackends<'a>,
    pub filters: &'a [HttpFilter],
    pub timeouts: &'a Timeouts,
    pub retry: Option<&'a Retry>,
}

/// A rule's backends, or the Service itself for the default route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleBackends<'a> {
    Service { namespace: &'a str, name: &'a str, port: u16 },
    Weighted(&'a [Backend]),
}

impl RouteTarget<'_> {
    /// Whether every request on this target fails with 500 before leaving
    /// the proxy: all weights are 0, or every weighted backend is invalid.
    pub fn always_fails(&self) -> bool {
        match self.backends {
            RuleBackends::Service { .. } => false,
            RuleBackends::Weighted(b) => {
                b.iter().all(|b| b.weight == 0 || matches!(b.target, BackendTarget::Invalid { .. }))
            }
        }
    }
}

impl OutboundRoute<'_> {
    /// The status the client's own proxy answers with, if it answers itself
    /// for every request on this outcome.
    pub fn local_status(&self) -> Option<u16> {
        match self {
            OutboundRoute::NotFound => Some(404),
            OutboundRoute::Default { target } | OutboundRoute::Rule { target, .. } if target.always_fails() => {
                Some(500)
            }
            _ => None,
        }
    }
}

/// Routes `req` sent to `svc`'s `port`; `None` when the Service has no such port.
pub fn route_outbound<'a, R: RequestView + ?Sized>(
    svc: &'a OutboundService,
    port: u16,
    req: &R,
) -> Option<OutboundRoute<'a>> {
    let p = svc.ports.iter().find(|p| p.port == port)?;
    if let Some(profile) = &svc.profile {
        let route = profile.routes.iter().find(|r| r.condition.matches(req));
        return Some(OutboundRoute::Profile { profile, route });
    }
    if p.protocol == OutboundProtocol::Opaque || p.routes_connections() {
        return Some(OutboundRoute::Opaque);
    }
    let service_target = |timeouts, retry| RouteTarget {
        backends: RuleBackends::Service { namespace: &svc.namespace, name: &svc.name, port },
        filters: &[],
        timeouts,
        retry,
    };
    let rule_target =
        |backends: &'a [Backend], filters, timeouts: &'a Timeouts, retry: Option<&'a Retry>| RouteTarget {
            backends: RuleBackends::Weighted(backends),
            filters,
            timeouts: if timeouts.is_empty() { &svc.timeouts } else { timeouts },
            retry: retry.or(svc.retry.as_ref()),
        };
    let outcome = if !p.grpc_routes.is_empty() {
        match select_grpc_route_for_http(&p.grpc_routes, req) {
            None => OutboundRoute::NotFound,
            Some(sel) => {
                let route = &p.grpc_routes[sel.route];
                let rule = &route.rules[sel.rule];
                let target = rule_target(&rule.backends, &rule.filters, &rule.timeouts, rule.retry.as_ref());
                OutboundRoute::Rule { route: &route.meta, selection: sel, target }
            }
        }
    } else if !p.http_routes.is_empty() {
        match select_http_route(&p.http_routes, req) {
            None => OutboundRoute::NotFound,
            Some(sel) => {
                let route = &p.http_routes[sel.route];
                let rule = &route.rules[sel.rule];
                let target = rule_target(&rule.backends, &rule.filters, &rule.timeouts, rule.retry.as_ref());
                OutboundRoute::Rule { route: &route.meta, selection: sel, target }
            }
        }
    } else {
        OutboundRoute::Default { target: service_target(&svc.timeouts, svc.retry.as_ref()) }
    };
    Some(outcome)
}

/// The backend a weighted random draw lands on: `roll` is uniform in
/// `0..u64::MAX`, so callers choose the randomness (tests pass fixed rolls).
/// `None` when every weight is 0 (the request fails with 500).
pub fn pick_backend(backends: &[Backend], roll: u64) -> Option<&Backend> {
    pick_weighted(backends, |b| b.weight, roll)
}

/// `roll` (uniform over u64) mapped onto the items by weight; `None` when
/// every weight is 0. Shared by Service backends and egress backends.
pub fn pick_weighted<T>(items: &[T], weight: impl Fn(&T) -> u32, roll: u64) -> Option<&T> {
    let total: u64 = items.iter().map(|b| u64::from(weight(b))).sum();
    if total == 0 {
        return None;
    }
    // Map the roll onto 0..total without modulo bias worth speaking of (total < 2^40).
    let mut point = ((u128::from(roll) * u128::from(total)) >> 64) as u64;
    for b in items {
        let w = u64::from(weight(b));
        if point < w {
            return Some(b);
        }
        point -= w;
    }
    None
}

impl RequestCondition {
    /// Whether a request satisfies this ServiceProfile condition.
    pub fn matches<R: RequestView + ?Sized>(&self, req: &R) -> bool {
        match self {
            RequestCondition::PathRegex(re) => regex_matches_whole(re, req.path()),
            RequestCondition::Method(m) => m == req.method(),
            RequestCondition::All(all) => all.iter().all(|c| c.matches(req)),
            RequestCondition::Any(any) => any.iter().any(|c| c.matches(req)),
            RequestCondition::Not(c) => !c.matches(req),
        }
    }
}

impl ResponseCondition {
    /// Whether a response status satisfies this response-class condition.
    pub fn matches(&self, status: u16) -> bool {
        match self {
            ResponseCondition::Status(r) => r.min <= status && status <= r.max,
            ResponseCondition::All(all) => all.iter().all(|c| c.matches(status)),
            ResponseCondition::Any(any) => any.iter().any(|c| c.matches(status)),
            ResponseCondition::Not(c) => !c.matches(status),
        }
    }
}

impl Profile {
    /// Whether a response to a request on `route` is a failure: the first
    /// response class that matches decides; without one, 5xx is a failure.
    pub fn is_failure(route: Option<&ProfileRoute>, status: u16) -> bool {
        route
            .and_then(|r| r.response_classes.iter().find(|c| c.condition.matches(status)))
            .map_or((500..=599).contains(&status), |c| c.is_failure)
    }
}

#[cfg(test)]
mod tests;
