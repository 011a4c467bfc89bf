//! What inbound and outbound share about HTTP: the body type, answers the
//! proxy gives itself (with their gRPC forms), route filters, and turning
//! a hyper request into what `mesh-proxy-api` matches on.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use mesh_proxy_api::HttpRequest;
use mesh_proxy_api::config::{HeaderModifier, HttpFilter};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

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

/// gRPC requests are told about errors in `grpc-status`, not the HTTP status.
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// Why the proxy answered a request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalError {
    Unauthorized,
    NoRoute,
    /// A broken backend or policy (Linkerd's failure injector, 500).
    Invalid,
    Unavailable,
    Timeout,
    BadGateway,
}

impl LocalError {
    pub fn http_status(self) -> StatusCode {
        match self {
            LocalError::Unauthorized => StatusCode::FORBIDDEN,
            LocalError::NoRoute => StatusCode::NOT_FOUND,
            LocalError::Invalid => StatusCode::INTERNAL_SERVER_ERROR,
            LocalError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            LocalError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            LocalError::BadGateway => StatusCode::BAD_GATEWAY,
        }
    }

    /// gRPC codes as Linkerd maps them (semantics reference §7.3).
    pub fn grpc_status(self) -> u32 {
        match self {
            LocalError::Unauthorized => 7,
            LocalError::NoRoute => 5,
            LocalError::Invalid => 13,
            LocalError::Unavailable | LocalError::BadGateway => 14,
            LocalError::Timeout => 4,
        }
    }

    /// The response: for gRPC a trailers-only answer (HTTP 200 with
    /// `grpc-status` in the headers). `detail` goes into `l5d-proxy-error`
    /// and `grpc-message` only when the client is a meshed proxy, as Linkerd
    /// does, so unmeshed clients learn nothing about the policy.
    pub fn respond(self, grpc: bool, detail: Option<&str>) -> Response<Body> {
        let mut rsp = Response::new(empty());
        if grpc {
            let h = rsp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            h.insert("grpc-status", HeaderValue::from(self.grpc_status()));
            if let Some(msg) = detail.and_then(|d| HeaderValue::from_str(d).ok()) {
                h.insert("grpc-message", msg);
            }
        } else {
            *rsp.status_mut() = self.http_status();
            if let Some(msg) = detail {
                *rsp.body_mut() = boxed(Full::new(Bytes::from(format!("{msg}\n"))));
            }
        }
        if let Some(msg) = detail.and_then(|d| HeaderValue::from_str(d).ok()) {
            rsp.headers_mut().insert("l5d-proxy-error", msg);
        }
        rsp
    }
}

/// The request as route matching sees it.
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

/// Applies a route's request filters. A redirect ends the request: the
/// proxy answers with it instead of forwarding.
pub fn apply_request_filters<B>(filters: &[HttpFilter], req: &mut Request<B>) -> Option<Response<Body>> {
    for f in filters {
        match f {
            HttpFilter::RequestHeaderModifier(m) => modify_headers(m, req.headers_mut()),
            HttpFilter::RequestRedirect { .. } => return Some(redirect(f, req)),
            HttpFilter::ResponseHeaderModifier(_) => {}
        }
    }
    None
}

/// Applies a route's response filters (outbound only: Linkerd drops them inbound).
pub fn apply_response_filters(filters: &[HttpFilter], headers: &mut HeaderMap) {
    for f in filters {
        if let HttpFilter::ResponseHeaderModifier(m) = f {
            modify_headers(m, headers);
        }
    }
}

fn modify_headers(m: &HeaderModifier, headers: &mut HeaderMap) {
    let parse = |k: &str, v: &str| Some((HeaderName::from_bytes(k.as_bytes()).ok()?, HeaderValue::from_str(v).ok()?));
    for (k, v) in &m.set {
        if let Some((k, v)) = parse(k, v) {
            headers.insert(k, v);
        }
    }
    for (k, v) in &m.add {
        if let Some((k, v)) = parse(k, v) {
            headers.append(k, v);
        }
    }
    for k in &m.remove {
        headers.remove(k.as_str());
    }
}

fn redirect<B>(f: &HttpFilter, req: &Request<B>) -> Response<Body> {
    let HttpFilter::RequestRedirect { scheme, hostname, path, port, status } = f else {
        unreachable!("called with a redirect filter")
    };
    let host = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            let h = req.headers().get(header::HOST)?.to_str().ok()?;
            Some(h.rsplit_once(':').map_or(h, |(h, _)| h).to_string())
        })
        .unwrap_or_default();
    let scheme = scheme.as_deref().unwrap_or("http");
    let host = hostname.as_deref().unwrap_or(&host);
    let path = path.as_deref().unwrap_or(req.uri().path());
    let location = match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    };
    let mut rsp = Response::new(empty());
    *rsp.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(&location) {
        rsp.headers_mut().insert(header::LOCATION, v);
    }
    rsp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_errors_are_trailers_only_with_linkerd_codes() {
        let rsp = LocalError::Unauthorized.respond(true, None);
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(rsp.headers()["grpc-status"], "7");
        assert!(rsp.headers().get("l5d-proxy-error").is_none());
        assert_eq!(LocalError::NoRoute.respond(true, Some("no route")).headers()["grpc-status"], "5");
        assert_eq!(LocalError::NoRoute.respond(false, None).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn header_modifier_sets_adds_and_removes() {
        let m = HeaderModifier {
            set: vec![("x-a".into(), "1".into())],
            add: vec![("x-b".into(), "2".into())],
            remove: vec!["x-c".into()],
        };
        let mut req = Request::builder().header("x-a", "0").header("x-b", "1").header("x-c", "3").body(()).unwrap();
        assert!(apply_request_filters(&[HttpFilter::RequestHeaderModifier(m)], &mut req).is_none());
        assert_eq!(req.headers().get_all("x-a").iter().collect::<Vec<_>>(), ["1"]);
        assert_eq!(req.headers().get_all("x-b").iter().count(), 2);
        assert!(req.headers().get("x-c").is_none());
    }

    #[test]
    fn redirect_keeps_unset_parts_of_the_request() {
        let f = HttpFilter::RequestRedirect {
            scheme: Some("https".into()),
            hostname: None,
            path: None,
            port: None,
            status: 301,
        };
        let mut req = Request::builder().uri("/books/1").header("host", "web:8080").body(()).unwrap();
        let rsp = apply_request_filters(&[f], &mut req).expect("a redirect answers");
        assert_eq!(rsp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(rsp.headers()[header::LOCATION], "https://web/books/1");
    }
}
