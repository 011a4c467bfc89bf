//! Hostname matching for routes with `hostnames`.

use crate::config::HostMatch;

/// How well a route's hostname matched; greater is better. The derived
/// order is the proxy's: any suffix match loses to any exact match, and
/// within a kind the longer pattern wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostScore {
    Suffix(usize),
    Exact(usize),
}

impl std::fmt::Display for HostScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostScore::Exact(n) => write!(f, "exact hostname ({n} chars)"),
            HostScore::Suffix(n) => write!(f, "wildcard hostname ({n} chars)"),
        }
    }
}

impl HostMatch {
    /// A Gateway API hostname: `*.example.com` becomes `Suffix("example.com")`
    /// (the convention documented on [`HostMatch::Suffix`]), anything else Exact.
    pub fn from_hostname(hostname: &str) -> Self {
        match hostname.strip_prefix("*.") {
            Some(suffix) => HostMatch::Suffix(suffix.to_string()),
            None => HostMatch::Exact(hostname.to_string()),
        }
    }
}

/// The host part of an authority: no userinfo, no port; an IPv6 literal
/// keeps its brackets.
pub(crate) fn authority_host(authority: &str) -> &str {
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.starts_with('[') {
        return hostport.find(']').map_or(hostport, |end| &hostport[..=end]);
    }
    hostport.split_once(':').map_or(hostport, |(host, _)| host)
}

/// `Some(None)`: the route has no hostnames, so it applies to every host
/// (and scores below any host match). `None`: the route does not apply.
pub(crate) fn route_host_score(hostnames: &[HostMatch], host: Option<&str>) -> Option<Option<HostScore>> {
    if hostnames.is_empty() {
        return Some(None);
    }
    // A request without an authority cannot satisfy a hostname constraint.
    let host = host.filter(|h| !h.is_empty())?;
    hostnames.iter().filter_map(|m| score(m, host)).max().map(Some)
}

fn score(m: &HostMatch, host: &str) -> Option<HostScore> {
    match m {
        HostMatch::Exact(exact) => {
            let host = strip_root_dot_unless(exact, host);
            exact.eq_ignore_ascii_case(host).then_some(HostScore::Exact(exact.len()))
        }
        HostMatch::Suffix(suffix) => {
            // The proxy strips labels one by one, each followed by a dot,
            // which amounts to: the host ends with "." + suffix, and so has
            // at least one label in front of it. Score = that length.
            let host = if suffix.is_empty() { host } else { strip_root_dot_unless(suffix, host) };
            let tail_len = suffix.len() + 1;
            let start = host.len().checked_sub(tail_len)?;
            let tail = host.get(start..)?;
            let dotted = tail.strip_prefix('.')?;
            dotted.eq_ignore_ascii_case(suffix).then_some(HostScore::Suffix(tail_len))
        }
    }
}

/// A fully qualified host (`example.com.`) matches a pattern written
/// without the root dot, but not the other way round.
fn strip_root_dot_unless<'h>(pattern: &str, host: &'h str) -> &'h str {
    if pattern.ends_with('.') { host } else { host.strip_suffix('.').unwrap_or(host) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_host_drops_port_and_userinfo() {
        assert_eq!(authority_host("example.com:8080"), "example.com");
        assert_eq!(authority_host("u:p@example.com:80"), "example.com");
        assert_eq!(authority_host("[::1]:8080"), "[::1]");
        assert_eq!(authority_host("web"), "web");
    }

    #[test]
    fn suffix_needs_a_label_in_front() {
        let m = HostMatch::Suffix("example.com".into());
        assert_eq!(score(&m, "example.com"), None);
        assert_eq!(score(&m, "a.example.com"), Some(HostScore::Suffix(12)));
        assert_eq!(score(&m, "b.a.EXAMPLE.com."), Some(HostScore::Suffix(12)));
        assert_eq!(score(&m, "aexample.com"), None);
    }

    #[test]
    fn rooted_patterns_need_rooted_hosts() {
        let m = HostMatch::Exact("example.com.".into());
        assert_eq!(score(&m, "example.com"), None);
        assert_eq!(score(&m, "example.com."), Some(HostScore::Exact(12)));
        let m = HostMatch::Suffix("example.com.".into());
        assert_eq!(score(&m, "a.example.com"), None);
        assert_eq!(score(&m, "a.example.com."), Some(HostScore::Suffix(13)));
    }
}
