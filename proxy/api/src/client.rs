//! What the inbound proxy knows about a connection and a request when it
//! decides: the client's address and TLS state, and the request line/headers.
//!
//! These are inputs to the decision functions only; they never appear in a
//! [`crate::ProxyConfig`].

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The peer of an inbound connection as the server-side proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// The TCP peer address: the client pod IP for pod-to-pod traffic, but
    /// possibly a node IP after SNAT (NodePort / LoadBalancer).
    pub addr: IpAddr,
    pub tls: ClientTls,
}

/// The TLS state of the client connection after the proxy accepted it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "identity")]
pub enum ClientTls {
    /// No mTLS: an unmeshed client, or a meshed client whose traffic
    /// bypassed its proxy (skip-outbound-ports).
    Plaintext,
    /// mTLS was established but the client presented no identity.
    Unidentified,
    /// mTLS with this client identity: a DNS-like name such as
    /// `web.emojivoto.serviceaccount.identity.linkerd.cluster.local`, or a
    /// URI such as `spiffe://td/ns/web`.
    Identified(String),
}

impl Client {
    pub fn plaintext(addr: IpAddr) -> Self {
        Client { addr, tls: ClientTls::Plaintext }
    }

    pub fn unidentified(addr: IpAddr) -> Self {
        Client { addr, tls: ClientTls::Unidentified }
    }

    pub fn identified(addr: IpAddr, identity: impl Into<String>) -> Self {
        Client { addr, tls: ClientTls::Identified(identity.into()) }
    }
}

impl ClientTls {
    /// Whether an mTLS session was established (with or without identity).
    pub fn is_tls(&self) -> bool {
        !matches!(self, ClientTls::Plaintext)
    }

    pub fn identity(&self) -> Option<&str> {
        match self {
            ClientTls::Identified(id) => Some(id),
            _ => None,
        }
    }
}

/// An HTTP request as route matching sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequest {
    /// Compared case-sensitively, as HTTP methods are (`get` is not `GET`).
    pub method: String,
    /// The raw (still percent-encoded) path, without the query string.
    pub path: String,
    /// The raw query string without the leading `?`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The request authority (`:authority` or `Host`); a port, if present, is
    /// ignored by host matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Header names compare case-insensitively; a name may repeat, and a
    /// header matches if any of its values does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    /// A request for `target`, an origin-form request target: `/path` or
    /// `/path?query`. Splitting here keeps callers from accidentally matching
    /// paths against a string that still carries the query.
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (target, None),
        };
        HttpRequest { method: method.to_string(), path: path.to_string(), query, host: None, headers: Vec::new() }
    }

    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    pub fn post(target: &str) -> Self {
        Self::new("POST", target)
    }

    pub fn put(target: &str) -> Self {
        Self::new("PUT", target)
    }

    pub fn delete(target: &str) -> Self {
        Self::new("DELETE", target)
    }

    pub fn with_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// All values of the header `name`, compared case-insensitively.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What route matching reads of an HTTP request. The decision functions
/// take any implementation: meshc passes an [`HttpRequest`] it built, and
/// the proxy a borrowed view of the request it received, so deciding copies
/// no header. An implementation answers exactly what the [`HttpRequest`]
/// holding the same request would.
pub trait RequestView {
    /// Compared case-sensitively.
    fn method(&self) -> &str;
    /// The raw (still percent-encoded) path, without the query string.
    fn path(&self) -> &str;
    /// The raw query string without the leading `?`.
    fn query(&self) -> Option<&str>;
    /// The request authority (`:authority` or `Host`), port included if sent.
    fn host(&self) -> Option<&str>;
    /// Whether any value of the header `name` (compared case-insensitively)
    /// satisfies `pred`; values that are not text are not seen.
    fn any_header_value(&self, name: &str, pred: impl FnMut(&str) -> bool) -> bool;
}

/// So `&&HttpRequest` decides like `&HttpRequest`, as before generics.
impl<T: RequestView + ?Sized> RequestView for &T {
    fn method(&self) -> &str {
        (**self).method()
    }
    fn path(&self) -> &str {
        (**self).path()
    }
    fn query(&self) -> Option<&str> {
        (**self).query()
    }
    fn host(&self) -> Option<&str> {
        (**self).host()
    }
    fn any_header_value(&self, name: &str, pred: impl FnMut(&str) -> bool) -> bool {
        (**self).any_header_value(name, pred)
    }
}

impl RequestView for HttpRequest {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn any_header_value(&self, name: &str, pred: impl FnMut(&str) -> bool) -> bool {
        self.header_values(name).any(pred)
    }
}

/// A gRPC call. On the wire it is `POST /<service>/<method>`, which is what
/// route matching sees (see [`GrpcRequest::to_http`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRequest {
    /// Fully qualified service name, e.g. `emojivoto.v1.VotingService`.
    pub service: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl GrpcRequest {
    /// A call with the `content-type: application/grpc` header every real
    /// gRPC client sends, so header matches on it behave as on a cluster.
    pub fn new(service: &str, method: &str) -> Self {
        GrpcRequest {
            service: service.to_string(),
            method: method.to_string(),
            host: None,
            headers: vec![("content-type".into(), "application/grpc".into())],
        }
    }

    pub fn with_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// `/<service>/<method>`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }

    /// The HTTP/2 request that carries this call: what an HTTP-routed server
    /// (Detect, HTTP/1, HTTP/2) matches against its HTTP routes.
    pub fn to_http(&self) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: self.path(),
            query: None,
            host: self.host.clone(),
            headers: self.headers.clone(),
        }
    }
}
