//! The v1 API (`runtime/API.md`): configs, shared ServicePolicies and
//! endpoints as long polls, and
//! certificates from CSRs. Transport and TLS are in [`crate::serve`].

use crate::ca::{Ca, CsrError};
use crate::cert_limits::{CertLimits, CertRefused};
use crate::hub::{ConfigHub, EndpointsHub};
use crate::limits::retry_after_secs;
use crate::metrics::Metrics;
use crate::quota::{WatchPermit, WatchQuota, WatchRefused};
use crate::tokens::TokenReviewer;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use mesh_proxy_api::endpoints::ServiceKey;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// A CSR and a token fit easily; anything larger is not one.
const MAX_CERT_REQUEST: usize = 64 * 1024;

pub type Body = Full<Bytes>;

/// What the handlers share.
pub struct Api {
    pub configs: Arc<ConfigHub>,
    pub endpoints: Arc<EndpointsHub>,
    /// The current issuer; Kubernetes mode replaces it when its Secret changes.
    pub ca: tokio::sync::watch::Receiver<Arc<Ca>>,
    pub tokens: Arc<dyn TokenReviewer>,
    pub metrics: Arc<Metrics>,
    pub cert_lifetime: Duration,
    /// One permit per long poll held open: the caps on waiting requests,
    /// per identity and overall.
    pub watches: Arc<WatchQuota>,
    /// Certificate requests' rate limits.
    pub cert_limits: CertLimits,
    /// Cancelled at shutdown: held polls answer at once.
    pub shutdown: CancellationToken,
}

/// Answers one request. `peer` is the identity of the client's verified
/// certificate, if it sent one.
pub async fn handle(api: Arc<Api>, peer: Option<String>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/v1/config") => answer(config(&api, peer, &query).await),
        (&Method::GET, SERVICE_POLICIES) => answer(service_policies(&api, peer, &query).await),
        (&Method::GET, p) if p.starts_with("/v1/endpoints/") => answer(endpoints(&api, peer, p, &query).await),
        (&Method::GET, p) if p.starts_with(BY_CLUSTER_IP) => answer(service_at(&api, peer, p)),
        (&Method::POST, "/v1/certificate") => certificate(&api, req.into_body()).await,
        (_, "/v1/config" | "/v1/certificate" | SERVICE_POLICIES) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (_, p) if p.starts_with("/v1/endpoints/") || p.starts_with(BY_CLUSTER_IP) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Response<Body> {
    let body = serde_json::json!({ "error": message.to_string() });
    json(status, Bytes::from(body.to_string()))
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

fn not_modified() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    r
}

/// `?a=b&c=d`, percent-decoded. Public for the request-parsing fuzz target.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: &str) -> Result<Query, String> {
        let mut out = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push((percent_decode(k)?, percent_decode(v)?));
        }
        Ok(Query(out))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `wait` in seconds: the default when absent, at most [`MAX_WAIT`].
    pub fn wait(&self) -> Result<Duration, String> {
        match self.get("wait") {
            None => Ok(DEFAULT_WAIT),
            Some(s) => {
                let secs: u64 = s.parse().map_err(|_| format!("wait `{s}` is not a number of seconds"))?;
                Ok(Duration::from_secs(secs).min(MAX_WAIT))
            }
        }
    }
}

/// `%XX` escapes (and `+` as a space, as forms send it).
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("bad escape in `{s}`"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape in `{s}`"))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8"))
}

/// A refusal, turned into `{"error": …}` with its status.
struct Refused(StatusCode, String);

type Answer = Result<Response<Body>, Refused>;

fn answer(a: Answer) -> Response<Body> {
    a.unwrap_or_else(|Refused(status, msg)| {
        let r = error(status, msg);
        if matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) {
            return retry_after(r, Duration::from_secs(1));
        }
        r
    })
}

/// Adds `Retry-After` (whole seconds, at least 1).
fn retry_after(mut r: Response<Body>, wait: Duration) -> Response<Body> {
    r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after_secs(wait)));
    r
}

fn bad_request(e: String) -> Refused {
    Refused(StatusCode::BAD_REQUEST, e)
}

/// A permit to hold `caller`'s request open, or the 429 (its own share is
/// held) or 503 (every slot is) that says to come back.
fn hold(api: &Api, caller: &str) -> Result<(WatchPermit, mesh_common::metrics::Held), Refused> {
    let permit = api.watches.acquire(caller).map_err(|why| {
        api.metrics.watch_refused(why.reason());
        tracing::debug!(%caller, reason = why.reason(), "watch refused");
        match why {
            WatchRefused::IdentityQuota => {
                Refused(StatusCode::TOO_MANY_REQUESTS, format!("{caller} holds too many open watches; retry"))
            }
            WatchRefused::Capacity => Refused(StatusCode::SERVICE_UNAVAILABLE, "too many open watches; retry".into()),
        }
    })?;
    Ok((permit, api.metrics.long_poll()))
}

fn require_peer(peer: Option<String>) -> Result<String, Refused> {
    peer.ok_or_else(|| Refused(StatusCode::FORBIDDEN, "a client certificate from the mesh is required".into()))
}

/// Waits for `changed`, the deadline or shutdown; `Ok(false)` on timeout.
async fn wait_change(
    api: &Api,
    changed: impl std::future::Future<Output = Result<(), tokio::sync::watch::error::RecvError>>,
    deadline: tokio::time::Instant,
    gone: impl FnOnce() -> Refused,
) -> Result<bool, Refused> {
    tokio::select! {
        r = changed => r.map(|()| true).map_err(|_| gone()),
        () = tokio::time::sleep_until(deadline) => Ok(false),
        () = api.shutdown.cancelled() => Err(Refused(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())),
    }
}

async fn config(api: &Api, peer: Option<String>, query: &str) -> Answer {
    let caller = require_peer(peer)?;
    let q = Query::parse(query).map_err(bad_request)?;
    let workload = q
        .get("workload")
        .ok_or_else(|| bad_request("workload=<Kind>/<namespace>/<name> is required".into()))?
        .to_owned();
    let wait = q.wait().map_err(bad_request)?;
    may_ask_for(&caller, &workload)?;
    // A workload the runtime holds no config for and one whose config names
    // another identity get the same 403: a caller learns nothing about which
    // workloads exist, even in its own namespace. Only once the caller has
    // been shown to own the config may a later disappearance say 404.
    let refused = || {
        tracing::info!(%workload, %caller, "config refused: none is served for the caller's identity");
        Refused(StatusCode::FORBIDDEN, format!("{caller} has no config to read for {workload}"))
    };
    let gone = || Refused(StatusCode::NOT_FOUND, format!("no verified config for {workload}"));
    let mut rx = api.configs.watch(&workload).ok_or_else(refused)?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut held = None;
    loop {
        let Some(served) = rx.borrow_and_update().clone() else {
            return Err(if held.is_some() { gone() } else { refused() });
        };
        // Checked on every wake: a new config may name another identity.
        if served.identity != caller {
            return Err(refused());
        }
        if q.get("after") != Some(served.digest.as_str()) {
            api.metrics.config_served();
            let mut r = json(StatusCode::OK, served.body.clone());
            if let Ok(v) = header::HeaderValue::from_str(&served.digest) {
                r.headers_mut().insert("x-mesh-digest", v);
            }
            return Ok(r);
        }
        if held.is_none() {
            held = Some(hold(api, &caller)?);
        }
        if !wait_change(api, rx.changed(), deadline, gone).await? {
            return Ok(not_modified());
        }
    }
}

const SERVICE_POLICIES: &str = "/v1/service-policies";

/// The shared ServicePolicies clients in `namespace=` see, for a caller of
/// that namespace: `{"policies": [object, …]}` with `x-mesh-digest`, the
/// digest of the set (what the namespace's configs name), held while it is
/// `after=`.
async fn service_policies(api: &Api, peer: Option<String>, query: &str) -> Answer {
    let caller = require_peer(peer)?;
    let q = Query::parse(query).map_err(bad_request)?;
    let namespace = q
        .get("namespace")
        .filter(|ns| !ns.is_empty())
        .ok_or_else(|| bad_request("namespace=<namespace> is required".into()))?
        .to_owned();
    let wait = q.wait().map_err(bad_request)?;
    if caller.split('.').nth(1) != Some(namespace.as_str()) {
        let msg = format!("{caller} is not of namespace {namespace}");
        return Err(Refused(StatusCode::FORBIDDEN, msg));
    }
    let mut rx = api.configs.watch_policies();
    let deadline = tokio::time::Instant::now() + wait;
    let mut held = None;
    loop {
        let answer = rx.borrow_and_update().answer(&namespace);
        if q.get("after") != Some(answer.digest.as_str()) {
            let mut r = json(StatusCode::OK, answer.body.clone());
            if let Ok(v) = header::HeaderValue::from_str(&answer.digest) {
                r.headers_mut().insert("x-mesh-digest", v);
            }
            return Ok(r);
        }
        if held.is_none() {
            held = Some(hold(api, &caller)?);
        }
        let gone = || Refused(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
        if !wait_change(api, rx.changed(), deadline, gone).await? {
            return Ok(not_modified());
        }
    }
}

/// Whether `caller` may ask for `workload`'s config at all, decided from
/// the request alone so that the answer says nothing about which workloads
/// exist: an identity (`<sa>.<ns>.serviceaccount.…`) names its namespace,
/// and a ServiceAccount runs pods of its own namespace only. Within that
/// namespace the served config's identity decides, and a missing config
/// gets the same 403 as another identity's.
fn may_ask_for(caller: &str, workload: &str) -> Result<(), Refused> {
    let Some((_, namespace, _)) = workload_parts(workload) else {
        return Err(bad_request(format!("workload `{workload}` is not <Kind>/<namespace>/<name>")));
    };
    if caller.split('.').nth(1) != Some(namespace) {
        tracing::info!(%workload, %caller, "config refused: the caller is not of the workload's namespace");
        return Err(Refused(StatusCode::FORBIDDEN, format!("{caller} has no config to read for {workload}")));
    }
    Ok(())
}

/// `Kind/namespace/name`, each part non-empty.
fn workload_parts(workload: &str) -> Option<(&str, &str, &str)> {
    let mut parts = workload.split('/');
    let (kind, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    let whole = parts.next().is_none() && !kind.is_empty() && !namespace.is_empty() && !name.is_empty();
    whole.then_some((kind, namespace, name))
}

/// The Service port a `/v1/endpoints/<namespace>/<service>/<port>` path names.
pub fn service_key(path: &str) -> Result<ServiceKey, String> {
    let rest = path.strip_prefix("/v1/endpoints/").unwrap_or("");
    let parts: Vec<String> = rest.split('/').map(percent_decode).collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [ns, name, port] if !ns.is_empty() && !name.is_empty() => {
            let port = port.parse().map_err(|_| format!("port `{port}` is not a number"))?;
            Ok(ServiceKey { namespace: ns.clone(), name: name.clone(), port })
        }
        _ => Err("expected /v1/endpoints/<namespace>/<service>/<port>".into()),
    }
}

async fn endpoints(api: &Api, peer: Option<String>, path: &str, query: &str) -> Answer {
    let caller = require_peer(peer)?;
    let svc = service_key(path).map_err(bad_request)?;
    let q = Query::parse(query).map_err(bad_request)?;
    let wait = q.wait().map_err(bad_request)?;
    let mut rx = api.endpoints.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    let mut held = None;
    loop {
        let answer = api.endpoints.answer(&rx.borrow_and_update(), &svc);
        if q.get("after") != Some(answer.version.as_str()) {
            return Ok(json(StatusCode::OK, answer.body));
        }
        if held.is_none() {
            held = Some(hold(api, &caller)?);
        }
        let gone = || Refused(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
        if !wait_change(api, rx.changed(), deadline, gone).await? {
            return Ok(not_modified());
        }
    }
}

const BY_CLUSTER_IP: &str = "/v1/services/by-cluster-ip/";

/// `/v1/services/by-cluster-ip/<ip>/<port>` → the cluster IP and port.
pub fn cluster_addr(path: &str) -> Result<std::net::SocketAddr, String> {
    let rest = path.strip_prefix(BY_CLUSTER_IP).unwrap_or("");
    let expected = || format!("expected {BY_CLUSTER_IP}<ip>/<port>");
    let (ip, port) = rest.rsplit_once('/').ok_or_else(expected)?;
    let ip: std::net::IpAddr = percent_decode(ip)?.parse().map_err(|_| format!("`{ip}` is not an IP address"))?;
    let port: u16 = port.parse().map_err(|_| format!("port `{port}` is not a number"))?;
    Ok(std::net::SocketAddr::new(ip, port))
}

#[derive(serde::Serialize)]
struct ServiceAtDoc<'a> {
    namespace: &'a str,
    name: &'a str,
    port: u16,
}

/// The Service port behind a cluster IP and port, for a proxy's transparent
/// outbound; 404 when no Service has it. Any mesh identity may ask, as for
/// endpoints: cluster IPs are no secret inside the cluster.
fn service_at(api: &Api, peer: Option<String>, path: &str) -> Answer {
    require_peer(peer)?;
    let addr = cluster_addr(path).map_err(bad_request)?;
    let key = api
        .endpoints
        .service_at(addr)
        .ok_or_else(|| Refused(StatusCode::NOT_FOUND, format!("no Service has cluster IP and port {addr}")))?;
    let doc = ServiceAtDoc { namespace: &key.namespace, name: &key.name, port: key.port };
    Ok(json(StatusCode::OK, Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertRequest {
    csr: String,
    token: String,
}

async fn certificate(api: &Api, body: Incoming) -> Response<Body> {
    let refuse = |status: StatusCode, reason: &'static str, msg: String| {
        api.metrics.certificate_refused(reason);
        tracing::info!(reason, "certificate refused: {msg}");
        error(status, msg)
    };
    let bytes = match Limited::new(body, MAX_CERT_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "bad-request", format!("request body: {e}")),
    };
    let req: CertRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return refuse(StatusCode::BAD_REQUEST, "bad-request", format!("expected {{\"csr\", \"token\"}}: {e}"));
        }
    };
    let limited = |why: CertRefused| {
        let msg = match why {
            CertRefused::Overall(_) => "too many certificate requests; retry later".to_owned(),
            CertRefused::Identity(_) => "too many certificate requests for this identity; retry later".to_owned(),
        };
        retry_after(refuse(StatusCode::TOO_MANY_REQUESTS, why.reason(), msg), why.wait())
    };
    if let Err(why) = api.cert_limits.before_review(&req.token) {
        return limited(why);
    }
    let account = match api.tokens.review(&req.token).await {
        Ok(a) => a,
        Err(e) => return refuse(StatusCode::FORBIDDEN, e.reason(), e.to_string()),
    };
    let ca = api.ca.borrow().clone();
    let identity = ca.identity(&account.namespace, &account.name);
    if let Err(why) = api.cert_limits.after_review(&req.token, &identity) {
        return limited(why);
    }
    match ca.sign_csr(&req.csr, &identity, api.cert_lifetime) {
        Ok(issued) => {
            api.metrics.certificate_issued();
            tracing::info!(%identity, "certificate issued");
            let body = serde_json::json!({
                "certificate": issued.chain_pem,
                "expiresAt": rfc3339(issued.not_after),
            });
            json(StatusCode::OK, Bytes::from(body.to_string()))
        }
        Err(e @ CsrError::BadCsr(_)) => refuse(StatusCode::BAD_REQUEST, e.reason(), e.to_string()),
        Err(e @ CsrError::WrongName { .. }) => refuse(StatusCode::FORBIDDEN, e.reason(), e.to_string()),
        Err(e @ CsrError::Internal(_)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.reason(), e.to_string()),
    }
}

/// `2026-11-29T22:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t).replace_nanosecond(0).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse("workload=Deployment%2Fns%2Fweb&after=sha256%3Aab&wait=5").unwrap();
        assert_eq!(q.get("workload"), Some("Deployment/ns/web"));
        assert_eq!(q.get("after"), Some("sha256:ab"));
        assert_eq!(q.wait(), Ok(Duration::from_secs(5)));
        assert_eq!(Query::parse("wait=9999").unwrap().wait(), Ok(MAX_WAIT));
        assert_eq!(Query::parse("").unwrap().wait(), Ok(DEFAULT_WAIT));
        assert!(Query::parse("wait=soon").unwrap().wait().is_err());
        assert!(Query::parse("a=%4").is_err());
        assert!(Query::parse("a=%zz").is_err());
        assert!(Query::parse("a=%ff").is_err(), "not UTF-8");
    }

    #[test]
    fn endpoint_paths_name_a_service_port() {
        let k = service_key("/v1/endpoints/podinfo/podinfo/9898").unwrap();
        assert_eq!((k.namespace.as_str(), k.name.as_str(), k.port), ("podinfo", "podinfo", 9898));
        assert!(service_key("/v1/endpoints/podinfo/podinfo").is_err());
        assert!(service_key("/v1/endpoints/podinfo/podinfo/http").is_err());
        assert!(service_key("/v1/endpoints//x/1").is_err());
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_453_600_500);
        assert_eq!(rfc3339(t), "2025-11-29T22:00:00Z");
    }
}
