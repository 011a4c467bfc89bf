//! The proxy's own connections to one address: HTTP/1.1 connections kept
//! for reuse, and one HTTP/2 connection its requests share.
//!
//! Why not hyper-util's pooled client: it keys its pool by each request's
//! scheme and authority, hashed (SipHash) at every checkout, and spawns a
//! task per HTTP/1 request to put the connection back once it is free
//! again; together some 10,000 instructions per request in the profile
//! (docs/benchmarks/proxy.md, "Where the instructions go"). Here a pool
//! serves one address, found once per connection (inbound) or per endpoint
//! (outbound), and an HTTP/1 connection goes back into the pool as soon as
//! its response head has arrived: a checkout takes only a connection ready
//! for a new request (`is_ready`), so one still carrying a body is
//! skipped, not waited for, and nothing needs to watch it become free.
//! linkerd2-proxy drives `hyper::client::conn` itself for HTTP/2 as well
//! (`linkerd/proxy/http/src/h2.rs`).

use http::header::HOST;
use http::uri::{Parts, PathAndQuery};
use http::{HeaderValue, Method, Request, Response, Uri, Version};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Dialing<I> = Pin<Box<dyn Future<Output = io::Result<I>> + Send>>;
/// Opens one connection to the pool's address (TCP, and TLS when meshed).
pub type Dial<I> = Arc<dyn Fn() -> Dialing<I> + Send + Sync>;

/// HTTP/1 connections a pool keeps, busy or idle: linkerd2-proxy's
/// default (`LINKERD2_PROXY_{INBOUND,OUTBOUND}_MAX_IDLE_CONNS_PER_ENDPOINT`,
/// 10,000 in `linkerd/app/src/env.rs`). hyper-util's 32 closed connections
/// after every burst of more concurrent requests, and a meshed one costs a
/// TLS handshake to open again.
const MAX_KEPT: usize = 10_000;
/// Kept connections are checked for idleness this often, and closed when
/// unused through a whole period (after 3 to 6 s): linkerd2-proxy closes
/// idle HTTP/1 connections after 3 s
/// (`LINKERD2_PROXY_{INBOUND,OUTBOUND}_HTTP1_CONNECTION_POOL_IDLE_TIMEOUT`).
const SWEEP_PERIOD: Duration = Duration::from_secs(3);
/// HTTP/1 connections a pool opens at once. A request that finds no kept
/// connection ready opens one while fewer are being opened; past that it
/// waits for the first of: a kept connection finishing its exchange, or
/// an opening ending. Without the bound a burst opened a connection per
/// request in flight, each a TLS handshake when meshed: 256 client
/// connections starting at once queued 121 ms behind some 256 handshakes
/// on the proxies' core (p99), and the server proxy then opened as many
/// connections to the app, 25 MB at peak; bounded at 4, 7 ms and 18 MB
/// (proxy/README.md, "Peak RSS"). Plaintext dials to the app take tens of
/// microseconds, so the bound costs a burst of long requests little there.
const DIALS_AT_ONCE: usize = 4;
/// The most an HTTP/1 connection's read buffer grows to while a response
/// body streams in. hyper's default (8 KiB + 400 KiB) let each busy
/// connection hold 400 KiB and more, since a buffer whose bytes are still
/// on their way out is not reused: 16 connections echoing 1 MiB bodies
/// peaked 5 MB higher than with this bound, which costs 4-8 more system
/// calls per MiB (docs/benchmarks/proxy.md, "Body regression and peak RSS,
/// counted"). A response head must fit too (hyper checks between reads, so
/// not to the byte): twice the listeners' default `--max-header-bytes`,
/// or twice a larger setting ([`Pool::for_heads_of`]).
const READ_BUF_MAX: usize = 128 * 1024;

/// Why a request got no response.
#[derive(Debug)]
pub enum Error {
    Connect(io::Error),
    Http(hyper::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "cannot connect: {e}"),
            Error::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Its text is in the message already.
            Error::Connect(_) => None,
            Error::Http(e) => e.source(),
        }
    }
}

/// Connections to one address.
pub struct Pool<B, I> {
    dial: Dial<I>,
    shared: Arc<Shared<B>>,
    /// The bound of each HTTP/1 connection's read buffer.
    read_buf_max: usize,
}

struct Shared<B> {
    /// Kept HTTP/1 connections, each with the sweep period it was last
    /// handed back in (see [`sweep`]).
    h1: Mutex<Vec<(http1::SendRequest<B>, u64)>>,
    h2: Mutex<Option<http2::SendRequest<B>>>,
    /// Held while an HTTP/2 connection is being opened, so concurrent
    /// requests wait for it rather than open one each.
    h2_dialing: tokio::sync::Mutex<()>,
    /// 0: HTTP/1 connections are not kept (one request per pool).
    max_kept: usize,
    period: AtomicU64,
    sweeping: AtomicBool,
    /// HTTP/1 connections being opened (at most [`DIALS_AT_ONCE`]).
    dialing: AtomicUsize,
    /// Signalled when an HTTP/1 connection is kept or an opening ends:
    /// what requests waiting for a connection wait on.
    changed: tokio::sync::Notify,
    /// Requests looking for an HTTP/1 connection past the kept ones.
    waiting: AtomicUsize,
    /// HTTP/1 openings that failed to connect, and the last one's error.
    failed_dials: AtomicU64,
    last_dial_error: Mutex<Option<(io::ErrorKind, String)>>,
}

impl<B> Shared<B> {
    fn dial_failed(&self, e: &io::Error) {
        *lock(&self.last_dial_error) = Some((e.kind(), e.to_string()));
        self.failed_dials.fetch_add(1, Ordering::SeqCst);
    }

    /// The last failed opening's error, when one failed after `failures`.
    fn failure_since(&self, failures: u64) -> Option<io::Error> {
        if self.failed_dials.load(Ordering::SeqCst) == failures {
            return None;
        }
        let last = lock(&self.last_dial_error).clone();
        last.map(|(kind, text)| io::Error::new(kind, text))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<B, I> Pool<B, I>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    pub fn new(dial: Dial<I>) -> Self {
        Self::with_limit(dial, MAX_KEPT)
    }

    /// A pool for one request: its connection closes after the response.
    pub fn single_use(dial: Dial<I>) -> Self {
        Self::with_limit(dial, 0)
    }

    fn with_limit(dial: Dial<I>, max_kept: usize) -> Self {
        let shared = Shared {
            h1: Mutex::default(),
            h2: Mutex::default(),
            h2_dialing: tokio::sync::Mutex::new(()),
            max_kept,
            period: AtomicU64::new(0),
            sweeping: AtomicBool::new(false),
            dialing: AtomicUsize::new(0),
            changed: tokio::sync::Notify::new(),
            waiting: AtomicUsize::new(0),
            failed_dials: AtomicU64::new(0),
            last_dial_error: Mutex::default(),
        };
        Pool { dial, shared: Arc::new(shared), read_buf_max: READ_BUF_MAX }
    }

    /// Lets response heads of up to `max_header_bytes` through, as the
    /// listeners let requests (`--max-header-bytes`): the read buffer's
    /// bound is twice that when it is above [`READ_BUF_MAX`].
    pub fn for_heads_of(mut self, max_header_bytes: usize) -> Self {
        self.read_buf_max = READ_BUF_MAX.max(max_header_bytes.saturating_mul(2));
        self
    }

    /// Sends `req` in the HTTP version it came in: HTTP/2 over the shared
    /// connection, HTTP/1.x over a kept or a new HTTP/1.1 connection.
    pub async fn send(&self, req: Request<B>) -> Result<Response<Incoming>, Error> {
        if req.version() == Version::HTTP_2 { self.send_h2(req).await } else { self.send_h1(req).await }
    }

    async fn send_h1(&self, mut req: Request<B>) -> Result<Response<Incoming>, Error> {
        to_http1_form(&mut req);
        loop {
            let (mut tx, reused) = self.connection_h1().await?;
            match tx.try_send_request(req).await {
                Ok(rsp) => {
                    self.keep_h1(tx);
                    return Ok(rsp);
                }
                Err(mut e) => match e.take_message() {
                    // A kept connection the peer closed before the request
                    // was written: another one may do (each is tried once).
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(Error::Http(e.into_error())),
                },
            }
        }
    }

    /// A connection for one request (`true`: a kept one): kept and ready,
    /// else a new one while fewer than [`DIALS_AT_ONCE`] are being opened,
    /// else the first kept one to finish its exchange or the next chance
    /// to open one, whichever comes first; or the error of an opening that
    /// failed while there was nothing else to wait for.
    async fn connection_h1(&self) -> Result<(http1::SendRequest<B>, bool), Error> {
        if let Some(tx) = self.checkout_h1() {
            return Ok((tx, true));
        }
        let _waiting = Waiting::count(&self.shared);
        let failures = self.shared.failed_dials.load(Ordering::SeqCst);
        loop {
            // Registered before looking, so a change in between is not missed.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(tx) = self.checkout_h1() {
                return Ok((tx, true));
            }
            if let Some(_slot) = DialSlot::take(&self.shared) {
                let opened = self.open_h1().await;
                if let Err(Error::Connect(e)) = &opened {
                    self.shared.dial_failed(e);
                }
                return opened.map(|tx| (tx, false));
            }
            let Some(mut busy) = self.take_busy_h1() else {
                changed.await;
                // With no connection to wait for, an opening that failed
                // meanwhile fails this request too, as one of its own would
                // likely have; otherwise requests behind a dead address
                // would fail one bounded wave of connect timeouts after
                // another.
                if let Some(e) = self.shared.failure_since(failures) {
                    return Err(Error::Connect(e));
                }
                continue;
            };
            tokio::select! {
                ready = busy.ready() => {
                    if ready.is_ok() {
                        return Ok((busy, true));
                    }
                    // Closed instead: dropped; look again.
                }
                () = &mut changed => {
                    self.put_back_h1(busy);
                }
            }
        }
    }

    /// A kept connection still busy with an exchange, taken out of the pool
    /// for a request that waits for it to finish.
    fn take_busy_h1(&self) -> Option<http1::SendRequest<B>> {
        let mut kept = lock(&self.shared.h1);
        let i = kept.iter().rposition(|(tx, _)| !tx.is_closed())?;
        Some(kept.swap_remove(i).0)
    }

    /// Keeps `tx` in the pool unless it is closed or the pool is full (a
    /// single-use pool keeps none), with no signal; whether it was kept.
    /// What [`Self::keep_h1`] does, and how a connection
    /// [`Self::take_busy_h1`] took goes back: nothing changed for the others.
    fn put_back_h1(&self, tx: http1::SendRequest<B>) -> bool {
        let mut kept = lock(&self.shared.h1);
        let keep = !tx.is_closed() && kept.len() < self.shared.max_kept;
        if keep {
            kept.push((tx, self.shared.period.load(Ordering::Relaxed)));
        }
        keep
    }

    /// A kept connection ready for a request, the latest kept first;
    /// closed ones met on the way are dropped.
    fn checkout_h1(&self) -> Option<http1::SendRequest<B>> {
        let mut kept = lock(&self.shared.h1);
        let mut i = kept.len();
        while i > 0 {
            i -= 1;
            // `swap_remove` moves the last entry, already looked at, to `i`.
            if kept[i].0.is_closed() {
                kept.swap_remove(i);
            } else if kept[i].0.is_ready() {
                return Some(kept.swap_remove(i).0);
            }
        }
        None
    }

    /// Keeps a connection whose response head arrived: it serves another
    /// request once that response (and the request body) is through.
    fn keep_h1(&self, tx: http1::SendRequest<B>) {
        // Requests rarely wait: no signal (and its lock) then.
        if self.put_back_h1(tx) && self.shared.waiting.load(Ordering::SeqCst) > 0 {
            self.shared.changed.notify_waiters();
        }
    }

    async fn open_h1(&self) -> Result<http1::SendRequest<B>, Error> {
        let io = (self.dial)().await.map_err(Error::Connect)?;
        let (tx, conn) =
            http1::Builder::new().max_buf_size(self.read_buf_max).handshake(io).await.map_err(Error::Http)?;
        drive(conn);
        if self.shared.max_kept > 0 && !self.shared.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(&self.shared)));
        }
        Ok(tx)
    }

    async fn send_h2(&self, mut req: Request<B>) -> Result<Response<Incoming>, Error> {
        let mut retried = false;
        loop {
            let (mut tx, reused) = self.h2_sender().await?;
            match tx.try_send_request(req).await {
                Ok(rsp) => return Ok(rsp),
                Err(mut e) => match e.take_message() {
                    // The shared connection ended before this request went
                    // out: once more, on a new one.
                    Some(unsent) if reused && !retried => {
                        retried = true;
                        req = unsent;
                    }
                    _ => return Err(Error::Http(e.into_error())),
                },
            }
        }
    }

    /// The shared HTTP/2 connection (`true`: it was open already), opened
    /// when there is none or it has closed.
    async fn h2_sender(&self) -> Result<(http2::SendRequest<B>, bool), Error> {
        if let Some(tx) = self.open_h2() {
            return Ok((tx, true));
        }
        let _dialing = self.shared.h2_dialing.lock().await;
        if let Some(tx) = self.open_h2() {
            return Ok((tx, true));
        }
        let io = (self.dial)().await.map_err(Error::Connect)?;
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(Error::Http)?;
        drive(conn);
        *lock(&self.shared.h2) = Some(tx.clone());
        Ok((tx, false))
    }

    fn open_h2(&self) -> Option<http2::SendRequest<B>> {
        lock(&self.shared.h2).as_ref().filter(|tx| !tx.is_closed()).cloned()
    }
}

/// One of the [`DIALS_AT_ONCE`] openings of HTTP/1 connections a pool
/// allows; its end (done, failed or abandoned) lets a waiting request try.
struct DialSlot<'a, B>(&'a Shared<B>);

impl<'a, B> DialSlot<'a, B> {
    fn take(shared: &'a Shared<B>) -> Option<Self> {
        let taken =
            shared.dialing.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < DIALS_AT_ONCE).then_some(n + 1));
        // Not `then_some`: a slot made and dropped would give one back.
        taken.is_ok().then(|| DialSlot(shared))
    }
}

impl<B> Drop for DialSlot<'_, B> {
    fn drop(&mut self) {
        self.0.dialing.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// Counts a request in [`Shared::waiting`] while it looks for a connection.
struct Waiting<'a, B>(&'a Shared<B>);

impl<'a, B> Waiting<'a, B> {
    fn count(shared: &'a Shared<B>) -> Self {
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(shared)
    }
}

impl<B> Drop for Waiting<'_, B> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs a connection until it ends (its last sender dropped, the peer gone).
fn drive<F>(conn: F)
where
    F: Future<Output = hyper::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
}

/// Closes kept HTTP/1 connections unused since before the last sweep;
/// ends with the pool.
async fn sweep<B>(pool: Weak<Shared<B>>) {
    loop {
        tokio::time::sleep(SWEEP_PERIOD).await;
        let Some(shared) = pool.upgrade() else { return };
        let now = shared.period.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&shared.h1).retain(|(tx, period)| now - period < 2 && !tx.is_closed());
    }
}

/// An HTTP/1 request as hyper-util's client sent it: `Host` from the URI
/// when the request has none (without the default port), and the target
/// in origin form (`/path?query`), authority form for CONNECT.
fn to_http1_form<B>(req: &mut Request<B>) {
    if !req.headers().contains_key(HOST)
        && let Some(host) = host_header(req.uri())
    {
        req.headers_mut().insert(HOST, host);
    }
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    let mut target = Parts::default();
    if req.method() == Method::CONNECT {
        target.authority = parts.authority.take();
    } else {
        target.path_and_query = Some(parts.path_and_query.take().unwrap_or_else(|| PathAndQuery::from_static("/")));
    }
    *req.uri_mut() = Uri::from_parts(target).unwrap_or_default();
}

/// `host[:port]` of an absolute URI, the port left out when it is HTTP's 80.
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    match uri.port_u16() {
        Some(port) if port != 80 => HeaderValue::from_str(&format!("{host}:{port}")).ok(),
        _ => HeaderValue::from_str(host).ok(),
    }
}

#[cfg(test)]
mod tests;
