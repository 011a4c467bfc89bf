//! Executes a routing plan: filters, the request timeout around budgeted
//! retries, each attempt through the balancer with its own timeouts, and
//! failure accrual from each outcome.

use super::accrual::AccrualPolicy;
use super::balance::Balancer;
use super::body::{BoxBody, TimedBody, boxed, full_with_trailers, local};
use super::connect::{EndpointClient, describe};
use super::http::{authority_of, authority_str};
use super::retry::{Budget, backoff, tee};
use super::{Outbound, target};
use crate::discovery::ServiceKey;
use crate::filters;
use crate::http_util::{L5D_CLIENT_ID, L5D_SERVER_ID, set_identity_header, strip_hop_by_hop};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, StatusCode, Uri, request};
use hyper::body::Incoming;
use mesh_proxy_api::config::HttpFilter;
use mesh_proxy_api::outbound::{Profile, ProfileRoute, Retry};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to send where, and how to time and retry it.
pub struct Plan<'a> {
    pub backend: ServiceKey,
    /// Rule filters, then the chosen backend's.
    pub filters: Vec<&'a HttpFilter>,
    /// The whole exchange, retries and response body included.
    pub request_timeout: Option<Duration>,
    /// Each attempt's wait for response headers; not retried.
    pub response_timeout: Option<Duration>,
    /// The longest silence in the response body. Best effort: it does not
    /// cover the request body or the wait for response headers (the
    /// response timeout does), nor idle pooled connections.
    pub idle_timeout: Option<Duration>,
    pub retry: Option<RetryPlan<'a>>,
    pub accrual: Option<AccrualPolicy>,
    /// Set when a ServiceProfile governs: its route's response classes
    /// decide what a failure is (else 5xx).
    pub profile_route: Option<Option<&'a ProfileRoute>>,
    /// The request's authority as its connection parsed it before: the
    /// request leaves with it unless it names another (see [`outgoing`]).
    pub known_authority: Option<Authority>,
}

impl Plan<'_> {
    /// Straight to `backend`: no filters, timeouts or retries.
    pub fn direct(backend: ServiceKey, accrual: Option<AccrualPolicy>) -> Self {
        Plan {
            backend,
            filters: Vec::new(),
            request_timeout: None,
            response_timeout: None,
            idle_timeout: None,
            retry: None,
            accrual,
            profile_route: None,
            known_authority: None,
        }
    }

    fn is_failure(&self, status: StatusCode) -> bool {
        match self.profile_route {
            Some(route) => Profile::is_failure(route, status.as_u16()),
            None => status.is_server_error(),
        }
    }
}

pub struct RetryPlan<'a> {
    /// Attempts after the first.
    pub limit: u16,
    /// An attempt that takes longer is abandoned and retried.
    pub attempt_timeout: Option<Duration>,
    pub classify: Classify<'a>,
    /// A ServiceProfile's budget; route and Service retries have none.
    pub budget: Option<Arc<Budget>>,
}

/// Which responses are retried.
pub enum Classify<'a> {
    /// Route or Service retry annotations: listed statuses, or gRPC codes
    /// in a trailers-only response (codes in trailers after a body are
    /// not seen: that would mean holding the whole response).
    Retry(&'a Retry),
    /// A retryable ServiceProfile route: its failures.
    Profile(Option<&'a ProfileRoute>),
}

impl Classify<'_> {
    fn should_retry<B>(&self, resp: &Response<B>) -> bool {
        let status = resp.status().as_u16();
        match self {
            Classify::Retry(r) => {
                r.http_statuses.iter().any(|s| s.min <= status && status <= s.max)
                    || grpc_status_name(resp.headers()).is_some_and(|n| r.grpc_codes.iter().any(|c| c == n))
            }
            Classify::Profile(route) => route.is_some_and(|r| r.is_retryable) && Profile::is_failure(*route, status),
        }
    }
}

/// The annotation name of a `grpc-status` header's code, for the codes
/// Linkerd lets routes retry.
fn grpc_status_name(headers: &HeaderMap) -> Option<&'static str> {
    match headers.get("grpc-status")?.to_str().ok()?.trim() {
        "1" => Some("cancelled"),
        "4" => Some("deadline-exceeded"),
        "8" => Some("resource-exhausted"),
        "13" => Some("internal"),
        "14" => Some("unavailable"),
        _ => None,
    }
}

/// The result of one attempt, or of the whole exchange.
enum Attempt {
    Response(Response<Incoming>),
    Failed { status: StatusCode, reason: String, retryable: bool },
}

impl Attempt {
    fn failed(status: StatusCode, reason: String, retryable: bool) -> Self {
        Attempt::Failed { status, reason, retryable }
    }

    fn retryable(&self, classify: &Classify<'_>) -> bool {
        match self {
            Attempt::Response(r) => classify.should_retry(r),
            Attempt::Failed { retryable, .. } => *retryable,
        }
    }
}

/// The request as it leaves the client's proxy: the rule's and backend's
/// filters applied, hop-by-hop headers and `l5d-client-id` removed, the URI
/// absolute with the request's authority (`known` when it is the same text,
/// parsed already; else `default_authority` when there is none). `Err` is
/// the proxy's own answer: a redirect filter's, or a 400 for an authority
/// that makes no URI. Service backends and egress share it.
pub(super) fn outgoing<'f>(
    parts: &mut request::Parts,
    rule_filters: impl IntoIterator<Item = &'f HttpFilter>,
    known: Option<&Authority>,
    default_authority: impl FnOnce() -> String,
    grpc: bool,
) -> Result<filters::Applied<'f>, crate::http_util::Answer> {
    let known = known.filter(|k| authority_str(&parts.uri, &parts.headers) == Some(k.as_str())).cloned();
    let text = if known.is_some() { None } else { authority_of(&parts.uri, &parts.headers) };
    let named = known.as_ref().map(Authority::as_str).or(text.as_deref());
    let applied = filters::apply_request(rule_filters, &parts.uri, named, &mut parts.headers)?;
    strip_hop_by_hop(&mut parts.headers);
    // Only an inbound proxy may tell an app who its client is (from the
    // client's certificate); what this app sends under that name goes.
    parts.headers.remove(L5D_CLIENT_ID);
    let cannot = |authority: &str| {
        let why = format!("cannot forward to authority `{authority}`");
        Box::new(local(StatusCode::BAD_REQUEST, grpc, Some(&why)))
    };
    let authority = match known {
        Some(a) => a,
        None => {
            let text = text.unwrap_or_else(default_authority);
            Authority::try_from(text.as_str()).map_err(|_| cannot(&text))?
        }
    };
    // The path and query move over as they are, not printed and parsed again.
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority.clone());
    uri.path_and_query = Some(uri.path_and_query.take().unwrap_or_else(|| PathAndQuery::from_static("/")));
    parts.uri = Uri::from_parts(uri).map_err(|_| cannot(authority.as_str()))?;
    Ok(applied)
}

pub async fn forward(ob: &Arc<Outbound>, plan: Plan<'_>, req: Request<Incoming>, grpc: bool) -> Response<BoxBody> {
    let (mut parts, body) = req.into_parts();
    let default_authority = || fqdn(&plan.backend, &ob.cluster_domain);
    let applied = match outgoing(
        &mut parts,
        plan.filters.iter().copied(),
        plan.known_authority.as_ref(),
        default_authority,
        grpc,
    ) {
        Ok(a) => a,
        Err(answer) => return *answer,
    };
    let deadline = plan.request_timeout.map(|t| tokio::time::Instant::now() + t);
    let exchange = attempts(ob, &plan, parts, body);
    let outcome = match deadline {
        Some(d) => tokio::time::timeout_at(d, exchange).await.unwrap_or_else(|_| {
            Attempt::failed(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{}: request timeout", target::label(&plan.backend)),
                false,
            )
        }),
        None => exchange.await,
    };
    match outcome {
        Attempt::Response(resp) => {
            let (mut head, body) = resp.into_parts();
            strip_hop_by_hop(&mut head.headers);
            for m in applied.response {
                filters::modify_headers(&mut head.headers, m);
            }
            let body = match (deadline, plan.idle_timeout) {
                (None, None) => boxed(body),
                (deadline, idle) => boxed(TimedBody::new(boxed(body), deadline, idle)),
            };
            Response::from_parts(head, body)
        }
        Attempt::Failed { status, reason, .. } => local(status, grpc, Some(&reason)),
    }
}

/// `name.ns.svc.<domain>:port`, for a request that carried no authority.
fn fqdn(key: &ServiceKey, domain: &str) -> String {
    format!("{}.{}.svc.{domain}:{}", key.name, key.namespace, key.port)
}

fn clone_parts(p: &request::Parts) -> request::Parts {
    let mut req = Request::new(());
    *req.method_mut() = p.method.clone();
    *req.uri_mut() = p.uri.clone();
    *req.version_mut() = p.version;
    *req.headers_mut() = p.headers.clone();
    req.into_parts().0
}

/// How long a request waits for a newly watched Service's first endpoints.
pub(super) const DISCOVERY_WAIT: Duration = Duration::from_secs(2);

async fn attempts(ob: &Outbound, plan: &Plan<'_>, mut parts: request::Parts, body: Incoming) -> Attempt {
    // What the server side attached (e.g. an upgrade handle) is not for the
    // backend; copies for retries never carried it either.
    parts.extensions.clear();
    let balancer = ob.balancer(&plan.backend);
    balancer.ready(DISCOVERY_WAIT).await;
    let Some(retry) = &plan.retry else {
        // Sent once: the head moves into the request, no copy of its headers.
        return attempt(&balancer, plan, Request::from_parts(parts, boxed(body))).await;
    };
    if let Some(budget) = &retry.budget {
        budget.deposit(Instant::now());
    }
    let (first, replay) = tee(body);
    let mut body = boxed(first);
    let mut n: u16 = 0;
    loop {
        let outcome = attempt(&balancer, plan, Request::from_parts(clone_parts(&parts), body)).await;
        if n >= retry.limit || !outcome.retryable(&retry.classify) {
            return outcome;
        }
        let Some((data, trailers)) = replay.body() else { return outcome };
        if retry.budget.as_ref().is_some_and(|b| !b.try_withdraw(Instant::now())) {
            tracing::debug!(backend = %target::label(&plan.backend), "retry budget spent");
            return outcome;
        }
        drop(outcome);
        tokio::time::sleep(backoff(u32::from(n), fastrand::f64())).await;
        n += 1;
        body = full_with_trailers(data, trailers);
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn attempt(balancer: &Balancer<EndpointClient>, plan: &Plan<'_>, req: Request<BoxBody>) -> Attempt {
    let picked = match balancer.pick() {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("{}: {e}", target::label(&plan.backend));
            return Attempt::failed(StatusCode::SERVICE_UNAVAILABLE, reason, false);
        }
    };
    let accrual = plan.accrual.as_ref();
    let attempt_timeout = plan.retry.as_ref().and_then(|r| r.attempt_timeout);
    let result = tokio::select! {
        r = picked.ep.conn.send(req) => r,
        () = sleep_opt(attempt_timeout) => {
            picked.observe(false, accrual);
            return Attempt::failed(StatusCode::GATEWAY_TIMEOUT, format!("{}: retry timeout", describe(&picked.ep.endpoint)), true);
        }
        () = sleep_opt(plan.response_timeout) => {
            picked.observe(false, accrual);
            return Attempt::failed(StatusCode::GATEWAY_TIMEOUT, format!("{}: response timeout", describe(&picked.ep.endpoint)), false);
        }
    };
    match result {
        Ok(mut resp) => {
            picked.observe(!plan.is_failure(resp.status()), accrual);
            // The identity the server proved in the TLS handshake (the
            // dialer checks a meshed endpoint's certificate against exactly
            // this name); none for plaintext, this pod's own included,
            // whatever the response said. As linkerd2-proxy did in
            // `add_server_id_on_rsp::layer` (outbound, from the endpoint's
            // client TLS; removed in #628 with its inbound counterpart).
            set_identity_header(resp.headers_mut(), L5D_SERVER_ID, picked.ep.conn.tls_identity());
            Attempt::Response(resp)
        }
        Err(e) => {
            picked.observe(false, accrual);
            let reason = format!("{}: {}", describe(&picked.ep.endpoint), error_chain(&e));
            tracing::debug!(%reason, "outbound attempt failed");
            Attempt::failed(StatusCode::BAD_GATEWAY, reason, true)
        }
    }
}

/// An error and its causes on one line (hyper's own message is terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
