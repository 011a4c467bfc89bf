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

pub mod file;
pub mod http;

use crate::metrics::Metrics;
use crate::state::{ConfigTx, Loaded};
pub use mesh_common::verify::{Rejection, SourceError, Verified, Verifier};
use mesh_proxy_api::sequence::{self, Held};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use file::FileSource;
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

/// Verifies `bytes` and publishes it as the next generation unless it is the
/// config already in force or older than it. Returns the rejection so
/// callers can test it.
pub fn load(bytes: &[u8], verifier: &Verifier, tx: &ConfigTx, metrics: &Metrics) -> Result<(), Rejection> {
    let verified = verifier.open(bytes)?;
    let current = tx.borrow().clone();
    if current.as_ref().is_some_and(|c| c.digest == verified.digest) {
        tracing::debug!(digest = %verified.digest, "config unchanged");
        return Ok(());
    }
    let held = current.as_ref().map(|c| Held { sequence: c.config.sequence, digest: &c.digest });
    let offered = Held { sequence: verified.config.sequence, digest: &verified.digest };
    sequence::admit(held, offered).map_err(Rejection::Rollback)?;
    let generation = current.map_or(0, |c| c.generation) + 1;
    tracing::info!(generation, digest = %verified.digest, key_id = %verified.key_id, "config loaded");
    let Verified { config, digest, key_id } = verified;
    tx.send_replace(Some(Arc::new(Loaded { config, generation, digest, key_id })));
    metrics.config_accepted(generation);
    Ok(())
}

/// Drives `source` until `shutdown`: every change is verified and published,
/// or refused with a warning and a count while the last good config stays.
pub async fn run<S: ConfigSource>(
    mut source: S,
    verifier: Verifier,
    tx: ConfigTx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = source.next() => next,
        };
        let result = next.map_err(Rejection::Io).and_then(|bytes| load(&bytes, &verifier, &tx, &metrics));
        if let Err(rejection) = result {
            let kept = tx.borrow().as_ref().map(|c| c.generation);
            match kept {
                Some(g) => {
                    tracing::warn!(reason = rejection.reason(), "config refused, keeping generation {g}: {rejection}")
                }
                None => tracing::warn!(reason = rejection.reason(), "config refused, none loaded yet: {rejection}"),
            }
            metrics.config_rejected(rejection.reason());
        }
    }
}

/// Watches `path` and publishes every config that verifies.
pub async fn watch_file(
    path: PathBuf,
    interval: Duration,
    verifier: Verifier,
    tx: ConfigTx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    run(FileSource::new(path, interval), verifier, tx, metrics, shutdown).await;
}

#[cfg(test)]
mod tests;
