//! Which `target` label values a config allows, and the label sets created
//! so far, so those of targets a new config no longer has can be removed.
//!
//! Outbound requests name their Service in their authority, which the app
//! (or whoever can make it send requests) chooses: a label per authority
//! would let traffic grow the metrics without bound. So a Service the
//! config does not list, and a transparent connection to no known Service,
//! are counted under one value each.

use crate::discovery::ServiceKey;
use crate::outbound::target;
use mesh_proxy_api::ProxyConfig;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Mutex;

/// The `target` of outbound traffic to a Service port the config does not list.
pub const UNLISTED: &str = "unlisted";
/// The `target` of transparent outbound connections to no known Service.
pub const PASSTHROUGH: &str = "passthrough";

/// `target` values a config can produce, per direction.
#[derive(Debug, Default)]
pub struct LiveTargets {
    inbound: HashSet<String>,
    outbound: HashSet<String>,
}

impl LiveTargets {
    /// Inbound: every server (`kind:name`); outbound: every listed Service
    /// port (`namespace/name:port`) and the shared values. Traffic without a
    /// target (skipped ports, requests with no Service name) has `""`.
    pub fn of(config: &ProxyConfig) -> LiveTargets {
        let inbound = &config.inbound;
        let servers = inbound.ports.iter().map(|p| &p.server).chain(std::iter::once(&inbound.default_server));
        let services = config.outbound.services.iter().flat_map(|s| {
            s.ports.iter().map(|p| {
                target::label(&ServiceKey { namespace: s.namespace.clone(), name: s.name.clone(), port: p.port })
            })
        });
        LiveTargets {
            inbound: servers.map(|s| super::meta_label(&s.meta)).chain([String::new()]).collect(),
            outbound: services.chain([UNLISTED, PASSTHROUGH, ""].map(String::from)).collect(),
        }
    }

    pub fn contains(&self, direction: &str, target: &str) -> bool {
        match direction {
            "inbound" => self.inbound.contains(target),
            _ => self.outbound.contains(target),
        }
    }
}

/// A label set that names a direction and a target.
pub trait Targeted: Clone + Eq + Hash {
    fn direction(&self) -> &str;
    fn target(&self) -> &str;
}

/// A metric family and the label sets it holds (prometheus-client cannot
/// list them), recorded when first created, so the sets of targets a new
/// config removed can be dropped.
pub struct Tracked<L, M, C = fn() -> M> {
    pub family: Family<L, M, C>,
    known: Mutex<HashSet<L>>,
}

impl<L: Targeted, M: Clone, C: MetricConstructor<M>> Tracked<L, M, C> {
    pub fn new(family: Family<L, M, C>) -> Self {
        Tracked { family, known: Mutex::new(HashSet::new()) }
    }

    /// Applies `f` to the metric of `labels`, creating it if needed.
    pub fn with(&self, labels: &L, f: impl FnOnce(&M)) {
        if let Some(m) = self.family.get(labels) {
            return f(&m);
        }
        f(&self.family.get_or_create(labels));
        // Recorded after creation: a concurrent `retain` cannot then miss a
        // set the family holds.
        self.lock().insert(labels.clone());
    }

    /// The metric of `labels`, created if needed; a handle onto the
    /// family's own.
    pub fn get_or_create(&self, labels: &L) -> M {
        if let Some(m) = self.family.get(labels) {
            return m.clone();
        }
        let m = self.family.get_or_create(labels).clone();
        // Recorded after creation, as in `with`.
        self.lock().insert(labels.clone());
        m
    }

    /// Drops the label sets whose target is not live.
    pub fn retain(&self, live: &LiveTargets) {
        self.lock().retain(|l| {
            let keep = live.contains(l.direction(), l.target());
            if !keep {
                self.family.remove(l);
            }
            keep
        });
    }

    /// A poisoned lock only means a panic elsewhere mid-insert; the set is
    /// still a set.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<L>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}
