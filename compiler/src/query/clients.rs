//! Who can be a client: every source of traffic the repository implies,
//! each placed at an address and given a TLS state, as the target's proxy
//! would see it.
//!
//! Pod IPs are not in git. A pod client is evaluated at every place a pod
//! may be (`places`): one address in the pod networks (or, unknown, the
//! cluster networks) that no policy names specifically, and one inside
//! each named network that covers part of them. Clients at addresses a
//! policy names are also the `cidr` members. When the places disagree, the
//! verdict depends on the pod CIDR.

use super::address::pick;
use super::places::{Place, pod_places};
use crate::resolve::Resolved;
use crate::resolve::workload::Workload;
use ipnet::IpNet;
use mesh_proxy_api::{Authentication, Client, ProxyConfig};
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// A workload in the repository (meshed: by identity; unmeshed: plaintext).
    Workload,
    /// A mesh identity (or identity pattern) a policy names that no workload has.
    Identity,
    /// Any in-cluster pod without a proxy.
    Unmeshed,
    /// The node's kubelet, sending probes.
    Kubelet,
    /// An address outside the cluster networks (through a NodePort or LoadBalancer).
    External,
    /// The pod itself (127.0.0.1), which every proxy authorizes.
    Localhost,
    /// Plaintext clients inside a network a policy names.
    Cidr,
}

impl ClientKind {
    /// Whether clients of this kind are pods, whose address git does not hold.
    pub fn is_pod(self) -> bool {
        matches!(self, ClientKind::Workload | ClientKind::Identity | ClientKind::Unmeshed)
    }
}

/// One concrete client of a class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub kind: ClientKind,
    /// Workload name, identity (pattern), CIDR, or the kind itself.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The mesh identity the client presents, if it is meshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `Deployment/ns/name`, `identity:…`, `cidr:…`, `kubelet`, …
    pub label: String,
    #[serde(skip)]
    pub workload: Option<usize>,
    #[serde(skip)]
    pub client: Client,
}

/// The representative addresses of the places traffic comes from.
#[derive(Clone, Debug)]
pub struct Addresses {
    /// Where pods are placed: in the pod (else cluster) networks, in no
    /// narrower named network; the first of `places`.
    pub pod: IpAddr,
    /// Every place a pod may be that policies can tell apart.
    pub places: Vec<Place>,
    pub kubelet: IpAddr,
    /// Outside the cluster networks and every named network; `None` when
    /// the cluster networks cover every address.
    pub external: Option<IpAddr>,
    /// Networks some authorization or skip-subnets list names.
    pub named: Vec<IpNet>,
    /// Identities and identity suffixes authorizations name.
    pub identities: BTreeSet<String>,
    pub suffixes: BTreeSet<String>,
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl Addresses {
    pub fn new(r: &Resolved, configs: &[Option<ProxyConfig>]) -> Self {
        let mut a = Self::placed(r, named_networks(configs));
        (a.identities, a.suffixes) = named_identity_strings(configs);
        a
    }

    /// The addresses of two versions of a repository, placed alike so that
    /// an unchanged client is the same client on both sides: every network
    /// either side names is avoided. Each side keeps its own kubelet.
    pub fn shared(
        base: (&Resolved, &[Option<ProxyConfig>]),
        head: (&Resolved, &[Option<ProxyConfig>]),
    ) -> (Self, Self) {
        let mut named = named_networks(base.1);
        named.extend(named_networks(head.1));
        named.sort();
        named.dedup();
        let mut h = Self::placed(head.0, named);
        let (mut ids, mut suffixes) = named_identity_strings(base.1);
        let (head_ids, head_suffixes) = named_identity_strings(head.1);
        ids.extend(head_ids);
        suffixes.extend(head_suffixes);
        (h.identities, h.suffixes) = (ids, suffixes);
        let b = Addresses { kubelet: base.0.settings.kubelet_ip, ..h.clone() };
        (b, h)
    }

    fn placed(r: &Resolved, named: Vec<IpNet>) -> Self {
        let cluster = &r.settings.cluster_networks;
        // Pods never have the node's address.
        let mut places = pod_places(r.settings.pod_space(), &named, r.settings.kubelet_ip);
        if places.is_empty() {
            let space = r.settings.pod_space();
            let addr = space.first().map_or(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), |n| n.network());
            places.push(Place { addr, within: named.iter().copied().filter(|n| n.contains(&addr)).collect() });
        }
        let pod = places[0].addr;
        let mut avoid = named.clone();
        avoid.extend(cluster.iter().copied());
        let external = ["203.0.113.0/24", "198.51.100.0/24", "0.0.0.0/0", "::/0"]
            .iter()
            .find_map(|n| pick(&n.parse().expect("literal network"), &avoid));
        Addresses {
            pod,
            places,
            kubelet: r.settings.kubelet_ip,
            external,
            named,
            identities: BTreeSet::new(),
            suffixes: BTreeSet::new(),
        }
    }
}

/// Every network an authorization or skip-subnets list names, except the
/// whole address space: sorted, without duplicates.
fn named_networks(configs: &[Option<ProxyConfig>]) -> Vec<IpNet> {
    let mut nets = BTreeSet::new();
    for c in configs.iter().flatten() {
        nets.extend(c.inbound.skip_subnets.iter().copied());
        super::for_each_authorization(c, |a| {
            for n in &a.networks {
                nets.insert(n.net);
                nets.extend(n.except.iter().copied());
            }
        });
    }
    nets.into_iter().filter(|n| n.prefix_len() != 0).collect()
}

fn workload_label(w: &Workload) -> String {
    format!("{}/{}/{}", w.kind, w.namespace, w.name)
}

/// The clients the repository implies, in a stable order: fixed places
/// first, then workloads in input order, then named identities and
/// networks sorted.
pub fn members(r: &Resolved, addrs: &Addresses) -> Vec<Member> {
    let fixed = |kind, name: &str, client| Member {
        kind,
        name: name.to_owned(),
        namespace: None,
        identity: None,
        label: name.to_owned(),
        workload: None,
        client,
    };
    let mut out = vec![
        fixed(ClientKind::Kubelet, "kubelet", Client::plaintext(addrs.kubelet)),
        fixed(ClientKind::Localhost, "localhost", Client::plaintext(LOCALHOST)),
        fixed(ClientKind::Unmeshed, "unmeshed", Client::plaintext(addrs.pod)),
    ];
    if let Some(ip) = addrs.external {
        out.push(fixed(ClientKind::External, "external", Client::plaintext(ip)));
    }
    let mut known: BTreeSet<&str> = BTreeSet::new();
    for (wi, w) in r.workloads.iter().enumerate() {
        let meshed = w.is_meshed();
        if meshed {
            known.insert(&w.identity);
        }
        out.push(Member {
            kind: ClientKind::Workload,
            name: w.name.clone(),
            namespace: Some(w.namespace.clone()),
            identity: meshed.then(|| w.identity.clone()),
            label: workload_label(w),
            workload: Some(wi),
            client: workload_client(w, addrs),
        });
    }
    out.extend(named_identities(r, &known, addrs));
    out.extend(addrs.named.iter().filter_map(|net| {
        let ip = pick(net, &addrs.named)?;
        let name = net.to_string();
        Some(Member { label: format!("cidr:{name}"), ..fixed(ClientKind::Cidr, &name, Client::plaintext(ip)) })
    }));
    out
}

impl Addresses {
    /// A client of `kind` at every place: a pod (placed at `pod`) moves
    /// from place to place; any other client stays where it is.
    pub fn at_places(&self, kind: ClientKind, c: &Client) -> Vec<Client> {
        if !kind.is_pod() || c.addr != self.pod {
            return vec![c.clone(); self.places.len()];
        }
        self.places.iter().map(|p| Client { addr: p.addr, tls: c.tls.clone() }).collect()
    }
}

pub fn workload_client(w: &Workload, addrs: &Addresses) -> Client {
    if w.is_meshed() { Client::identified(addrs.pod, w.identity.clone()) } else { Client::plaintext(addrs.pod) }
}

/// Identities and identity patterns policies name that no workload of the
/// repository has; a pattern stands for "some other ServiceAccount there",
/// and `*` for a meshed pod outside the repository.
fn named_identity_strings(configs: &[Option<ProxyConfig>]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut exact, mut suffixes) = (BTreeSet::new(), BTreeSet::new());
    for c in configs.iter().flatten() {
        super::for_each_authorization(c, |a| {
            if let Authentication::TlsAuthenticated { identities, suffixes: s } = &a.authentication {
                exact.extend(identities.iter().cloned());
                suffixes.extend(s.iter().cloned());
            }
        });
    }
    (exact, suffixes)
}

fn named_identities(r: &Resolved, known: &BTreeSet<&str>, addrs: &Addresses) -> Vec<Member> {
    let settings = &r.settings;
    let mut out: Vec<Member> = addrs
        .identities
        .iter()
        .filter(|id| !known.contains(id.as_str()))
        .cloned()
        .map(|id| {
            let namespace = split_identity(&id, settings).map(|(_, ns)| ns.to_owned());
            identity_member(id.clone(), namespace, id, addrs)
        })
        .collect();
    for suffix in &addrs.suffixes {
        let (pattern, namespace, rep) = match suffix.as_str() {
            "" => ("*".to_owned(), None, settings.identity("meshc-elsewhere", "default")),
            s => {
                let ns = split_identity(&format!("x{s}"), settings).map(|(_, ns)| ns.to_owned());
                (format!("*{s}"), ns, format!("meshc-other{s}"))
            }
        };
        out.push(identity_member(pattern, namespace, rep, addrs));
    }
    out
}

fn identity_member(name: String, namespace: Option<String>, identity: String, addrs: &Addresses) -> Member {
    Member {
        kind: ClientKind::Identity,
        label: format!("identity:{name}"),
        name,
        namespace,
        client: Client::identified(addrs.pod, identity.clone()),
        identity: Some(identity),
        workload: None,
    }
}

/// `sa.ns.serviceaccount.identity.<cp-ns>.<trust-domain>` → (sa, ns).
pub fn split_identity<'a>(id: &'a str, s: &crate::settings::Settings) -> Option<(&'a str, &'a str)> {
    s.identity_domain().split_service_account(id)
}
