//! `egress:HOST:PORT` references: a destination outside the cluster, by
//! DNS name or IP address (`egress:[2001:db8::1]:443` for IPv6).

use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressHost {
    Ip(IpAddr),
    /// A DNS name: its address is not in git, only that it is outside the
    /// cluster networks (a name cannot resolve into the pod CIDR).
    Dns(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRef {
    pub host: EgressHost,
    pub port: u16,
}

impl EgressRef {
    /// The host as written (brackets dropped).
    pub fn host_text(&self) -> String {
        match &self.host {
            EgressHost::Ip(ip) => ip.to_string(),
            EgressHost::Dns(name) => name.clone(),
        }
    }
}

impl std::fmt::Display for EgressRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            EgressHost::Ip(IpAddr::V6(ip)) => write!(f, "egress:[{ip}]:{}", self.port),
            _ => write!(f, "egress:{}:{}", self.host_text(), self.port),
        }
    }
}

/// `None` when `spec` is not an egress reference; `Some(Err)` when it is one written wrong.
pub fn parse(spec: &str) -> Option<Result<EgressRef, String>> {
    let rest = spec.strip_prefix("egress:")?;
    Some(parse_host_port(rest).map_err(|e| format!("`{spec}`: {e} (expected egress:HOST:PORT)")))
}

fn parse_host_port(rest: &str) -> Result<EgressRef, String> {
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (ip, port) = v6.split_once("]:").ok_or("an IPv6 address is written [ADDRESS]:PORT")?;
            (ip, port)
        }
        None => rest.rsplit_once(':').ok_or("no port")?,
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{port}` is not a port"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(EgressRef { host: EgressHost::Ip(ip), port });
    }
    if is_dns_name(host) {
        return Ok(EgressRef { host: EgressHost::Dns(host.to_ascii_lowercase()), port });
    }
    Err(format!("`{host}` is neither an IP address nor a DNS name"))
}

/// RFC 1123 host names: dot-separated labels of letters, digits and `-`,
/// each 1-63 characters, not starting or ending with `-`.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_ports() {
        let dns = parse("egress:HTTPBin.org:443").unwrap().unwrap();
        assert_eq!(dns, EgressRef { host: EgressHost::Dns("httpbin.org".into()), port: 443 });
        let v4 = parse("egress:203.0.113.9:80").unwrap().unwrap();
        assert_eq!(v4.host, EgressHost::Ip("203.0.113.9".parse().unwrap()));
        let v6 = parse("egress:[2001:db8::1]:443").unwrap().unwrap();
        assert_eq!(v6.to_string(), "egress:[2001:db8::1]:443");
        assert!(parse("deploy/ns/web:80").is_none());
        for bad in ["egress:httpbin.org", "egress:httpbin.org:0", "egress:bad_host:80", "egress:[::1:80", "egress::80"]
        {
            assert!(parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}
