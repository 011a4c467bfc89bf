//! Admin server: `/live`, `/ready`, `/metrics`, on HTTP/1.1 and h2.
//!
//! It listens on `--admin` (loopback by default). Linkerd applies the
//! workload's policy to its admin port (4191); here the pod address's admin
//! port is an inbound listener like any other (`--inbound POD:4191=ADMIN`,
//! or the iptables redirect in transparent mode), so the same policy, mTLS
//! included, decides who reaches it. Every answer carries
//! `server: mesh-proxy-admin`, so a client can tell it from the proxy's own
//! refusals.

use crate::Ctx;
use crate::metrics::{self, Metrics};
use crate::state::{self, ConfigRx};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use mesh_common::http_server::{ConnLimits, serve_connection};
use mesh_common::identity::Identity;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A client that sends no complete request head within this is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin handlers read.
#[derive(Clone)]
pub struct Admin {
    pub config: ConfigRx,
    pub metrics: Arc<Metrics>,
    /// `None` in tests that serve no TLS.
    pub identity: Option<Arc<Identity>>,
}

/// Runs until `ctx.shutdown` is cancelled; returns early only on error.
pub async fn serve(ctx: Arc<Ctx>) -> std::io::Result<()> {
    let listener = TcpListener::bind(ctx.settings.admin).await?;
    tracing::info!(addr = %ctx.settings.admin, "admin server listening");
    let admin =
        Admin { config: ctx.config.clone(), metrics: ctx.metrics.clone(), identity: Some(ctx.identity.clone()) };
    serve_listener(listener, admin, ctx.shutdown.clone()).await
}

/// Serves `listener` until `shutdown`; open connections finish the request
/// in progress and close.
pub async fn serve_listener(listener: TcpListener, admin: Admin, shutdown: CancellationToken) -> std::io::Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Per-connection failures (reset before accept, fd limits)
                // must not stop the admin server.
                Err(e) => {
                    tracing::debug!("admin accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(stream, admin.clone(), shutdown.clone()));
    }
}

async fn connection(stream: tokio::net::TcpStream, admin: Admin, shutdown: CancellationToken) {
    let service = service_fn(move |req| {
        let response = respond(&admin, &req);
        async move { Ok::<_, Infallible>(response) }
    });
    // h2 too: a gRPC or h2 client's request reaches it through the inbound proxy unchanged.
    let limits = ConnLimits { max_header_bytes: 16 * 1024, header_read_timeout: Some(HEADER_TIMEOUT) };
    serve_connection(stream, service, limits, &shutdown).await;
}

fn respond(admin: &Admin, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(path, "/live" | "/ready" | "/metrics") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/live" => text(StatusCode::OK, "live\n"),
        "/ready" => ready(&admin.config, admin.identity.as_deref()),
        _ => {
            let mut r = text(StatusCode::OK, admin.metrics.encode());
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(metrics::CONTENT_TYPE));
            r
        }
    }
}

/// Ready once a verified config is in force (before that, inbound traffic
/// is refused, so the pod must not receive any) and the certificate is
/// valid (peers would refuse an expired one).
fn ready(config: &ConfigRx, identity: Option<&Identity>) -> Response<Full<Bytes>> {
    if let Some(id) = identity.filter(|id| !id.is_ready()) {
        let msg = format!("not ready: the certificate for {} is not valid now\n", id.name());
        return text(StatusCode::SERVICE_UNAVAILABLE, msg);
    }
    match state::current(config) {
        Some(c) => text(StatusCode::OK, format!("ready\ngeneration {}\ndigest {}\n", c.generation, c.digest)),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no verified config loaded yet\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::SERVER, header::HeaderValue::from_static("mesh-proxy-admin"));
    r
}

#[cfg(test)]
mod tests;
