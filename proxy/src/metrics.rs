//! Prometheus metrics. OWNER: admin/metrics helper; the method signatures
//! below are what the listeners call.

use std::time::Duration;

/// Labels of one request or connection decision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
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

pub struct Metrics {}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {}
    }
    pub fn request(&self, _labels: &Labels, _latency: Duration) {}
    pub fn connection(&self, _labels: &Labels) {}
    pub fn config_accepted(&self, _generation: u64) {}
    /// `reason`: `signature`, `workload`, `parse`, `io`.
    pub fn config_rejected(&self, _reason: &'static str) {}
    pub fn encode(&self) -> String {
        String::new()
    }
}
