//! Client-side (outbound) policy: what a workload's proxy does with the
//! requests it sends to each Service it calls (semantics reference §8).
//!
//! Routes name Services, never endpoints: endpoints come from discovery at
//! runtime. Durations are whole milliseconds and ratios whole parts per
//! million, so that the canonical JSON of a config has no floats.

mod decide;
pub mod egress;
mod stream;

pub use decide::{OutboundRoute, RouteTarget, RuleBackends, pick_backend, pick_weighted, route_outbound};
pub use stream::{
    ConnectionRoute, OutboundTcpRoute, OutboundTlsRoute, SniMatch, route_connection, select_by_sni, select_tls_route,
    sni_match,
};

use crate::config::{GrpcMatch, HostMatch, HttpFilter, HttpMatch, Meta, PortRange};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outbound {
    /// Services whose policy differs from the default, sorted by namespace
    /// then name. Any other Service gets the default: detection (opaque on
    /// `default_opaque_ports`), one route to the Service, no timeouts,
    /// retries or circuit breaking. `meshc build` lists none here: each
    /// Service's policy is a shared ServicePolicy the config names by
    /// `service_policies`, and the proxy fills this list from them
    /// (`crate::service_policy::effective_outbound`); a Service listed
    /// here wins over its shared view.
    pub services: Vec<OutboundService>,
    /// The cluster's default opaque ports, which apply to every Service
    /// without a `config.linkerd.io/opaque-ports` annotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_opaque_ports: Vec<PortRange>,
    /// Connections to addresses outside the cluster networks (EgressNetworks).
    #[serde(default, skip_serializing_if = "egress::Egress::is_empty")]
    pub egress: egress::Egress,
    /// The digest of the shared Service policies this workload's namespace
    /// sees ([`crate::service_policy::set_digest`]): the proxy enforces
    /// this config only together with exactly that set, whose Services
    /// join `services` ([`crate::service_policy::effective_outbound`]).
    /// Absent: the config stands alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_policies: Option<String>,
}

impl Outbound {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.default_opaque_ports.is_empty()
            && self.egress.is_empty()
            && self.service_policies.is_none()
    }

    /// The protocol of a port of a Service this config does not list.
    pub fn default_protocol(&self, port: u16) -> OutboundProtocol {
        if self.default_opaque_ports.iter().any(|r| r.contains(port)) {
            OutboundProtocol::Opaque
        } else {
            OutboundProtocol::Detect
        }
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&OutboundService> {
        self.services
            .binary_search_by(|s| (s.namespace.as_str(), s.name.as_str()).cmp(&(namespace, name)))
            .ok()
            .map(|i| &self.services[i])
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundService {
    pub namespace: String,
    pub name: String,
    /// The Service's ports, sorted by port.
    pub ports: Vec<OutboundPort>,
    /// From the Service's `timeout.linkerd.io/*` annotations; used by rules
    /// that set no timeout of their own, and by the default route.
    #[serde(default, skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
    /// From the Service's `retry.linkerd.io/*` annotations; used by rules
    /// whose route has no retry annotations, and by the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_accrual: Option<FailureAccrual>,
    /// A ServiceProfile with routes or dstOverrides: when set, it replaces
    /// the routes, timeouts, retries and failure accrual above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

impl OutboundService {
    /// Whether a client proxy that did not list this Service would treat it
    /// the same: default protocols, no routes, timeouts, retries, circuit
    /// breaking or profile. Such Services are left out of configs.
    pub fn is_default(&self, default_opaque_ports: &[PortRange]) -> bool {
        let default_port = |p: &OutboundPort| {
            let opaque = default_opaque_ports.iter().any(|r| r.contains(p.port));
            let protocol = if opaque { OutboundProtocol::Opaque } else { OutboundProtocol::Detect };
            p.protocol == protocol
                && p.http_routes.is_empty()
                && p.grpc_routes.is_empty()
                && p.tls_routes.is_empty()
                && p.tcp_route.is_none()
        };
        self.profile.is_none()
            && self.timeouts.is_empty()
            && self.retry.is_none()
            && self.failure_accrual.is_none()
            && self.ports.iter().all(default_port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundPort {
    pub port: u16,
    pub protocol: OutboundProtocol,
    /// Empty (with no gRPC routes either): one default route to the Service.
    /// Otherwise a request that matches no route gets 404.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_routes: Vec<OutboundHttpRoute>,
    /// When set, these and not `http_routes` serve the port (GRPCRoutes win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc_routes: Vec<OutboundGrpcRoute>,
    /// TLSRoutes (SNI routing of whole connections), in Linkerd's order.
    /// Set only on a detected port without HTTP or gRPC routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_routes: Vec<OutboundTlsRoute>,
    /// The TCPRoute that routes every connection: on an opaque port, or a
    /// detected port without HTTP, gRPC or TLS routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_route: Option<OutboundTcpRoute>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum OutboundProtocol {
    /// Protocol detection (no appProtocol, not opaque).
    Detect,
    /// appProtocol `http`.
    Http1,
    /// appProtocol `kubernetes.io/h2c`.
    Http2,
    /// Opaque TCP: an opaque port or any other appProtocol. Only a TCPRoute applies.
    Opaque,
}

/// A route on a Service port: HTTP ([`OutboundHttpRoute`]) or gRPC
/// ([`OutboundGrpcRoute`]), which differ only in their match type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "ServiceRoute_for_{M}")]
pub struct ServiceRoute<M> {
    pub meta: Meta,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<HostMatch>,
    pub rules: Vec<ServiceRule<M>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "ServiceRule_for_{M}")]
pub struct ServiceRule<M> {
    /// OR of matches; an empty list matches every request.
    pub matches: Vec<M>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpFilter>,
    /// Weighted random choice; a rule whose weights are all 0 fails every
    /// request with 500. Never empty: a rule without backendRefs lists its
    /// parent Service.
    pub backends: Vec<Backend>,
    /// The rule's own timeouts; when every field is unset the Service's apply.
    #[serde(default, skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
    /// The route's retry policy; `None` means the Service's applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

pub type OutboundHttpRoute = ServiceRoute<HttpMatch>;
pub type OutboundHttpRule = ServiceRule<HttpMatch>;
pub type OutboundGrpcRoute = ServiceRoute<GrpcMatch>;
pub type OutboundGrpcRule = ServiceRule<GrpcMatch>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    pub target: BackendTarget,
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpFilter>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum BackendTarget {
    Service {
        namespace: String,
        name: String,
        port: u16,
    },
    /// A backend Linkerd cannot use (no port, unknown kind, no such
    /// Service): requests sent to it fail with 500.
    Invalid {
        reason: String,
    },
}

/// `None` is no timeout. `request` bounds the whole exchange including
/// retries, `response` one attempt's response headers, `idle` silence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
}

impl Timeouts {
    pub fn is_empty(&self) -> bool {
        self.request_ms.is_none() && self.response_ms.is_none() && self.idle_ms.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// Status ranges that are retried (HTTP routes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_statuses: Vec<StatusRange>,
    /// gRPC status names that are retried (gRPC routes), e.g. `unavailable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc_codes: Vec<String>,
    /// Attempts after the first.
    pub limit: u16,
    /// Each attempt's timeout; an attempt that times out is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// An inclusive HTTP status range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusRange {
    pub min: u16,
    pub max: u16,
}

/// Circuit breaking per endpoint (`balancer.linkerd.io/failure-accrual*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum FailureAccrual {
    /// An endpoint is taken out of the balancer after `max_failures`
    /// consecutive failures, for a backoff between the penalties.
    Consecutive { max_failures: u32, backoff: Backoff },
    /// Consecutive failures, or a success rate below the threshold over the window.
    Unified {
        max_failures: u32,
        backoff: Backoff,
        success_rate_threshold_ppm: u32,
        success_rate_window_ms: u64,
        success_rate_min_requests: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    pub min_penalty_ms: u64,
    pub max_penalty_ms: u64,
    /// Jitter as parts per million of the penalty (0.5 = 500000).
    pub jitter_ppm: u32,
}

/// A ServiceProfile's policy for one Service (semantics reference §8.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// The ServiceProfile's name (the Service's FQDN) and namespace.
    pub name: String,
    pub namespace: String,
    /// First match in list order wins; a request matching none gets the
    /// default behaviour (profiles never answer 404).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<ProfileRoute>,
    pub retry_budget: RetryBudget,
    /// Traffic split by authority; weights in decimilli (1 = 10000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dst_overrides: Vec<DstOverride>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileRoute {
    pub name: String,
    pub condition: RequestCondition,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_classes: Vec<ResponseClass>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type", content = "value", deny_unknown_fields)]
pub enum RequestCondition {
    /// Anchored: must match the whole path.
    PathRegex(String),
    Method(String),
    All(Vec<RequestCondition>),
    Any(Vec<RequestCondition>),
    Not(Box<RequestCondition>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseClass {
    pub condition: ResponseCondition,
    pub is_failure: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type", content = "value", deny_unknown_fields)]
pub enum ResponseCondition {
    Status(StatusRange),
    All(Vec<ResponseCondition>),
    Any(Vec<ResponseCondition>),
    Not(Box<ResponseCondition>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries may add this fraction of requests, in parts per million (0.2 = 200000).
    pub retry_ratio_ppm: u32,
    pub min_retries_per_second: u32,
    pub ttl_ms: u64,
}

impl Default for RetryBudget {
    /// Linkerd's defaults: 0.2 / 10 / 10s.
    fn default() -> Self {
        RetryBudget { retry_ratio_ppm: 200_000, min_retries_per_second: 10, ttl_ms: 10_000 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DstOverride {
    pub authority: String,
    pub weight: u32,
}
