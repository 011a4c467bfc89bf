//! Body types, the request/idle deadline on response bodies, and the
//! responses the proxy answers itself.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;
/// A response the proxy answers itself instead of forwarding (boxed: it
/// travels in `Err` variants).
pub type Answer = Box<Response<BoxBody>>;

pub fn boxed<B>(body: B) -> BoxBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

pub fn empty() -> BoxBody {
    boxed(Empty::<Bytes>::new().map_err(|never| match never {}))
}

/// A buffered body with optional trailers (a replayed request).
pub fn full_with_trailers(data: Bytes, trailers: Option<HeaderMap>) -> BoxBody {
    let data = Full::new(data).map_err(|never| match never {});
    match trailers {
        None => boxed(data),
        Some(t) => boxed(data.with_trailers(std::future::ready(Some(Ok(t))))),
    }
}

/// Ends a response body with an error when the request deadline passes, or
/// when no frame arrives for the idle time, so the client sees a reset
/// rather than a stream that hangs.
pub struct TimedBody<B> {
    inner: B,
    deadline: Option<Pin<Box<Sleep>>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, deadline: Option<Instant>, idle: Option<Duration>) -> Self {
        TimedBody {
            inner,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            idle: idle.map(|i| (i, Box::pin(tokio::time::sleep(i)))),
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some((idle, sleep)) = &mut this.idle {
                sleep.as_mut().reset(Instant::now() + *idle);
            }
            return Poll::Ready(frame);
        }
        if let Some(d) = &mut this.deadline
            && d.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err("request timeout: the response did not complete in time".into())));
        }
        if let Some((_, sleep)) = &mut this.idle
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err("idle timeout: no data from the backend".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

/// Whether a request is a gRPC call (`content-type: application/grpc*`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/grpc"))
}

/// The gRPC status the proxy answers a gRPC call with instead of `status`.
fn grpc_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        404 => 5,        // NOT_FOUND
        502 | 503 => 14, // UNAVAILABLE
        504 => 4,        // DEADLINE_EXCEEDED
        _ => 13,         // INTERNAL
    }
}

/// A response from the proxy itself. `l5d-proxy-error` carries the reason
/// (as Linkerd's proxy does); gRPC calls get HTTP 200 with a trailers-only
/// gRPC status, as gRPC clients expect.
pub fn local(status: StatusCode, grpc: bool, reason: &str) -> Response<BoxBody> {
    let reason_value = HeaderValue::from_str(reason).unwrap_or_else(|_| HeaderValue::from_static("proxy error"));
    let mut resp = if grpc {
        let mut r = Response::new(empty());
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from(u16::from(grpc_code(status))));
        h.insert("grpc-message", reason_value.clone());
        r
    } else {
        let mut r = Response::new(boxed(Full::new(Bytes::from(format!("{reason}\n"))).map_err(|never| match never {})));
        *r.status_mut() = status;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        r
    };
    resp.headers_mut().insert("l5d-proxy-error", reason_value);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_errors_are_trailers_only_with_a_status() {
        let r = local(StatusCode::NOT_FOUND, true, "no route");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "5");
        assert_eq!(r.headers()["l5d-proxy-error"], "no route");
        assert!(r.body().is_end_stream());
        assert_eq!(local(StatusCode::GATEWAY_TIMEOUT, true, "t").headers()["grpc-status"], "4");
        assert_eq!(local(StatusCode::INTERNAL_SERVER_ERROR, true, "t").headers()["grpc-status"], "13");
    }

    #[tokio::test]
    async fn http_errors_carry_the_reason_in_the_body() {
        let r = local(StatusCode::SERVICE_UNAVAILABLE, false, "no endpoints");
        assert_eq!(r.status(), 503);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"no endpoints\n");
    }

    #[tokio::test]
    async fn idle_timeout_ends_a_silent_body() {
        struct Silent;
        impl Body for Silent {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                Poll::Pending
            }
        }
        let body = TimedBody::new(Silent, None, Some(Duration::from_millis(100)));
        let err = body.collect().await.err().unwrap();
        assert!(err.to_string().contains("idle timeout"));
    }
}
