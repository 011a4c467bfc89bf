//! Mirrored Services: the endpoints a source cluster's proxies get for
//! the Services a linked (target) cluster exports, as Linkerd's service
//! mirror and destination controller give them (docs/semantics/multicluster.md):
//!
//! - gateway mode: `<service>-<target cluster>` has the target cluster's
//!   gateway addresses on the gateway port, each with the gateway's
//!   identity, for every port of the Service; and none while the target
//!   Service has no endpoints on any port (`cluster_watcher.go`'s
//!   `createGatewayEndpoints`, `isEmptyService`);
//! - pod-to-pod (`remote-discovery`): `<service>-<target cluster>` has the
//!   remote pods' own addresses and identities (`server.go`'s `Get`);
//! - federated: `<service>-federated` has every member's endpoints, pod to
//!   pod: each member cluster's pods, and this cluster's own `<service>`
//!   when it is a member (`federated_service_watcher.go`), see [`federated`].
//!
//! The links file (`--links`, format in runtime/API.md) says which Services
//! each linked cluster exports, in which mode, and where that cluster's
//! endpoints come from: its mesh-runtime's API (mTLS with this runtime's
//! own certificate, both clusters sharing a trust anchor), or an endpoints
//! file. [`remote`] keeps those up to date, [`watch`] follows the links
//! file itself (a cluster that stops exporting drops out when `meshc build`
//! writes the file again); this module turns them into the mirrored
//! Services' endpoints.

mod federated;
mod file;
pub mod remote;
pub mod signed;
#[cfg(test)]
mod tests;
pub mod watch;

use mesh_proxy_api::endpoints::{Endpoint, Endpoints, ServiceKey};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

pub use federated::{Federated, union};
pub use file::parse;

/// Every link of this (source) cluster, and the federated Services.
#[derive(Clone, Debug, PartialEq)]
pub struct Links {
    pub links: Vec<Link>,
    pub federated: Vec<Federated>,
}

/// One linked target cluster: what it exports and where its endpoints come from.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The Link's `targetClusterName`: the mirrors' suffix.
    pub target_cluster: String,
    pub gateway: Option<Gateway>,
    pub remote: Option<Remote>,
    pub services: Vec<Exported>,
}

/// The target cluster's gateway, as the Link's `gatewayAddress`,
/// `gatewayPort` and `gatewayIdentity` say.
#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub identity: String,
}

/// Where the target cluster's endpoints come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Remote {
    /// The target cluster's mesh-runtime API, `https://host:port`, whose
    /// certificate must name `identity`.
    Runtime { url: String, identity: String },
    /// An endpoints file (mesh-proxy's discovery format), re-read when it changes.
    EndpointsFile(PathBuf),
}

/// A Service the target cluster exports.
#[derive(Clone, Debug, PartialEq)]
pub struct Exported {
    pub namespace: String,
    pub name: String,
    pub mode: Mode,
    pub ports: Vec<u16>,
    /// The mirror's cluster IP in the source cluster, for transparent outbound.
    pub cluster_ip: Option<IpAddr>,
}

/// How a Service is exported: the Link selector that selects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Gateway,
    RemoteDiscovery,
}

impl Exported {
    /// The mirror's name: `mirrorServiceName` in `cluster_watcher.go`.
    pub fn mirror_name(&self, target_cluster: &str) -> String {
        format!("{}-{target_cluster}", self.name)
    }

    /// The target cluster's Service port behind each mirrored port.
    fn remote_keys(&self) -> impl Iterator<Item = ServiceKey> + '_ {
        self.ports.iter().map(|&port| ServiceKey { namespace: self.namespace.clone(), name: self.name.clone(), port })
    }
}

impl Links {
    /// The target cluster's Service ports link `i` needs endpoints of: its
    /// exported Services and the federated Services it is a member of.
    pub fn remote_keys(&self, i: usize) -> BTreeSet<ServiceKey> {
        let Some(link) = self.links.get(i) else { return BTreeSet::new() };
        let exported = link.services.iter().flat_map(Exported::remote_keys);
        let members = self.federated.iter().filter(|f| f.has_remote_member(&link.target_cluster));
        exported.chain(members.flat_map(Federated::member_keys)).collect()
    }
}

/// What is known of one target cluster's endpoints: a remote Service port
/// absent from the map has not been heard of yet.
pub type RemoteEndpoints = HashMap<ServiceKey, Endpoints>;

/// The mirrored Services' endpoints and cluster IPs, from each link and
/// what its target cluster last said (`remotes[i]` for `links.links[i]`;
/// `None` when the link has no remote source).
pub fn mirrored(links: &Links, remotes: &[Option<RemoteEndpoints>]) -> Mirrored {
    let mut out = Mirrored::default();
    for (i, link) in links.links.iter().enumerate() {
        let remote = remotes.get(i).and_then(Option::as_ref);
        for svc in &link.services {
            let name = svc.mirror_name(&link.target_cluster);
            // `isEmptyService`: the whole Service, not one port, decides
            // whether the gateway is behind its mirror.
            let empty = remote.is_some_and(|r| svc.remote_keys().all(|k| r.get(&k).is_none_or(|e| e.is_empty())));
            for key in svc.remote_keys() {
                let mirror = ServiceKey { namespace: key.namespace.clone(), name: name.clone(), port: key.port };
                if let Some(ip) = svc.cluster_ip {
                    out.cluster_ips.insert(SocketAddr::new(ip, key.port), mirror.clone());
                }
                let eps = match svc.mode {
                    Mode::Gateway if empty => Endpoints::default(),
                    Mode::Gateway => gateway_endpoints(link.gateway.as_ref()),
                    Mode::RemoteDiscovery => remote.and_then(|r| r.get(&key).cloned()).unwrap_or_default(),
                };
                out.endpoints.insert(mirror, eps);
            }
        }
    }
    federated::add(links, remotes, &mut out);
    out
}

/// Gateway mode: every gateway address on the gateway's port, with its
/// identity (`createGatewayEndpoints`; the identity is the Endpoints'
/// `remote-gateway-identity` annotation the destination controller serves).
fn gateway_endpoints(gateway: Option<&Gateway>) -> Endpoints {
    let Some(gw) = gateway else { return Endpoints::default() };
    let eps = gw
        .addresses
        .iter()
        .map(|ip| Endpoint { addr: SocketAddr::new(*ip, gw.port), identity: Some(gw.identity.clone()) })
        .collect();
    Arc::new(eps)
}

/// What [`mirrored`] computes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mirrored {
    /// Mirrored Service ports; for a federated one, its linked members' endpoints.
    pub endpoints: HashMap<ServiceKey, Endpoints>,
    pub cluster_ips: HashMap<SocketAddr, ServiceKey>,
    /// Federated Service port → this cluster's own member Service port,
    /// whose endpoints the hub adds to the linked members' as they change.
    pub local_members: HashMap<ServiceKey, ServiceKey>,
}
