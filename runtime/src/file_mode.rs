//! File mode: the pollers that feed the store, the endpoints and the
//! tokens from files.

use crate::ca::Ca;
use crate::files::{DirScanner, FilePoll, Snapshot};
use crate::hub::{ConfigHub, EndpointsHub};
use crate::metrics::Metrics;
use crate::run::{self, Parts, Running};
use crate::serve::Readiness;
use crate::settings::Settings;
use crate::state_file::FloorFile;
use crate::store::Store;
use crate::supervise::Tasks;
use crate::tokens::FileTokens;
use mesh_common::verify::read_trusted_keys;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Ready once the build directory was read.
struct FileReadiness {
    dir_read: Arc<AtomicBool>,
    configs: Arc<ConfigHub>,
}

impl Readiness for FileReadiness {
    fn ready(&self) -> Result<String, String> {
        if !self.dir_read.load(Ordering::Relaxed) {
            return Err("the build directory has not been read yet".into());
        }
        let summary = self.configs.summary();
        if summary.trusted_keys == 0 {
            return Err("no trusted keys".into());
        }
        Ok(summary.describe())
    }
}

/// Loads everything, then serves.
pub async fn start(s: Settings) -> Result<Running, String> {
    let (Some(dir), Some(ca_dir)) = (s.dir.clone(), s.ca_dir.clone()) else {
        return Err("file mode needs --dir and --ca-dir".into());
    };
    let trusted = read_trusted_keys(&s.trust_keys)?;
    let ca = Arc::new(Ca::load(&ca_dir, &s.identity_domain())?);
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let mut tasks = Tasks::new(shutdown.clone());
    let tokens = Arc::new(FileTokens::default());
    if let Some(path) = &s.tokens {
        let mut poll = FilePoll::new(path.clone());
        let bytes = poll.changed().await.ok_or_else(|| format!("{}: cannot read", path.display()))?;
        tokens.replace(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let t = tokens.clone();
        let apply = move |b: &[u8]| t.replace(b).map(|n| format!("{n} tokens"));
        tasks.spawn("tokens file poll", poll_file(poll, s.poll_interval, shutdown.clone(), apply));
    } else {
        tracing::warn!("no --tokens file: every certificate request is refused");
    }
    let endpoints = Arc::new(EndpointsHub::default());
    if let Some(path) = &s.endpoints {
        let mut poll = FilePoll::new(path.clone());
        let bytes = poll.changed().await.ok_or_else(|| format!("{}: cannot read", path.display()))?;
        let apply = endpoint_applier(endpoints.clone());
        apply(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        tasks.spawn("endpoints file poll", poll_file(poll, s.poll_interval, shutdown.clone(), apply));
    }

    let mut floor = FloorFile::open(s.state_dir.as_deref())?;
    let mut store = Store::new(trusted);
    if let Some(f) = floor.floor() {
        tracing::info!(sequence = f.sequence, "refusing bundles below the recorded rollback floor");
        store.raise_floor(f.clone());
    }
    let configs = Arc::new(ConfigHub::new(store, metrics.clone()));
    let dir_read = Arc::new(AtomicBool::new(false));
    let mut scanner = DirScanner::new(dir.clone());
    let mut applied = Snapshot::default();
    if let Err(e) = scan_once(&mut scanner, &configs, &mut applied, &dir_read, &mut floor).await {
        tracing::warn!("cannot read the build directory yet; not ready until it can be: {e}");
    }
    let poll = poll_dir(scanner, applied, configs.clone(), dir_read.clone(), floor, s.poll_interval, shutdown.clone());
    tasks.spawn("build directory poll", poll);
    let readiness = Arc::new(FileReadiness { dir_read, configs: configs.clone() });
    // File mode's issuer never changes: the sender is dropped at once.
    let (_, ca) = watch::channel(ca);
    let parts = Parts {
        configs,
        endpoints,
        tokens,
        readiness,
        ca,
        metrics,
        namespace: "mesh-system".into(),
        source: dir.display().to_string(),
        namespaces: Arc::new(crate::webhook::NoNamespaces),
    };
    run::serve(&s, parts, tasks).await
}

fn endpoint_applier(hub: Arc<EndpointsHub>) -> impl Fn(&[u8]) -> Result<String, String> + Send + 'static {
    move |bytes| {
        let snap = mesh_proxy_api::endpoints::parse(bytes)?;
        hub.replace(&snap.endpoints);
        let with_ip = snap.by_addr.len();
        hub.replace_cluster_ips(snap.by_addr);
        Ok(format!("{} service ports ({with_ip} with a cluster IP)", snap.endpoints.len()))
    }
}

/// Re-reads `poll`'s file every `interval` and applies changed content;
/// content that does not apply is logged and the last good stays.
async fn poll_file<F>(mut poll: FilePoll, interval: Duration, shutdown: CancellationToken, apply: F)
where
    F: Fn(&[u8]) -> Result<String, String> + Send + 'static,
{
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(bytes) = poll.changed().await else { continue };
        match apply(&bytes) {
            Ok(what) => tracing::info!(path = %poll.path().display(), "reloaded: {what}"),
            Err(e) => tracing::warn!(path = %poll.path().display(), "invalid; keeping the last good content: {e}"),
        }
    }
}

/// Applies the directory's settled content if it changed since `applied`,
/// and records a risen rollback floor before the next scan.
async fn scan_once(
    scanner: &mut DirScanner,
    configs: &Arc<ConfigHub>,
    applied: &mut Snapshot,
    read: &AtomicBool,
    floor: &mut FloorFile,
) -> Result<(), String> {
    let snap = scanner.settled(applied).await?;
    if snap != *applied {
        if snap.bundle.is_none() {
            tracing::warn!(dir = %scanner.dir().display(), "no bundle.yaml: nothing new is served until one verifies");
        }
        let update = applied.update_to(&snap);
        configs.update(|store| store.update(update)).await;
        *applied = snap;
    }
    floor.save(configs.with_store(|s| s.floor().cloned()));
    read.store(true, Ordering::Relaxed);
    Ok(())
}

async fn poll_dir(
    mut scanner: DirScanner,
    mut applied: Snapshot,
    configs: Arc<ConfigHub>,
    read: Arc<AtomicBool>,
    mut floor: FloorFile,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut last_error = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match scan_once(&mut scanner, &configs, &mut applied, &read, &mut floor).await {
            Ok(()) => last_error = None,
            Err(e) if last_error.as_ref() != Some(&e) => {
                tracing::warn!("cannot read the build directory; serving the last good configs: {e}");
                last_error = Some(e);
            }
            Err(_) => {}
        }
    }
}
