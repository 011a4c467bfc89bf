//! Port lists as `mesh-proxy init` takes them (`4190,5000-5010`) and as
//! iptables' multiport match wants them (`4190,5000:5010`, at most 15
//! ports per rule, a range counting two), as linkerd2-proxy-init's
//! `ParsePortRange` and `makeMultiportDestinations` do.

use std::fmt;

/// One port or an inclusive range, lower ≤ upper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl fmt::Display for PortRange {
    /// iptables' spelling: `a` or `a:b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high { write!(f, "{}", self.low) } else { write!(f, "{}:{}", self.low, self.high) }
    }
}

impl PortRange {
    pub fn single(port: u16) -> PortRange {
        PortRange { low: port, high: port }
    }

    /// What the range costs in one multiport rule.
    fn weight(&self) -> usize {
        if self.low == self.high { 1 } else { 2 }
    }
}

/// iptables' limit of ports per multiport match.
const MULTIPORT_LIMIT: usize = 15;

/// Parses a comma list of ports and `a-b` ranges (spaces around entries
/// allowed, empty entries ignored). Unlike Linkerd, which logs a bad entry
/// and drops it, a bad entry is an error: the command fails before it
/// changes anything.
pub fn parse_list(list: &str) -> Result<Vec<PortRange>, String> {
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).map(parse_entry).collect()
}

fn parse_entry(entry: &str) -> Result<PortRange, String> {
    let port =
        |s: &str| s.trim().parse::<u16>().map_err(|_| format!("`{entry}` is not a port (0-65535) or a range a-b"));
    match entry.split_once('-') {
        None => Ok(PortRange::single(port(entry)?)),
        Some((low, high)) => {
            let (low, high) = (port(low)?, port(high)?);
            if low > high {
                return Err(format!("`{entry}`: the range's lower bound is above its upper bound"));
            }
            Ok(PortRange { low, high })
        }
    }
}

/// The `--dports` arguments of the multiport rules that cover `ports`, in
/// order, each within iptables' limit.
pub fn multiport_batches(ports: &[PortRange]) -> Vec<String> {
    let mut batches = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut weight = 0;
    for p in ports {
        if weight + p.weight() > MULTIPORT_LIMIT {
            batches.push(current.join(","));
            current.clear();
            weight = 0;
        }
        current.push(p.to_string());
        weight += p.weight();
    }
    if !current.is_empty() {
        batches.push(current.join(","));
    }
    batches
}
