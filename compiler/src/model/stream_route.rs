//! TLSRoute and TCPRoute (gateway.networking.k8s.io v1alpha2, served by
//! Linkerd 2.17+): routes of whole connections. A TLSRoute matches the SNI
//! of the client's ClientHello; a TCPRoute matches every connection. Both
//! send the connection to one backend picked by weight.
//!
//! The parentRef type is the one HTTP routes use, so that a parent of any
//! kind (Service today, EgressNetwork later) is read the same way.

use super::route::ParentRef;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct TlsRouteSpec {
    /// SNI names: exact, or `*.` followed by a suffix.
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    /// Required by the CRD (1 to 16); Linkerd's webhook admits exactly one.
    pub rules: Vec<StreamRouteRule>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct TcpRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    /// Required by the CRD (1 to 16); Linkerd's webhook admits exactly one.
    pub rules: Vec<StreamRouteRule>,
}

/// One rule of a TLSRoute or TCPRoute: only backends (there is no match).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct StreamRouteRule {
    /// Required by the CRD schema (1 to 16 entries).
    #[serde(default)]
    pub backend_refs: Vec<StreamBackendRef>,
    /// Newer Gateway API releases name rules; not interpreted.
    #[serde(default)]
    pub name: Option<String>,
}

/// A backendRef of a TLSRoute or TCPRoute: no filters, unlike HTTP's.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct StreamBackendRef {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub weight: Option<i64>,
}

/// Either kind, as the stages after decoding read them.
#[derive(Clone, Copy, Debug)]
pub enum StreamRoute<'a> {
    Tls(&'a TlsRouteSpec),
    Tcp(&'a TcpRouteSpec),
}

impl<'a> StreamRoute<'a> {
    pub fn parent_refs(self) -> &'a [ParentRef] {
        match self {
            StreamRoute::Tls(t) => &t.parent_refs,
            StreamRoute::Tcp(t) => &t.parent_refs,
        }
    }

    pub fn rules(self) -> &'a [StreamRouteRule] {
        match self {
            StreamRoute::Tls(t) => &t.rules,
            StreamRoute::Tcp(t) => &t.rules,
        }
    }

    /// The SNI names of a TLSRoute; none for a TCPRoute.
    pub fn hostnames(self) -> &'a [String] {
        match self {
            StreamRoute::Tls(t) => &t.hostnames,
            StreamRoute::Tcp(_) => &[],
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            StreamRoute::Tls(_) => "TLSRoute",
            StreamRoute::Tcp(_) => "TCPRoute",
        }
    }
}
