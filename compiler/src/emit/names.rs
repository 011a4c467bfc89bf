//! Kubernetes names for emitted objects: DNS-1123 labels, unique per
//! namespace, derived only from the workload so that they are stable.

use mesh_proxy_api::WorkloadRef;
use mesh_proxy_api::envelope::digest;
use std::collections::BTreeMap;

pub use mesh_proxy_api::names::is_dns_label;

/// Longest DNS-1123 label. Object names may be subdomains (253), but a
/// label-sized name also fits file names, label values and tools that
/// build names from names.
pub const MAX_NAME: usize = mesh_proxy_api::names::MAX_DNS_LABEL;

/// `kind-name`, lower-cased, every other character as `-`, runs of `-`
/// collapsed, trimmed.
fn base_name(w: &WorkloadRef) -> String {
    let mut out = String::new();
    for c in format!("{}-{}", w.kind, w.name).chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if c != '-' || !out.ends_with('-') {
            out.push(c);
        }
    }
    out.trim_matches('-').to_owned()
}

/// The base name cut to leave room for `-<8 hex>`, plus a hash of the full
/// workload reference, so distinct workloads keep distinct names.
fn hashed(base: &str, w: &WorkloadRef) -> String {
    let h = digest(format!("{}/{}/{}", w.kind, w.namespace, w.name).as_bytes());
    let hex = &h["sha256:".len().."sha256:".len() + 8];
    let keep = base.get(..MAX_NAME - 9).unwrap_or(base).trim_end_matches('-');
    if keep.is_empty() { format!("w-{hex}") } else { format!("{keep}-{hex}") }
}

/// Object names for `workloads`, in the same order. A name is the plain
/// `kind-name` when that is a valid label that no other workload in the
/// namespace maps to; otherwise it gets a hash suffix. Neither choice
/// depends on input order.
pub fn object_names(workloads: &[&WorkloadRef]) -> Vec<String> {
    let bases: Vec<String> = workloads.iter().map(|w| base_name(w)).collect();
    let mut count: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (w, b) in workloads.iter().zip(&bases) {
        *count.entry((w.namespace.as_str(), b.as_str())).or_default() += 1;
    }
    workloads
        .iter()
        .zip(&bases)
        .map(|(w, b)| {
            let unique = count[&(w.namespace.as_str(), b.as_str())] == 1;
            if unique && is_dns_label(b) && b == &format!("{}-{}", w.kind, w.name).to_ascii_lowercase() {
                b.clone()
            } else {
                hashed(b, w)
            }
        })
        .collect()
}

/// A label value for `s`: itself when valid (≤ 63 of `[A-Za-z0-9._-]`,
/// alphanumeric at both ends), else a hashed form, since a label that the
/// API server rejects would fail the whole apply.
pub fn label_value(s: &str) -> String {
    let valid = s.len() <= MAX_NAME
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric());
    if valid {
        return s.to_owned();
    }
    let w = WorkloadRef { kind: String::new(), namespace: String::new(), name: s.to_owned() };
    hashed(&base_name(&w), &w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(kind: &str, ns: &str, name: &str) -> WorkloadRef {
        WorkloadRef { kind: kind.into(), namespace: ns.into(), name: name.into() }
    }

    #[test]
    fn plain_names_stay_readable() {
        let a = w("Deployment", "shop", "web");
        assert_eq!(object_names(&[&a]), ["deployment-web"]);
    }

    #[test]
    fn collisions_and_long_names_get_distinct_hashed_names() {
        let a = w("Deployment", "shop", "web.v1");
        let b = w("Deployment", "shop", "web-v1");
        let other_ns = w("Deployment", "prod", "web-v1");
        let long = w("StatefulSet", "shop", &"x".repeat(250));
        let names = object_names(&[&a, &b, &other_ns, &long]);
        assert_ne!(names[0], names[1]);
        assert!(names[0].starts_with("deployment-web-v1-") && names[1].starts_with("deployment-web-v1-"));
        assert_eq!(names[2], "deployment-web-v1", "no collision in another namespace");
        assert!(names.iter().all(|n| is_dns_label(n)), "{names:?}");
        // Independent of order.
        let again = object_names(&[&long, &other_ns, &b, &a]);
        assert_eq!(again, [names[3].clone(), names[2].clone(), names[1].clone(), names[0].clone()]);
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("web.v1"), "web.v1");
        let long = label_value(&"a".repeat(100));
        assert!(long.len() <= MAX_NAME && long.starts_with("aaa"), "{long}");
        assert!(label_value("-x-").chars().next().unwrap().is_ascii_alphanumeric());
    }
}
