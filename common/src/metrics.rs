//! Metric pieces mesh-proxy and mesh-runtime both expose the same way.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A `reason` label; both crates' metrics use it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// `registry` in the OpenMetrics text format, `# EOF` included.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a
    // label value prometheus-client refuses, which ours never are.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!("encoding metrics: {e}");
    }
    out
}

/// Counts something as open in a gauge until dropped, so an early return
/// or a panic cannot leave the gauge high.
pub struct Held {
    gauge: Gauge,
}

impl Held {
    pub fn new(gauge: Gauge) -> Held {
        gauge.inc();
        Held { gauge }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
