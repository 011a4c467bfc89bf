//! File mode: settings, startup, and the pollers that feed the store, the
//! endpoints and the tokens from files.

use crate::api::{self, Api};
use crate::ca::Ca;
use crate::files::{DirScanner, FilePoll, Snapshot};
use crate::hub::{ConfigHub, EndpointsHub};
use crate::metrics::Metrics;
use crate::serve::{self, Readiness};
use crate::settings::Settings;
use crate::store::Store;
use crate::tokens::FileTokens;
use mesh_proxy::identity::Identity;
use mesh_proxy::identity::pki;
use mesh_proxy_api::envelope::{self, VerifyingKey};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The issuer's expiry is warned about this long before it happens.
const ISSUER_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
const ISSUER_CHECK_EVERY: Duration = Duration::from_secs(3600);
/// The runtime's own certificate is renewed at this fraction of its lifetime.
const RENEW_AT: f64 = 0.7;

/// A started runtime.
pub struct Running {
    pub api_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// A self-issued identity's directory, removed at the end.
    own_dir: Option<PathBuf>,
}

impl Running {
    /// Waits until every task has stopped (after `shutdown` is cancelled).
    pub async fn stopped(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(d) = self.own_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn read_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, String> {
    let keys = paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            envelope::verifying_key_from_pem(&text).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if keys.is_empty() {
        return Err("no --trust-key given".into());
    }
    Ok(keys)
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn check_issuer(ca: &Ca) {
    let left = ca.issuer_expires_at().duration_since(SystemTime::now()).unwrap_or_default();
    if left < ISSUER_WARNING {
        let days = left.as_secs() / 86_400;
        tracing::warn!(expires_at = %api::rfc3339(ca.issuer_expires_at()), "the issuer certificate expires in {days} day(s): rotate it");
    }
}

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
        let keys = self.configs.trusted_keys();
        if keys == 0 {
            return Err("no trusted keys".into());
        }
        Ok(self.configs.with_store(|s| {
            let bundle = s.bundle().map_or("none".to_owned(), |b| format!("{} ({})", b.source_revision, b.digest));
            format!("configs {}\ntrusted keys {keys}\nbundle {bundle}", s.served().len())
        }))
    }
}

/// Loads everything, binds both listeners and starts serving.
pub async fn start(s: Settings) -> Result<Running, String> {
    let (Some(dir), Some(ca_dir)) = (s.dir.clone(), s.ca_dir.clone()) else {
        return Err("file mode needs --dir and --ca-dir".into());
    };
    let trusted = read_keys(&s.trust_keys)?;
    let ca = Arc::new(Ca::load(&ca_dir)?);
    let metrics = Arc::new(Metrics::new());
    metrics.set_issuer_expiry(unix_seconds(ca.issuer_expires_at()));
    check_issuer(&ca);
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let (identity, own_dir) = own_identity(&s, &ca, &shutdown, &mut tasks)?;
    tasks.push(identity.spawn_reloader(Duration::from_secs(1), shutdown.clone()));

    let tokens = Arc::new(FileTokens::default());
    if let Some(path) = &s.tokens {
        let mut poll = FilePoll::new(path.clone());
        let bytes = poll.changed().ok_or_else(|| format!("{}: cannot read", path.display()))?;
        tokens.replace(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let t = tokens.clone();
        tasks.push(poll_file(poll, s.poll_interval, shutdown.clone(), move |b| {
            t.replace(b).map(|n| format!("{n} tokens"))
        }));
    } else {
        tracing::warn!("no --tokens file: every certificate request is refused");
    }
    let endpoints = Arc::new(EndpointsHub::default());
    if let Some(path) = &s.endpoints {
        let mut poll = FilePoll::new(path.clone());
        let bytes = poll.changed().ok_or_else(|| format!("{}: cannot read", path.display()))?;
        let apply = endpoint_applier(endpoints.clone());
        apply(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        tasks.push(poll_file(poll, s.poll_interval, shutdown.clone(), apply));
    }

    let configs = Arc::new(ConfigHub::new(Store::new(trusted), metrics.clone()));
    let dir_read = Arc::new(AtomicBool::new(false));
    let mut scanner = DirScanner::new(dir.clone());
    let mut applied = Snapshot::default();
    if let Err(e) = scan_once(&mut scanner, &configs, &mut applied, &dir_read).await {
        tracing::warn!("cannot read the build directory yet; not ready until it can be: {e}");
    }
    tasks.push(tokio::spawn(poll_dir(
        scanner,
        applied,
        configs.clone(),
        dir_read.clone(),
        s.poll_interval,
        shutdown.clone(),
    )));

    let api_listener = TcpListener::bind(s.listen).await.map_err(|e| format!("--listen {}: {e}", s.listen))?;
    let admin_listener = TcpListener::bind(s.admin).await.map_err(|e| format!("--admin {}: {e}", s.admin))?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let api = Arc::new(Api {
        configs: configs.clone(),
        endpoints,
        ca: ca.clone(),
        tokens,
        metrics: metrics.clone(),
        cert_lifetime: s.cert_lifetime,
        watches: Arc::new(tokio::sync::Semaphore::new(s.max_watches)),
        shutdown: shutdown.clone(),
    });
    tracing::info!(api = %api_addr, admin = %admin_addr, identity = %identity.name(), dir = %dir.display(), "mesh-runtime serving");
    tasks.push(tokio::spawn(serve::api(api_listener, api, identity, shutdown.clone())));
    let readiness = Arc::new(FileReadiness { dir_read, configs });
    tasks.push(tokio::spawn(serve::admin(admin_listener, metrics, readiness, shutdown.clone())));
    tasks.push(tokio::spawn(watch_issuer(ca, shutdown.clone())));
    Ok(Running { api_addr, admin_addr, shutdown, tasks, own_dir })
}

fn endpoint_applier(hub: Arc<EndpointsHub>) -> impl Fn(&[u8]) -> Result<String, String> + Send + 'static {
    move |bytes| {
        let snap = mesh_proxy::discovery::file::parse(bytes)?;
        hub.replace(&snap.endpoints);
        Ok(format!("{} service ports", snap.endpoints.len()))
    }
}

/// Re-reads `poll`'s file every `interval` and applies changed content;
/// content that does not apply is logged and the last good stays.
fn poll_file<F>(mut poll: FilePoll, interval: Duration, shutdown: CancellationToken, apply: F) -> JoinHandle<()>
where
    F: Fn(&[u8]) -> Result<String, String> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let Some(bytes) = poll.changed() else { continue };
            match apply(&bytes) {
                Ok(what) => tracing::info!(path = %poll.path().display(), "reloaded: {what}"),
                Err(e) => tracing::warn!(path = %poll.path().display(), "invalid; keeping the last good content: {e}"),
            }
        }
    })
}

/// Applies the directory's settled content if it changed since `applied`.
async fn scan_once(
    scanner: &mut DirScanner,
    configs: &ConfigHub,
    applied: &mut Snapshot,
    read: &AtomicBool,
) -> Result<(), String> {
    let snap = scanner.settled(applied).await?;
    if snap != *applied {
        if snap.bundle.is_none() {
            tracing::warn!(dir = %scanner.dir().display(), "no bundle.yaml: nothing new is served until one verifies");
        }
        let update = applied.update_to(&snap);
        configs.apply(|store| store.update(update));
        *applied = snap;
    }
    read.store(true, Ordering::Relaxed);
    Ok(())
}

async fn poll_dir(
    mut scanner: DirScanner,
    mut applied: Snapshot,
    configs: Arc<ConfigHub>,
    read: Arc<AtomicBool>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut last_error = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match scan_once(&mut scanner, &configs, &mut applied, &read).await {
            Ok(()) => last_error = None,
            Err(e) if last_error.as_ref() != Some(&e) => {
                tracing::warn!("cannot read the build directory; serving the last good configs: {e}");
                last_error = Some(e);
            }
            Err(_) => {}
        }
    }
}

async fn watch_issuer(ca: Arc<Ca>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(ISSUER_CHECK_EVERY) => check_issuer(&ca),
        }
    }
}

/// The runtime's serving identity: `--identity-dir`, or a certificate it
/// issues itself into a private temporary directory and renews.
fn own_identity(
    s: &Settings,
    ca: &Arc<Ca>,
    shutdown: &CancellationToken,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<(Arc<Identity>, Option<PathBuf>), String> {
    if let Some(dir) = &s.identity_dir {
        return Ok((Identity::load(dir)?, None));
    }
    let name = s.identity.clone().unwrap_or_else(|| ca.identity("mesh-system", "mesh-runtime"));
    let dir = std::env::temp_dir().join(format!("mesh-runtime-{}-{:08x}", std::process::id(), fastrand::u32(..)));
    create_private_dir(&dir)?;
    let cert = ca.issue_own(&name, s.cert_lifetime)?;
    pki::write_identity_dir(&dir, &cert, ca.anchors_pem())?;
    let identity = Identity::load(&dir)?;
    tasks.push(tokio::spawn(renew_own(ca.clone(), name, dir.clone(), s.cert_lifetime, shutdown.clone())));
    Ok((identity, Some(dir)))
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Re-issues the self-issued certificate at 70% of its lifetime; the
/// identity's reloader picks the new files up.
async fn renew_own(ca: Arc<Ca>, name: String, dir: PathBuf, lifetime: Duration, shutdown: CancellationToken) {
    let mut next = lifetime.mul_f64(RENEW_AT);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(next) => {}
        }
        let renewed = ca.issue_own(&name, lifetime).and_then(|c| pki::write_identity_dir(&dir, &c, ca.anchors_pem()));
        next = match renewed {
            Ok(()) => {
                tracing::info!(%name, "renewed the runtime's own certificate");
                lifetime.mul_f64(RENEW_AT)
            }
            Err(e) => {
                tracing::error!(%name, "cannot renew the runtime's own certificate; retrying in a minute: {e}");
                Duration::from_secs(60)
            }
        };
    }
}
