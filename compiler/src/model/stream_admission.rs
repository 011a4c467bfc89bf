//! What the API server (the Gateway API CRD schema of TLSRoute and
//! TCPRoute v1alpha2) and Linkerd's admission webhook
//! (`policy-controller/runtime/src/admission.rs`, `Validate<TlsRouteSpec>`
//! and `Validate<TcpRouteSpec>`) reject. A rejected route never exists in
//! the cluster, so it is left out of the analysis.

use super::Resource;
use super::stream_route::{StreamBackendRef, StreamRoute};
use crate::findings::{Code, Finding};
use crate::model::route::ParentRef;

/// The CRD's list bounds.
const MAX_RULES: usize = 16;
const MAX_BACKENDS: usize = 16;
const MAX_HOSTNAMES: usize = 16;
const MAX_PARENTS: usize = 32;
const MAX_WEIGHT: i64 = 1_000_000;

/// False when the API server or the webhook rejects the route.
pub fn admit(r: &Resource, route: StreamRoute<'_>, findings: &mut Vec<Finding>) -> bool {
    let mut c = Checker { r, kind: route.kind(), ok: true, findings };
    c.rules(route);
    for (i, h) in route.hostnames().iter().enumerate() {
        if !is_sni_hostname(h) {
            let msg = format!("hostname `{h}` is not a lowercase DNS name, optionally prefixed by `*.`");
            c.reject(&["spec", "hostnames", &i.to_string()], msg, "API server");
        }
    }
    if route.hostnames().len() > MAX_HOSTNAMES {
        c.reject(&["spec", "hostnames"], format!("more than {MAX_HOSTNAMES} hostnames"), "API server");
    }
    c.parents(route.parent_refs());
    let ok = c.ok;
    // The webhook's port rule for EgressNetwork parents is the same for every route kind.
    super::egress_admission::route_parent_ports(r, route.parent_refs(), findings) && ok
}

struct Checker<'a> {
    r: &'a Resource,
    kind: &'static str,
    ok: bool,
    findings: &'a mut Vec<Finding>,
}

impl Checker<'_> {
    fn reject(&mut self, path: &[&str], what: String, by: &str) {
        self.ok = false;
        let msg = format!(
            "{} {}: {what}; the {by} rejects it, so it routes nothing and is left out of the analysis",
            self.kind,
            self.r.name()
        );
        self.findings.push(Finding::new(Code::SchemaViolation, self.r.span_at(path), msg).resource(self.r.id.clone()));
    }

    fn rules(&mut self, route: StreamRoute<'_>) {
        let rules = route.rules();
        match rules.len() {
            0 => {
                self.reject(&["spec", "rules"], "`rules` is empty (at least one is required)".to_owned(), "API server")
            }
            1 => {}
            n if n > MAX_RULES => {
                self.reject(&["spec", "rules"], format!("{n} rules (at most {MAX_RULES})"), "API server");
            }
            n => {
                let msg = format!("{n} rules; Linkerd supports a single rule only");
                self.reject(&["spec", "rules", "1"], msg, "Linkerd admission webhook");
            }
        }
        for (k, rule) in rules.iter().enumerate() {
            let at = ["spec", "rules", &k.to_string(), "backendRefs"];
            match rule.backend_refs.len() {
                0 => {
                    self.reject(&at, "the rule has no backendRefs (at least one is required)".to_owned(), "API server")
                }
                n if n > MAX_BACKENDS => {
                    self.reject(&at, format!("{n} backendRefs (at most {MAX_BACKENDS})"), "API server");
                }
                _ => {}
            }
            for (j, b) in rule.backend_refs.iter().enumerate() {
                self.backend(k, j, b);
            }
        }
    }

    fn backend(&mut self, k: usize, j: usize, b: &StreamBackendRef) {
        let (k, j) = (k.to_string(), j.to_string());
        let at = |field: &'static str| ["spec", "rules", k.as_str(), "backendRefs", j.as_str(), field];
        if let Some(w) = b.weight.filter(|w| !(0..=MAX_WEIGHT).contains(w)) {
            self.reject(&at("weight"), format!("backend weight {w} is outside 0..={MAX_WEIGHT}"), "API server");
        }
        if let Some(p) = b.port.filter(|p| !(1..=65535).contains(p)) {
            self.reject(&at("port"), format!("backend port {p} is outside 1..=65535"), "API server");
        }
        // CEL rule of the CRD: a core Service reference must name its port.
        let core_service =
            b.group.as_deref().is_none_or(str::is_empty) && b.kind.as_deref().is_none_or(|k| k == "Service");
        if core_service && b.port.is_none() {
            let msg = format!("backend Service {} has no port (Must have port for Service reference)", b.name);
            self.reject(&at("name"), msg, "API server");
        }
    }

    fn parents(&mut self, parents: &[ParentRef]) {
        if parents.len() > MAX_PARENTS {
            self.reject(&["spec", "parentRefs"], format!("more than {MAX_PARENTS} parentRefs"), "API server");
        }
        for (i, p) in parents.iter().enumerate() {
            let i = i.to_string();
            if let Some(port) = p.port.filter(|p| !(1..=65535).contains(p)) {
                let msg = format!("parentRef port {port} is outside 1..=65535");
                self.reject(&["spec", "parentRefs", &i, "port"], msg, "API server");
            }
        }
    }
}

/// The CRD's hostname pattern: `^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`, at most 253 characters.
pub fn is_sni_hostname(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    h.len() <= 253 && name.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::is_sni_hostname;

    #[test]
    fn sni_hostnames_follow_the_crd_pattern() {
        for ok in ["a", "api.example.com", "*.example.com", "x-1.y", "0.example"] {
            assert!(is_sni_hostname(ok), "{ok}");
        }
        for bad in ["", "*.", "*", "Example.com", "a..b", "-a.b", "a-.b", "a.b.", "*.*.b", "a_b", "foo.*.com"] {
            assert!(!is_sni_hostname(bad), "{bad}");
        }
        assert!(!is_sni_hostname(&"a".repeat(254)));
    }
}
