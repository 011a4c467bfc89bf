//! What both modes share once their inputs are wired: the runtime's own
//! serving identity, the two listeners, and the issuer's expiry watch.
//! [`start`] picks the mode.

use crate::api::{self, Api};
use crate::ca::Ca;
use crate::cert_limits::CertLimits;
use crate::hub::{ConfigHub, EndpointsHub};
use crate::metrics::Metrics;
use crate::quota::WatchQuota;
use crate::serve::{self, Readiness};
use crate::settings::Settings;
use crate::supervise::Tasks;
use crate::tokens::TokenReviewer;
use mesh_common::identity::Identity;
use mesh_common::identity::pki;
use mesh_common::verify::read_trusted_keys;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The issuer's expiry is warned about this long before it happens.
const ISSUER_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
const ISSUER_CHECK_EVERY: Duration = Duration::from_secs(3600);
/// The runtime's own certificate is renewed at this fraction of its lifetime.
const RENEW_AT: f64 = 0.7;

/// Starts the mode the settings ask for: Kubernetes mode with the client
/// the environment configures (in-cluster or `KUBECONFIG`), else file mode.
pub async fn start(s: Settings) -> Result<Running, String> {
    if s.kube.kubernetes {
        let client = kube::Client::try_default().await.map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
        crate::kube::start(s, client).await
    } else {
        crate::file_mode::start(s).await
    }
}

/// A started runtime.
pub struct Running {
    pub api_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The admission webhook's address, when `--webhook-listen` is given.
    pub webhook_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    tasks: Tasks,
    failure: watch::Receiver<Option<String>>,
    /// Self-issued identities' directories, removed at the end.
    own_dirs: Vec<PathBuf>,
}

impl Running {
    /// Waits until a background task fails (the runtime is then stopping)
    /// and says which and how.
    pub async fn failed(&self) -> String {
        let mut rx = self.failure.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(f) => f.clone().unwrap_or_default(),
            // The sender lives as long as `self`: unreachable, but not a panic.
            Err(_) => std::future::pending().await,
        }
    }

    /// Waits until every task has stopped (after `shutdown` is cancelled,
    /// or a task failed).
    pub async fn stopped(self) {
        self.tasks.join().await;
        for d in self.own_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// What a mode hands over to be served.
pub struct Parts {
    pub configs: Arc<ConfigHub>,
    pub endpoints: Arc<EndpointsHub>,
    pub tokens: Arc<dyn TokenReviewer>,
    pub readiness: Arc<dyn Readiness>,
    /// The current issuer and its replacements.
    pub ca: watch::Receiver<Arc<Ca>>,
    pub metrics: Arc<Metrics>,
    /// The namespace in the runtime's default identity.
    pub namespace: String,
    /// What the startup log line says the runtime serves from.
    pub source: String,
    /// Where the admission webhook reads Namespaces.
    pub namespaces: Arc<dyn crate::webhook::Namespaces>,
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Exports the issuer's expiry and warns when it is near.
pub fn check_issuer(ca: &Ca, metrics: &Metrics) {
    metrics.set_issuer_expiry(unix_seconds(ca.issuer_expires_at()));
    let left = ca.issuer_expires_at().duration_since(SystemTime::now()).unwrap_or_default();
    if left < ISSUER_WARNING {
        let days = left.as_secs() / 86_400;
        tracing::warn!(expires_at = %api::rfc3339(ca.issuer_expires_at()), "the issuer certificate expires in {days} day(s): rotate it");
    }
}

/// Binds both listeners and serves `parts` until shutdown; `tasks` holds
/// the mode's own tasks, supervised with the servers (see
/// [`crate::supervise`]).
pub async fn serve(s: &Settings, parts: Parts, mut tasks: Tasks) -> Result<Running, String> {
    let shutdown = tasks.shutdown().clone();
    tasks.count_in(parts.metrics.clone());
    check_issuer(&parts.ca.borrow(), &parts.metrics);
    let (identity, own_dir) = own_identity(s, &parts, &mut tasks)?;
    tasks.adopt("identity reloader", identity.spawn_reloader(Duration::from_secs(1), shutdown.clone()));
    if let Some(path) = &s.links {
        // After the own identity: it is what the runtime shows linked clusters' runtimes.
        // File mode's keys; Kubernetes mode has none at start, so only an unsigned file works there.
        let keys = if s.trust_keys.is_empty() { Vec::new() } else { read_trusted_keys(&s.trust_keys)? };
        let trust = crate::mirror::signed::Trust { keys, build_dir: s.dir.clone() };
        let links =
            crate::mirror::signed::read(path, &trust).map_err(|e| format!("--links {}: {e}", path.display()))?;
        tracing::info!(
            links = links.links.len(),
            federated = links.federated.len(),
            "serving mirrored Services of linked clusters"
        );
        let (hub, poll) = (parts.endpoints.clone(), s.poll_interval);
        crate::mirror::watch::spawn(path.clone(), trust, links, hub, identity.clone(), poll, &mut tasks);
    }
    let api_listener = TcpListener::bind(s.listen).await.map_err(|e| format!("--listen {}: {e}", s.listen))?;
    let admin_listener = TcpListener::bind(s.admin).await.map_err(|e| format!("--admin {}: {e}", s.admin))?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    let api = Arc::new(Api {
        configs: parts.configs,
        endpoints: parts.endpoints,
        ca: parts.ca.clone(),
        tokens: parts.tokens,
        metrics: parts.metrics.clone(),
        cert_lifetime: s.cert_lifetime,
        watches: WatchQuota::new(s.limits.max_watches, s.limits.max_watches_per_identity),
        cert_limits: CertLimits::new(&s.limits),
        shutdown: shutdown.clone(),
    });
    tracing::info!(api = %api_addr, admin = %admin_addr, identity = %identity.name(), source = %parts.source, "mesh-runtime serving");
    let readiness = tasks.readiness(parts.readiness);
    tasks.spawn("api server", serve::api(api_listener, api, identity, s.limits.max_connections, shutdown.clone()));
    tasks.spawn("admin server", serve::admin(admin_listener, parts.metrics.clone(), readiness, shutdown.clone()));
    let (ca, metrics) = (parts.ca.clone(), parts.metrics.clone());
    tasks.spawn("issuer expiry check", watch_issuer(parts.ca, parts.metrics, shutdown.clone()));
    let mut own_dirs: Vec<PathBuf> = own_dir.into_iter().collect();
    let webhook_addr = match s.webhook.webhook_listen {
        Some(addr) => {
            let (addr, dir) =
                serve_webhook(s, addr, &ca, &parts.namespace, parts.namespaces, &metrics, &mut tasks).await?;
            own_dirs.push(dir);
            Some(addr)
        }
        None => None,
    };
    let failure = tasks.failure();
    Ok(Running { api_addr, admin_addr, webhook_addr, shutdown, tasks, failure, own_dirs })
}

/// The admission webhook's listener, with a certificate for
/// `--webhook-name` from the runtime's issuer, renewed like its own.
async fn serve_webhook(
    s: &Settings,
    addr: SocketAddr,
    ca: &watch::Receiver<Arc<Ca>>,
    namespace: &str,
    namespaces: Arc<dyn crate::webhook::Namespaces>,
    metrics: &Arc<Metrics>,
    tasks: &mut Tasks,
) -> Result<(SocketAddr, PathBuf), String> {
    let name = s.webhook.webhook_name.clone().unwrap_or_else(|| format!("mesh-runtime.{namespace}.svc"));
    let dir =
        std::env::temp_dir().join(format!("mesh-runtime-webhook-{}-{:08x}", std::process::id(), fastrand::u32(..)));
    create_private_dir(&dir)?;
    let issuer = ca.borrow().clone();
    let cert = issuer.issue_own(&name, s.cert_lifetime)?;
    pki::write_identity_dir(&dir, &cert, issuer.anchors_pem())?;
    let identity = Identity::load(&dir)?;
    let shutdown = tasks.shutdown().clone();
    let renew = RenewOwn { ca: ca.clone(), name, dir: dir.clone(), lifetime: s.cert_lifetime };
    tasks.spawn("webhook certificate renewal", renew.run(shutdown.clone()));
    tasks.adopt("webhook identity reloader", identity.spawn_reloader(Duration::from_secs(1), shutdown.clone()));
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("--webhook-listen {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let hook = Arc::new(crate::webhook::Webhook { config: s.webhook.inject_config(s, namespace), namespaces });
    tracing::info!(webhook = %local, "admission webhook serving");
    let max = s.limits.max_connections;
    tasks.spawn("webhook server", serve::webhook(listener, hook, identity, max, metrics.clone(), shutdown));
    Ok((local, dir))
}

/// Re-checks the issuer's expiry hourly and whenever it is replaced.
async fn watch_issuer(mut ca: watch::Receiver<Arc<Ca>>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    // File mode's issuer never changes: its sender is gone from the start.
    let mut replaceable = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(ISSUER_CHECK_EVERY) => {}
            changed = ca.changed(), if replaceable => if changed.is_err() { replaceable = false; continue },
        }
        check_issuer(&ca.borrow_and_update(), &metrics);
    }
}

/// The runtime's serving identity: `--identity-dir`, or a certificate it
/// issues itself into a private temporary directory and renews.
fn own_identity(s: &Settings, parts: &Parts, tasks: &mut Tasks) -> Result<(Arc<Identity>, Option<PathBuf>), String> {
    if let Some(dir) = &s.identity_dir {
        return Ok((Identity::load(dir)?, None));
    }
    let ca = parts.ca.borrow().clone();
    let name = s.identity.clone().unwrap_or_else(|| ca.identity(&parts.namespace, "mesh-runtime"));
    let dir = std::env::temp_dir().join(format!("mesh-runtime-{}-{:08x}", std::process::id(), fastrand::u32(..)));
    create_private_dir(&dir)?;
    let cert = ca.issue_own(&name, s.cert_lifetime)?;
    pki::write_identity_dir(&dir, &cert, ca.anchors_pem())?;
    let identity = Identity::load(&dir)?;
    let renew = RenewOwn { ca: parts.ca.clone(), name, dir: dir.clone(), lifetime: s.cert_lifetime };
    let shutdown = tasks.shutdown().clone();
    tasks.spawn("own certificate renewal", renew.run(shutdown));
    Ok((identity, Some(dir)))
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Re-issues the self-issued certificate at 70% of its lifetime, and at
/// once when the issuer or the anchors change (the identity's reloader
/// picks the new files up).
struct RenewOwn {
    ca: watch::Receiver<Arc<Ca>>,
    name: String,
    dir: PathBuf,
    lifetime: Duration,
}

impl RenewOwn {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut next = self.lifetime.mul_f64(RENEW_AT);
        let mut replaceable = true;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(next) => {}
                changed = self.ca.changed(), if replaceable => if changed.is_err() { replaceable = false; continue },
            }
            let ca = self.ca.borrow_and_update().clone();
            let renewed = ca
                .issue_own(&self.name, self.lifetime)
                .and_then(|c| pki::write_identity_dir(&self.dir, &c, ca.anchors_pem()));
            next = match renewed {
                Ok(()) => {
                    tracing::info!(name = %self.name, "renewed the runtime's own certificate");
                    self.lifetime.mul_f64(RENEW_AT)
                }
                Err(e) => {
                    tracing::error!(name = %self.name, "cannot renew the runtime's own certificate; retrying in a minute: {e}");
                    Duration::from_secs(60)
                }
            };
        }
    }
}
