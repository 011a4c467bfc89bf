//! Which Service port a request or listener names.

use crate::discovery::ServiceKey;
use http::uri::Authority;
use mesh_proxy_api::names::is_dns_label;
use std::sync::{Arc, Mutex};

/// Parses `name.ns.svc.<cluster_domain>[:port]`, `name.ns.svc[:port]` or
/// `name.ns[:port]` (port 80 when absent; a trailing dot is allowed).
/// Anything else (an IP, an external name, another cluster domain) is not
/// a Service this proxy can route to.
pub fn parse_service(authority: &str, cluster_domain: &str, default_port: u16) -> Result<ServiceKey, String> {
    let bad = |why: &str| {
        Err(format!(
            "`{authority}` is not a Service name ({why}); expected name.namespace[.svc[.{cluster_domain}]][:port]"
        ))
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(port) if port != 0 => (h, port),
            _ => return bad("bad port"),
        },
        None => (authority, default_port),
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let domain = cluster_domain.strip_suffix('.').unwrap_or(cluster_domain).to_ascii_lowercase();
    let suffix_ok = match labels.len() {
        0..=1 => false,
        2 => true,
        3 => labels[2] == "svc",
        _ => labels[2] == "svc" && labels[3..].join(".") == domain,
    };
    if !suffix_ok {
        return bad("unknown suffix");
    }
    if !labels[..2].iter().all(|l| is_dns_label(l)) {
        return bad("name and namespace must be DNS labels");
    }
    Ok(ServiceKey { namespace: labels[1].to_string(), name: labels[0].to_string(), port })
}

/// The authority a connection's requests name, parsed once: an app's
/// keep-alive connection names the same Service request after request,
/// and [`parse_service`] lowercases, splits and checks it (some 3,000
/// instructions) where comparing it with the last one costs a few dozen.
#[derive(Debug, Default)]
pub struct AuthorityCache {
    last: Mutex<Option<Arc<Named>>>,
}

/// What an authority names.
#[derive(Debug)]
pub struct Named {
    text: String,
    /// The Service port, or why the authority names none.
    pub service: Result<ServiceKey, String>,
    /// The authority as a URI part for the request that leaves (`None`
    /// when it is none).
    pub authority: Option<Authority>,
}

impl AuthorityCache {
    /// What `text` names, the connection's last answer when it named the same.
    pub fn named(&self, text: &str, cluster_domain: &str) -> Arc<Named> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(named) = last.as_ref().filter(|n| n.text == text) {
            return named.clone();
        }
        let named = Arc::new(Named {
            text: text.to_string(),
            service: parse_service(text, cluster_domain, 80),
            authority: Authority::try_from(text).ok(),
        });
        *last = Some(named.clone());
        named
    }
}

/// `namespace/name:port`, how logs and errors name a Service port.
pub fn label(key: &ServiceKey) -> String {
    format!("{}/{}:{}", key.namespace, key.name, key.port)
}

/// The metrics `target` of a Service port: its [`label`] when the config
/// lists it, else the one value all others share (the authority is
/// whatever the app sent; see `crate::metrics`).
pub fn metric_label(outbound: &mesh_proxy_api::Outbound, key: &ServiceKey) -> String {
    let listed =
        outbound.service(&key.namespace, &key.name).is_some_and(|s| s.ports.iter().any(|p| p.port == key.port));
    if listed { label(key) } else { crate::metrics::UNLISTED.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, ns: &str, port: u16) -> ServiceKey {
        ServiceKey { namespace: ns.into(), name: name.into(), port }
    }

    #[test]
    fn accepts_the_service_name_forms() {
        let d = "cluster.local";
        assert_eq!(parse_service("podinfo.test.svc.cluster.local:9898", d, 80), Ok(key("podinfo", "test", 9898)));
        assert_eq!(parse_service("podinfo.test.svc.cluster.local.", d, 80), Ok(key("podinfo", "test", 80)));
        assert_eq!(parse_service("podinfo.test.svc:9898", d, 80), Ok(key("podinfo", "test", 9898)));
        assert_eq!(parse_service("Podinfo.Test", d, 8080), Ok(key("podinfo", "test", 8080)));
        assert_eq!(
            parse_service("web.emojivoto.svc.corp.example:80", "corp.example", 1),
            Ok(key("web", "emojivoto", 80))
        );
    }

    /// A connection's next request naming the same authority gets the
    /// same parse; another authority is parsed afresh and replaces it.
    #[test]
    fn a_connection_parses_a_repeated_authority_once() {
        let cache = AuthorityCache::default();
        let first = cache.named("Web.Shop.svc.cluster.local:8080", "cluster.local");
        assert_eq!(first.service, Ok(key("web", "shop", 8080)));
        assert_eq!(first.authority.as_ref().map(|a| a.as_str()), Some("Web.Shop.svc.cluster.local:8080"));
        assert!(Arc::ptr_eq(&first, &cache.named("Web.Shop.svc.cluster.local:8080", "cluster.local")));
        let other = cache.named("api.shop:80", "cluster.local");
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.service, Ok(key("api", "shop", 80)));
        let bad = cache.named("bad host", "cluster.local");
        assert!(bad.service.is_err() && bad.authority.is_none(), "{bad:?}");
        assert!(Arc::ptr_eq(&bad, &cache.named("bad host", "cluster.local")), "a refusal is remembered too");
    }

    #[test]
    fn rejects_everything_else_with_the_expected_forms() {
        let d = "cluster.local";
        for bad in [
            "10.0.0.1:80",
            "podinfo",
            "example.com.au",
            "a.b.svc.other.domain",
            "a.b:x",
            "a.b:0",
            "_a.b",
            "a..b",
            "[::1]:80",
        ] {
            let err = parse_service(bad, d, 80).unwrap_err();
            assert!(err.contains("name.namespace"), "{bad}: {err}");
        }
        // A two-label external name is read as name.namespace: discovery
        // then has no endpoints and the request gets 503.
        assert!(parse_service("example.com", d, 80).is_ok());
    }
}
