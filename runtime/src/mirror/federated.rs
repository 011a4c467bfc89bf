//! Federated Services: `<service>-federated` in this (source) cluster,
//! backed by every member, as Linkerd's destination controller serves it
//! (`controller/api/destination/federated_service_watcher.go`):
//!
//! - the members are the Service's annotations the service mirror keeps:
//!   `multicluster.linkerd.io/remote-discovery: <service>@<cluster>,…` for
//!   each linked cluster whose `<service>` its Link's
//!   `federatedServiceSelector` matches, and `local-discovery: <service>`
//!   when this cluster's own `<service>` is a member; here, the links
//!   file's `federated` entries say the same;
//! - a client asking for port P gets, for every member, that member's
//!   endpoints of `<service>` port P (the same number), pod to pod: the
//!   remote pods' own addresses and identities, never a gateway;
//! - a member that leaves (its annotation entry removed) takes its
//!   endpoints with it: here, when the links file no longer lists it
//!   (`super::watch` re-reads it).

use super::{Links, Mirrored, RemoteEndpoints};
use mesh_proxy_api::endpoints::{Endpoint, Endpoints, ServiceKey};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One federated Service and its members.
#[derive(Clone, Debug, PartialEq)]
pub struct Federated {
    pub namespace: String,
    /// The members' Service name; the federated Service is `<name>-federated`.
    pub name: String,
    /// The federated Service's ports: each is the same port of every member.
    pub ports: Vec<u16>,
    /// The federated Service's cluster IP in this cluster, for transparent outbound.
    pub cluster_ip: Option<IpAddr>,
    /// This cluster's own `<name>` is a member (`local-discovery`).
    pub local_member: bool,
    /// The linked clusters (`targetCluster`s) whose `<name>` is a member
    /// (`remote-discovery`), in the order their endpoints are listed.
    pub remote_members: Vec<String>,
}

impl Federated {
    /// `federatedServiceName` in the service mirror's `cluster_watcher.go`.
    pub fn federated_name(&self) -> String {
        format!("{}-federated", self.name)
    }

    pub fn has_remote_member(&self, cluster: &str) -> bool {
        self.remote_members.iter().any(|m| m == cluster)
    }

    /// The member Service's ports, in any member cluster (this one included).
    pub fn member_keys(&self) -> impl Iterator<Item = ServiceKey> + '_ {
        self.ports.iter().map(|&port| ServiceKey { namespace: self.namespace.clone(), name: self.name.clone(), port })
    }
}

/// Adds every federated Service port to `out`: the linked members'
/// endpoints now, and which local Service port the hub adds to them.
pub(super) fn add(links: &Links, remotes: &[Option<RemoteEndpoints>], out: &mut Mirrored) {
    for f in &links.federated {
        let federated_name = f.federated_name();
        let members: Vec<&RemoteEndpoints> = f
            .remote_members
            .iter()
            .filter_map(|m| links.links.iter().position(|l| &l.target_cluster == m))
            .filter_map(|i| remotes.get(i).and_then(Option::as_ref))
            .collect();
        for member in f.member_keys() {
            let key = ServiceKey { namespace: f.namespace.clone(), name: federated_name.clone(), port: member.port };
            if let Some(ip) = f.cluster_ip {
                out.cluster_ips.insert(SocketAddr::new(ip, member.port), key.clone());
            }
            let lists: Vec<&Endpoints> = members.iter().filter_map(|r| r.get(&member)).collect();
            out.endpoints.insert(key.clone(), union(lists));
            if f.local_member {
                out.local_members.insert(key, member);
            }
        }
    }
}

/// The lists one after the other, an endpoint listed twice (same address
/// and identity) once. A single list is kept as it is (its `Arc`, so the
/// hub does not encode it again).
pub fn union(lists: Vec<&Endpoints>) -> Endpoints {
    match lists.as_slice() {
        [] => Endpoints::default(),
        [one] => (*one).clone(),
        _ => {
            let mut seen: HashSet<(SocketAddr, Option<&str>)> = HashSet::new();
            let all: Vec<Endpoint> = lists
                .iter()
                .flat_map(|l| l.iter())
                .filter(|e| seen.insert((e.addr, e.identity.as_deref())))
                .cloned()
                .collect();
            Arc::new(all)
        }
    }
}
