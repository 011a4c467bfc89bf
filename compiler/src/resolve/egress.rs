//! EgressNetworks as Linkerd's policy controller reads them
//! (`policy-controller/k8s/index/src/outbound/index/egress_network.rs`):
//! the networks each covers (absent: everything outside the cluster
//! networks), which ones apply to a client (its own namespace's if it has
//! any, else the global egress namespace's), the order that breaks ties,
//! and the status controller's Accepted condition
//! (`policy-controller/k8s/status/src/index.rs`, `network_condition`).

use super::index::{Index, Kind};
use crate::findings::{Code, Finding};
use crate::model::egress::EgressNetworkSpec;
use crate::model::{Resource, Spec};
use crate::settings::{Settings, parse_net};
use ipnet::IpNet;
use mesh_proxy_api::Network;
use mesh_proxy_api::outbound::egress::{TrafficPolicy, block_size};
use std::collections::BTreeMap;

/// One admitted EgressNetwork.
#[derive(Clone, Debug)]
pub struct EgressNet {
    pub resource: usize,
    pub namespace: String,
    pub name: String,
    pub traffic_policy: TrafficPolicy,
    pub networks: Vec<Network>,
    /// Whether `networks` came from the resource (false: the default).
    pub explicit: bool,
    /// The status controller's Accepted: false when a network intersects the
    /// cluster networks (EgressReasonNetworkOverlap). Routes on a network
    /// that is not accepted are not accepted either.
    pub accepted: bool,
}

/// Every EgressNetwork, by namespace, each list in Linkerd's tie order.
#[derive(Clone, Debug, Default)]
pub struct EgressNets {
    pub by_namespace: BTreeMap<String, Vec<EgressNet>>,
    pub global_namespace: String,
}

impl EgressNets {
    /// Reads every EgressNetwork the index holds.
    pub fn read(resources: &[Resource], index: &Index, settings: &Settings) -> EgressNets {
        let mut by_namespace: BTreeMap<String, Vec<(usize, EgressNet)>> = BTreeMap::new();
        for &ri in index.all(Kind::EgressNetwork) {
            let r = &resources[ri];
            let Spec::EgressNetwork(spec) = &r.spec else { continue };
            let Some(net) = egress_net(ri, r, spec, &settings.cluster_networks) else { continue };
            by_namespace.entry(net.namespace.clone()).or_default().push((ri, net));
        }
        let by_namespace = by_namespace
            .into_iter()
            .map(|(ns, mut list)| {
                list.sort_by_key(|(ri, n)| tie_key(&resources[*ri], n));
                (ns, list.into_iter().map(|(_, n)| n).collect())
            })
            .collect();
        EgressNets { by_namespace, global_namespace: settings.egress_namespace.clone() }
    }

    /// The EgressNetworks a client in `namespace` is subject to
    /// (`resolve_egress_network`: own namespace first, else the global one).
    pub fn applicable(&self, namespace: &str) -> &[EgressNet] {
        self.by_namespace
            .get(namespace)
            .filter(|l| !l.is_empty())
            .or_else(|| self.by_namespace.get(&self.global_namespace))
            .map_or(&[], Vec::as_slice)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&EgressNet> {
        self.by_namespace.get(namespace)?.iter().find(|n| n.name == name)
    }

    pub fn all(&self) -> impl Iterator<Item = &EgressNet> {
        self.by_namespace.values().flatten()
    }
}

/// `compare_matched_egress_network` after the block size: an older resource
/// wins (an absent creationTimestamp orders before any), then namespace and name.
fn tie_key(r: &Resource, n: &EgressNet) -> (Option<String>, String, String) {
    (r.meta.creation_timestamp.clone(), n.namespace.clone(), n.name.clone())
}

fn egress_net(ri: usize, r: &Resource, spec: &EgressNetworkSpec, cluster: &[IpNet]) -> Option<EgressNet> {
    let traffic_policy = match spec.traffic_policy.as_str() {
        "Allow" => TrafficPolicy::Allow,
        "Deny" => TrafficPolicy::Deny,
        _ => return None,
    };
    let (networks, explicit) = match &spec.networks {
        Some(list) => {
            let nets = list.iter().filter_map(|n| {
                let net = parse_net(&n.cidr)?;
                let except = n.except.iter().flatten().filter_map(|e| parse_net(e)).collect();
                Some(Network { net, except })
            });
            (nets.collect(), true)
        }
        None => (default_networks(cluster), false),
    };
    let accepted = !networks.iter().any(|n| cluster.iter().any(|c| intersects(n, c)));
    let (namespace, name) = (r.namespace().to_owned(), r.name().to_owned());
    Some(EgressNet { resource: ri, namespace, name, traffic_policy, networks, explicit, accepted })
}

/// Everything outside the cluster networks, per address family
/// (`EgressNetwork::from_resource`).
pub fn default_networks(cluster: &[IpNet]) -> Vec<Network> {
    let (v6, v4): (Vec<IpNet>, Vec<IpNet>) = cluster.iter().partition(|n| matches!(n, IpNet::V6(_)));
    let any = |s: &str| s.parse::<IpNet>().unwrap_or_default();
    vec![Network { net: any("0.0.0.0/0"), except: v4 }, Network { net: any("::/0"), except: v6 }]
}

/// Linkerd's `Network::intersect`: the two overlap and `other` is not
/// wholly inside one of the network's exceptions.
pub fn intersects(n: &Network, other: &IpNet) -> bool {
    let overlap = other.contains(&n.net) || n.net.contains(other);
    overlap && !n.except.iter().any(|e| e.contains(other))
}

/// Whether two networks share an address (for overlapping EgressNetworks).
pub fn networks_overlap(a: &Network, b: &Network) -> Option<IpNet> {
    let common = if a.net.contains(&b.net) {
        b.net
    } else if b.net.contains(&a.net) {
        a.net
    } else {
        return None;
    };
    // The common block is shared unless an exception of either side removes all of it.
    let removed = a.except.iter().chain(&b.except).any(|e| e.contains(&common));
    (!removed).then_some(common)
}

/// Findings about the networks themselves: overlap with the cluster
/// networks (not accepted), and overlap between EgressNetworks that apply to
/// the same clients (one silently wins for the shared addresses).
pub fn report(nets: &EgressNets, resources: &[Resource], cluster: &[IpNet], findings: &mut Vec<Finding>) {
    for n in nets.all().filter(|n| !n.accepted) {
        let r = &resources[n.resource];
        let overlapping: Vec<String> = cluster
            .iter()
            .filter(|c| n.networks.iter().any(|net| intersects(net, c)))
            .map(ToString::to_string)
            .collect();
        let msg = format!(
            "EgressNetwork {}/{} has networks that overlap the cluster networks ({}): Linkerd's status controller \
             does not accept it (EgressReasonNetworkOverlap), so routes with it as parent are not accepted",
            n.namespace,
            n.name,
            overlapping.join(", ")
        );
        let hint = "list only addresses outside the cluster networks, or add them as `except`";
        let f = Finding::new(Code::EgressClusterOverlap, r.span_at(&["spec", "networks"]), msg);
        findings.push(f.resource(r.id.clone()).hint(hint));
    }
    for list in nets.by_namespace.values() {
        report_overlaps(list, resources, findings);
    }
}

/// Overlaps Linkerd settles by age and name rather than by specificity:
/// both networks match the shared addresses with blocks of the same size. A
/// narrower network inside a wider one is Linkerd's most-specific-wins
/// (the usual way to carve out an exception) and is not reported.
fn report_overlaps(list: &[EgressNet], resources: &[Resource], findings: &mut Vec<Finding>) {
    for (i, a) in list.iter().enumerate() {
        for b in &list[i + 1..] {
            let tie = |x: &Network, y: &Network| {
                let shared = networks_overlap(x, y)?;
                (block_size(x) == block_size(y)).then_some(shared)
            };
            let shared = a.networks.iter().find_map(|x| b.networks.iter().find_map(|y| tie(x, y)));
            let Some(shared) = shared else { continue };
            let r = &resources[b.resource];
            let msg = format!(
                "EgressNetworks {ns}/{} and {ns}/{} both cover {shared} with networks of the same size: Linkerd \
                 picks the older one, then the first by namespace and name, which is {ns}/{} here, \
                 so {ns}/{}'s trafficPolicy ({:?}) and routes never apply there",
                a.name,
                b.name,
                a.name,
                b.name,
                b.traffic_policy,
                ns = a.namespace
            );
            let hint = "give each EgressNetwork its own addresses (use `except` to carve one out of the other)";
            let f = Finding::new(Code::EgressNetworkOverlap, r.span_at(&["spec", "networks"]), msg);
            findings.push(f.resource(r.id.clone()).hint(hint));
        }
    }
}
