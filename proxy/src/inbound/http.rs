//! Per-request authorization on HTTP servers, and forwarding to the app.

use super::Conn;
use super::ratelimit::{Exceeded, Limiters};
use crate::Ctx;
use crate::access_log::{AccessLog, Seen};
use crate::filters::apply_request;
use crate::http_util::{
    Body, L5D_CLIENT_ID, L5D_SERVER_ID, boxed, is_grpc, local, request_view, set_identity_header, strip_hop_by_hop,
};
use crate::metrics::{LabelKey, Labels, LastRequest, TargetId, address, meta_label};
use crate::pool::{Dialing, Pool};
use crate::state::{Loaded, current};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_proxy_api::config::{InboundServer, Meta, Protocol};
use mesh_proxy_api::{HttpVerdict, PortPolicy, decide_http, decide_tcp};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Connections to the app, a pool per app address (`crate::pool`: a
/// request reaches the app in the version the client spoke), and the rate
/// limits' buckets, which outlive connections.
#[derive(Clone, Default)]
pub struct AppClients {
    pools: Arc<Mutex<HashMap<SocketAddr, Arc<AppPool>>>>,
    limiters: Arc<Limiters>,
    /// The largest response head let through (`--max-header-bytes`).
    max_header_bytes: usize,
}

type AppPool = Pool<Incoming, TokioIo<TcpStream>>;

impl AppClients {
    pub fn new(max_header_bytes: usize) -> Self {
        AppClients { max_header_bytes, ..Self::default() }
    }

    /// The pool of `app`, looked up once per connection: a transparent
    /// listener serves as many app addresses as the pod has ports.
    fn pool(&self, app: SocketAddr) -> Arc<AppPool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let pool = pools.entry(app).or_insert_with(|| {
            let dial = Arc::new(move || -> Dialing<TokioIo<TcpStream>> {
                Box::pin(async move { crate::net::connect_from(None, app).await.map(TokioIo::new) })
            });
            Arc::new(Pool::new(dial).for_heads_of(self.max_header_bytes))
        });
        pool.clone()
    }
}

/// One HTTP connection: who it is from, where its requests go, and what
/// its last request counted into.
struct HttpConn {
    conn: Conn,
    /// `conn.app` as a URI authority, parsed once per connection.
    app: Option<Authority>,
    /// Connections to `conn.app`.
    pool: Arc<AppPool>,
    last: LastRequest,
}

pub async fn serve<S>(ctx: Arc<Ctx>, app: AppClients, io: S, conn: Conn)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app_authority = Authority::try_from(conn.app.to_string()).ok();
    let pool = app.pool(conn.app);
    let conn = Arc::new(HttpConn { conn, app: app_authority, pool, last: LastRequest::default() });
    let service = {
        let ctx = ctx.clone();
        hyper::service::service_fn(move |req| handle(ctx.clone(), app.clone(), conn.clone(), req))
    };
    let limits = mesh_common::http_server::ConnLimits::headers(ctx.settings.max_header_bytes);
    mesh_common::http_server::serve_connection(io, service, limits, &ctx.shutdown).await;
}

async fn handle(
    ctx: Arc<Ctx>,
    app: AppClients,
    http: Arc<HttpConn>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let grpc = is_grpc(&req);
    let conn = &http.conn;
    // One config for the whole request: its decision, metrics and log line.
    let loaded = current(&ctx.config);
    let log = loaded.as_ref().and_then(|c| AccessLog::from_config(&c.config));
    let seen = log.as_ref().map(|_| Seen::of(&req));
    let (rsp, decided) = authorize_and_forward(loaded.as_deref(), &app, &http, req, grpc).await;
    let status = rsp.status().as_u16();
    let generation = loaded.as_ref().map_or(0, |l| l.generation);
    http.last.record(&ctx.metrics, decided.key(generation, status), || decided.labels(status), start.elapsed());
    if let (Some(log), Some(seen)) = (log, seen) {
        log.request(&seen, conn.peer, conn.client.tls.identity(), &decided.labels(status), start.elapsed());
    }
    Ok(rsp)
}

/// How a request was decided, by reference into the config in force: what
/// its metric labels and log line name, formatted only when needed.
#[derive(Clone, Copy, Debug, Default)]
struct Decided<'a> {
    verdict: &'static str,
    server: Option<&'a Meta>,
    route: Option<&'a Meta>,
    authz: Option<&'a Meta>,
}

impl Decided<'_> {
    fn labels(&self, status: u16) -> Labels {
        Labels {
            direction: "inbound",
            target: self.server.map(meta_label).unwrap_or_default(),
            route: self.route.map(meta_label).unwrap_or_default(),
            authz: self.authz.map(meta_label).unwrap_or_default(),
            verdict: self.verdict,
            status: status.to_string(),
        }
    }

    fn key(&self, generation: u64, status: u16) -> LabelKey {
        let target = match self.server {
            Some(server) => TargetId::Config(address(Some(server)), 0),
            None => TargetId::Fixed(""),
        };
        LabelKey {
            generation,
            target,
            route: address(self.route),
            authz: address(self.authz),
            verdict: self.verdict,
            status,
        }
    }
}

async fn authorize_and_forward<'a>(
    loaded: Option<&'a Loaded>,
    app: &AppClients,
    http: &HttpConn,
    mut req: Request<Incoming>,
    grpc: bool,
) -> (Response<Body>, Decided<'a>) {
    let conn = &http.conn;
    let Some(loaded) = loaded else {
        let rsp = local(StatusCode::SERVICE_UNAVAILABLE, grpc, None);
        return (rsp, Decided { verdict: "error", ..Decided::default() });
    };
    let server = match loaded.config.inbound.lookup(conn.port) {
        PortPolicy::Server(s) => s,
        // The port became skipped after this connection was accepted.
        PortPolicy::Skipped => {
            return (forward(http, req, grpc).await, Decided { verdict: "allow", ..Decided::default() });
        }
    };
    let mut decided = Decided { server: Some(&server.meta), ..Decided::default() };
    // The port turned opaque under an open HTTP connection: the connection
    // is authorized as TCP, as a fresh one would be.
    if !server.protocol.is_http() {
        return match decide_tcp(server, &conn.client) {
            mesh_proxy_api::TcpVerdict::Allowed { authz } => {
                decided.authz = Some(&authz.authorization.meta);
                decided.verdict = "allow";
                (forward(http, req, grpc).await, decided)
            }
            mesh_proxy_api::TcpVerdict::Closed => {
                decided.verdict = "deny";
                (local(StatusCode::FORBIDDEN, grpc, detail(conn, "unauthorized connection")), decided)
            }
        };
    }
    let verdict = decide_http(server, &conn.client, &request_view(&req));
    decided.route = verdict.route_meta(server);
    match verdict {
        HttpVerdict::NoRoute => {
            decided.verdict = "no-route";
            (local(StatusCode::NOT_FOUND, grpc, detail(conn, "no route found for request")), decided)
        }
        HttpVerdict::Unauthorized { .. } => {
            decided.verdict = "deny";
            (local(StatusCode::FORBIDDEN, grpc, detail(conn, "unauthorized request on route")), decided)
        }
        HttpVerdict::Allowed { route, rule, authz } => {
            decided.authz = Some(&authz.authorization.meta);
            decided.verdict = "allow";
            if authz.is_audit() {
                let route = decided.route.map(meta_label).unwrap_or_default();
                tracing::info!(client = ?conn.client, %route, "allowed by audit policy");
            }
            // Response header modifiers do not apply inbound: Linkerd drops them there.
            let filters = rule_filters(server, route, rule);
            if !filters.is_empty() {
                let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
                let uri = req.uri().clone();
                if let Err(redirect) = apply_request(filters, &uri, host.as_deref(), req.headers_mut()) {
                    return (*redirect, decided);
                }
            }
            if let Err(exceeded) = check_rate_limit(app, conn, server) {
                decided.verdict = "rate-limited";
                let msg = exceeded.message();
                return (local(StatusCode::TOO_MANY_REQUESTS, grpc, detail(conn, &msg)), decided);
            }
            (forward(http, req, grpc).await, decided)
        }
    }
}

/// The server's rate limit, checked as linkerd2-proxy does: after routing,
/// authorization and filters (`HttpPolicyService::call`), so requests
/// answered 404, 403 or with a redirect never count.
fn check_rate_limit(app: &AppClients, conn: &Conn, server: &InboundServer) -> Result<(), Exceeded> {
    let Some(limit) = &server.rate_limit else { return Ok(()) };
    app.limiters.for_port(conn.port, limit).check(conn.client.tls.identity(), Instant::now())
}

/// gRPC rules carry no filters; HTTP rules may.
fn rule_filters(server: &InboundServer, route: usize, rule: usize) -> &[mesh_proxy_api::config::HttpFilter] {
    if server.protocol == Protocol::Grpc {
        return &[];
    }
    server.http_routes.get(route).and_then(|r| r.rules.get(rule)).map_or(&[], |r| r.filters.as_slice())
}

/// `http://APP/path?query`: the request's path and query (`/` when it has
/// none) sent to the app. A target that is no path (`*`, an authority) has
/// no such URI.
fn app_uri(app: &Authority, uri: Uri) -> Option<Uri> {
    let mut parts = uri.into_parts();
    match &parts.path_and_query {
        Some(pq) if !pq.as_str().starts_with('/') => return None,
        Some(_) => {}
        None => parts.path_and_query = Some(PathAndQuery::from_static("/")),
    }
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(app.clone());
    Uri::from_parts(parts).ok()
}

/// Linkerd tells only meshed clients why it refused.
fn detail<'a>(conn: &Conn, msg: &'a str) -> Option<&'a str> {
    conn.client.tls.identity().map(|_| msg)
}

async fn forward(http: &HttpConn, mut req: Request<Incoming>, grpc: bool) -> Response<Body> {
    let conn = &http.conn;
    strip_hop_by_hop(req.headers_mut());
    // The app may trust `l5d-client-id`: it names the identity the client
    // proved in the TLS handshake, never what the client wrote.
    set_identity_header(req.headers_mut(), L5D_CLIENT_ID, conn.client.tls.identity());
    let Some(uri) = http.app.as_ref().and_then(|app| app_uri(app, std::mem::take(req.uri_mut()))) else {
        return local(StatusCode::BAD_GATEWAY, grpc, None);
    };
    *req.uri_mut() = uri;
    match http.pool.send(req).await {
        Ok(mut rsp) => {
            strip_hop_by_hop(rsp.headers_mut());
            // Only the client's own proxy names the server (from its
            // certificate); the app cannot claim an identity.
            rsp.headers_mut().remove(L5D_SERVER_ID);
            rsp.map(boxed)
        }
        Err(e) => {
            tracing::warn!(app = %conn.app, "app request failed: {e}");
            local(StatusCode::BAD_GATEWAY, grpc, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_the_app_with_their_path_and_query() {
        let app = Authority::from_static("127.0.0.1:8080");
        let to = |target: &str| app_uri(&app, target.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(to("/a/b?c=d&e").as_deref(), Some("http://127.0.0.1:8080/a/b?c=d&e"));
        assert_eq!(to("http://web.shop:80/x?y").as_deref(), Some("http://127.0.0.1:8080/x?y"), "absolute form");
        assert_eq!(to("web.shop:443").as_deref(), Some("http://127.0.0.1:8080/"), "authority form");
        assert_eq!(to("*"), None, "asterisk form has no path to send");
        let v6 =
            Authority::try_from(std::net::SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 80)).to_string()).unwrap();
        assert_eq!(app_uri(&v6, Uri::from_static("/")).unwrap().to_string(), "http://[::1]:80/");
    }
}
