//! Prometheus metrics (OpenMetrics text). Label values are fixed words, so
//! cardinality never depends on objects or clients.

use mesh_common::metrics::{Held, ReasonLabel};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectLabels {
    /// `ProxyConfig` or `MeshBundle`.
    kind: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    /// `api` or `admin`.
    listener: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TaskLabel {
    /// A background task's fixed name.
    task: &'static str,
}

pub struct Metrics {
    registry: Registry,
    configs_held: Gauge,
    configs_served: Counter,
    rejected: Family<RejectLabels, Counter>,
    long_polls: Gauge,
    watches_refused: Family<ReasonLabel, Counter>,
    connections: Family<ListenerLabel, Gauge>,
    connections_refused: Family<ListenerLabel, Counter>,
    task_failures: Family<TaskLabel, Counter>,
    certs_issued: Counter,
    certs_refused: Family<ReasonLabel, Counter>,
    issuer_expiry: Gauge,
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
            configs_held: Gauge::default(),
            configs_served: Counter::default(),
            rejected: Family::default(),
            long_polls: Gauge::default(),
            watches_refused: Family::default(),
            connections: Family::default(),
            connections_refused: Family::default(),
            task_failures: Family::default(),
            certs_issued: Counter::default(),
            certs_refused: Family::default(),
            issuer_expiry: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register("mesh_runtime_configs", "Verified configs held, one per workload", m.configs_held.clone());
        r.register("mesh_runtime_configs_served", "Configs sent to proxies (200 answers)", m.configs_served.clone());
        r.register(
            "mesh_runtime_objects_rejected",
            "Object contents refused (the last good config stays served)",
            m.rejected.clone(),
        );
        r.register("mesh_runtime_long_polls_open", "Config and endpoint watches held open now", m.long_polls.clone());
        r.register(
            "mesh_runtime_watches_refused",
            "Long polls refused: identity-quota (429) or capacity (503)",
            m.watches_refused.clone(),
        );
        r.register("mesh_runtime_connections_open", "Connections held open now", m.connections.clone());
        r.register(
            "mesh_runtime_connections_refused",
            "Connections closed at once because the listener held its maximum",
            m.connections_refused.clone(),
        );
        r.register(
            "mesh_runtime_task_failures",
            "Background tasks that panicked or ended before shutdown (the runtime then stops)",
            m.task_failures.clone(),
        );
        r.register("mesh_runtime_certificates_issued", "Workload certificates signed", m.certs_issued.clone());
        r.register("mesh_runtime_certificates_refused", "Certificate requests refused", m.certs_refused.clone());
        r.register(
            "mesh_runtime_issuer_expiry_timestamp_seconds",
            "Unix time at which the issuer certificate expires",
            m.issuer_expiry.clone(),
        );
        m
    }

    pub fn set_configs_held(&self, n: usize) {
        self.configs_held.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn config_served(&self) {
        self.configs_served.inc();
    }

    pub fn rejected(&self, kind: &'static str, reason: &'static str) {
        self.rejected.get_or_create(&RejectLabels { kind, reason }).inc();
    }

    /// Counts a watch as open until the guard drops.
    pub fn long_poll(&self) -> Held {
        Held::new(self.long_polls.clone())
    }

    pub fn watch_refused(&self, reason: &'static str) {
        self.watches_refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a connection of `listener` as open until the guard drops.
    pub fn connection(&self, listener: &'static str) -> Held {
        Held::new(self.connections.get_or_create(&ListenerLabel { listener }).clone())
    }

    pub fn connection_refused(&self, listener: &'static str) {
        self.connections_refused.get_or_create(&ListenerLabel { listener }).inc();
    }

    pub fn task_failed(&self, task: &'static str) {
        self.task_failures.get_or_create(&TaskLabel { task }).inc();
    }

    pub fn certificate_issued(&self) {
        self.certs_issued.inc();
    }

    pub fn certificate_refused(&self, reason: &'static str) {
        self.certs_refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn set_issuer_expiry(&self, unix_seconds: i64) {
        self.issuer_expiry.set(unix_seconds);
    }

    /// The OpenMetrics text exposition, `# EOF` included.
    pub fn encode(&self) -> String {
        mesh_common::metrics::encode(&self.registry)
    }
}
