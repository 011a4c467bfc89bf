//! Admin server: `/live`, `/ready`, `/metrics`, on HTTP/1.1.
//!
//! Unlike Linkerd's, it is not itself subject to the workload's policy:
//! it listens on `--admin` (loopback by default) and is reached by the
//! kubelet's probes and a scraper that the pod's network exposure admits.

use crate::Ctx;
use crate::metrics::{self, Metrics};
use crate::state::{self, ConfigRx};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
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
}

/// Runs until `ctx.shutdown` is cancelled; returns early only on error.
pub async fn serve(ctx: Arc<Ctx>) -> std::io::Result<()> {
    let listener = TcpListener::bind(ctx.settings.admin).await?;
    tracing::info!(addr = %ctx.settings.admin, "admin server listening");
    let admin = Admin { config: ctx.config.clone(), metrics: ctx.metrics.clone() };
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
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("admin connection: {e}");
    }
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
        "/ready" => ready(&admin.config),
        _ => {
            let mut r = text(StatusCode::OK, admin.metrics.encode());
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(metrics::CONTENT_TYPE));
            r
        }
    }
}

/// Ready once a verified config is in force: before that, inbound traffic
/// is refused, so the pod must not receive any.
fn ready(config: &ConfigRx) -> Response<Full<Bytes>> {
    match state::current(config) {
        Some(c) => text(StatusCode::OK, format!("ready\ngeneration {}\ndigest {}\n", c.generation, c.digest)),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no verified config loaded yet\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests;
