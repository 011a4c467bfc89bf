//! Kubernetes mode: the same store, hubs and API as file mode, fed by
//! watches on the API server instead of files.
//!
//! - [`objects`]: ProxyConfig and MeshBundle objects go into the
//!   [`crate::store`].
//! - [`trust`]: trusted keys from a ConfigMap or Secret, the issuer from a
//!   Secret and the trust anchors from a ConfigMap, all watched by name.
//! - [`endpoints`]: Services, EndpointSlices and Pods become each Service
//!   port's endpoints, with the identity a meshed endpoint must present.
//! - [`token_review`]: certificate requests' tokens are checked with
//!   TokenReview.
//! - [`lease`] and [`status`]: one replica, elected through a Lease,
//!   writes the objects' status conditions; every replica serves.
//! - [`state`]: the rollback floor, read before the bundle is watched and
//!   recorded whenever it rises.
//!
//! Readiness is "synced and has keys": every watch has completed its first
//! list, at least one trusted key and an issuer are loaded.

pub mod endpoints;
pub mod lease;
pub mod namespaces;
pub mod objects;
pub mod state;
pub mod status;
pub mod token_review;
pub mod trust;

use crate::ca::Ca;
use crate::hub::{ConfigHub, EndpointsHub};
use crate::metrics::Metrics;
use crate::run::{self, Parts, Running};
use crate::serve::Readiness;
use crate::settings::Settings;
use crate::store::Store;
use crate::supervise::Tasks;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject};
use objects::{Kind, ObjectWatch};
use status::{Board, Writer};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use trust::{IssuerApplier, KeysApplier, KeysSource};

/// How often the wait for the issuer is logged.
const ISSUER_WAIT_LOG: Duration = Duration::from_secs(30);

/// What must have happened before the runtime is ready.
#[derive(Default)]
struct Synced {
    configs: Arc<AtomicBool>,
    bundle: Arc<AtomicBool>,
    policies: Arc<AtomicBool>,
    endpoints: Arc<AtomicBool>,
    keys: Arc<AtomicBool>,
}

struct KubeReadiness {
    synced: Synced,
    configs: Arc<ConfigHub>,
}

impl Readiness for KubeReadiness {
    fn ready(&self) -> Result<String, String> {
        let s = &self.synced;
        let waiting: Vec<&str> = [
            (&s.configs, "ProxyConfigs"),
            (&s.bundle, "MeshBundle"),
            (&s.policies, "ServicePolicies"),
            (&s.endpoints, "endpoints"),
            (&s.keys, "trusted keys"),
        ]
        .into_iter()
        .filter(|(flag, _)| !flag.load(Ordering::Relaxed))
        .map(|(_, what)| what)
        .collect();
        if !waiting.is_empty() {
            return Err(format!("not synced yet: {}", waiting.join(", ")));
        }
        Ok(self.configs.summary().describe())
    }
}

/// Starts Kubernetes mode against `client`: waits for the issuer, then
/// serves while the watches fill the store.
pub async fn start(s: Settings, client: kube::Client) -> Result<Running, String> {
    let k = &s.kube;
    let keys_source = KeysSource::parse(&k.trusted_keys)?;
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let mut tasks = Tasks::new(shutdown.clone());
    let state_api: Api<ConfigMap> = Api::namespaced(client.clone(), &k.namespace);
    let mut store = Store::new(Vec::new());
    if let Some(floor) = state::load(&state_api, &k.state_configmap, &shutdown).await? {
        tracing::info!(sequence = floor.sequence, "refusing bundles below the recorded rollback floor");
        store.raise_floor(floor);
    }
    let (floor_tx, floor_rx) = watch::channel(store.floor().cloned());
    tasks.spawn("rollback floor state", state::keep(state_api, k.state_configmap.clone(), floor_rx, shutdown.clone()));
    let configs = Arc::new(ConfigHub::new(store, metrics.clone()));
    let synced = Synced::default();

    let ca = spawn_issuer(&s, &client, &mut tasks);
    let ca = wait_for_issuer(ca, &s, &mut tasks).await?;
    spawn_keys(keys_source, &s, &client, &configs, &synced, &mut tasks);

    let board = Arc::new(Board::default());
    let floor = Arc::new(floor_tx);
    let watches = [
        (Kind::Config, Api::<DynamicObject>::all_with(client.clone(), &objects::proxy_configs()), &synced.configs),
        (Kind::Bundle, Api::all_with(client.clone(), &objects::mesh_bundles()), &synced.bundle),
        (Kind::Policy, Api::all_with(client.clone(), &objects::service_policies()), &synced.policies),
    ];
    for (kind, api, flag) in watches {
        let name = match kind {
            Kind::Config => "ProxyConfig watch",
            Kind::Bundle => "MeshBundle watch",
            Kind::Policy => "ServicePolicy watch",
        };
        let (hub, board, synced, floor) = (configs.clone(), board.clone(), flag.clone(), floor.clone());
        let w = ObjectWatch { kind, api, hub, board, synced, floor };
        tasks.spawn(name, w.run(shutdown.clone()));
    }

    let endpoints = Arc::new(EndpointsHub::default());
    let watch = endpoints::run(
        client.clone(),
        endpoints.clone(),
        s.identity_domain(),
        synced.endpoints.clone(),
        shutdown.clone(),
    );
    tasks.spawn("endpoints watch", watch);

    let holder = k.pod_name.clone().unwrap_or_else(default_holder);
    let lease = lease::LeaseSettings::new(&k.namespace, &k.lease, &holder);
    let (leader, elector) = lease::spawn(client.clone(), lease, shutdown.clone());
    tasks.adopt("lease elector", elector);
    let writer = Writer {
        bundles: Api::all_with(client.clone(), &objects::mesh_bundles()),
        client: client.clone(),
        config_resource: objects::proxy_configs(),
        policy_resource: objects::service_policies(),
    };
    tasks.spawn("status writer", writer.run(configs.clone(), board, leader, shutdown.clone()));

    let (namespaces, watch) = namespaces::WatchedNamespaces::spawn(client.clone(), shutdown.clone());
    tasks.spawn("namespaces watch", watch);
    let namespaces = Arc::new(namespaces);
    let tokens = Arc::new(token_review::KubeTokenReviewer::new(client, &k.token_audience));
    let readiness = Arc::new(KubeReadiness { synced, configs: configs.clone() });
    let source = format!("Kubernetes (namespace {}, replica {holder})", k.namespace);
    let parts = Parts {
        configs,
        endpoints,
        tokens,
        readiness,
        ca,
        metrics,
        namespace: k.namespace.clone(),
        source,
        namespaces,
    };
    run::serve(&s, parts, tasks).await
}

fn default_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    if host.is_empty() { format!("mesh-runtime-{:08x}", fastrand::u32(..)) } else { host.to_owned() }
}

/// Watches the issuer Secret and the trust roots ConfigMap.
fn spawn_issuer(s: &Settings, client: &kube::Client, tasks: &mut Tasks) -> watch::Receiver<Option<Arc<Ca>>> {
    let k = &s.kube;
    let (tx, rx) = watch::channel(None);
    let applier = Arc::new(std::sync::Mutex::new(IssuerApplier {
        namespace: k.namespace.clone(),
        secret: k.issuer_secret.clone(),
        roots: k.trust_roots.clone(),
        issuer: None,
        anchors: None,
        domain: s.identity_domain(),
        tx,
    }));
    let (ns, stop) = (k.namespace.clone(), tasks.shutdown().clone());
    let issuer = applier.clone();
    let set_issuer = move |e| {
        lock(&issuer).set_issuer(e);
        std::future::ready(())
    };
    let secret = trust::watch_named::<Secret, _, _>(
        client.clone(),
        ns.clone(),
        k.issuer_secret.clone(),
        stop.clone(),
        set_issuer,
    );
    tasks.spawn("issuer Secret watch", secret);
    let set_anchors = move |e| {
        lock(&applier).set_anchors(e);
        std::future::ready(())
    };
    let roots = trust::watch_named::<ConfigMap, _, _>(client.clone(), ns, k.trust_roots.clone(), stop, set_anchors);
    tasks.spawn("trust roots watch", roots);
    rx
}

/// A poisoned lock is taken over: the applier is never left half-updated.
fn lock(a: &std::sync::Mutex<IssuerApplier>) -> std::sync::MutexGuard<'_, IssuerApplier> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits for the first valid issuer, then hands out every later one.
async fn wait_for_issuer(
    mut rx: watch::Receiver<Option<Arc<Ca>>>,
    s: &Settings,
    tasks: &mut Tasks,
) -> Result<watch::Receiver<Arc<Ca>>, String> {
    let shutdown = tasks.shutdown().clone();
    let first = loop {
        if let Some(ca) = rx.borrow_and_update().clone() {
            break ca;
        }
        tokio::select! {
            () = shutdown.cancelled() => return Err("stopped before an issuer was loaded".into()),
            changed = rx.changed() => changed.map_err(|_| "the issuer watch ended".to_string())?,
            () = tokio::time::sleep(ISSUER_WAIT_LOG) => tracing::warn!(
                secret = %s.kube.issuer_secret, trust_roots = %s.kube.trust_roots, namespace = %s.kube.namespace,
                "waiting for a valid issuer Secret and trust roots ConfigMap"),
        }
    };
    let (tx, out) = watch::channel(first);
    tasks.spawn("issuer forwarder", async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
            if let Some(ca) = rx.borrow_and_update().clone() {
                tx.send_replace(ca);
            }
        }
    });
    Ok(out)
}

/// Watches the trusted keys' ConfigMap or Secret.
fn spawn_keys(
    source: KeysSource,
    s: &Settings,
    client: &kube::Client,
    configs: &Arc<ConfigHub>,
    synced: &Synced,
    tasks: &mut Tasks,
) {
    let ns = s.kube.namespace.clone();
    let what = format!("{}/{}", ns, s.kube.trusted_keys);
    let mut applier = KeysApplier::new(what, configs.clone(), synced.keys.clone());
    let (c, stop) = (client.clone(), tasks.shutdown().clone());
    let apply = move |e| applier.apply(e);
    match source {
        KeysSource::ConfigMap(name) => {
            tasks.spawn("trusted keys watch", trust::watch_named::<ConfigMap, _, _>(c, ns, name, stop, apply))
        }
        KeysSource::Secret(name) => {
            tasks.spawn("trusted keys watch", trust::watch_named::<Secret, _, _>(c, ns, name, stop, apply))
        }
    }
}
