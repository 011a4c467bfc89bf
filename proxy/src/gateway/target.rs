//! Names at the gateway: the local Service a mirror's name stands for, and
//! who a `forwarded` header says forwarded a request.

use crate::discovery::ServiceKey;
use crate::outbound::target::parse_service;
use http::HeaderValue;

/// The local Service port behind `authority`, which names a mirror of one
/// of this cluster's Services (`<service>-<cluster>.<ns>[.svc[.<domain>]][:port]`,
/// as the source cluster's service mirror named it: `mirrorServiceName`),
/// and its full name `<service>.<ns>.svc.<domain>:<port>` for `Host` and
/// `forwarded`. The mirror keeps the Service's ports, so the port stays.
pub fn local_service(authority: &str, cluster: &str, domain: &str) -> Result<(ServiceKey, String), String> {
    let mirror = parse_service(authority, domain, 80)?;
    let suffix = format!("-{cluster}");
    let name = match mirror.name.strip_suffix(&suffix) {
        Some(name) if !name.is_empty() && !cluster.is_empty() => name.to_string(),
        _ => return Err(format!("`{authority}` names no Service mirrored from cluster `{cluster}`")),
    };
    let domain = domain.trim_end_matches('.');
    let host = format!("{name}.{}.svc.{domain}:{}", mirror.namespace, mirror.port);
    Ok((ServiceKey { namespace: mirror.namespace, name, port: mirror.port }, host))
}

/// The `by=` of a `forwarded` header value (RFC 7239), as linkerd2-proxy's
/// `fwd_by` reads it: the first element's pairs only.
pub fn forwarded_by(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let first = text.split(',').next()?;
    first.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.eq_ignore_ascii_case("by").then(|| v.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, port: u16) -> ServiceKey {
        ServiceKey { namespace: "emojivoto".into(), name: name.into(), port }
    }

    #[test]
    fn a_mirrors_name_leads_to_the_local_service() {
        let cases = [
            ("emoji-svc-west.emojivoto:8080", key("emoji-svc", 8080)),
            ("emoji-svc-west.emojivoto.svc.cluster.local:8080", key("emoji-svc", 8080)),
            ("voting-svc-west.emojivoto.svc", key("voting-svc", 80)),
        ];
        for (authority, want) in cases {
            let (got, host) = local_service(authority, "west", "cluster.local").unwrap();
            assert_eq!(got, want, "{authority}");
            assert_eq!(host, format!("{}.emojivoto.svc.cluster.local:{}", want.name, want.port));
        }
    }

    #[test]
    fn names_that_are_no_mirror_of_this_cluster_are_refused() {
        for authority in [
            "emoji-svc.emojivoto:8080",
            "emoji-svc-east.emojivoto:8080",
            "-west.emojivoto:8080",
            "10.0.0.1:8080",
            "emoji-svc-west.emojivoto.svc.other.domain:8080",
            "",
        ] {
            assert!(local_service(authority, "west", "cluster.local").is_err(), "{authority}");
        }
    }

    #[test]
    fn forwarded_by_reads_the_first_elements_by() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(forwarded_by(&v("by=gw.id;for=web.id;host=h;proto=https")), Some("gw.id"));
        assert_eq!(forwarded_by(&v("for=web; By=\"gw.id\", by=other")), Some("gw.id"));
        assert_eq!(forwarded_by(&v("for=web")), None);
    }
}
