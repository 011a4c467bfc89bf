//! Listeners: the API over TLS (HTTP/1.1 and h2 on one port, the client's
//! certificate optional but verified when sent) and the plaintext admin
//! server (`/live`, `/ready`, `/metrics`).

use crate::api::{self, Api, Body};
use crate::metrics::{self, Metrics};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use mesh_common::http_server::{ConnLimits, serve_connection};
use mesh_common::identity::{self, Identity};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A client that has not finished its TLS handshake or request head by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The admin port serves the kubelet's probes and a scraper or two.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// At most `max` connections of one listener at once: one more is closed
/// as soon as it is accepted (the client sees the connection end before
/// the TLS handshake), which costs far less than serving it.
pub struct ConnCap {
    pub listener: &'static str,
    pub max: usize,
    pub metrics: Arc<Metrics>,
}

async fn accept_loop<F, Fut>(listener: TcpListener, cap: ConnCap, shutdown: CancellationToken, on_conn: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(cap.max.min(tokio::sync::Semaphore::MAX_PERMITS)));
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                // Per-connection failures (a reset before accept, fd limits)
                // must not stop the server.
                Err(e) => {
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            cap.metrics.connection_refused(cap.listener);
            tracing::debug!(listener = cap.listener, "connection closed: the listener holds its maximum");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let open = cap.metrics.connection(cap.listener);
        let conn = on_conn(stream);
        tokio::spawn(async move {
            conn.await;
            drop((permit, open));
        });
    }
}

/// Serves the API until `shutdown`.
pub async fn api(
    listener: TcpListener,
    api: Arc<Api>,
    identity: Arc<Identity>,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let stop = shutdown.clone();
    let cap = ConnCap { listener: "api", max: max_connections, metrics: api.metrics.clone() };
    accept_loop(listener, cap, shutdown, move |stream| {
        let (api, identity, stop) = (api.clone(), identity.clone(), stop.clone());
        async move {
            // Per connection, so a renewed certificate reaches new handshakes.
            let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config());
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!("TLS handshake: {e}"),
                Err(_) => return tracing::debug!("TLS handshake timed out"),
            };
            let peer = identity::peer_identity(tls.get_ref().1);
            let service = service_fn(move |req| {
                let (api, peer) = (api.clone(), peer.clone());
                async move { Ok::<_, Infallible>(api::handle(api, peer, req).await) }
            });
            connection(tls, service, stop).await;
        }
    })
    .await;
}

/// Serves the admission webhook until `shutdown`: TLS with the webhook's
/// certificate (the API server sends no client certificate).
pub async fn webhook(
    listener: TcpListener,
    hook: Arc<crate::webhook::Webhook>,
    identity: Arc<Identity>,
    max_connections: usize,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let stop = shutdown.clone();
    let cap = ConnCap { listener: "webhook", max: max_connections, metrics };
    accept_loop(listener, cap, shutdown, move |stream| {
        let (hook, identity, stop) = (hook.clone(), identity.clone(), stop.clone());
        async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config());
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!("webhook TLS handshake: {e}"),
                Err(_) => return tracing::debug!("webhook TLS handshake timed out"),
            };
            let service = service_fn(move |req| {
                let hook = hook.clone();
                async move { Ok::<_, Infallible>(crate::webhook::handle(hook, req).await) }
            });
            connection(tls, service, stop).await;
        }
    })
    .await;
}

async fn connection<I, S>(io: I, service: S, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let limits = ConnLimits { max_header_bytes: 64 * 1024, header_read_timeout: Some(HANDSHAKE_TIMEOUT) };
    serve_connection(io, service, limits, &shutdown).await;
}

/// What `/ready` reports.
pub trait Readiness: Send + Sync + 'static {
    /// `Err` says why not.
    fn ready(&self) -> Result<String, String>;
}

/// Serves `/live`, `/ready` and `/metrics` until `shutdown`.
pub async fn admin(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<dyn Readiness>,
    shutdown: CancellationToken,
) {
    let stop = shutdown.clone();
    let cap = ConnCap { listener: "admin", max: ADMIN_MAX_CONNECTIONS, metrics: metrics.clone() };
    accept_loop(listener, cap, shutdown, move |stream| {
        let (metrics, readiness, stop) = (metrics.clone(), readiness.clone(), stop.clone());
        async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = admin_response(&metrics, &*readiness, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            connection(stream, service, stop).await;
        }
    })
    .await;
}

fn admin_response(metrics: &Metrics, readiness: &dyn Readiness, method: &Method, path: &str) -> Response<Body> {
    if !matches!(path, "/live" | "/ready" | "/metrics") {
        return text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain; charset=utf-8");
    }
    if !matches!(*method, Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into(), "text/plain; charset=utf-8");
    }
    match path {
        "/live" => text(StatusCode::OK, "live\n".into(), "text/plain; charset=utf-8"),
        "/ready" => match readiness.ready() {
            Ok(m) => text(StatusCode::OK, format!("ready\n{m}\n"), "text/plain; charset=utf-8"),
            Err(m) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {m}\n"), "text/plain; charset=utf-8"),
        },
        _ => text(StatusCode::OK, metrics.encode(), metrics::CONTENT_TYPE),
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r
}
