//! Prometheus metrics, encoded by prometheus-client in the OpenMetrics text
//! format (which Prometheus scrapes natively).
//!
//! Cardinality is bounded by the config, never by traffic: `target` is one of
//! the config's servers (inbound) or Services (outbound), `route` and `authz`
//! are resources named in the config, `direction` and `verdict` are fixed
//! words and `status` is at most the few hundred HTTP codes. Client addresses,
//! identities and paths are never labels (they belong in the access log).
//! Outbound targets the config does not list share one value ([`UNLISTED`],
//! [`PASSTHROUGH`]): an authority is whatever the app sent. When a new config
//! takes effect, the label sets of targets it no longer has are removed
//! ([`prune_on_config_change`]); Prometheus sees those series end, and one
//! that comes back starts again from zero, which `rate()` handles as a
//! counter reset.

mod last;
mod targets;

pub use last::{LabelKey, LastRequest, TargetId, address};
pub use targets::{LiveTargets, PASSTHROUGH, UNLISTED};
use targets::{Targeted, Tracked};

use mesh_common::metrics::{Held, ReasonLabel, encode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Labels of one request or connection decision. Also the label set of
/// `mesh_proxy_requests_total`, so counting a request allocates nothing once
/// its label set exists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Labels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// Inbound: `kind:name` of the server. Outbound: `namespace/name:port` of the Service.
    pub target: String,
    /// `kind:name` of the route (or `default:default`); empty for TCP.
    pub route: String,
    /// `kind:name` of the authorization that allowed; empty when denied or outbound.
    pub authz: String,
    /// `allow`, `deny`, `no-route`, `error`.
    pub verdict: &'static str,
    /// HTTP status (gRPC: 200) or empty for TCP.
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnectionLabels {
    direction: &'static str,
    target: String,
    authz: String,
    verdict: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LatencyLabels {
    direction: &'static str,
    target: String,
    route: String,
}

impl Targeted for Labels {
    fn direction(&self) -> &str {
        self.direction
    }
    fn target(&self) -> &str {
        &self.target
    }
}

impl Targeted for ConnectionLabels {
    fn direction(&self) -> &str {
        self.direction
    }
    fn target(&self) -> &str {
        &self.target
    }
}

impl Targeted for LatencyLabels {
    fn direction(&self) -> &str {
        self.direction
    }
    fn target(&self) -> &str {
        &self.target
    }
}

/// `kind:name` of a config resource, the `target`, `route` and `authz` label form.
pub fn meta_label(meta: &mesh_proxy_api::Meta) -> String {
    format!("{}:{}", meta.kind, meta.name)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusedLabels {
    direction: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

/// The metrics one request label set counts into (handles onto the
/// families' own: recording through a clone is recording in the family).
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    count: Counter,
    latency: Histogram,
}

impl RequestMetrics {
    pub fn record(&self, latency: Duration) {
        self.count.inc();
        self.latency.observe(latency.as_secs_f64());
    }
}

/// Request latency buckets in seconds: 100µs (a local hop) to 10s (a slow
/// backend or a timeout), roughly ×2.5 apart.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    requests: Tracked<Labels, Counter, fn() -> Counter>,
    latency: Tracked<LatencyLabels, Histogram>,
    connections: Tracked<ConnectionLabels, Counter, fn() -> Counter>,
    open: Family<DirectionLabel, Gauge>,
    refused: Family<RefusedLabels, Counter>,
    config_generation: Gauge,
    config_rejected: Family<ReasonLabel, Counter>,
    cert_expiry: Gauge,
    identity_rejected: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            requests: Tracked::new(Family::new_with_constructor(Counter::default)),
            latency: Tracked::new(Family::new_with_constructor(latency_histogram)),
            connections: Tracked::new(Family::new_with_constructor(Counter::default)),
            open: Family::default(),
            refused: Family::default(),
            config_generation: Gauge::default(),
            config_rejected: Family::default(),
            cert_expiry: Gauge::default(),
            identity_rejected: Family::default(),
        };
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "mesh_proxy_requests",
            "HTTP requests by decision and response status",
            self.requests.family.clone(),
        );
        r.register(
            "mesh_proxy_request_duration_seconds",
            "HTTP request latency, from request headers to response headers",
            self.latency.family.clone(),
        );
        r.register("mesh_proxy_tcp_connections", "Opaque TCP connections by decision", self.connections.family.clone());
        r.register("mesh_proxy_open_connections", "Connections open now", self.open.clone());
        r.register(
            "mesh_proxy_connections_refused",
            "Connections closed before being served: at the direction's limit, or a TLS handshake that failed or timed out",
            self.refused.clone(),
        );
        r.register(
            "mesh_proxy_config_generation",
            "Generation of the config in force; 0 until one verifies",
            self.config_generation.clone(),
        );
        r.register(
            "mesh_proxy_config_rejected",
            "Configs refused (the last good one stays in force)",
            self.config_rejected.clone(),
        );
        r.register(
            "mesh_proxy_identity_cert_expiry_timestamp_seconds",
            "Unix time at which the workload certificate in use expires",
            self.cert_expiry.clone(),
        );
        r.register(
            "mesh_proxy_identity_rejected",
            "Identity reloads refused (the last good certificate stays in use)",
            self.identity_rejected.clone(),
        );
        r.register(
            "mesh_proxy_access_log_dropped",
            "Access log lines dropped because the writer was behind",
            crate::access_log::dropped_counter(),
        );
    }

    /// Counts one HTTP request and records its latency.
    pub fn request(&self, labels: &Labels, latency: Duration) {
        self.request_metrics(labels).record(latency);
    }

    /// The request counter and latency histogram of `labels`, created if
    /// needed. Finding them hashes every label; callers that see the same
    /// labels again keep them ([`LastRequest`]).
    pub fn request_metrics(&self, labels: &Labels) -> RequestMetrics {
        let key =
            LatencyLabels { direction: labels.direction, target: labels.target.clone(), route: labels.route.clone() };
        RequestMetrics { count: self.requests.get_or_create(labels), latency: self.latency.get_or_create(&key) }
    }

    /// Counts one opaque TCP connection decision (`route` and `status` are ignored).
    pub fn connection(&self, labels: &Labels) {
        let key = ConnectionLabels {
            direction: labels.direction,
            target: labels.target.clone(),
            authz: labels.authz.clone(),
            verdict: labels.verdict,
        };
        self.connections.with(&key, |c| {
            c.inc();
        });
    }

    /// Removes the label sets of targets not in `live`.
    pub fn retain_targets(&self, live: &LiveTargets) {
        self.requests.retain(live);
        self.latency.retain(live);
        self.connections.retain(live);
    }

    /// Counts a connection as open until the returned guard drops, so an
    /// early return or a panic cannot leave the gauge high.
    pub fn connection_open(&self, direction: &'static str) -> Held {
        Held::new(self.open.get_or_create_owned(&DirectionLabel { direction }))
    }

    /// A connection closed before it was served. `reason`: `limit`,
    /// `tls-handshake-timeout`, `tls-handshake-failed`.
    pub fn connection_refused(&self, direction: &'static str, reason: &'static str) {
        self.refused.get_or_create(&RefusedLabels { direction, reason }).inc();
    }

    pub fn config_accepted(&self, generation: u64) {
        self.config_generation.set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// `reason`: `io`, `parse`, `signature`, `untrusted-key`, `workload`, `digest`
    /// (see `source::Rejection::reason`).
    pub fn config_rejected(&self, reason: &'static str) {
        self.config_rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The expiry (`notAfter`, Unix seconds) of the certificate now in use.
    pub fn set_cert_expiry(&self, unix_seconds: i64) {
        self.cert_expiry.set(unix_seconds);
    }

    /// An identity reload that was refused, e.g. `io`, `parse`, `untrusted`, `expired`.
    pub fn identity_rejected(&self, reason: &'static str) {
        self.identity_rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The OpenMetrics text exposition, `# EOF` included.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }
}

/// Whenever a new config takes effect, removes the label sets of targets
/// it no longer has. (A request in flight across the change may record its
/// old target once more; the next change removes it.)
pub fn prune_on_config_change(ctx: &std::sync::Arc<crate::Ctx>) {
    let (mut config, metrics, shutdown) = (ctx.config.clone(), ctx.metrics.clone(), ctx.shutdown.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = config.changed() => if changed.is_err() { return },
            }
            let live = config.borrow_and_update().as_ref().map(|loaded| LiveTargets::of(&loaded.config));
            if let Some(live) = live {
                metrics.retain_targets(&live);
            }
        }
    });
}

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(route: &str, status: &str) -> Labels {
        Labels {
            direction: "inbound",
            target: "server:web-http".into(),
            route: route.into(),
            authz: "authorizationpolicy:web-get".into(),
            verdict: "allow",
            status: status.into(),
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn requests_are_counted_by_their_labels_and_timed_by_route() {
        let m = Metrics::new();
        m.request(&labels("httproute:get", "200"), Duration::from_micros(300));
        m.request(&labels("httproute:get", "200"), Duration::from_millis(20));
        m.request(&labels("httproute:get", "503"), Duration::from_secs(20));
        let text = m.encode();
        let ok = r#"mesh_proxy_requests_total{direction="inbound",target="server:web-http",route="httproute:get",authz="authorizationpolicy:web-get",verdict="allow",status="200"} 2"#;
        assert!(text.contains(ok), "{text}");
        assert!(text.contains(r#"status="503"} 1"#), "{text}");
        let hist = r#"mesh_proxy_request_duration_seconds_bucket{le="0.0005",direction="inbound",target="server:web-http",route="httproute:get"} 1"#;
        assert!(text.contains(hist), "{text}");
        // 20 s is past the last bucket: only +Inf counts it.
        assert!(
            text.contains(r#"{le="10.0",direction="inbound",target="server:web-http",route="httproute:get"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{le="+Inf",direction="inbound",target="server:web-http",route="httproute:get"} 3"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn tcp_connections_drop_route_and_status() {
        let m = Metrics::new();
        m.connection(&Labels { verdict: "deny", authz: String::new(), ..labels("", "") });
        let text = m.encode();
        let want = r#"mesh_proxy_tcp_connections_total{direction="inbound",target="server:web-http",authz="",verdict="deny"} 1"#;
        assert!(text.contains(want), "{text}");
    }

    #[test]
    fn open_connections_follow_their_guards() {
        let m = Metrics::new();
        let a = m.connection_open("inbound");
        let b = m.connection_open("inbound");
        let _c = m.connection_open("outbound");
        let open =
            |m: &Metrics| line(&m.encode(), r#"mesh_proxy_open_connections{direction="inbound"}"#).map(str::to_owned);
        assert_eq!(open(&m).as_deref(), Some(r#"mesh_proxy_open_connections{direction="inbound"} 2"#));
        drop(a);
        drop(b);
        assert_eq!(open(&m).as_deref(), Some(r#"mesh_proxy_open_connections{direction="inbound"} 0"#));
    }

    #[test]
    fn config_and_identity_state_is_exposed() {
        let m = Metrics::new();
        assert_eq!(line(&m.encode(), "mesh_proxy_config_generation "), Some("mesh_proxy_config_generation 0"));
        m.config_accepted(3);
        m.config_rejected("signature");
        m.config_rejected("signature");
        m.set_cert_expiry(1_900_000_000);
        m.identity_rejected("expired");
        let text = m.encode();
        assert_eq!(line(&text, "mesh_proxy_config_generation "), Some("mesh_proxy_config_generation 3"));
        assert!(text.contains(r#"mesh_proxy_config_rejected_total{reason="signature"} 2"#), "{text}");
        assert!(text.contains("mesh_proxy_identity_cert_expiry_timestamp_seconds 1900000000"), "{text}");
        assert!(text.contains(r#"mesh_proxy_identity_rejected_total{reason="expired"} 1"#), "{text}");
    }
}
