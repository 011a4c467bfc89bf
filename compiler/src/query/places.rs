//! Where a pod may be. Pod addresses are not in git: a pod is somewhere in
//! the pod networks (`podNetworks`) or, when those are unknown, anywhere in
//! the cluster networks. Networks that policies name cut that space into
//! places that policies may tell apart; one address stands for each place,
//! and a verdict that differs between places `depends` on the pod CIDR.

use super::address::pick;
use super::evaluate::{self, Decision, Gate, Verdict};
use super::proof::Step;
use super::reach::ClientView;
use ipnet::IpNet;
use mesh_proxy_api::{HttpRequest, ProxyConfig};
use std::net::IpAddr;

/// One place a pod may be: an address, and the named networks holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub addr: IpAddr,
    /// Every named network that contains `addr`, with the whole address
    /// space of its family first: what tells this place apart.
    pub within: Vec<IpNet>,
}

fn family_root(ip: IpAddr) -> IpNet {
    let root = if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
    root.parse().expect("literal network")
}

/// The places a pod may be: for each network of `space`, an address in no
/// narrower named network, and one address in each named network strictly
/// inside it. Places inside the same named networks are one place. The
/// first is where a pod is placed when nothing tells places apart.
pub fn pod_places(space: &[IpNet], named: &[IpNet], kubelet: IpAddr) -> Vec<Place> {
    let mut avoid = named.to_vec();
    avoid.push(IpNet::from(kubelet));
    let mut out: Vec<Place> = Vec::new();
    for p in space {
        let inside = named.iter().filter(|n| p.contains(*n) && *n != p);
        for net in std::iter::once(p).chain(inside) {
            let Some(addr) = pick(net, &avoid) else { continue };
            let mut within = vec![family_root(addr)];
            within.extend(named.iter().filter(|n| n.contains(&addr)));
            if !out.iter().any(|q| q.within == within) {
                out.push(Place { addr, within });
            }
        }
    }
    out
}

/// The verdict over every place, given each place's verdict: the common
/// one, or `Depends` with the condition in words.
pub fn combine(places: &[Place], verdicts: &[Verdict]) -> (Verdict, Option<String>) {
    match verdicts.split_first() {
        None => (Verdict::Deny, None),
        Some((first, rest)) if rest.iter().all(|v| v == first) => (*first, None),
        Some(_) => {
            let allowed: Vec<bool> = verdicts.iter().map(|v| *v == Verdict::Allow).collect();
            (Verdict::Depends, Some(condition(places, &allowed)))
        }
    }
}

/// "allow when the client pod's address is in A but not in B, or in C":
/// the places that allow, described by the named networks that tell them
/// apart from the places that do not. Networks are walked depth first
/// (each before the networks inside it); a network is named where the
/// verdict inside it differs from around it.
pub fn condition(places: &[Place], allowed: &[bool]) -> String {
    let mut nets: Vec<IpNet> = places.iter().flat_map(|p| p.within.iter().copied()).collect();
    nets.sort_by_key(|n| (n.network().is_ipv6(), n.network(), n.prefix_len()));
    nets.dedup();
    let mut parts: Vec<String> = Vec::new();
    // The verdict of the places directly in each network walked so far.
    let mut context: Vec<(IpNet, bool)> = Vec::new();
    for net in nets {
        let inside: Vec<usize> = (0..places.len()).filter(|&i| places[i].within.contains(&net)).collect();
        let around = context.iter().rev().find(|(n, _)| n.contains(&net)).is_some_and(|(_, a)| *a);
        // The verdict of the places whose narrowest network is this one, else of all inside.
        let own: Vec<usize> = inside.iter().copied().filter(|&i| places[i].within.last() == Some(&net)).collect();
        let decided = if own.is_empty() { &inside } else { &own };
        let here = decided.iter().any(|&i| allowed[i]);
        if here != around {
            let sep = if parts.is_empty() {
                ""
            } else if here {
                ", or "
            } else {
                " but "
            };
            parts.push(format!("{sep}{}in {net}", if here { "" } else { "not " }));
        }
        context.push((net, here));
    }
    format!("allow when the client pod's address is {}", parts.concat())
}

/// A client's gate and decisions at every place it may be.
pub struct Spots<'c> {
    pub places: Vec<Place>,
    pub gates: Vec<Gate<'c>>,
    pub decisions: Vec<Vec<Decision<'c>>>,
}

/// The decisions for `client` at each of its places: for `req`, else per route.
pub fn spots<'c>(
    config: Option<&'c ProxyConfig>,
    port: u16,
    client: &ClientView,
    req: Option<&HttpRequest>,
) -> Spots<'c> {
    let lone = [(Place { addr: client.client.addr, within: Vec::new() }, client.client.clone())];
    let at = if client.at.is_empty() { &lone[..] } else { &client.at[..] };
    let mut out = Spots { places: Vec::new(), gates: Vec::new(), decisions: Vec::new() };
    for (place, c) in at {
        let gate = evaluate::gate(config, port, c);
        let decisions = match req {
            Some(req) => vec![evaluate::for_request(gate, c, req)],
            None => evaluate::per_route(gate, c),
        };
        out.places.push(place.clone());
        out.gates.push(gate);
        out.decisions.push(decisions);
    }
    out
}

impl<'c> Spots<'c> {
    /// The place whose decisions give the verdicts their shape: the first
    /// one where the proxy decides (a bypass has one decision for all).
    pub fn shape(&self) -> usize {
        self.gates.iter().position(|g| !matches!(g, Gate::SkippedSubnet(_))).unwrap_or(0)
    }

    /// Verdict `i` at each place (a bypass allows everything).
    fn verdicts(&self, i: usize) -> Vec<Verdict> {
        self.decisions.iter().map(|d| d.get(i).or(d.first()).map_or(Verdict::Deny, |d| d.verdict)).collect()
    }

    /// Verdict `i` over every place, with the condition when it depends.
    pub fn verdict(&self, i: usize) -> (Verdict, Option<String>) {
        combine(&self.places, &self.verdicts(i))
    }

    /// What decided verdict `i`: where it depends, a place that allows (so
    /// the proof names what allows under the condition).
    pub fn evidence(&self, i: usize) -> (Gate<'c>, &Decision<'c>) {
        let shape = self.shape();
        // A place where the proxy decides, as at `shape` (a bypass has other decisions).
        let alike = |k: usize| self.bypasses(k) == self.bypasses(shape);
        let allows = |k: usize| self.decisions[k].get(i).is_some_and(|d| d.verdict == Verdict::Allow);
        let allowing = (self.verdict(i).0 == Verdict::Depends)
            .then(|| (0..self.places.len()).find(|&k| alike(k) && allows(k)))
            .flatten();
        let k = allowing.unwrap_or(shape);
        (self.gates[k], &self.decisions[k][i])
    }

    fn bypasses(&self, k: usize) -> bool {
        matches!(self.gates[k], Gate::SkippedSubnet(_))
    }

    /// The proof step of a verdict that depends: each place's verdict, and the condition.
    pub fn condition_step(&self, i: usize, condition: &str) -> Step {
        let verdicts = self.verdicts(i);
        let at = |allow: bool| -> String {
            let addrs: Vec<String> = (0..self.places.len())
                .filter(|&k| (verdicts[k] == Verdict::Allow) == allow)
                .map(|k| self.places[k].addr.to_string())
                .collect();
            addrs.join(", ")
        };
        let detail = format!(
            "Git does not hold the client pod's address, and the verdict turns on it: allowed from {}, denied from {}. \
             So: {condition}. Set podNetworks (meshc.yaml) to the cluster's pod CIDR to decide.",
            at(true),
            at(false)
        );
        Step::plain("depends", detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    const KUBELET: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn a_named_network_inside_the_pod_space_is_a_place() {
        let places = pod_places(&nets(&["10.0.0.0/8"]), &nets(&["10.240.0.0/16"]), KUBELET);
        let addrs: Vec<String> = places.iter().map(|p| p.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.2", "10.240.0.1"]);
        let (v, why) = combine(&places, &[Verdict::Deny, Verdict::Allow]);
        assert_eq!(v, Verdict::Depends);
        assert_eq!(why.unwrap(), "allow when the client pod's address is in 10.240.0.0/16");
    }

    #[test]
    fn pod_networks_inside_a_named_network_are_one_place() {
        let places = pod_places(&nets(&["10.240.0.0/16"]), &nets(&["10.240.0.0/16"]), KUBELET);
        assert_eq!(places.len(), 1);
        assert_eq!(combine(&places, &[Verdict::Allow]), (Verdict::Allow, None));
    }

    #[test]
    fn exceptions_read_as_but_not() {
        let places = pod_places(&nets(&["10.0.0.0/8"]), &nets(&["10.1.0.0/16", "10.1.2.0/24"]), KUBELET);
        // 10.0.0.2 (outside both; 10.0.0.1 is the kubelet's), 10.1.0.1 (in the /16 only), 10.1.2.1 (in both).
        assert_eq!(places.len(), 3);
        let text = condition(&places, &[false, true, false]);
        assert_eq!(text, "allow when the client pod's address is in 10.1.0.0/16 but not in 10.1.2.0/24");
        let text = condition(&places, &[true, false, true]);
        assert_eq!(
            text,
            "allow when the client pod's address is in 0.0.0.0/0 but not in 10.1.0.0/16, or in 10.1.2.0/24"
        );
    }
}
