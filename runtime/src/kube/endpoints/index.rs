//! The pure part of discovery: the few fields of Services, EndpointSlices
//! and Pods that matter, and each Service port's endpoints derived from
//! them. No I/O; the rules are in the parent module's doc.

use mesh_proxy_api::endpoints::{Endpoint, Endpoints, ServiceKey};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A namespaced object's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey { namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

/// A Service or EndpointSlice port (TCP only); unnamed is "".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
}

/// What a Service contributes: its TCP ports, and its cluster IPs (none
/// for a headless Service).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    pub ports: Vec<NamedPort>,
    pub cluster_ips: Vec<std::net::IpAddr>,
}

/// What an endpoint stands for, which decides its identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No targetRef, or one that is not a Pod: an unmeshed endpoint.
    External,
    /// A Pod, with the uid the slice names when it names one.
    Pod { key: ObjectKey, uid: Option<String> },
}

/// One ready endpoint of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    pub ip: IpAddr,
    pub target: Target,
}

/// What an EndpointSlice contributes; only ready endpoints are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// The Service (in the slice's namespace) it belongs to.
    pub service: String,
    pub ports: Vec<NamedPort>,
    pub endpoints: Vec<SliceEndpoint>,
}

/// What a Pod contributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub uid: String,
    /// Its workload identity when meshed.
    pub identity: Option<String>,
}

/// The state of the three kinds and the endpoints derived from it.
/// Changes mark the Services they affect; [`EndpointsIndex::flush`]
/// recomputes only those.
#[derive(Debug, Default)]
pub struct EndpointsIndex {
    services: HashMap<ObjectKey, ServiceInfo>,
    slices: HashMap<ObjectKey, SliceInfo>,
    pods: HashMap<ObjectKey, PodInfo>,
    /// Service → its slices' names.
    slices_of: HashMap<ObjectKey, HashSet<String>>,
    /// Pod → the slices that name it.
    slices_naming: HashMap<ObjectKey, HashSet<ObjectKey>>,
    /// Service → the ports it has answers under.
    published: HashMap<ObjectKey, Vec<u16>>,
    answers: HashMap<ServiceKey, Endpoints>,
    /// Cluster IP and port → Service port, kept with `answers`.
    cluster_ips: HashMap<std::net::SocketAddr, ServiceKey>,
    /// Service → the cluster addresses it has in `cluster_ips`.
    cluster_addrs_of: HashMap<ObjectKey, Vec<std::net::SocketAddr>>,
    dirty: HashSet<ObjectKey>,
}

/// One of the three kinds the index holds, so that a relist can replace
/// a kind's whole state the same way for each.
pub trait Indexed: Sized + PartialEq {
    fn apply(index: &mut EndpointsIndex, key: ObjectKey, value: Self);
    fn delete(index: &mut EndpointsIndex, key: &ObjectKey);
    fn keys(index: &EndpointsIndex) -> Vec<ObjectKey>;
}

impl Indexed for ServiceInfo {
    fn apply(index: &mut EndpointsIndex, key: ObjectKey, value: Self) {
        index.apply_service(key, value)
    }
    fn delete(index: &mut EndpointsIndex, key: &ObjectKey) {
        index.delete_service(key)
    }
    fn keys(index: &EndpointsIndex) -> Vec<ObjectKey> {
        index.services.keys().cloned().collect()
    }
}

impl Indexed for SliceInfo {
    fn apply(index: &mut EndpointsIndex, key: ObjectKey, value: Self) {
        index.apply_slice(key, value)
    }
    fn delete(index: &mut EndpointsIndex, key: &ObjectKey) {
        index.delete_slice(key)
    }
    fn keys(index: &EndpointsIndex) -> Vec<ObjectKey> {
        index.slices.keys().cloned().collect()
    }
}

impl Indexed for PodInfo {
    fn apply(index: &mut EndpointsIndex, key: ObjectKey, value: Self) {
        index.apply_pod(key, value)
    }
    fn delete(index: &mut EndpointsIndex, key: &ObjectKey) {
        index.delete_pod(key)
    }
    fn keys(index: &EndpointsIndex) -> Vec<ObjectKey> {
        index.pods.keys().cloned().collect()
    }
}

impl EndpointsIndex {
    pub fn new() -> EndpointsIndex {
        EndpointsIndex::default()
    }

    pub fn apply_service(&mut self, key: ObjectKey, info: ServiceInfo) {
        if self.services.get(&key) != Some(&info) {
            self.dirty.insert(key.clone());
            self.services.insert(key, info);
        }
    }

    pub fn delete_service(&mut self, key: &ObjectKey) {
        if self.services.remove(key).is_some() {
            self.dirty.insert(key.clone());
        }
    }

    pub fn apply_slice(&mut self, key: ObjectKey, info: SliceInfo) {
        if self.slices.get(&key) == Some(&info) {
            return;
        }
        self.delete_slice(&key);
        let service = ObjectKey::new(&key.namespace, &info.service);
        for pod in pods_named(&info) {
            self.slices_naming.entry(pod.clone()).or_default().insert(key.clone());
        }
        self.slices_of.entry(service.clone()).or_default().insert(key.name.clone());
        self.dirty.insert(service);
        self.slices.insert(key, info);
    }

    pub fn delete_slice(&mut self, key: &ObjectKey) {
        let Some(old) = self.slices.remove(key) else { return };
        for pod in pods_named(&old) {
            if let Some(set) = self.slices_naming.get_mut(pod) {
                set.remove(key);
                if set.is_empty() {
                    self.slices_naming.remove(pod);
                }
            }
        }
        let service = ObjectKey::new(&key.namespace, &old.service);
        if let Some(set) = self.slices_of.get_mut(&service) {
            set.remove(&key.name);
            if set.is_empty() {
                self.slices_of.remove(&service);
            }
        }
        self.dirty.insert(service);
    }

    pub fn apply_pod(&mut self, key: ObjectKey, info: PodInfo) {
        // Most Pod updates are status changes that leave these fields alone.
        if self.pods.get(&key) != Some(&info) {
            self.mark_pod(&key);
            self.pods.insert(key, info);
        }
    }

    pub fn delete_pod(&mut self, key: &ObjectKey) {
        if self.pods.remove(key).is_some() {
            self.mark_pod(key);
        }
    }

    /// Replaces one kind's whole state (after a relist): what the list
    /// lacks is deleted, the rest applied; unchanged objects mark nothing.
    pub fn replace_all<T: Indexed>(&mut self, listed: HashMap<ObjectKey, T>) {
        for key in T::keys(self) {
            if !listed.contains_key(&key) {
                T::delete(self, &key);
            }
        }
        for (key, value) in listed {
            T::apply(self, key, value);
        }
    }

    fn mark_pod(&mut self, pod: &ObjectKey) {
        let Some(slices) = self.slices_naming.get(pod) else { return };
        for slice in slices {
            if let Some(info) = self.slices.get(slice) {
                self.dirty.insert(ObjectKey::new(&slice.namespace, &info.service));
            }
        }
    }

    /// Whether a change awaits [`EndpointsIndex::flush`].
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Recomputes the Services that changes touched; true when an answer
    /// changed.
    pub fn flush(&mut self) -> bool {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changed = false;
        for service in dirty {
            changed |= self.recompute_cluster_ips(&service);
            changed |= self.recompute(service);
        }
        changed
    }

    /// Every Service port's endpoints; Service ports without any are left
    /// out (an unknown port has none).
    pub fn endpoints(&self) -> &HashMap<ServiceKey, Endpoints> {
        &self.answers
    }

    /// Every TCP Service port's cluster address (cluster IP and port),
    /// whether or not it has endpoints.
    pub fn cluster_ips(&self) -> &HashMap<std::net::SocketAddr, ServiceKey> {
        &self.cluster_ips
    }

    /// Replaces `service`'s entries in the cluster IP table; true when they changed.
    fn recompute_cluster_ips(&mut self, service: &ObjectKey) -> bool {
        let fresh: Vec<std::net::SocketAddr> = self
            .services
            .get(service)
            .map(|svc| {
                let addrs = svc.cluster_ips.iter().flat_map(|ip| svc.ports.iter().map(|p| (*ip, p.port).into()));
                addrs.collect()
            })
            .unwrap_or_default();
        let old = self.cluster_addrs_of.remove(service).unwrap_or_default();
        let changed = old != fresh;
        for addr in &old {
            self.cluster_ips.remove(addr);
        }
        for addr in &fresh {
            self.cluster_ips.insert(*addr, key_of(service, addr.port()));
        }
        if !fresh.is_empty() {
            self.cluster_addrs_of.insert(service.clone(), fresh);
        }
        changed
    }

    /// How many Services, slices and Pods are held.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.services.len(), self.slices.len(), self.pods.len())
    }

    fn recompute(&mut self, service: ObjectKey) -> bool {
        let fresh = self.compute(&service);
        let mut changed = false;
        let old_ports = self.published.remove(&service).unwrap_or_default();
        for port in old_ports.iter().filter(|p| !fresh.contains_key(p)) {
            self.answers.remove(&key_of(&service, *port));
            changed = true;
        }
        if !fresh.is_empty() {
            self.published.insert(service.clone(), fresh.keys().copied().collect());
        }
        for (port, eps) in fresh {
            let key = key_of(&service, port);
            if self.answers.get(&key).is_none_or(|cur| **cur != eps) {
                self.answers.insert(key, Arc::new(eps));
                changed = true;
            }
        }
        changed
    }

    /// Each TCP port of `service` with its endpoints, when it has any.
    fn compute(&self, service: &ObjectKey) -> BTreeMap<u16, Vec<Endpoint>> {
        let mut out: BTreeMap<u16, Vec<Endpoint>> = BTreeMap::new();
        let Some(svc) = self.services.get(service) else { return out };
        let slices: Vec<&SliceInfo> = self
            .slices_of
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|name| self.slices.get(&ObjectKey::new(&service.namespace, name)))
            .collect();
        for port in &svc.ports {
            let eps = out.entry(port.port).or_default();
            for slice in &slices {
                for target_port in slice.ports.iter().filter(|p| p.name == port.name) {
                    eps.extend(slice.endpoints.iter().filter_map(|e| {
                        let identity = self.identity(&e.target)?;
                        Some(Endpoint { addr: SocketAddr::new(e.ip, target_port.port), identity })
                    }));
                }
            }
        }
        out.retain(|port, eps| {
            normalize(service, *port, eps);
            !eps.is_empty()
        });
        out
    }

    /// `Some(identity)` for an endpoint that can be served, `None` for
    /// one left out: a Pod not (yet) known, or not the one the slice
    /// names.
    fn identity(&self, target: &Target) -> Option<Option<String>> {
        match target {
            Target::External => Some(None),
            Target::Pod { key, uid } => {
                let pod = self.pods.get(key)?;
                if uid.as_ref().is_some_and(|u| *u != pod.uid) {
                    return None;
                }
                Some(pod.identity.clone())
            }
        }
    }
}

fn key_of(service: &ObjectKey, port: u16) -> ServiceKey {
    ServiceKey { namespace: service.namespace.clone(), name: service.name.clone(), port }
}

fn pods_named(info: &SliceInfo) -> impl Iterator<Item = &ObjectKey> {
    info.endpoints.iter().filter_map(|e| match &e.target {
        Target::Pod { key, .. } => Some(key),
        Target::External => None,
    })
}

/// Sorted, without duplicates; an address listed with two identities is
/// dropped, since either could be wrong.
fn normalize(service: &ObjectKey, port: u16, eps: &mut Vec<Endpoint>) {
    eps.sort_by(|a, b| (a.addr, &a.identity).cmp(&(b.addr, &b.identity)));
    eps.dedup();
    let conflicting: HashSet<SocketAddr> =
        eps.windows(2).filter(|w| w[0].addr == w[1].addr).map(|w| w[0].addr).collect();
    if !conflicting.is_empty() {
        tracing::warn!(
            namespace = service.namespace,
            service = service.name,
            port,
            addrs = ?conflicting,
            "addresses claimed by pods of different identities are left out"
        );
        eps.retain(|e| !conflicting.contains(&e.addr));
    }
}
