//! Body types, the request/idle deadline on response bodies, and the
//! responses the proxy answers itself.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub use crate::http_util::{Answer, BoxBody, BoxError, boxed, empty, local};

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

#[cfg(test)]
mod tests {
    use super::*;

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
