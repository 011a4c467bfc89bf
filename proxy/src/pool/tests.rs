use super::*;
use bytes::Bytes;
use http::header::HOST;
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

type Gate = Arc<Mutex<Option<oneshot::Receiver<()>>>>;

/// A test server: how many connections it accepted, and the gate that
/// holds back the end of `/slow`'s body.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    gate: Gate,
}

impl Server {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Answers `/slow` with a body that ends when the gate opens, anything
/// else at once with `HOST TARGET` as it arrived.
async fn server(h2: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server { addr: listener.local_addr().unwrap(), accepted: Arc::default(), gate: Arc::default() };
    let (accepted, gate) = (server.accepted.clone(), server.gate.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let rsp = respond(&req, &gate);
                async move { Ok::<_, Infallible>(rsp) }
            });
            let io = TokioIo::new(tcp);
            tokio::spawn(async move {
                if h2 {
                    let _ =
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc).await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                }
            });
        }
    });
    server
}

fn respond(req: &Request<Incoming>, gate: &Gate) -> Response<BoxBody<Bytes, Infallible>> {
    if req.uri().path() == "/slow" {
        let rx = gate.lock().unwrap().take();
        return Response::new(Gated(rx).boxed());
    }
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("-");
    Response::new(Full::new(Bytes::from(format!("{host} {}", req.uri()))).boxed())
}

/// A body that sends `late` once its gate opens, then ends.
struct Gated(Option<oneshot::Receiver<()>>);

impl http_body::Body for Gated {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(rx) = self.0.as_mut() else { return Poll::Ready(None) };
        let _ = ready!(Pin::new(rx).poll(cx));
        self.0 = None;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"late")))))
    }
}

type TestPool = Pool<Empty<Bytes>, TokioIo<TcpStream>>;

fn pool(addr: SocketAddr) -> TestPool {
    Pool::new(Arc::new(move || -> Dialing<TokioIo<TcpStream>> {
        Box::pin(async move { TcpStream::connect(addr).await.map(TokioIo::new) })
    }))
}

fn request(uri: &str, version: Version) -> Request<Empty<Bytes>> {
    Request::builder().uri(uri).version(version).body(Empty::new()).unwrap()
}

async fn text(rsp: Response<Incoming>) -> String {
    String::from_utf8(rsp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Lets the connections' tasks run (a finished response frees its
/// connection on the connection's task, not the caller's).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn http1_requests_in_turn_share_one_connection_in_origin_form() {
    let s = server(false).await;
    let pool = pool(s.addr);
    for path in ["/a?b=c", "/", "/d"] {
        let rsp = pool.send(request(&format!("http://{}{path}", s.addr), Version::HTTP_11)).await.unwrap();
        assert_eq!(text(rsp).await, format!("{} {path}", s.addr), "Host from the URI, target in origin form");
        settle().await;
    }
    assert_eq!(s.accepted(), 1);
}

/// A connection whose response is still streaming is not handed to the
/// next request (it would wait behind the body); once through, it is.
#[tokio::test]
async fn a_connection_busy_with_a_body_is_skipped_not_waited_for() {
    let s = server(false).await;
    let (open, gate) = oneshot::channel();
    *s.gate.lock().unwrap() = Some(gate);
    let pool = pool(s.addr);
    let slow = pool.send(request(&format!("http://{}/slow", s.addr), Version::HTTP_11)).await.unwrap();
    let quick = tokio::time::timeout(
        Duration::from_secs(5),
        pool.send(request(&format!("http://{}/quick", s.addr), Version::HTTP_11)),
    )
    .await
    .expect("waited behind the streaming body")
    .unwrap();
    assert!(text(quick).await.ends_with(" /quick"));
    assert_eq!(s.accepted(), 2);
    open.send(()).unwrap();
    assert_eq!(text(slow).await, "late");
    settle().await;
    for _ in 0..3 {
        let rsp = pool.send(request(&format!("http://{}/again", s.addr), Version::HTTP_11)).await.unwrap();
        text(rsp).await;
        settle().await;
    }
    assert_eq!(s.accepted(), 2, "both connections kept and reused");
}

/// A peer that closes every connection after one response: each request
/// gets a fresh connection instead of a dead kept one.
#[tokio::test]
async fn connections_the_peer_closed_are_not_reused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            read_head(&mut tcp).await;
            let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        }
    });
    let pool = pool(addr);
    for _ in 0..3 {
        let rsp = pool.send(request(&format!("http://{addr}/"), Version::HTTP_11)).await.unwrap();
        assert_eq!(text(rsp).await, "ok");
        settle().await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn http2_requests_share_one_connection_at_once() {
    let s = server(true).await;
    let pool = pool(s.addr);
    let uri = format!("http://{}/h2", s.addr);
    let (a, b, c) = tokio::join!(
        pool.send(request(&uri, Version::HTTP_2)),
        pool.send(request(&uri, Version::HTTP_2)),
        pool.send(request(&uri, Version::HTTP_2)),
    );
    for rsp in [a, b, c] {
        let rsp = rsp.unwrap();
        assert_eq!(rsp.version(), Version::HTTP_2);
        assert!(text(rsp).await.ends_with("/h2"));
    }
    assert_eq!(s.accepted(), 1);
}

#[tokio::test]
async fn connection_failures_say_why() {
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let err = pool(unused).send(request(&format!("http://{unused}/"), Version::HTTP_11)).await.unwrap_err();
    assert!(matches!(err, Error::Connect(_)) && err.to_string().starts_with("cannot connect: "), "{err}");
}

#[test]
fn http1_requests_leave_as_hyper_utils_client_sent_them() {
    let form = |uri: &str, method: Method, host: Option<&str>| {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(h) = host {
            req = req.header(HOST, h);
        }
        let mut req = req.body(()).unwrap();
        to_http1_form(&mut req);
        (req.uri().to_string(), req.headers().get(HOST).map(|h| h.to_str().unwrap().to_string()))
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(form("http://web.shop:8080/a?b", Method::GET, None), ("/a?b".into(), some("web.shop:8080")));
    assert_eq!(form("http://web.shop:80", Method::GET, None), ("/".into(), some("web.shop")), "default port left out");
    assert_eq!(form("http://127.0.0.1:9/x", Method::POST, Some("app.example")), ("/x".into(), some("app.example")));
    assert_eq!(form("http://[::1]:8080/", Method::GET, None), ("/".into(), some("[::1]:8080")));
    assert_eq!(form("http://web.shop:443/", Method::CONNECT, None), ("web.shop:443".into(), some("web.shop:443")));
}

/// Reads a request head off a raw connection; whether it all came before
/// the peer closed.
async fn read_head(tcp: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Answers every HTTP/1 request on a raw connection with `head` and
/// `body` written at once, as a server with the whole response ready does.
async fn raw_server(head: String, body: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rsp: Arc<[u8]> = [head.into_bytes(), body].concat().into();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let rsp = rsp.clone();
            tokio::spawn(async move {
                if read_head(&mut tcp).await {
                    let _ = tcp.write_all(&rsp).await;
                }
            });
        }
    });
    addr
}

/// The read buffer's bound (`READ_BUF_MAX`) limits what the buffer holds,
/// not what passes: a body eight times larger arrives whole. A head must
/// be whole in the buffer to be parsed, so one twice as large is
/// refused (hyper checks the bound between reads, so the limit is not
/// exact: a head a little over it may arrive in one read and pass).
#[tokio::test]
async fn bodies_stream_past_the_read_buffer_bound_and_heads_must_fit_it() {
    let body: Vec<u8> = (0..8 * READ_BUF_MAX).map(|i| (i % 251) as u8).collect();
    let addr = raw_server(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()), body.clone()).await;
    let rsp = pool(addr).send(request(&format!("http://{addr}/"), Version::HTTP_11)).await.unwrap();
    let got = rsp.into_body().collect().await.unwrap().to_bytes();
    assert!(got == body, "the body changed on the way ({} of {} bytes)", got.len(), body.len());

    let pad = "a".repeat(2 * READ_BUF_MAX);
    let addr = raw_server(format!("HTTP/1.1 200 OK\r\nx-pad: {pad}\r\ncontent-length: 0\r\n\r\n"), Vec::new()).await;
    let refused = pool(addr).send(request(&format!("http://{addr}/"), Version::HTTP_11)).await;
    assert!(
        matches!(refused, Err(Error::Http(_))),
        "a head twice the bound is refused (hyper alone would take 400 KiB)"
    );
}

/// A pool whose dials wait `delay` first, counting the dials in progress
/// and the most at once.
fn slow_dialing_pool(addr: SocketAddr, delay: Duration) -> (TestPool, Arc<AtomicUsize>) {
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counted = most.clone();
    let pool = Pool::new(Arc::new(move || -> Dialing<TokioIo<TcpStream>> {
        let (now, most) = (now.clone(), most.clone());
        Box::pin(async move {
            most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            now.fetch_sub(1, Ordering::SeqCst);
            TcpStream::connect(addr).await.map(TokioIo::new)
        })
    }));
    (pool, counted)
}

/// 32 requests at once open at most DIALS_AT_ONCE connections at a time,
/// and those that wait take connections as their exchanges finish rather
/// than one new connection each.
#[tokio::test]
async fn a_burst_opens_a_few_connections_at_a_time() {
    let s = server(false).await;
    let (pool, most_at_once) = slow_dialing_pool(s.addr, Duration::from_millis(100));
    let pool = Arc::new(pool);
    let burst: Vec<_> = (0..32)
        .map(|i| {
            let (pool, uri) = (pool.clone(), format!("http://{}/{i}", s.addr));
            tokio::spawn(async move { text(pool.send(request(&uri, Version::HTTP_11)).await.unwrap()).await })
        })
        .collect();
    for (i, answer) in burst.into_iter().enumerate() {
        assert!(answer.await.unwrap().ends_with(&format!(" /{i}")));
    }
    assert_eq!(most_at_once.load(Ordering::SeqCst), DIALS_AT_ONCE, "dials at once");
    assert!(s.accepted() < 32, "a connection per request: {}", s.accepted());
}

/// With every opening in progress, a request takes the first kept
/// connection to finish its exchange.
#[tokio::test]
async fn a_waiting_request_takes_the_first_connection_to_finish() {
    let s = server(false).await;
    let (open, gate) = oneshot::channel();
    *s.gate.lock().unwrap() = Some(gate);
    let dials = Arc::new(AtomicUsize::new(0));
    let addr = s.addr;
    // The first dial connects; every later one never ends.
    let pool = Arc::new(TestPool::new(Arc::new(move || -> Dialing<TokioIo<TcpStream>> {
        let first = dials.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if !first {
                std::future::pending::<()>().await;
            }
            TcpStream::connect(addr).await.map(TokioIo::new)
        })
    })));
    let slow = pool.send(request(&format!("http://{addr}/slow"), Version::HTTP_11)).await.unwrap();
    let send = |path: String| {
        let pool = pool.clone();
        tokio::spawn(async move { text(pool.send(request(&path, Version::HTTP_11)).await.unwrap()).await })
    };
    let stuck: Vec<_> = (0..DIALS_AT_ONCE).map(|i| send(format!("http://{addr}/stuck{i}"))).collect();
    settle().await;
    let waiting = send(format!("http://{addr}/waiting"));
    settle().await;
    assert!(!waiting.is_finished(), "answered while the only connection was busy");
    open.send(()).unwrap();
    assert_eq!(text(slow).await, "late");
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("still waiting").unwrap();
    assert!(answer.ends_with(" /waiting"));
    assert_eq!(s.accepted(), 1, "over the first connection");
    stuck.iter().for_each(|t| t.abort());
}

/// Requests waiting behind openings to an address that refuses them fail
/// with those openings, not one bounded wave of connect attempts after
/// another.
#[tokio::test]
async fn waiting_requests_fail_with_the_openings_they_waited_for() {
    let dials = Arc::new(AtomicUsize::new(0));
    let counted = dials.clone();
    let pool = Arc::new(TestPool::new(Arc::new(move || -> Dialing<TokioIo<TcpStream>> {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused for the test"))
        })
    })));
    let burst: Vec<_> = (0..4 * DIALS_AT_ONCE)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.send(request("http://10.0.0.1/", Version::HTTP_11)).await.map(|_| ()) })
        })
        .collect();
    for failed in burst {
        let e = failed.await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "cannot connect: refused for the test");
    }
    assert_eq!(dials.load(Ordering::SeqCst), DIALS_AT_ONCE, "one wave of openings");
}

/// A response head larger than the default bound is refused, and let
/// through by a pool made for heads that large (`--max-header-bytes`).
#[tokio::test]
async fn the_head_bound_follows_max_header_bytes() {
    let pad = "a".repeat(3 * READ_BUF_MAX / 2);
    let addr = raw_server(format!("HTTP/1.1 200 OK\r\nx-pad: {pad}\r\ncontent-length: 0\r\n\r\n"), Vec::new()).await;
    let uri = format!("http://{addr}/");
    let refused = pool(addr).send(request(&uri, Version::HTTP_11)).await;
    assert!(matches!(refused, Err(Error::Http(_))), "over the default bound");
    let taken = pool(addr).for_heads_of(2 * READ_BUF_MAX).send(request(&uri, Version::HTTP_11)).await;
    let rsp = taken.expect("a head within --max-header-bytes");
    assert_eq!(rsp.headers()["x-pad"].len(), pad.len());
}
