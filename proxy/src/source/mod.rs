//! Signed config sources. A source yields raw bytes; the loader verifies
//! them (signature against the trusted keys, workload, digest) and publishes
//! only what verifies, keeping the last good config otherwise.
//!
//! Rollback: every signed config carries its build's sequence
//! ([`ProxyConfig::sequence`]); a config with a lower sequence than the one
//! in force, or the same sequence with other content, is refused (reason
//! `rollback`) and the newer one stays. The proxy keeps no state across
//! restarts: after one it takes the first config that verifies, and the
//! runtime's durable floor is what stops an older build there.
//! `generation` counts what this process accepted, not the config's age.
//!
//! Shared Service policies: a config may name the set of ServicePolicies
//! its namespace sees (`outbound.servicePolicies`); it is then enforced only
//! composed with that very set ([`Loader`]), which comes from a second
//! source (the runtime, or the build's `servicepolicies/` directory). Its
//! rollback protection is the config's: the set is named by its digest.

pub mod file;
pub mod http;
pub mod shared;

use crate::metrics::Metrics;
use crate::state::{ConfigTx, Loaded};
use futures_util::{Stream, StreamExt as _};
pub use mesh_common::verify::{Rejection, SourceError, Verified, Verifier};
use mesh_proxy_api::sequence::{self, Held};
use mesh_proxy_api::service_policy::effective_outbound;
use shared::PolicySet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use file::{FileSource, PolicyDirSource};
pub use http::RuntimeSource;

/// Where signed configs come from: a file, or the runtime controller's
/// long poll ([`RuntimeSource`]).
pub trait ConfigSource: Send {
    /// Waits until the config changes and returns its new bytes, or the
    /// error that now stops it being read. Implementations yield only
    /// changes: the same bytes, or the same error, are not yielded twice
    /// in a row, so an unchanged config is not re-verified or re-counted.
    fn next(&mut self) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send;
}

/// No source of shared Service policies: a config that names a set is
/// then never enforced (the proxy stays unready, or keeps its last config).
pub struct NoPolicies;

impl ConfigSource for NoPolicies {
    async fn next(&mut self) -> Result<Vec<u8>, SourceError> {
        std::future::pending().await
    }
}

/// Verifies configs and shared policy sets as they arrive and publishes a
/// config, composed with the set it names, once both are there.
pub struct Loader<'a> {
    verifier: &'a Verifier,
    tx: &'a ConfigTx,
    metrics: &'a Metrics,
    /// The newest verified config not yet in force (waiting for its set).
    pending: Option<Verified>,
    /// The newest verified set for this workload's namespace.
    set: Option<PolicySet>,
}

impl<'a> Loader<'a> {
    pub fn new(verifier: &'a Verifier, tx: &'a ConfigTx, metrics: &'a Metrics) -> Loader<'a> {
        Loader { verifier, tx, metrics, pending: None, set: None }
    }

    /// Verifies a config; it goes in force unless it is the one in force or
    /// older than it, as soon as the set it names (if any) is here.
    pub fn offer_config(&mut self, bytes: &[u8]) -> Result<(), Rejection> {
        let verified = self.verifier.open(bytes)?;
        let current = self.tx.borrow().clone();
        if current.as_ref().is_some_and(|c| c.digest == verified.digest) {
            tracing::debug!(digest = %verified.digest, "config unchanged");
            self.pending = None;
            return Ok(());
        }
        let held = current.as_ref().map(|c| Held { sequence: c.config.sequence, digest: &c.digest });
        let offered = Held { sequence: verified.config.sequence, digest: &verified.digest };
        sequence::admit(held, offered).map_err(Rejection::Rollback)?;
        self.pending = Some(verified);
        self.publish_ready();
        Ok(())
    }

    /// Verifies a set of shared policies (`{"policies": [...]}`) for this
    /// workload's namespace; a config waiting for it goes in force.
    pub fn offer_policies(&mut self, bytes: &[u8]) -> Result<(), Rejection> {
        let namespace = self.verifier.workload_ref().map_err(Rejection::Workload)?.namespace;
        let set = shared::open_set(bytes, &self.verifier.trusted, &namespace)?;
        tracing::debug!(digest = %set.digest, policies = set.policies.len(), "shared Service policies verified");
        self.set = Some(set);
        self.publish_ready();
        Ok(())
    }

    /// Publishes the pending config when it stands alone or its set is here.
    fn publish_ready(&mut self) {
        let Some(pending) = &self.pending else { return };
        let mut config = pending.config.clone();
        if let Some(named) = &config.outbound.service_policies {
            let Some(set) = self.set.as_ref().filter(|s| &s.digest == named) else {
                tracing::info!(digest = %pending.digest, set = %named, "config verified; waiting for the shared Service policies it names");
                return;
            };
            let namespace = config.workload.namespace.clone();
            config.outbound = effective_outbound(&config.outbound, &set.policies, &namespace);
        }
        let Some(Verified { digest, key_id, .. }) = self.pending.take() else { return };
        let generation = self.tx.borrow().as_ref().map_or(0, |c| c.generation) + 1;
        tracing::info!(generation, digest = %digest, key_id = %key_id, "config loaded");
        self.tx.send_replace(Some(Arc::new(Loaded { config, generation, digest, key_id })));
        self.metrics.config_accepted(generation);
    }
}

/// Verifies `bytes` and publishes it as the next generation unless it is the
/// config already in force or older than it (a config that stands alone:
/// one naming shared policies needs [`Loader`]). Returns the rejection so
/// callers can test it.
pub fn load(bytes: &[u8], verifier: &Verifier, tx: &ConfigTx, metrics: &Metrics) -> Result<(), Rejection> {
    Loader::new(verifier, tx, metrics).offer_config(bytes)
}

/// Drives `source` until `shutdown`: every change is verified and published,
/// or refused with a warning and a count while the last good config stays.
pub async fn run<S: ConfigSource>(
    source: S,
    verifier: Verifier,
    tx: ConfigTx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    run_with_policies(source, NoPolicies, verifier, tx, metrics, shutdown).await;
}

/// [`run`] with a source of shared Service policies beside the config's.
pub async fn run_with_policies<S: ConfigSource, P: ConfigSource>(
    source: S,
    policies: P,
    verifier: Verifier,
    tx: ConfigTx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut loader = Loader::new(&verifier, &tx, &metrics);
    // Each source is awaited through a stream that owns it and keeps its
    // call in progress between turns: awaiting both `next()` calls directly
    // in `select!` dropped the other one whenever one answered, so every
    // change of the shared policies cancelled the config's runtime long
    // poll half-way and sent it again.
    let configs = changes(source);
    let policy_sets = changes(policies);
    tokio::pin!(configs, policy_sets);
    loop {
        let (what, result) = tokio::select! {
            () = shutdown.cancelled() => return,
            Some(next) = configs.next() => {
                ("config", next.map_err(Rejection::Io).and_then(|b| loader.offer_config(&b)))
            }
            Some(next) = policy_sets.next() => {
                ("shared Service policies", next.map_err(Rejection::Io).and_then(|b| loader.offer_policies(&b)))
            }
        };
        if let Err(rejection) = result {
            let kept = tx.borrow().as_ref().map(|c| c.generation);
            match kept {
                Some(g) => {
                    tracing::warn!(reason = rejection.reason(), "{what} refused, keeping generation {g}: {rejection}")
                }
                None => tracing::warn!(reason = rejection.reason(), "{what} refused, none loaded yet: {rejection}"),
            }
            metrics.config_rejected(rejection.reason());
        }
    }
}

/// What `source` yields, one change after another, without end.
fn changes<S: ConfigSource>(source: S) -> impl Stream<Item = Result<Vec<u8>, SourceError>> {
    futures_util::stream::unfold(source, |mut source| async move { Some((source.next().await, source)) })
}

/// Watches `path` (and the build's `servicepolicies/` directory, when
/// given) and publishes every config that verifies.
pub async fn watch_file(
    path: PathBuf,
    policies: Option<PathBuf>,
    interval: Duration,
    verifier: Verifier,
    tx: ConfigTx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let config = FileSource::new(path, interval);
    match policies {
        Some(dir) => {
            let policies = PolicyDirSource::new(dir, interval);
            run_with_policies(config, policies, verifier, tx, metrics, shutdown).await;
        }
        None => run(config, verifier, tx, metrics, shutdown).await,
    }
}

#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
