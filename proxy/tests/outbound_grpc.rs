//! gRPC through the outbound listener: h2 end to end with response
//! trailers intact, and retries on a trailers-only gRPC status.

mod outbound_support;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use outbound_support::{discovery_json, proxy, request};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};

/// An h2 gRPC-ish server: the first `fail_first` calls get a trailers-only
/// UNAVAILABLE, later ones a message and `grpc-status: 0` in trailers.
async fn grpc_backend(fail_first: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        assert_eq!(req.version(), Version::HTTP_2);
                        let _ = req.into_body().collect().await;
                        let mut trailers = HeaderMap::new();
                        let body = if n < fail_first {
                            Full::new(Bytes::new()).with_trailers(std::future::ready(None)).boxed()
                        } else {
                            trailers.insert("grpc-status", "0".parse().unwrap());
                            Full::new(Bytes::from_static(b"\0\0\0\0\x02hi"))
                                .with_trailers(std::future::ready(Some(Ok(trailers))))
                                .boxed()
                        };
                        let mut resp = Response::new(body);
                        resp.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
                        if n < fail_first {
                            resp.headers_mut().insert("grpc-status", "14".parse().unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, calls)
}

async fn call(proxy: SocketAddr, authority: &str) -> (HeaderMap, Bytes, Option<HeaderMap>) {
    let mut req = request(Version::HTTP_2, "POST", authority, "/pkg.Greeter/Hello", Bytes::from_static(b"\0\0\0\0\0"));
    req.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
    req.headers_mut().insert("te", "trailers".parse().unwrap());
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let resp = tx.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (parts.headers, collected.to_bytes(), trailers)
}

#[tokio::test]
async fn grpc_calls_keep_h2_and_their_trailers() {
    let (addr, calls) = grpc_backend(0).await;
    let p = proxy(Some(json!({"services": []})), &discovery_json(&[("test", "greeter", 8080, vec![addr])]), &[]).await;
    let (_, body, trailers) = call(p.http, "greeter.test:8080").await;
    assert_eq!(&body[..], b"\0\0\0\0\x02hi");
    assert_eq!(trailers.expect("trailers forwarded")["grpc-status"], "0");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn grpc_retry_codes_retry_trailers_only_failures() {
    let (addr, calls) = grpc_backend(1).await;
    let svc = json!({"namespace": "test", "name": "greeter",
        "ports": [{"port": 8080, "protocol": {"kind": "detect"}}],
        "retry": {"grpcCodes": ["unavailable"], "limit": 2}});
    let p =
        proxy(Some(json!({"services": [svc]})), &discovery_json(&[("test", "greeter", 8080, vec![addr])]), &[]).await;
    let (headers, _, trailers) = call(p.http, "greeter.test:8080").await;
    assert!(headers.get("grpc-status").is_none(), "the retried call succeeded");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
