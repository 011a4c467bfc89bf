//! Kubernetes' name grammar, where meshc and mesh-proxy both need it
//! (emitted object names and namespaces; Service names in authorities).

/// Longest DNS-1123 label.
pub const MAX_DNS_LABEL: usize = 63;

/// Whether `s` is a DNS-1123 label, as Kubernetes validates namespaces and
/// Service names: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DNS_LABEL
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::is_dns_label;

    #[test]
    fn dns_labels_as_kubernetes_validates_them() {
        // Leading digits are allowed in labels (RFC 1123 relaxed RFC 952).
        for ok in ["a", "web", "podinfo-canary", "0abc", "a-b-c", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok} is a DNS label");
        }
        // Upper case, dots and underscores belong to other grammars
        // (subdomains, annotations), never to a label.
        for bad in ["", "-a", "a-", "Web", "a.b", "a_b", "a b", "é", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad} is not a DNS label");
        }
    }
}
