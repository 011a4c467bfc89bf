//! The per-workload config meshc emits and mesh-proxy enforces.
//!
//! Everything here is data: no file paths or line numbers, so that a config's
//! bytes (and hash) change only when what the proxy enforces changes, or
//! when a new build signs it with a new [`ProxyConfig::sequence`]. meshc
//! keeps provenance in a side table keyed by [`Meta`].

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API version written into every [`ProxyConfig`].
pub const API_VERSION: &str = "meshc.io/v1alpha1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    pub api_version: String,
    pub workload: WorkloadRef,
    /// The mTLS identity the workload's proxy presents, e.g.
    /// `web.emojivoto.serviceaccount.identity.linkerd.cluster.local`.
    pub identity: String,
    pub inbound: Inbound,
    /// Client-side policy: the workload's own part, and the shared Service
    /// policies it is enforced with (`Outbound::service_policies`).
    #[serde(default, skip_serializing_if = "crate::outbound::Outbound::is_empty")]
    pub outbound: crate::outbound::Outbound,
    /// Per-request access log (`config.linkerd.io/access-log` on the pod
    /// template); absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogFormat>,
    /// The signing build's sequence (its MeshBundle's `spec.sequence`), so
    /// that a proxy, which sees only its own config, can refuse an older
    /// one (the rule is in `mesh_proxy_api::sequence`). Absent (0) in unsigned
    /// configs.
    #[serde(default, skip_serializing_if = "crate::sequence::is_unset")]
    pub sequence: u64,
}

/// Format of the proxy's HTTP access log, as Linkerd's `config.linkerd.io/access-log` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// Apache common log format with the route, authorization and latency appended.
    Apache,
    /// One JSON object per line.
    Json,
}

impl AccessLogFormat {
    /// The annotation value Linkerd accepts, or `None`.
    pub fn from_annotation(value: &str) -> Option<Self> {
        match value {
            "apache" => Some(AccessLogFormat::Apache),
            "json" => Some(AccessLogFormat::Json),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadRef {
    /// Kubernetes kind of the owner: Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inbound {
    /// Servers for ports that differ from `default_server`, sorted by port.
    pub ports: Vec<PortServer>,
    /// Served on any port not listed in `ports`: the pod's default inbound policy.
    pub default_server: InboundServer,
    /// Ports the proxy never sees (`config.linkerd.io/skip-inbound-ports`):
    /// traffic to them bypasses policy and mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_ports: Vec<PortRange>,
    /// Source networks whose traffic bypasses the proxy (`config.linkerd.io/skip-subnets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub skip_subnets: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortServer {
    pub port: u16,
    pub server: InboundServer,
}

/// An inclusive port range; a single port has `start == end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundServer {
    /// `kind: server` for a Server resource, `kind: default` for a default
    /// server (name = the default policy).
    pub meta: Meta,
    pub protocol: Protocol,
    pub authorizations: Vec<Authorization>,
    /// Used when the protocol is Detect, HTTP/1 or HTTP/2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_routes: Vec<HttpRoute>,
    /// Used when the protocol is gRPC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc_routes: Vec<GrpcRoute>,
    /// Checked on HTTP and gRPC requests once routed and authorized (`crate::ratelimit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::ratelimit::LocalRateLimit>,
}

/// Identifies the resource (or built-in) a server, route or authorization came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Meta {
    /// `default` for built-ins, otherwise the lower-case resource kind
    /// (`server`, `authorizationpolicy`, `serverauthorization`, `httproute`, `grpcroute`).
    pub kind: String,
    pub name: String,
    /// Group of the resource, for kinds that exist in two API groups (HTTPRoute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Meta {
    pub fn default_named(name: &str) -> Self {
        Meta { kind: "default".into(), name: name.into(), group: None }
    }
    pub fn resource(kind: &str, name: &str) -> Self {
        Meta { kind: kind.to_ascii_lowercase(), name: name.into(), group: None }
    }
    /// Audit authorizations allow, and the proxy logs what they allowed.
    pub fn is_audit(&self) -> bool {
        self.kind == "default" && self.name == "audit"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Protocol {
    /// Protocol detection; non-HTTP traffic (or a timeout) is handled as opaque TCP.
    Detect {
        timeout_ms: u64,
    },
    Http1,
    Http2,
    Grpc,
    Opaque,
    Tls,
}

impl Protocol {
    /// Whether requests on this server are routed and authorized per HTTP request.
    pub fn is_http(&self) -> bool {
        matches!(self, Protocol::Detect { .. } | Protocol::Http1 | Protocol::Http2 | Protocol::Grpc)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authorization {
    pub meta: Meta,
    /// The client IP must be in one of these networks (and in none of its `except`s).
    pub networks: Vec<Network>,
    pub authentication: Authentication,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    #[schemars(with = "String")]
    pub net: IpNet,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub except: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Authentication {
    /// Any client, with or without TLS.
    Unauthenticated,
    /// mTLS required, any (or no) client identity.
    TlsUnauthenticated,
    /// mTLS with a client identity that equals one of `identities` or ends
    /// with one of `suffixes`.
    ///
    /// Each suffix is the literal string the identity must end with, exactly
    /// as linkerd2-proxy stores it: `""` (from identity `*`) matches any
    /// identity, and `*.ns.serviceaccount.identity.linkerd.cluster.local` is
    /// stored WITH its leading dot as `.ns.serviceaccount.identity.linkerd.cluster.local`.
    /// Build entries with [`crate::identity_match_from_str`]. Suffixes apply
    /// only to DNS-like identities; URI identities (`spiffe://…`) must appear
    /// in `identities`.
    TlsAuthenticated {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        identities: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        suffixes: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    pub meta: Meta,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<HostMatch>,
    pub rules: Vec<HttpRule>,
    /// Route-level authorizations; the server's follow them.
    pub authorizations: Vec<Authorization>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRule {
    /// OR of matches; an empty list matches every request.
    pub matches: Vec<HttpMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpFilter>,
}

/// AND of the conditions that are set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<QueryParamMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type", content = "value", deny_unknown_fields)]
pub enum PathMatch {
    Exact(String),
    /// Segment-aware prefix: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
    Prefix(String),
    /// Must match the whole path.
    Regex(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type", content = "value", deny_unknown_fields)]
pub enum StringMatch {
    Exact(String),
    /// Must match the whole value.
    Regex(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header names compare case-insensitively.
    pub name: String,
    pub value: StringMatch,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryParamMatch {
    pub name: String,
    pub value: StringMatch,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type", content = "value", deny_unknown_fields)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com` is stored as the suffix `example.com`.
    Suffix(String),
}

/// Filters Linkerd applies to a routed request: inbound after
/// authorization, outbound before the request leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum HttpFilter {
    RequestHeaderModifier(HeaderModifier),
    /// Outbound only: headers changed on the response.
    ResponseHeaderModifier(HeaderModifier),
    RequestRedirect {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hostname: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// 301 or 302.
        status: u16,
    },
}

/// Header names and values to set (replace), add (append) and remove.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderModifier {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRoute {
    pub meta: Meta,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<HostMatch>,
    pub rules: Vec<GrpcRule>,
    pub authorizations: Vec<Authorization>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRule {
    /// OR of matches; an empty list matches every gRPC request.
    pub matches: Vec<GrpcMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMatch {
    /// Exact service name; `None` matches any service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Exact method name; `None` matches any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}
