//! `mesh-proxy run`: wires the pieces together and drains on SIGTERM.

use crate::discovery::{Discovery, NoDiscovery};
use crate::identity::{Identity, Reload};
use crate::metrics::Metrics;
use crate::source::{self, Verifier};
use crate::{Ctx, Settings, admin, inbound, outbound, state};
use mesh_proxy_api::envelope::verifying_key_from_pem;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub async fn run(settings: Settings) -> Result<(), String> {
    let trusted = settings
        .trust_keys
        .iter()
        .map(|p| {
            let pem = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            verifying_key_from_pem(&pem).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let identity = Identity::load(&settings.identity_dir)?;
    let discovery: Arc<dyn Discovery> = match &settings.discovery {
        None => Arc::new(NoDiscovery),
        Some(path) => crate::discovery::file::StaticFile::spawn(path.clone(), settings.reload_interval)?,
    };
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = state::channel();
    let shutdown = CancellationToken::new();
    let ctx = Arc::new(Ctx {
        connections: Arc::new(Semaphore::new(settings.max_connections)),
        settings,
        config: rx,
        identity,
        discovery,
        metrics,
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
    });
    identity_reloader(&ctx);
    let verifier = Verifier { trusted, workload: ctx.settings.workload.clone() };
    let loader = tokio::spawn(source::watch_file(
        ctx.settings.config.clone(),
        ctx.settings.reload_interval,
        verifier,
        tx,
        ctx.metrics.clone(),
        shutdown.clone(),
    ));
    let listeners = [
        tokio::spawn(inbound::serve(ctx.clone())),
        tokio::spawn(outbound::serve(ctx.clone())),
        tokio::spawn(admin::serve(ctx.clone())),
    ];
    tokio::select! {
        () = terminated() => tracing::info!("shutting down: draining in-flight requests"),
        r = futures_first(listeners) => return r,
    }
    shutdown.cancel();
    ctx.tasks.close();
    if tokio::time::timeout(ctx.settings.drain_timeout, ctx.tasks.wait()).await.is_err() {
        tracing::warn!(timeout = ?ctx.settings.drain_timeout, "drain timed out; closing remaining connections");
    }
    loader.abort();
    Ok(())
}

/// Re-reads the identity files and reports each outcome in the metrics:
/// the certificate's expiry, and each distinct rejected change once.
fn identity_reloader(ctx: &Arc<Ctx>) {
    let ctx = ctx.clone();
    ctx.metrics.set_cert_expiry(unix_seconds(ctx.identity.expires_at()));
    tokio::spawn(async move {
        let mut rejected: Option<String> = None;
        loop {
            tokio::select! {
                () = ctx.shutdown.cancelled() => return,
                () = tokio::time::sleep(ctx.settings.reload_interval) => {}
            }
            let id = ctx.identity.clone();
            // File reads and certificate checks block: off the workers.
            let Ok(outcome) = tokio::task::spawn_blocking(move || id.reload_now()).await else { continue };
            match outcome {
                Reload::Swapped(_) => {
                    ctx.metrics.set_cert_expiry(unix_seconds(ctx.identity.expires_at()));
                    rejected = None;
                }
                Reload::Rejected(e) if rejected.as_ref() != Some(&e) => {
                    ctx.metrics.identity_rejected("invalid");
                    rejected = Some(e);
                }
                Reload::Rejected(_) | Reload::Unchanged => {}
            }
        }
    });
}

fn unix_seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The first listener to fail stops the proxy: a proxy that cannot listen
/// must not look healthy.
async fn futures_first(listeners: [tokio::task::JoinHandle<std::io::Result<()>>; 3]) -> Result<(), String> {
    let [a, b, c] = listeners;
    let r = tokio::select! { r = a => r, r = b => r, r = c => r };
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("listener failed: {e}")),
        Err(e) => Err(format!("listener panicked: {e}")),
    }
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
