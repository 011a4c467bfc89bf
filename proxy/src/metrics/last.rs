//! The metrics a connection's last request counted into, so the next
//! request decided the same way skips building and hashing its labels.
//!
//! A keep-alive connection mostly repeats one decision: same target, route
//! and authorization, same status. Its requests are keyed by what decided
//! their labels ([`LabelKey`]), which is compared, never formatted.

use super::{Labels, Metrics, RequestMetrics};
use std::sync::Mutex;
use std::time::Duration;

/// What a request's labels are made of, without their text: the config
/// generation, and the addresses in that config of the target, route and
/// authorization the labels name (compared only, never followed: a key
/// of another generation never equals one of this generation, so an
/// address reused by a later config cannot match), the verdict and the
/// status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelKey {
    pub generation: u64,
    pub target: TargetId,
    pub route: usize,
    pub authz: usize,
    pub verdict: &'static str,
    pub status: u16,
}

/// A `target` label: a fixed word, or a resource of the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetId {
    /// `""`, [`super::UNLISTED`] or [`super::PASSTHROUGH`].
    Fixed(&'static str),
    /// A server, or a Service port (the Service's address and the port).
    Config(usize, u16),
}

/// Where `item` is, as a key part; `None` is 0.
pub fn address<T>(item: Option<&T>) -> usize {
    item.map_or(0, |r| std::ptr::from_ref(r) as usize)
}

/// One connection's last label set and its metrics.
#[derive(Debug, Default)]
pub struct LastRequest {
    slot: Mutex<Option<(LabelKey, RequestMetrics)>>,
}

impl LastRequest {
    /// Records a request decided as `key`; `labels` builds its labels
    /// when the connection's last request was decided otherwise.
    pub fn record(&self, metrics: &Metrics, key: LabelKey, labels: impl FnOnce() -> Labels, latency: Duration) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((last, m)) if *last == key => m.record(latency),
            _ => {
                let m = metrics.request_metrics(&labels());
                m.record(latency);
                *slot = Some((key, m));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(status: u16) -> LabelKey {
        LabelKey { generation: 1, target: TargetId::Config(8, 80), route: 16, authz: 24, verdict: "allow", status }
    }

    fn labels(status: &str) -> Labels {
        Labels {
            direction: "inbound",
            target: "server:web".into(),
            route: "httproute:get".into(),
            authz: "authorizationpolicy:web".into(),
            verdict: "allow",
            status: status.into(),
        }
    }

    #[test]
    fn a_repeated_decision_counts_without_building_labels_and_a_new_one_builds_them() {
        let (m, last) = (Metrics::new(), LastRequest::default());
        let mut built = 0;
        for _ in 0..3 {
            last.record(
                &m,
                key(200),
                || {
                    built += 1;
                    labels("200")
                },
                Duration::from_micros(200),
            );
        }
        last.record(&m, key(503), || labels("503"), Duration::from_micros(200));
        assert_eq!(built, 1, "labels are built for the first of equal keys only");
        let text = m.encode();
        assert!(text.contains(r#"verdict="allow",status="200"} 3"#), "{text}");
        assert!(text.contains(r#"verdict="allow",status="503"} 1"#), "{text}");
        assert!(text.contains(r#"route="httproute:get"} 4"#), "the latency histogram counts all four: {text}");
    }
}
