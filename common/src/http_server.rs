//! The HTTP connection server every listener here runs (proxy listeners,
//! the admin servers, the runtime's API): HTTP/1 and h2 on one connection,
//! bounded header sizes, a graceful drain on shutdown.

use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio_util::sync::CancellationToken;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bounds on what one HTTP connection may make the server hold.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Largest request header block (hyper refuses HTTP/1 buffers under 8 KiB).
    pub max_header_bytes: usize,
    /// A client that has not sent a whole request head in this time is
    /// dropped; `None` keeps hyper's default.
    pub header_read_timeout: Option<std::time::Duration>,
}

impl ConnLimits {
    pub fn headers(max_header_bytes: usize) -> Self {
        ConnLimits { max_header_bytes, header_read_timeout: None }
    }
}

/// Serves HTTP/1 and h2 on one connection until it closes; on shutdown,
/// finishes in-flight requests and closes. Every HTTP server here (proxy
/// listeners, the admin servers, the runtime's API) goes through it.
pub async fn serve_connection<I, S, B>(io: I, service: S, limits: ConnLimits, shutdown: &CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<hyper::body::Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut h1 = builder.http1();
    h1.timer(TokioTimer::new()).max_buf_size(limits.max_header_bytes.max(8192));
    if let Some(t) = limits.header_read_timeout {
        h1.header_read_timeout(t);
    }
    let list_size = u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(list_size);
    let served = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    let result = tokio::select! {
        r = served.as_mut() => r,
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("HTTP connection ended: {e}");
    }
}
