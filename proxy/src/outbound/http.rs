//! One outbound HTTP request: which Service it is for, which route and
//! backend the config picks (through `mesh-proxy-api`), and the plan
//! [`super::forward`] executes.

use super::accrual::AccrualPolicy;
use super::body::{Answer, BoxBody, local};
use super::forward::{Classify, Plan, RetryPlan};
use super::{Outbound, target};
use crate::access_log::{AccessLog, Seen};
use crate::discovery::ServiceKey;
use crate::http_util::{is_grpc, request_view};
use crate::metrics::{LabelKey, Labels, LastRequest, TargetId, address};
use crate::state;
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_proxy_api::config::Meta;
use mesh_proxy_api::outbound::{
    Backend, BackendTarget, OutboundPort, OutboundService, Profile, ProfileRoute, RuleBackends,
};
use mesh_proxy_api::{OutboundRoute, pick_backend, route_outbound};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Profile routes retry until the budget says no; this bounds one request
/// when the budget is large (Linkerd has no per-request cap here).
const PROFILE_RETRY_LIMIT: u16 = 3;

/// How a listener knows the Service: from each request's authority
/// (explicit `--outbound`), or fixed by the connection (transparent).
#[derive(Clone, Debug)]
pub enum Target {
    /// The connection's requests' authorities, parsed once per authority.
    Authority(Arc<target::AuthorityCache>),
    Fixed(ServiceKey),
    /// A transparent connection to an address outside the Services, under
    /// an EgressNetwork: each request is decided by `decide_egress`.
    Egress(SocketAddr),
}

/// The hyper service: answers every request, recording its metrics
/// (`last`: what the connection's last request counted into).
pub async fn handle(
    ob: Arc<Outbound>,
    target: Target,
    peer: SocketAddr,
    last: Arc<LastRequest>,
    req: Request<Incoming>,
) -> Result<Response<BoxBody>, Infallible> {
    let start = Instant::now();
    // One config for the whole request: its routing, metrics and log line.
    let loaded = state::current(&ob.config);
    let log = loaded.as_ref().and_then(|c| AccessLog::from_config(&c.config));
    let seen = log.as_ref().map(|_| Seen::of(&req));
    let mut fallback = None;
    let mut counted = Counted::default();
    let resp = route(&ob, &loaded, &target, req, &mut counted, &mut fallback).await;
    let status = resp.status().as_u16();
    let generation = loaded.as_ref().map_or(0, |l| l.generation);
    last.record(&ob.metrics, counted.key(generation, status), || counted.labels(status), start.elapsed());
    if let (Some(log), Some(seen)) = (log, seen) {
        log.request(&seen, peer, None, &counted.labels(status), start.elapsed());
    }
    Ok(resp)
}

/// What an outbound request's metric labels name, by reference into the
/// config in force, formatted only when needed.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counted<'a> {
    pub target: CountedTarget<'a>,
    pub route: CountedRoute<'a>,
    pub verdict: &'static str,
}

/// The `target` label: a fixed word, or a Service port the config lists.
#[derive(Clone, Copy, Debug)]
pub(super) enum CountedTarget<'a> {
    Fixed(&'static str),
    Service(&'a OutboundService, u16),
}

impl Default for CountedTarget<'_> {
    fn default() -> Self {
        CountedTarget::Fixed("")
    }
}

/// The `route` label.
#[derive(Clone, Copy, Debug, Default)]
pub(super) enum CountedRoute<'a> {
    /// Not routed (refused first, no route matched): `""`.
    #[default]
    None,
    /// The default route, an opaque port, a profile with no matching route: `default:default`.
    Default,
    /// A route rule: `kind:name`.
    Rule(&'a Meta),
    /// A ServiceProfile route: `serviceprofile:NAME`.
    Profile(&'a ProfileRoute),
}

impl<'a> CountedRoute<'a> {
    fn of(outcome: &OutboundRoute<'a>) -> Self {
        match *outcome {
            OutboundRoute::Rule { route, .. } => CountedRoute::Rule(route),
            OutboundRoute::Profile { route: Some(r), .. } => CountedRoute::Profile(r),
            OutboundRoute::NotFound => CountedRoute::None,
            _ => CountedRoute::Default,
        }
    }

    fn text(self) -> String {
        match self {
            CountedRoute::None => String::new(),
            CountedRoute::Default => "default:default".to_string(),
            CountedRoute::Rule(meta) => format!("{}:{}", meta.kind, meta.name),
            CountedRoute::Profile(r) => format!("serviceprofile:{}", r.name),
        }
    }

    /// Distinct per variant and resource: the sentinels are no addresses.
    fn key(self) -> usize {
        match self {
            CountedRoute::None => 0,
            CountedRoute::Default => 1,
            CountedRoute::Rule(meta) => address(Some(meta)),
            CountedRoute::Profile(r) => address(Some(r)),
        }
    }
}

impl Counted<'_> {
    fn labels(&self, status: u16) -> Labels {
        let target = match self.target {
            CountedTarget::Fixed(word) => word.to_string(),
            CountedTarget::Service(svc, port) => {
                target::label(&ServiceKey { namespace: svc.namespace.clone(), name: svc.name.clone(), port })
            }
        };
        Labels {
            direction: "outbound",
            target,
            route: self.route.text(),
            authz: String::new(),
            verdict: self.verdict,
            status: status.to_string(),
        }
    }

    fn key(&self, generation: u64, status: u16) -> LabelKey {
        let target = match self.target {
            CountedTarget::Fixed(word) => TargetId::Fixed(word),
            CountedTarget::Service(svc, port) => TargetId::Config(address(Some(svc)), port),
        };
        LabelKey { generation, target, route: self.route.key(), authz: 0, verdict: self.verdict, status }
    }
}

/// The Service port a request is for, and its authority when the
/// connection's cache holds it parsed.
fn service_key(
    ob: &Outbound,
    target: &Target,
    req: &Request<Incoming>,
) -> Result<(ServiceKey, Option<Authority>), Answer> {
    let grpc = is_grpc(req);
    match target {
        Target::Fixed(key) => Ok((key.clone(), None)),
        Target::Egress(dst) => Err(Box::new(local(
            StatusCode::INTERNAL_SERVER_ERROR,
            grpc,
            Some(&format!("egress {dst} is not a Service")),
        ))),
        Target::Authority(cache) => {
            let Some(authority) = authority_str(req.uri(), req.headers()) else {
                return Err(Box::new(local(
                    StatusCode::BAD_REQUEST,
                    grpc,
                    Some("request has no authority (Host) to route by"),
                )));
            };
            let named = cache.named(authority, &ob.cluster_domain);
            match &named.service {
                Ok(key) => Ok((key.clone(), named.authority.clone())),
                Err(e) => Err(Box::new(local(StatusCode::BAD_GATEWAY, grpc, Some(e.as_str())))),
            }
        }
    }
}

/// The request's authority: the URI's (h2, absolute-form) or `Host`.
pub fn authority_of(uri: &http::Uri, headers: &http::HeaderMap) -> Option<String> {
    authority_str(uri, headers).map(str::to_string)
}

/// [`authority_of`], borrowed.
pub fn authority_str<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    match uri.authority() {
        Some(a) => Some(a.as_str()),
        None => headers.get(http::header::HOST).and_then(|h| h.to_str().ok()),
    }
}

/// A Service the config does not list (or a port it does not list): one
/// default route to the Service, default protocol, no policy.
fn default_service(outbound: &mesh_proxy_api::Outbound, key: &ServiceKey) -> OutboundService {
    OutboundService {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        ports: vec![OutboundPort {
            port: key.port,
            protocol: outbound.default_protocol(key.port),
            http_routes: Vec::new(),
            grpc_routes: Vec::new(),
            tls_routes: Vec::new(),
            tcp_route: None,
        }],
        timeouts: Default::default(),
        retry: None,
        failure_accrual: None,
        profile: None,
    }
}

async fn route<'a>(
    ob: &Arc<Outbound>,
    loaded: &'a state::Current,
    target: &Target,
    req: Request<Incoming>,
    counted: &mut Counted<'a>,
    fallback: &'a mut Option<OutboundService>,
) -> Response<BoxBody> {
    if let Target::Egress(dst) = target {
        return super::egress::route_request(ob, loaded.clone(), *dst, req, counted).await;
    }
    let grpc = is_grpc(&req);
    counted.verdict = "error";
    let (key, authority) = match service_key(ob, target, &req) {
        Ok(k) => k,
        Err(resp) => return *resp,
    };
    counted.target = CountedTarget::Fixed(crate::metrics::UNLISTED);
    let Some(loaded) = loaded else {
        return local(StatusCode::SERVICE_UNAVAILABLE, grpc, Some("proxy has no verified config yet"));
    };
    let outbound = &loaded.config.outbound;
    let listed = outbound.service(&key.namespace, &key.name).filter(|s| s.ports.iter().any(|p| p.port == key.port));
    if let Some(svc) = listed {
        counted.target = CountedTarget::Service(svc, key.port);
    }
    // A Service the config does not list takes the default route; it
    // lives as long as the request's other references into the config.
    let svc: &'a OutboundService = match listed {
        Some(s) => s,
        None => fallback.insert(default_service(outbound, &key)),
    };
    let Some(outcome) = route_outbound(svc, key.port, &request_view(&req)) else {
        return local(StatusCode::INTERNAL_SERVER_ERROR, grpc, Some("service port vanished from the config"));
    };
    counted.route = CountedRoute::of(&outcome);
    if let Some(status) = outcome.local_status() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::NOT_FOUND {
            counted.verdict = "no-route";
        }
        return local(status, grpc, Some(&format!("{}: {}", target::label(&key), local_reason(status))));
    }
    let mut plan = match plan(ob, outbound, &key, &outcome, &req) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    plan.known_authority = authority;
    counted.verdict = "allow";
    super::forward::forward(ob, plan, req, grpc).await
}

fn local_reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "no route matches the request",
        _ => "the route's backends are all invalid or weighted 0",
    }
}

/// Turns a routing outcome into what to send where, or the local answer.
fn plan<'a>(
    ob: &Outbound,
    outbound: &'a mesh_proxy_api::Outbound,
    key: &ServiceKey,
    outcome: &OutboundRoute<'a>,
    req: &Request<Incoming>,
) -> Result<Plan<'a>, Answer> {
    let grpc = is_grpc(req);
    let fail = |reason: &str| Box::new(local(StatusCode::INTERNAL_SERVER_ERROR, grpc, Some(reason)));
    let (target, rule_filters) = match outcome {
        OutboundRoute::Profile { profile, route } => return profile_plan(ob, key, profile, *route, grpc),
        OutboundRoute::Default { target } | OutboundRoute::Rule { target, .. } => (target, target.filters),
        // An opaque port reached through an HTTP listener: forwarded as HTTP, without policy.
        OutboundRoute::Opaque | OutboundRoute::NotFound => {
            return Ok(Plan::direct(key.clone(), accrual_for(outbound, key)));
        }
    };
    let (backend, backend_filters): (ServiceKey, &[_]) = match target.backends {
        RuleBackends::Service { namespace, name, port } => {
            (ServiceKey { namespace: namespace.into(), name: name.into(), port }, &[])
        }
        RuleBackends::Weighted(backends) => match pick_backend(backends, fastrand::u64(..)) {
            None => return Err(fail("every backend of the route has weight 0")),
            Some(Backend { target: BackendTarget::Invalid { reason }, .. }) => {
                return Err(fail(&format!("invalid backend: {reason}")));
            }
            Some(Backend { target: BackendTarget::Service { namespace, name, port }, filters, .. }) => {
                (ServiceKey { namespace: namespace.clone(), name: name.clone(), port: *port }, filters.as_slice())
            }
        },
    };
    let retry = target.retry.map(|r| RetryPlan {
        limit: r.limit,
        attempt_timeout: r.timeout_ms.map(Duration::from_millis),
        classify: Classify::Retry(r),
        // Linkerd bounds route and Service retries by their limit alone;
        // only ServiceProfiles carry a budget.
        budget: None,
    });
    let filters: Vec<_> = rule_filters.iter().chain(backend_filters).collect();
    Ok(Plan {
        accrual: accrual_for(outbound, &backend),
        backend,
        filters,
        request_timeout: target.timeouts.request_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
        response_timeout: target.timeouts.response_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
        idle_timeout: target.timeouts.idle_ms.filter(|&ms| ms > 0).map(Duration::from_millis),
        retry,
        profile_route: None,
        known_authority: None,
    })
}

/// A backend Service's circuit breaker, unless a profile governs it.
fn accrual_for(outbound: &mesh_proxy_api::Outbound, key: &ServiceKey) -> Option<AccrualPolicy> {
    let svc = outbound.service(&key.namespace, &key.name)?;
    if svc.profile.is_some() {
        return None;
    }
    svc.failure_accrual.as_ref().map(AccrualPolicy::from_config)
}

fn profile_plan<'a>(
    ob: &Outbound,
    key: &ServiceKey,
    profile: &'a Profile,
    route: Option<&'a mesh_proxy_api::outbound::ProfileRoute>,
    grpc: bool,
) -> Result<Plan<'a>, Answer> {
    let backend = if profile.dst_overrides.is_empty() {
        key.clone()
    } else {
        // The overrides as weighted backends, so the one weighted draw is used.
        let backends: Vec<Backend> = profile
            .dst_overrides
            .iter()
            .map(|o| Backend {
                target: match target::parse_service(&o.authority, &ob.cluster_domain, key.port) {
                    Ok(k) => BackendTarget::Service { namespace: k.namespace, name: k.name, port: k.port },
                    Err(reason) => BackendTarget::Invalid { reason },
                },
                weight: o.weight,
                filters: Vec::new(),
            })
            .collect();
        match pick_backend(&backends, fastrand::u64(..)).map(|b| &b.target) {
            Some(BackendTarget::Service { namespace, name, port }) => {
                ServiceKey { namespace: namespace.clone(), name: name.clone(), port: *port }
            }
            Some(BackendTarget::Invalid { reason }) => {
                return Err(Box::new(local(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    grpc,
                    Some(&format!("dstOverride: {reason}")),
                )));
            }
            None => {
                return Err(Box::new(local(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    grpc,
                    Some("every dstOverride has weight 0"),
                )));
            }
        }
    };
    let retry = route.filter(|r| r.is_retryable).map(|r| RetryPlan {
        limit: PROFILE_RETRY_LIMIT,
        attempt_timeout: None,
        classify: Classify::Profile(Some(r)),
        budget: Some(ob.budget(key, &profile.retry_budget)),
    });
    let mut plan = Plan::direct(backend, None);
    plan.request_timeout = route.and_then(|r| r.timeout_ms).filter(|&ms| ms > 0).map(Duration::from_millis);
    plan.retry = retry;
    plan.profile_route = Some(route);
    Ok(plan)
}
