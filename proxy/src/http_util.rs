//! What inbound and outbound share about HTTP: the body type, answers the
//! proxy gives itself (with their gRPC forms), route filters, and turning
//! a hyper request into what `mesh-proxy-api` matches on.

use bytes::Bytes;
use http::header::{CONNECTION, HeaderName, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use mesh_proxy_api::{HttpRequest, RequestView};

pub use mesh_common::http_server::BoxError;
pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;
/// A response the proxy answers itself instead of forwarding (boxed: it
/// travels in `Err` variants).
pub type Answer = Box<Response<BoxBody>>;
/// Kept short for signatures in both directions.
pub type Body = BoxBody;

pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

pub fn empty() -> Body {
    boxed(Empty::<Bytes>::new())
}

/// gRPC requests are told about errors in `grpc-status`, not the HTTP
/// status. As in linkerd2-proxy (`errors/respond.rs`), only HTTP/2 requests
/// with a gRPC content type are; an HTTP/1.1 request always gets HTTP form.
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.version() == http::Version::HTTP_2 && has_grpc_content_type(req.headers())
}

pub fn has_grpc_content_type(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/grpc"))
}

/// The gRPC status the proxy answers a gRPC call with instead of `status`
/// (Linkerd's mapping, semantics reference §7.3).
fn grpc_code(status: StatusCode) -> u16 {
    match status.as_u16() {
        403 => 7,        // PERMISSION_DENIED
        404 => 5,        // NOT_FOUND
        429 => 8,        // RESOURCE_EXHAUSTED
        502 | 503 => 14, // UNAVAILABLE
        504 => 4,        // DEADLINE_EXCEEDED
        _ => 13,         // INTERNAL
    }
}

/// A response from the proxy itself: for gRPC calls HTTP 200 with a
/// trailers-only `grpc-status`, as gRPC clients expect. `reason` goes into
/// `l5d-proxy-error` (and the body or `grpc-message`) when the client may
/// see it: Linkerd tells meshed peers and the local app, not strangers.
pub fn local(status: StatusCode, grpc: bool, reason: Option<&str>) -> Response<BoxBody> {
    let reason_value = reason.map(|r| HeaderValue::from_str(r).unwrap_or(HeaderValue::from_static("proxy error")));
    let mut resp = Response::new(empty());
    if grpc {
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from(grpc_code(status)));
        if let Some(v) = &reason_value {
            h.insert("grpc-message", v.clone());
        }
    } else {
        *resp.status_mut() = status;
        if let Some(r) = reason {
            *resp.body_mut() = boxed(Full::new(Bytes::from(format!("{r}\n"))));
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        }
    }
    if let Some(v) = reason_value {
        resp.headers_mut().insert("l5d-proxy-error", v);
    }
    resp
}

/// The verified client identity, set on requests by the inbound proxy.
pub const L5D_CLIENT_ID: &str = "l5d-client-id";
/// The verified server identity, set on responses by the outbound proxy.
pub const L5D_SERVER_ID: &str = "l5d-server-id";

/// Sets `name` to the identity the peer proved with its certificate, or
/// removes it when the peer proved none: a header an application trusts
/// must never carry what the other side wrote itself. Every value the
/// peer sent is replaced (linkerd2-proxy, `SetIdentityHeader::call` in
/// linkerd/app/inbound/src/http/set_identity_header.rs, for
/// `l5d-client-id`).
pub fn set_identity_header(headers: &mut HeaderMap, name: &'static str, identity: Option<&str>) {
    match identity.map(HeaderValue::from_str) {
        Some(Ok(value)) => {
            headers.insert(name, value);
        }
        Some(Err(_)) => {
            tracing::warn!(header = name, "identity is not a valid header value; not sent");
            headers.remove(name);
        }
        None => {
            headers.remove(name);
        }
    }
}

/// Headers that describe one connection, not the message (RFC 9110
/// §7.6.1), including those `Connection` lists; hyper frames each side
/// itself. `te: trailers` stays (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names tells,
    // where a removal per name hashes and looks up each one.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION] {
        headers.remove(name);
    }
    if headers.get(TE).is_some_and(|v| v != "trailers") {
        headers.remove(TE);
    }
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A header [`strip_hop_by_hop`] may remove (`te` only when it is not
/// `trailers`; the names `Connection` lists come with `Connection`).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(name.as_str(), "connection" | "transfer-encoding" | "upgrade" | "te" | "keep-alive" | "proxy-connection")
}

/// The request as route matching reads it, borrowed from the request the
/// proxy received: what [`api_request`] would copy, without copying it.
pub struct View<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    host: Option<&'a str>,
    headers: &'a HeaderMap,
}

pub fn request_view<B>(req: &Request<B>) -> View<'_> {
    let uri = req.uri();
    View {
        method: req.method().as_str(),
        path: uri.path(),
        query: uri.query(),
        host: uri.authority().map(|a| a.as_str()).or_else(|| req.headers().get(header::HOST)?.to_str().ok()),
        headers: req.headers(),
    }
}

impl RequestView for View<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn host(&self) -> Option<&str> {
        self.host
    }
    /// `HeaderMap` finds names case-insensitively; a name that is no valid
    /// header name has no values, as no header the proxy received has it.
    fn any_header_value(&self, name: &str, pred: impl FnMut(&str) -> bool) -> bool {
        self.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).any(pred)
    }
}

/// The request as route matching sees it, copied (egress decisions keep
/// it; per-request decisions read a [`View`]).
pub fn api_request<B>(req: &Request<B>) -> HttpRequest {
    let uri = req.uri();
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    HttpRequest {
        method: req.method().as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        host,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[test]
    fn grpc_errors_are_trailers_only_with_a_status() {
        let r = local(StatusCode::NOT_FOUND, true, Some("no route"));
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "5");
        assert_eq!(r.headers()["l5d-proxy-error"], "no route");
        assert!(r.body().is_end_stream());
        assert_eq!(local(StatusCode::GATEWAY_TIMEOUT, true, Some("t")).headers()["grpc-status"], "4");
        assert_eq!(local(StatusCode::INTERNAL_SERVER_ERROR, true, Some("t")).headers()["grpc-status"], "13");
    }

    #[tokio::test]
    async fn http_errors_carry_the_reason_in_the_body() {
        let r = local(StatusCode::SERVICE_UNAVAILABLE, false, Some("no endpoints"));
        assert_eq!(r.status(), 503);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"no endpoints\n");
    }

    /// What the decision functions read through a `View` is what they read
    /// of the copy meshc-style `HttpRequest`: same method, path, query,
    /// authority, and per header name (in any case) the same text values.
    #[test]
    fn the_view_answers_as_the_copied_request_does() {
        let requests = [
            Request::get("/a/b?x=1&y=2")
                .header("host", "web.shop.svc.cluster.local:8080")
                .header("x-canary", "one")
                .header("x-canary", "two")
                .header("x-bytes", HeaderValue::from_bytes(b"caf\xe9").unwrap())
                .header("x-tab", "a\tb")
                .body(())
                .unwrap(),
            Request::post("http://api.shop:80/rpc.Svc/Call").header("host", "ignored").body(()).unwrap(),
            Request::builder().method("PURGE").uri("/").body(()).unwrap(),
        ];
        let names = ["host", "X-Canary", "x-canary", "x-bytes", "x-tab", "absent", "not a name", ""];
        for req in &requests {
            let (view, copy) = (request_view(req), api_request(req));
            assert_eq!(view.method(), copy.method());
            assert_eq!(view.path(), copy.path());
            assert_eq!(view.query(), copy.query());
            assert_eq!(view.host(), copy.host());
            for name in names {
                assert_eq!(values(&view, name), values(&copy, name), "header {name:?} of {}", req.uri());
            }
        }
    }

    /// Every value `any_header_value` shows for `name`, sorted.
    fn values(req: &impl RequestView, name: &str) -> Vec<String> {
        let mut seen = Vec::new();
        req.any_header_value(name, |v| {
            seen.push(v.to_string());
            false
        });
        seen.sort();
        seen
    }

    #[test]
    fn hop_by_hop_headers_go_and_the_rest_stays() {
        let strip = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            strip_hop_by_hop(&mut h);
            let mut left: Vec<String> = h.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap())).collect();
            left.sort();
            left
        };
        let end_to_end = [("host", "web"), ("x-a", "1"), ("content-length", "0")];
        assert_eq!(strip(&end_to_end), ["content-length: 0", "host: web", "x-a: 1"], "nothing to strip");
        let mixed = [
            ("connection", "keep-alive, X-Token"),
            ("x-token", "secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("x-kept", "yes"),
        ];
        assert_eq!(strip(&mixed), ["x-kept: yes"]);
        assert_eq!(strip(&[("te", "trailers"), ("x-kept", "yes")]), ["te: trailers", "x-kept: yes"], "gRPC needs it");
    }

    #[test]
    fn strangers_are_not_told_why() {
        let r = local(StatusCode::FORBIDDEN, true, None);
        assert_eq!(r.headers()["grpc-status"], "7");
        assert!(r.headers().get("l5d-proxy-error").is_none());
        assert!(r.headers().get("grpc-message").is_none());
        assert_eq!(local(StatusCode::FORBIDDEN, false, None).status(), StatusCode::FORBIDDEN);
    }
}
