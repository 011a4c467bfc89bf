//! Retries: the budget that bounds them, the backoff between attempts, and
//! the request body kept so a request can be sent again.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use mesh_proxy_api::outbound::RetryBudget;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Linkerd's limit: larger request bodies are sent once, never retried.
pub const MAX_REPLAY_BYTES: usize = 64 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);
/// The budget's window is kept in this many slots.
const SLOTS: u32 = 10;

/// Retries may add `ratio` of the requests seen over the last `ttl`, plus
/// `min_per_second` × `ttl` retries regardless, so a quiet client can still
/// retry and a failing backend is not flooded with retries.
#[derive(Debug)]
pub struct Budget {
    ratio: f64,
    reserve: f64,
    slot: Duration,
    slots: Mutex<VecDeque<Slot>>,
}

#[derive(Debug, Default)]
struct Slot {
    start: Option<Instant>,
    requests: u64,
    retries: u64,
}

impl Budget {
    pub fn new(cfg: &RetryBudget) -> Self {
        let ttl = Duration::from_millis(cfg.ttl_ms.max(1));
        Budget {
            ratio: f64::from(cfg.retry_ratio_ppm) / 1e6,
            reserve: f64::from(cfg.min_retries_per_second) * ttl.as_secs_f64(),
            slot: ttl / SLOTS,
            slots: Mutex::new(VecDeque::with_capacity(SLOTS as usize + 1)),
        }
    }

    /// The current slot, dropping slots older than the ttl.
    fn with_slot<R>(&self, now: Instant, f: impl FnOnce(&mut VecDeque<Slot>) -> R) -> R {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.slot * SLOTS;
        while slots.front().and_then(|s| s.start).is_some_and(|s| now.saturating_duration_since(s) >= ttl) {
            slots.pop_front();
        }
        let fresh = slots.back().and_then(|s| s.start).is_none_or(|s| now.saturating_duration_since(s) >= self.slot);
        if fresh {
            slots.push_back(Slot { start: Some(now), ..Slot::default() });
        }
        f(&mut slots)
    }

    /// Counts one original request (not a retry).
    pub fn deposit(&self, now: Instant) {
        self.with_slot(now, |s| {
            if let Some(slot) = s.back_mut() {
                slot.requests += 1;
            }
        });
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        self.with_slot(now, |s| {
            let requests: u64 = s.iter().map(|x| x.requests).sum();
            let retries: u64 = s.iter().map(|x| x.retries).sum();
            let allowed = self.reserve + self.ratio * requests as f64;
            if (retries as f64) + 1.0 > allowed {
                return false;
            }
            if let Some(slot) = s.back_mut() {
                slot.retries += 1;
            }
            true
        })
    }
}

/// The wait before retry number `n` (0-based): 25 ms doubling up to
/// 250 ms, with full jitter (Linkerd's ratio 1.0) on top, capped at 250 ms.
pub fn backoff(n: u32, roll: f64) -> Duration {
    let base = BACKOFF_MIN.saturating_mul(2u32.saturating_pow(n.min(16))).min(BACKOFF_MAX);
    (base + base.mul_f64(roll.clamp(0.0, 1.0))).min(BACKOFF_MAX)
}

/// What the first attempt's body has seen so far.
#[derive(Debug, Default)]
struct Replay {
    data: BytesMut,
    trailers: Option<HeaderMap>,
    complete: bool,
    overflowed: bool,
}

/// Wraps the request body for the first attempt and keeps a copy of up to
/// [`MAX_REPLAY_BYTES`]; it streams, never waiting for the whole body.
pub struct TeeBody<B> {
    inner: B,
    replay: Arc<Mutex<Replay>>,
}

/// The handle that builds bodies for later attempts.
#[derive(Clone)]
pub struct Replayable(Arc<Mutex<Replay>>);

pub fn tee<B: Body>(inner: B) -> (TeeBody<B>, Replayable) {
    let replay = Arc::new(Mutex::new(Replay { complete: inner.is_end_stream(), ..Replay::default() }));
    (TeeBody { inner, replay: replay.clone() }, Replayable(replay))
}

impl Replayable {
    /// The whole body again, if the first attempt read it to the end within
    /// the limit; `None` means the request cannot be retried.
    pub fn body(&self) -> Option<(Bytes, Option<HeaderMap>)> {
        let r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (r.complete && !r.overflowed).then(|| (r.data.clone().freeze(), r.trailers.clone()))
    }
}

impl<B> Body for TeeBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let mut r = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if r.data.len() + data.len() > MAX_REPLAY_BYTES {
                        r.overflowed = true;
                        r.data = BytesMut::new();
                    } else if !r.overflowed {
                        r.data.extend_from_slice(data);
                    }
                } else if let Some(t) = frame.trailers_ref() {
                    r.trailers = Some(t.clone());
                }
            }
            Poll::Ready(None) => r.complete = true,
            Poll::Ready(Some(Err(_))) => r.overflowed = true,
            Poll::Pending => {}
        }
        if self.inner.is_end_stream() {
            r.complete = true;
        }
        drop(r);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn budget(ratio_ppm: u32, min_per_s: u32, ttl_ms: u64) -> Budget {
        Budget::new(&RetryBudget { retry_ratio_ppm: ratio_ppm, min_retries_per_second: min_per_s, ttl_ms })
    }

    #[test]
    fn budget_allows_the_reserve_then_the_ratio_of_requests() {
        let b = budget(200_000, 1, 10_000);
        let t = Instant::now();
        // Reserve: 1/s over 10 s.
        for i in 0..10 {
            assert!(b.try_withdraw(t), "reserve retry {i}");
        }
        assert!(!b.try_withdraw(t), "reserve spent");
        for _ in 0..50 {
            b.deposit(t);
        }
        // 50 requests × 0.2 = 10 more.
        let granted = (0..20).filter(|_| b.try_withdraw(t)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn budget_forgets_after_the_ttl() {
        let b = budget(0, 1, 1_000);
        let t = Instant::now();
        assert!(b.try_withdraw(t));
        assert!(!b.try_withdraw(t + Duration::from_millis(500)));
        assert!(b.try_withdraw(t + Duration::from_millis(1_100)), "the old retry left the window");
    }

    #[test]
    fn default_budget_is_linkerds() {
        let b = Budget::new(&RetryBudget::default());
        let t = Instant::now();
        assert_eq!((0..200).filter(|_| b.try_withdraw(t)).count(), 100, "10/s over 10 s");
    }

    #[test]
    fn backoff_stays_between_25_and_250_ms() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(25));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(50));
        assert_eq!(backoff(2, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(30, 1.0), Duration::from_millis(250));
    }

    #[tokio::test]
    async fn small_bodies_replay_with_trailers() {
        let frames = VecDeque::from([
            Frame::data(Bytes::from_static(b"hello ")),
            Frame::data(Bytes::from_static(b"world")),
            Frame::trailers(HeaderMap::from_iter([(
                http::header::HeaderName::from_static("x-t"),
                http::HeaderValue::from_static("1"),
            )])),
        ]);
        let (body, replay) = tee(Frames(frames));
        assert!(replay.body().is_none(), "not read yet");
        let first = body.collect().await.unwrap();
        assert!(first.trailers().is_some());
        let (data, trailers) = replay.body().unwrap();
        assert_eq!(&data[..], b"hello world");
        assert_eq!(trailers.unwrap()["x-t"], "1");
    }

    #[tokio::test]
    async fn large_bodies_stream_once_and_are_not_replayable() {
        let big = Bytes::from(vec![b'x'; MAX_REPLAY_BYTES + 1]);
        let (body, replay) = tee(Full::new(big.clone()));
        assert_eq!(body.collect().await.unwrap().to_bytes(), big, "streamed whole");
        assert!(replay.body().is_none());
        let (empty, replay) = tee(Full::new(Bytes::new()));
        drop(empty);
        assert_eq!(replay.body().unwrap().0.len(), 0, "an empty body replays without being read");
    }

    /// A body that yields the given frames, all at once.
    struct Frames(VecDeque<Frame<Bytes>>);
    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }
}
