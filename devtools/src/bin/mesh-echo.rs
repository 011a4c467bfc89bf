//! `mesh-echo`: the application behind proxies in end-to-end tests and
//! benchmarks. One plaintext listener serves HTTP/1.1 and h2c (prior
//! knowledge); gRPC requests get their message echoed back; `--tcp`
//! listeners echo opaque bytes; an HTTP request with `x-echo-body` gets its
//! body back (benchmarks send large bodies through proxies with it). Failures
//! can be injected so retries and failure accrual have something to mask.
//!
//! Once every listener is bound it prints one `listening ADDR` line per
//! listener to stdout — first the `--listen` ones, then the `--tcp` ones, each
//! in the order given — so tests may bind port 0 and wait for readiness.

use bytes::{Buf, Bytes};
use clap::Parser;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// gRPC request bodies are buffered whole to echo them; anything larger is refused.
const MAX_GRPC_BODY: usize = 4 * 1024 * 1024;
/// Bodies echoed for `x-echo-body` are buffered whole too.
const MAX_ECHO_BODY: usize = 16 * 1024 * 1024;
/// A request with this header is answered with its own body.
const ECHO_BODY: &str = "x-echo-body";
const GRPC_OK: &str = "0";
const GRPC_INTERNAL: &str = "13";
const GRPC_UNAVAILABLE: &str = "14";

#[derive(Parser, Debug)]
#[command(name = "mesh-echo", version)]
struct Args {
    /// HTTP/1.1 + h2c listener address; repeatable.
    #[arg(long = "listen")]
    listen: Vec<SocketAddr>,
    /// Opaque TCP echo listener address; repeatable.
    #[arg(long = "tcp")]
    tcp: Vec<SocketAddr>,
    /// Name returned in `x-echo-name`, response bodies and TCP greetings.
    #[arg(long, default_value = "mesh-echo")]
    name: String,
    /// The first N HTTP requests (counted across listeners) fail with 503 / gRPC UNAVAILABLE.
    #[arg(long, default_value_t = 0)]
    fail_first: u64,
    /// Every Nth HTTP request fails with 503 / gRPC UNAVAILABLE (0: never).
    #[arg(long, default_value_t = 0)]
    fail_every: u64,
    /// Wait this long before answering each HTTP request (`5ms`, `1s`).
    #[arg(long, value_parser = mesh_common::duration::parse_duration)]
    delay: Option<Duration>,
}

/// What every connection shares: the settings and the request counter the
/// failure injection counts with.
struct Echo {
    name: String,
    name_header: HeaderValue,
    fail_first: u64,
    fail_every: u64,
    delay: Option<Duration>,
    requests: AtomicU64,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Returned to hyper to close the connection without answering.
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("aborted on request (x-echo-abort)")
    }
}

impl std::error::Error for Aborted {}

impl Echo {
    /// Counts the request and says whether failure injection hits it.
    fn next_fails(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        n <= self.fail_first || (self.fail_every > 0 && n.is_multiple_of(self.fail_every))
    }

    /// Per request, `x-echo-delay-ms: N` waits N ms before answering and
    /// `x-echo-abort` drops the connection without an answer (a backend
    /// that dies mid-request).
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, Aborted> {
        let fail = self.next_fails();
        let asked = req.headers().get("x-echo-delay-ms").and_then(|v| v.to_str().ok()?.parse().ok());
        if let Some(d) = asked.map(Duration::from_millis).or(self.delay) {
            tokio::time::sleep(d).await;
        }
        if req.headers().contains_key("x-echo-abort") {
            return Err(Aborted);
        }
        let mut resp = if is_grpc(req.headers()) {
            self.grpc(req, fail).await
        } else if req.headers().contains_key(ECHO_BODY) && !fail {
            echo_body(req).await
        } else {
            self.http(&req, fail)
        };
        resp.headers_mut().insert("x-echo-name", self.name_header.clone());
        Ok(resp)
    }

    fn http(&self, req: &Request<Incoming>, fail: bool) -> Response<Body> {
        let (status, text) = if fail {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{} unavailable\n", self.name))
        } else {
            (StatusCode::OK, format!("{} {} {}\n", self.name, req.method(), req.uri().path()))
        };
        let mut resp = Response::new(Full::new(Bytes::from(text)).boxed_unsync());
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert("x-echo-proto", proto(req.version()));
        copy_echo_headers(req.headers(), headers);
        resp
    }

    /// Answers one unary call with the request's first message, or a
    /// trailers-only UNAVAILABLE when failure injection hits.
    async fn grpc(&self, req: Request<Incoming>, fail: bool) -> Response<Body> {
        let version = req.version();
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("x-echo-proto", proto(version));
        copy_echo_headers(req.headers(), &mut headers);
        if fail {
            headers.insert("grpc-status", HeaderValue::from_static(GRPC_UNAVAILABLE));
            headers.insert("grpc-message", HeaderValue::from_static("mesh-echo injected failure"));
            return with_headers(Full::new(Bytes::new()).boxed_unsync(), headers);
        }
        let (status, message) = match first_message(req.into_body()).await {
            Ok(msg) => (GRPC_OK, msg),
            Err(e) => {
                headers.insert(
                    "grpc-message",
                    HeaderValue::from_str(&e).unwrap_or(HeaderValue::from_static("bad request")),
                );
                (GRPC_INTERNAL, None)
            }
        };
        let frame = message.map(grpc_frame).unwrap_or_default();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(status));
        let body = Full::new(frame).with_trailers(async move { Some(Ok(trailers)) }).boxed_unsync();
        with_headers(body, headers)
    }
}

/// Answers with the request's body, whole (up to [`MAX_ECHO_BODY`]).
async fn echo_body(req: Request<Incoming>) -> Response<Body> {
    let mut headers = HeaderMap::new();
    headers.insert("x-echo-proto", proto(req.version()));
    copy_echo_headers(req.headers(), &mut headers);
    match Limited::new(req.into_body(), MAX_ECHO_BODY).collect().await {
        Ok(body) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            with_headers(Full::new(body.to_bytes()).boxed_unsync(), headers)
        }
        Err(e) => {
            let status =
                if e.is::<LengthLimitError>() { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
            let text = Bytes::from(format!("reading request: {e}\n"));
            let mut resp = with_headers(Full::new(text).boxed_unsync(), headers);
            *resp.status_mut() = status;
            resp
        }
    }
}

fn with_headers(body: Body, headers: HeaderMap) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.headers_mut() = headers;
    resp
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct == "application/grpc" || ct.starts_with("application/grpc+"))
}

fn proto(v: http::Version) -> HeaderValue {
    HeaderValue::from_static(if v == http::Version::HTTP_2 { "HTTP/2.0" } else { "HTTP/1.1" })
}

/// Request headers named `x-echo-*` come back on the response, so tests can
/// see what a proxy added or rewrote on the way in.
fn copy_echo_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if name.as_str().starts_with("x-echo-") {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The first length-prefixed message of a gRPC request body (None if the
/// body is empty); compressed messages are echoed as they came.
async fn first_message(body: Incoming) -> Result<Option<Bytes>, String> {
    let mut buf =
        Limited::new(body, MAX_GRPC_BODY).collect().await.map_err(|e| format!("reading request: {e}"))?.to_bytes();
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.len() < 5 {
        return Err("truncated gRPC frame header".into());
    }
    let _compressed = buf.get_u8();
    let len = buf.get_u32() as usize;
    if buf.len() < len {
        return Err(format!("gRPC frame says {len} bytes, body has {}", buf.len()));
    }
    Ok(Some(buf.split_to(len)))
}

fn grpc_frame(msg: Bytes) -> Bytes {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    Bytes::from(out)
}

async fn serve_http(listener: TcpListener, echo: Arc<Echo>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let echo = echo.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| echo.clone().handle(req));
            // Client resets and half-finished requests are normal under test; nothing to report.
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn serve_tcp(listener: TcpListener, greeting: Bytes) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(echo_tcp(stream, greeting.clone()));
    }
}

async fn echo_tcp(mut stream: TcpStream, greeting: Bytes) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.write_all(&greeting).await?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        out.push(TcpListener::bind(addr).await.map_err(|e| format!("binding {addr}: {e}"))?);
    }
    Ok(out)
}

async fn run(args: Args) -> Result<(), String> {
    if args.listen.is_empty() && args.tcp.is_empty() {
        return Err("nothing to serve: give --listen and/or --tcp".into());
    }
    let name_header =
        HeaderValue::from_str(&args.name).map_err(|_| format!("--name {:?}: not a valid header value", args.name))?;
    let http = bind_all(&args.listen).await?;
    let tcp = bind_all(&args.tcp).await?;
    let mut out = std::io::stdout().lock();
    for l in http.iter().chain(&tcp) {
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        writeln!(out, "listening {addr}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);

    let greeting = Bytes::from(format!("{}\n", args.name));
    let echo = Arc::new(Echo {
        name: args.name,
        name_header,
        fail_first: args.fail_first,
        fail_every: args.fail_every,
        delay: args.delay,
        requests: AtomicU64::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for l in http {
        tasks.spawn(serve_http(l, echo.clone()));
    }
    for l in tcp {
        tasks.spawn(serve_tcp(l, greeting.clone()));
    }
    tasks.join_next().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mesh-echo: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-echo: {e}");
            ExitCode::from(2)
        }
    }
}
