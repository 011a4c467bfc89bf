//! `mesh-proxy run`: wires the pieces together and drains on SIGTERM.

use crate::discovery::runtime::{MAX_WATCHED_SERVICES, RuntimeDiscovery};
use crate::discovery::{Discovery, NoDiscovery};
use crate::identity::csr::{self, CsrSettings, CsrTiming};
use crate::metrics::Metrics;
use crate::source::http::{PollTiming, RuntimeClient};
use crate::source::{self, RuntimeSource, Verifier};
use crate::{Ctx, Settings, admin, gateway, inbound, outbound, state};
use mesh_common::identity::{Identity, Reload};
use mesh_common::verify::read_trusted_keys;
use std::sync::Arc;

/// The runtime `--cores` asks for: linkerd2-proxy's choice (`rt.rs`), one
/// thread with the single-threaded scheduler, else a worker per core.
pub fn runtime(cores: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if cores <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(cores));
        b
    };
    builder.enable_all().thread_name("mesh-proxy").build()
}

/// Bounds what glibc's malloc keeps of freed memory (issue 21: RSS). Call
/// it first, before any other thread exists.
///
/// Left alone, glibc gives each thread that allocates an arena of its own,
/// and moves its mmap and trim thresholds with the largest block freed so
/// far. One arena serves the runtime's one thread and the occasional
/// blocking one. Fixed thresholds above the buffers a connection allocates
/// per read keep those buffers in the heap: hyper's HTTP/1 read buffer grows
/// while a body streams (to 128 KiB in the pool, `pool::READ_BUF_MAX`; to
/// 400 KiB at hyper's default), and a new one is allocated for each read
/// while the last chunk is still on its way. Mapped on their own (a 128 KiB
/// threshold did that), each cost an `mmap`, a page fault per 4 KiB touched
/// and a `munmap`: about 100 faults per proxy per 1 MiB echoed over the
/// meshed path (docs/benchmarks/proxy.md, "Third round"). What the heap
/// keeps free goes back every [`TRIM_INTERVAL`] ([`return_free_memory`]).
/// linkerd2-proxy avoids the question with jemalloc
/// (docs/semantics/proxy-runtime.md).
pub fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, before other threads run.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

/// Blocks at least this large are mapped and unmapped on their own: above
/// hyper's largest HTTP/1 read buffer (`DEFAULT_MAX_BUFFER_SIZE`, 8 KiB +
/// 400 KiB, in hyper's `proto/h1/io.rs`) with room for `BytesMut` rounding.
pub const MMAP_THRESHOLD: usize = 1024 * 1024;
/// Free memory at the heap's top beyond this goes back at once; less waits
/// for the periodic trim. Room for a few read buffers, so that freeing one
/// does not shrink the heap that the next read grows again.
pub const TRIM_THRESHOLD: usize = 2 * MMAP_THRESHOLD;
/// How often freed pages inside the heap are given back (`malloc_trim`).
/// Every second: with buffers kept in the heap, 16 connections streaming
/// 1 MiB bodies left 21-23 MB resident between 5 s trims (the 25 MB budget
/// of issue 21), while a trim costs one pass over the arena's free chunks
/// and at most one re-fault of a buffer's pages per second, not per request.
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Gives the heap's free pages back to the system every [`TRIM_INTERVAL`]:
/// the trim threshold only returns the heap's top, and connections' buffers
/// freed below a live block would otherwise stay resident.
fn return_free_memory(shutdown: tokio_util::sync::CancellationToken) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(TRIM_INTERVAL) => {}
            }
            // SAFETY: malloc_trim takes the allocator's own locks.
            unsafe { libc::malloc_trim(0) };
        }
    });
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    drop(shutdown);
}

pub async fn run(settings: Settings) -> Result<(), String> {
    let trusted = read_trusted_keys(&settings.trust_keys)?;
    let csr = csr_settings(&settings)?;
    if let Some(csr) = &csr {
        csr.bootstrap().await?;
    }
    let identity = Identity::load(&settings.identity_dir)?;
    let runtime = runtime_client(&settings, &identity)?;
    let discovery: Arc<dyn Discovery> = match (&settings.discovery, &runtime) {
        (Some(path), _) => crate::discovery::file::StaticFile::spawn(path.clone(), settings.reload_interval)?,
        (None, Some(client)) => {
            Arc::new(RuntimeDiscovery::new(client.clone(), PollTiming::default(), MAX_WATCHED_SERVICES)?)
        }
        (None, None) => Arc::new(NoDiscovery),
    };
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = state::channel();
    let ctx = Arc::new(Ctx::new(settings, rx, identity, discovery, metrics));
    let shutdown = ctx.shutdown.clone();
    identity_reloader(&ctx);
    return_free_memory(shutdown.clone());
    crate::metrics::prune_on_config_change(&ctx);
    if let Some(csr) = csr {
        tokio::spawn(csr.renew(shutdown.clone()));
    }
    let verifier = Verifier { trusted, workload: ctx.settings.workload.clone() };
    let loader = match (&ctx.settings.config, runtime) {
        (Some(path), _) => tokio::spawn(source::watch_file(
            path.clone(),
            ctx.settings.service_policies.clone(),
            ctx.settings.reload_interval,
            verifier,
            tx,
            ctx.metrics.clone(),
            shutdown.clone(),
        )),
        (None, Some(client)) => {
            let namespace = verifier.workload_ref()?.namespace;
            let policies = RuntimeSource::service_policies(client.clone(), &namespace, PollTiming::default());
            let source = RuntimeSource::new(client, ctx.settings.workload.clone(), PollTiming::default());
            let metrics = ctx.metrics.clone();
            tokio::spawn(source::run_with_policies(source, policies, verifier, tx, metrics, shutdown.clone()))
        }
        (None, None) => return Err("one of --config and --runtime is required".into()),
    };
    let listeners = [
        tokio::spawn(inbound::serve(ctx.clone())),
        tokio::spawn(outbound::serve(ctx.clone())),
        tokio::spawn(admin::serve(ctx.clone())),
        tokio::spawn(gateway::serve(ctx.clone())),
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

/// Certificate bootstrap and renewal, with `--runtime` and `--token-file`.
fn csr_settings(settings: &Settings) -> Result<Option<CsrSettings>, String> {
    let (Some(runtime), Some(token_file)) = (&settings.runtime, &settings.token_file) else { return Ok(None) };
    let name = csr::identity_name(
        settings.identity_name.as_deref(),
        settings.service_account.as_deref(),
        &settings.workload,
        &settings.identity_domain(),
    )?;
    Ok(Some(CsrSettings {
        runtime: runtime.clone(),
        runtime_identity: settings.runtime_identity.clone().ok_or("--runtime needs --runtime-identity")?,
        token_file: token_file.clone(),
        dir: settings.identity_dir.clone(),
        name,
        timing: CsrTiming::default(),
    }))
}

/// The mTLS client to `--runtime`, presenting the workload certificate of
/// the moment.
fn runtime_client(settings: &Settings, identity: &Arc<Identity>) -> Result<Option<Arc<RuntimeClient>>, String> {
    let Some(url) = &settings.runtime else { return Ok(None) };
    let server = settings.runtime_identity.as_deref().ok_or("--runtime needs --runtime-identity")?;
    let id = identity.clone();
    let client = RuntimeClient::new(url, server, Arc::new(move || Ok(id.client_config())))?;
    Ok(Some(Arc::new(client)))
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
async fn futures_first(listeners: [tokio::task::JoinHandle<std::io::Result<()>>; 4]) -> Result<(), String> {
    let [a, b, c, d] = listeners;
    let r = tokio::select! { r = a => r, r = b => r, r = c => r, r = d => r };
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
