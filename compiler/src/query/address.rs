//! Choosing a representative address: one inside a network and outside
//! every narrower network that policies name, so that it behaves like every
//! other address of the same place.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address as a number within its family, for stepping across boundaries.
fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(v: u128, like: IpAddr) -> Option<IpAddr> {
    match like {
        IpAddr::V4(_) => u32::try_from(v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        IpAddr::V6(_) => Some(IpAddr::V6(Ipv6Addr::from(v))),
    }
}

/// An address in `inside` that none of `avoid` contains, ignoring entries
/// of `avoid` that contain all of `inside` (they cannot be avoided). Prefers
/// the first host address; otherwise the lowest address just past an
/// avoided network. `None` when the avoided networks cover `inside`.
///
/// Complete: any free address range starts at `inside`'s first address or
/// right after an avoided network, and both kinds are candidates.
pub fn pick(inside: &IpNet, avoid: &[IpNet]) -> Option<IpAddr> {
    let family = |n: &IpNet| n.network().is_ipv4() == inside.network().is_ipv4();
    let avoid: Vec<&IpNet> = avoid.iter().filter(|a| family(a) && !a.contains(inside)).collect();
    let (lo, hi) = (to_u128(inside.network()), to_u128(inside.broadcast()));
    let mut candidates: Vec<u128> = Vec::with_capacity(avoid.len() + 2);
    // The first host, then past each avoided network, and the network
    // address itself last (a /32 has only that).
    candidates.push(lo.saturating_add(1).min(hi));
    let mut past: Vec<u128> = avoid.iter().filter_map(|a| to_u128(a.broadcast()).checked_add(1)).collect();
    past.sort_unstable();
    candidates.extend(past);
    candidates.push(lo);
    candidates
        .into_iter()
        .filter(|v| (lo..=hi).contains(v))
        .filter_map(|v| from_u128(v, inside.network()))
        .find(|ip| !avoid.iter().any(|a| a.contains(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn first_host_when_nothing_is_named() {
        assert_eq!(pick(&net("10.0.0.0/8"), &[]), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(pick(&net("192.0.2.7/32"), &[]), Some("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn steps_past_named_networks_and_ignores_supernets() {
        let avoid = [net("10.0.0.0/16"), net("10.1.0.0/16"), net("0.0.0.0/0")];
        assert_eq!(pick(&net("10.0.0.0/8"), &avoid), Some("10.2.0.0".parse().unwrap()));
    }

    #[test]
    fn none_when_covered() {
        let avoid = [net("10.0.0.0/9"), net("10.128.0.0/9")];
        assert_eq!(pick(&net("10.0.0.0/8"), &avoid), None);
    }

    #[test]
    fn families_do_not_mix() {
        assert_eq!(pick(&net("fd00::/8"), &[net("10.0.0.0/8")]), Some("fd00::1".parse().unwrap()));
    }
}
