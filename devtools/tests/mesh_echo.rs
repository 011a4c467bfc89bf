//! The `mesh-echo` test app, driven through its real binary with HTTP/1,
//! h2c and gRPC clients built from hyper and a raw TCP socket.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running mesh-echo, killed when the test ends.
struct Echo {
    child: Child,
    addrs: Vec<SocketAddr>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts mesh-echo and reads its `listening ADDR` lines, one per listener.
fn start(args: &[&str], listeners: usize) -> Echo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh-echo"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mesh-echo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut addrs = Vec::new();
    for _ in 0..listeners {
        let line = lines.next().expect("a listening line").expect("readable stdout");
        let addr = line.strip_prefix("listening ").unwrap_or_else(|| panic!("unexpected line {line:?}"));
        addrs.push(addr.parse().expect("an address"));
    }
    Echo { child, addrs }
}

async fn h1(addr: SocketAddr, req: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.expect("h1 handshake");
    tokio::spawn(conn);
    let resp = send.send_request(req).await.expect("h1 response");
    let (parts, body) = resp.into_parts();
    (Response::from_parts(parts, ()), body.collect().await.expect("body").to_bytes())
}

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn h2(addr: SocketAddr) -> H2 {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.expect("h2 handshake");
    tokio::spawn(conn);
    send
}

/// Sends one request and returns the head, the data and the trailers.
async fn h2_call(send: &mut H2, req: Request<Full<Bytes>>) -> (Response<()>, Bytes, Option<http::HeaderMap>) {
    let resp = send.send_request(req).await.expect("h2 response");
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    (Response::from_parts(parts, ()), collected.to_bytes(), trailers)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).header("host", "echo").body(Full::new(Bytes::new())).expect("request")
}

fn grpc_request(msg: &[u8]) -> Request<Full<Bytes>> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(msg);
    Request::post("http://echo/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(frame)))
        .expect("request")
}

fn header<'a>(resp: &'a Response<()>, name: &str) -> &'a str {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn http1_answers_with_name_method_path_and_echoes_x_echo_headers() {
    let echo = start(&["--listen", "127.0.0.1:0", "--name", "web"], 1);
    let req = Request::post("/a/b?q=1")
        .header("host", "echo")
        .header("x-echo-trace", "t1")
        .header("x-other", "dropped")
        .body(Full::new(Bytes::from_static(b"ignored")))
        .expect("request");
    let (resp, body) = h1(echo.addrs[0], req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body, "web POST /a/b\n");
    assert_eq!(header(&resp, "x-echo-name"), "web");
    assert_eq!(header(&resp, "x-echo-proto"), "HTTP/1.1");
    assert_eq!(header(&resp, "x-echo-trace"), "t1");
    assert!(resp.headers().get("x-other").is_none());
}

#[tokio::test]
async fn x_echo_body_answers_with_the_request_body() {
    let echo = start(&["--listen", "127.0.0.1:0"], 1);
    // Larger than any single read or frame, as the benchmark's 1 MiB bodies are.
    let sent: Bytes = (0..300_000u32).flat_map(u32::to_le_bytes).collect::<Vec<u8>>().into();
    let req = Request::post("/upload")
        .header("host", "echo")
        .header("x-echo-body", "1")
        .body(Full::new(sent.clone()))
        .expect("request");
    let (resp, body) = h1(echo.addrs[0], req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/octet-stream");
    assert_eq!(body.len(), sent.len());
    assert!(body == sent, "the body came back changed");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served_on_the_same_listener() {
    let echo = start(&["--listen", "127.0.0.1:0", "--name", "api"], 1);
    let mut send = h2(echo.addrs[0]).await;
    let (resp, body, _) = h2_call(&mut send, get("http://echo/h2")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(header(&resp, "x-echo-proto"), "HTTP/2.0");
    assert_eq!(body, "api GET /h2\n");
    // The same listener still speaks HTTP/1.1 to the next client.
    let (resp, _) = h1(echo.addrs[0], get("/h1")).await;
    assert_eq!(header(&resp, "x-echo-proto"), "HTTP/1.1");
}

#[tokio::test]
async fn grpc_echoes_the_message_with_status_ok_in_trailers() {
    let echo = start(&["--listen", "127.0.0.1:0", "--name", "rpc"], 1);
    let mut send = h2(echo.addrs[0]).await;
    let (resp, body, trailers) = h2_call(&mut send, grpc_request(b"hello grpc")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/grpc");
    assert_eq!(header(&resp, "x-echo-name"), "rpc");
    assert_eq!(&body[..5], &[0, 0, 0, 0, 10]);
    assert_eq!(&body[5..], b"hello grpc");
    assert_eq!(trailers.expect("trailers").get("grpc-status").expect("grpc-status"), "0");
}

#[tokio::test]
async fn fail_first_fails_exactly_the_first_requests_for_http_and_grpc() {
    let echo = start(&["--listen", "127.0.0.1:0", "--fail-first", "2"], 1);
    let mut send = h2(echo.addrs[0]).await;
    let (resp, _, _) = h2_call(&mut send, get("http://echo/")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A failed gRPC call is HTTP 200 with a trailers-only UNAVAILABLE.
    let (resp, body, _) = h2_call(&mut send, grpc_request(b"x")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "grpc-status"), "14");
    assert!(body.is_empty());
    let (resp, _, trailers) = h2_call(&mut send, grpc_request(b"x")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(trailers.expect("trailers").get("grpc-status").expect("grpc-status"), "0");
}

#[tokio::test]
async fn fail_every_fails_each_nth_request() {
    let echo = start(&["--listen", "127.0.0.1:0", "--fail-every", "3"], 1);
    let mut send = h2(echo.addrs[0]).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(h2_call(&mut send, get("http://echo/")).await.0.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
}

#[tokio::test]
async fn delay_holds_each_response() {
    let echo = start(&["--listen", "127.0.0.1:0", "--delay", "150ms"], 1);
    let started = Instant::now();
    let (resp, _) = h1(echo.addrs[0], get("/")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150), "answered after {:?}", started.elapsed());
}

#[tokio::test]
async fn tcp_listener_greets_with_the_name_then_echoes() {
    let echo = start(&["--listen", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--name", "db"], 2);
    let mut stream = TcpStream::connect(echo.addrs[1]).await.expect("connect");
    stream.write_all(b"ping").await.expect("write");
    stream.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"db\nping");
}

#[test]
fn bad_flags_and_no_listeners_are_refused_with_an_error() {
    let bin = env!("CARGO_BIN_EXE_mesh-echo");
    let out = Command::new(bin).args(["--listen", "127.0.0.1:0", "--delay", "5"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing unit"));
    let out = Command::new(bin).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to serve"));
}
