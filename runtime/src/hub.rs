//! What the API serves, published for long polls: the [`Store`]'s configs,
//! one watch channel per served workload; its shared ServicePolicies, one
//! index for all (`policies`); and the endpoints of every Service port, one
//! snapshot for all.
//!
//! Channels exist only for workloads that are served (or were, while a
//! poll still holds them), so a client naming made-up workloads cannot
//! grow these maps.

mod policies;

use crate::metrics::Metrics;
use crate::store::{Change, Served, Status, Store, Subject};
use bytes::Bytes;
use mesh_proxy_api::endpoints::{Endpoints, ServiceKey};
pub use policies::{PolicyAnswer, PolicyIndex};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::watch;

pub type ConfigRx = watch::Receiver<Option<Arc<Served>>>;

/// What `/ready` reports of the store, kept apart from it: the store's
/// lock is held while signatures are verified (seconds for a large build),
/// and readiness must not wait for that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub configs: usize,
    pub trusted_keys: usize,
    /// The verified bundle's source revision and digest.
    pub bundle: Option<(String, String)>,
}

impl Summary {
    fn of(store: &Store) -> Summary {
        Summary {
            configs: store.served().len(),
            trusted_keys: store.trusted_keys(),
            bundle: store.bundle().map(|b| (b.source_revision.clone(), b.digest.clone())),
        }
    }

    /// `/ready`'s body.
    pub fn describe(&self) -> String {
        let bundle = self.bundle.as_ref().map_or("none".to_owned(), |(rev, digest)| format!("{rev} ({digest})"));
        format!("configs {}\ntrusted keys {}\nbundle {bundle}", self.configs, self.trusted_keys)
    }
}

pub struct ConfigHub {
    store: Mutex<Store>,
    summary: Mutex<Summary>,
    /// The store revision last published.
    published: Mutex<Option<u64>>,
    watches: Mutex<HashMap<String, watch::Sender<Option<Arc<Served>>>>>,
    /// The shared ServicePolicies served; changes only when they do.
    policies: watch::Sender<Arc<PolicyIndex>>,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update below is completed before the guard drops; a panic
    // elsewhere cannot leave half a state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ConfigHub {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> ConfigHub {
        let hub = ConfigHub {
            summary: Mutex::new(Summary::of(&store)),
            store: Mutex::new(store),
            published: Mutex::new(None),
            watches: Mutex::new(HashMap::new()),
            policies: watch::channel(Arc::new(PolicyIndex::default())).0,
            metrics,
        };
        hub.publish(&lock(&hub.store));
        hub
    }

    /// Runs `f` on the store, then logs and counts every status change and
    /// publishes the configs that changed. This verifies signatures under
    /// the store's lock: from async code, call [`update`](Self::update).
    pub fn apply(&self, f: impl FnOnce(&mut Store) -> Vec<Change>) {
        let mut store = lock(&self.store);
        let changes = f(&mut store);
        for c in &changes {
            self.report(c, &store);
        }
        self.publish(&store);
        *lock(&self.summary) = Summary::of(&store);
    }

    /// [`apply`](Self::apply) on the blocking pool, so that verifying a
    /// build never holds up an async worker thread.
    pub async fn update(self: &Arc<Self>, f: impl FnOnce(&mut Store) -> Vec<Change> + Send + 'static) {
        let hub = self.clone();
        crate::supervise::blocking(move || hub.apply(f)).await;
    }

    /// The store's counts as of the last update, without waiting for one
    /// in progress.
    pub fn summary(&self) -> Summary {
        lock(&self.summary).clone()
    }

    fn report(&self, c: &Change, store: &Store) {
        let kind = c.subject.kind();
        match &c.status {
            Status::Accepted { digest } => tracing::info!(object = %c.subject, %digest, "accepted"),
            Status::Rejected(r) => {
                let kept = match &c.subject {
                    Subject::Bundle => store.bundle().map(|b| b.digest.clone()),
                    Subject::Config(k) => store.served().values().find(|s| &s.object == k).map(|s| s.digest.clone()),
                    Subject::Policy(k) => store.served_policies().get(k).map(|s| s.digest.clone()),
                };
                let kept = kept.as_deref().unwrap_or("none");
                tracing::warn!(object = %c.subject, reason = r.reason, kept, "refused: {}", r.message);
                self.metrics.rejected(kind, r.reason);
            }
        }
    }

    /// Publishes every served config; a no-op when the store has not
    /// reconciled since the last call (publishing is O(configs)).
    fn publish(&self, store: &Store) {
        let mut published = lock(&self.published);
        if *published == Some(store.revision()) {
            return;
        }
        *published = Some(store.revision());
        let served = store.served();
        let mut watches = lock(&self.watches);
        for (workload, s) in served {
            match watches.get(workload) {
                Some(tx) => {
                    tx.send_if_modified(|cur| {
                        let changed = cur.as_ref().is_none_or(|c| c.digest != s.digest || c.body != s.body);
                        if changed {
                            *cur = Some(s.clone());
                        }
                        changed
                    });
                }
                None => {
                    watches.insert(workload.clone(), watch::channel(Some(s.clone())).0);
                }
            }
        }
        watches.retain(|w, tx| {
            if served.contains_key(w) {
                return true;
            }
            tx.send_if_modified(|cur| cur.take().is_some());
            tx.receiver_count() > 0
        });
        self.metrics.set_configs_held(served.len());
        let policies = store.served_policies();
        self.policies.send_if_modified(|index| {
            let changed = !index.same_as(policies);
            if changed {
                *index = Arc::new(PolicyIndex::new(policies.clone()));
            }
            changed
        });
    }

    /// The shared ServicePolicies served and their updates.
    pub fn watch_policies(&self) -> watch::Receiver<Arc<PolicyIndex>> {
        self.policies.subscribe()
    }

    /// The config of `workload` and its updates; `None` when none is served.
    pub fn watch(&self, workload: &str) -> Option<ConfigRx> {
        lock(&self.watches).get(workload).map(|tx| tx.subscribe()).filter(|rx| rx.borrow().is_some())
    }

    pub fn trusted_keys(&self) -> usize {
        lock(&self.summary).trusted_keys
    }

    /// Runs `f` with the store, read-only; waits for an update in progress.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&lock(&self.store))
    }
}

/// One Service port's answer, prepared once per change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointsAnswer {
    pub version: String,
    pub body: Bytes,
}

impl EndpointsAnswer {
    /// The version is a digest of the list, so it changes exactly when the
    /// list does (and is the same across restarts and replicas).
    pub fn new(endpoints: &Endpoints) -> EndpointsAnswer {
        let mut h = Sha256::new();
        for e in endpoints.iter() {
            h.update(e.addr.to_string().as_bytes());
            h.update([0]);
            h.update(e.identity.as_deref().unwrap_or("").as_bytes());
            h.update([1]);
        }
        let version: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
        let body = Bytes::from(mesh_proxy_api::endpoints::encode_answer(&version, endpoints));
        EndpointsAnswer { version, body }
    }
}

pub type EndpointsSnapshot = Arc<HashMap<ServiceKey, EndpointsAnswer>>;

/// Every Service port's endpoints. One channel: a change wakes every
/// endpoints poll, and each one answers only if its own version changed.
///
/// Two inputs make up what is served: the cluster's own Services (the
/// endpoints file, or EndpointSlices) and the Services mirrored from
/// linked clusters (`crate::mirror`). A local Service wins over a mirror
/// of the same name, as the local object does in Linkerd's cluster.
pub struct EndpointsHub {
    tx: watch::Sender<EndpointsSnapshot>,
    empty: EndpointsAnswer,
    lists: Mutex<Lists>,
    /// Cluster IP and port → Service port, for `GET /v1/services/by-cluster-ip`
    /// (a plain lookup, not a long poll: proxies cache the answers).
    cluster_ips: RwLock<Arc<HashMap<SocketAddr, ServiceKey>>>,
    /// The same for mirrored Services; a local Service's address wins.
    mirrored_cluster_ips: RwLock<Arc<HashMap<SocketAddr, ServiceKey>>>,
}

#[derive(Default)]
struct Lists {
    local: HashMap<ServiceKey, Endpoints>,
    mirrored: HashMap<ServiceKey, Endpoints>,
    /// Federated Service port → this cluster's member Service port, whose
    /// endpoints join the linked members' (`crate::mirror::federated`).
    local_members: HashMap<ServiceKey, ServiceKey>,
    /// Each federated port's last union and the lists it was made of: an
    /// unchanged pair keeps its `Arc`, and so its encoded answer.
    unions: HashMap<ServiceKey, Union>,
    /// The lists the current snapshot was made from: a list passed again
    /// (the same `Arc`) keeps its answer instead of being encoded again.
    encoded: HashMap<ServiceKey, Endpoints>,
}

struct Union {
    local: Option<Endpoints>,
    linked: Endpoints,
    both: Endpoints,
}

fn same(a: Option<&Endpoints>, b: Option<&Endpoints>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Lists {
    /// The mirrored lists as served: a federated port with a local member
    /// gets the local member's endpoints first, then the linked members'.
    fn mirrored_with_local_members(&mut self) -> HashMap<ServiceKey, Endpoints> {
        let mut unions = HashMap::with_capacity(self.local_members.len());
        let mut out = self.mirrored.clone();
        for (key, member) in &self.local_members {
            let (Some(linked), local) = (self.mirrored.get(key), self.local.get(member)) else { continue };
            let kept =
                self.unions.remove(key).filter(|u| same(u.local.as_ref(), local) && Arc::ptr_eq(&u.linked, linked));
            let union = kept.unwrap_or_else(|| {
                let lists: Vec<&Endpoints> = local.into_iter().chain([linked]).collect();
                Union { local: local.cloned(), linked: linked.clone(), both: crate::mirror::union(lists) }
            });
            out.insert(key.clone(), union.both.clone());
            unions.insert(key.clone(), union);
        }
        self.unions = unions;
        out
    }
}

impl Default for EndpointsHub {
    fn default() -> Self {
        EndpointsHub {
            tx: watch::channel(Arc::new(HashMap::new())).0,
            empty: EndpointsAnswer::new(&Arc::new(Vec::new())),
            lists: Mutex::new(Lists::default()),
            cluster_ips: RwLock::new(Arc::new(HashMap::new())),
            mirrored_cluster_ips: RwLock::new(Arc::new(HashMap::new())),
        }
    }
}

impl EndpointsHub {
    /// Replaces every local Service port's endpoints. Lists passed again as
    /// the same `Arc` are not encoded again, so a caller that keeps
    /// unchanged lists' `Arc`s pays per change, not per Service port.
    pub fn replace(&self, endpoints: &HashMap<ServiceKey, Endpoints>) {
        let mut lists = lock(&self.lists);
        lists.local.clone_from(endpoints);
        self.publish(&mut lists);
    }

    /// Replaces every mirrored Service port's endpoints, and which local
    /// Service port's endpoints each federated port adds to them.
    pub fn replace_mirrored(
        &self,
        endpoints: HashMap<ServiceKey, Endpoints>,
        local_members: HashMap<ServiceKey, ServiceKey>,
    ) {
        let mut lists = lock(&self.lists);
        for k in endpoints.keys().filter(|k| lists.local.contains_key(*k)) {
            tracing::warn!(namespace = %k.namespace, name = %k.name, port = k.port, "a local Service has a mirrored Service's name; serving the local one");
        }
        lists.mirrored = endpoints;
        lists.local_members = local_members;
        self.publish(&mut lists);
    }

    fn publish(&self, lists: &mut Lists) {
        let cur = self.tx.borrow().clone();
        let mirrored = lists.mirrored_with_local_members();
        let merged = lists.local.iter().chain(mirrored.iter().filter(|(k, _)| !lists.local.contains_key(*k)));
        let mut encoded = HashMap::with_capacity(lists.local.len() + mirrored.len());
        let snap: HashMap<ServiceKey, EndpointsAnswer> = merged
            .map(|(k, eps)| {
                let kept = lists.encoded.get(k).filter(|old| Arc::ptr_eq(old, eps)).and_then(|_| cur.get(k).cloned());
                encoded.insert(k.clone(), eps.clone());
                (k.clone(), kept.unwrap_or_else(|| EndpointsAnswer::new(eps)))
            })
            .collect();
        lists.encoded = encoded;
        self.tx.send_if_modified(|cur| {
            let changed = **cur != snap;
            if changed {
                *cur = Arc::new(snap);
            }
            changed
        });
    }

    /// Replaces the cluster IP table (every local Service port with a cluster IP).
    pub fn replace_cluster_ips(&self, by_addr: HashMap<SocketAddr, ServiceKey>) {
        *self.cluster_ips.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(by_addr);
    }

    /// Replaces the mirrored Services' cluster IP table.
    pub fn replace_mirrored_cluster_ips(&self, by_addr: HashMap<SocketAddr, ServiceKey>) {
        *self.mirrored_cluster_ips.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(by_addr);
    }

    /// The Service port behind a cluster IP and port.
    pub fn service_at(&self, addr: SocketAddr) -> Option<ServiceKey> {
        let local = self.cluster_ips.read().unwrap_or_else(|e| e.into_inner()).get(&addr).cloned();
        local.or_else(|| self.mirrored_cluster_ips.read().unwrap_or_else(|e| e.into_inner()).get(&addr).cloned())
    }

    pub fn subscribe(&self) -> watch::Receiver<EndpointsSnapshot> {
        self.tx.subscribe()
    }

    /// `svc`'s answer in `snap`; an unknown Service port has no endpoints.
    pub fn answer(&self, snap: &EndpointsSnapshot, svc: &ServiceKey) -> EndpointsAnswer {
        snap.get(svc).cloned().unwrap_or_else(|| self.empty.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proxy_api::envelope::SigningKey;
    use std::time::{Duration, Instant};

    /// A large build takes seconds to verify under the store's lock;
    /// `/ready` (trusted keys, counts) must answer meanwhile.
    #[test]
    fn readiness_does_not_wait_for_an_update_in_progress() {
        let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let hub = Arc::new(ConfigHub::new(Store::new(vec![key]), Arc::new(Metrics::new())));
        let (started, running) = std::sync::mpsc::channel();
        let updating = hub.clone();
        let update = std::thread::spawn(move || {
            updating.apply(|_| {
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(800));
                Vec::new()
            })
        });
        running.recv().unwrap();
        let asked = Instant::now();
        assert_eq!(hub.trusted_keys(), 1);
        assert!(asked.elapsed() < Duration::from_millis(200), "waited {:?}", asked.elapsed());
        update.join().unwrap();
    }

    fn key(name: &str) -> ServiceKey {
        ServiceKey { namespace: "emojivoto".into(), name: name.into(), port: 8080 }
    }

    fn list(addr: &str) -> Endpoints {
        Arc::new(vec![mesh_proxy_api::endpoints::Endpoint { addr: addr.parse().unwrap(), identity: None }])
    }

    /// Mirrored Services are served beside the local ones; each input
    /// replaces only its own part, and a local Service wins a name clash.
    #[test]
    fn mirrored_endpoints_are_served_beside_the_local_ones() {
        let hub = EndpointsHub::default();
        hub.replace(&HashMap::from([(key("web-svc"), list("10.10.0.1:8080"))]));
        hub.replace_mirrored(
            HashMap::from([
                (key("emoji-svc-west"), list("10.99.0.20:4143")),
                (key("web-svc"), list("10.99.0.20:4143")),
            ]),
            HashMap::new(),
        );
        let rx = hub.subscribe();
        let body = |k: &str| String::from_utf8(hub.answer(&rx.borrow(), &key(k)).body.to_vec()).unwrap();
        assert!(body("emoji-svc-west").contains("10.99.0.20:4143"));
        assert!(body("web-svc").contains("10.10.0.1:8080"), "the local Service wins: {}", body("web-svc"));
        hub.replace(&HashMap::new());
        assert!(body("emoji-svc-west").contains("10.99.0.20:4143"), "a local change keeps the mirrors");
        assert!(body("web-svc").contains("10.99.0.20:4143"), "the mirror shows once the local Service is gone");
        hub.replace_mirrored(HashMap::new(), HashMap::new());
        assert!(!body("emoji-svc-west").contains("10.99"));

        let (local, mirror) = ("10.96.0.1:80".parse().unwrap(), "10.96.0.2:8080".parse().unwrap());
        hub.replace_cluster_ips(HashMap::from([(local, key("web-svc"))]));
        hub.replace_mirrored_cluster_ips(HashMap::from([(mirror, key("emoji-svc-west")), (local, key("x"))]));
        assert_eq!(hub.service_at(local), Some(key("web-svc")));
        assert_eq!(hub.service_at(mirror), Some(key("emoji-svc-west")));
    }

    /// A federated port with a local member: the local member's endpoints,
    /// as they change, then the linked members'; unchanged inputs keep
    /// their answer (no new version for the proxies' long polls).
    #[test]
    fn a_federated_port_adds_the_local_members_endpoints_as_they_change() {
        let hub = EndpointsHub::default();
        let linked = list("10.20.0.5:8080");
        hub.replace(&HashMap::from([(key("emoji-svc"), list("10.10.0.5:8080"))]));
        hub.replace_mirrored(
            HashMap::from([(key("emoji-svc-federated"), linked.clone())]),
            HashMap::from([(key("emoji-svc-federated"), key("emoji-svc"))]),
        );
        let rx = hub.subscribe();
        let answer = || hub.answer(&rx.borrow(), &key("emoji-svc-federated"));
        let first = answer();
        let body = String::from_utf8(first.body.to_vec()).unwrap();
        let (local_at, linked_at) = (body.find("10.10.0.5:8080").unwrap(), body.find("10.20.0.5:8080").unwrap());
        assert!(local_at < linked_at, "the local member first: {body}");

        hub.replace(&HashMap::from([(key("emoji-svc"), list("10.10.0.5:8080")), (key("x"), list("10.10.0.9:80"))]));
        assert_eq!(answer(), first, "equal lists: the same answer");

        hub.replace(&HashMap::new());
        let body = String::from_utf8(answer().body.to_vec()).unwrap();
        assert!(!body.contains("10.10.0.5") && body.contains("10.20.0.5:8080"), "the local member left: {body}");

        hub.replace_mirrored(HashMap::from([(key("emoji-svc-federated"), linked)]), HashMap::new());
        hub.replace(&HashMap::from([(key("emoji-svc"), list("10.10.0.5:8080"))]));
        let body = String::from_utf8(answer().body.to_vec()).unwrap();
        assert!(!body.contains("10.10.0.5"), "no longer a member: {body}");
    }
}
