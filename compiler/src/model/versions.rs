//! Fields that only some served versions have. The API server prunes a field
//! the version's schema lacks, so writing it there silently does nothing:
//! `accessPolicy` on a v1beta2 Server is dropped and the Server denies.

use super::{Resource, Spec};
use crate::findings::{Code, Finding};

pub fn check(r: &Resource, findings: &mut Vec<Finding>) {
    match &r.spec {
        Spec::Server(s) => {
            let v = r.version.as_str();
            if s.access_policy.is_some() && v != "v1beta3" {
                pruned(
                    r,
                    &["spec", "accessPolicy"],
                    "v1beta3",
                    "the Server keeps its default `deny`",
                    findings,
                );
            }
            if s.external_workload_selector.is_some() && matches!(v, "v1alpha1" | "v1beta1") {
                pruned(
                    r,
                    &["spec", "externalWorkloadSelector"],
                    "v1beta2",
                    "it selects no external workloads",
                    findings,
                );
            }
        }
        Spec::HttpRoute(h) if r.group == "policy.linkerd.io" => {
            let v = r.version.as_str();
            for (i, rule) in h.rules.iter().flatten().enumerate() {
                let idx = i.to_string();
                if rule.timeouts.is_some() && v != "v1beta3" {
                    pruned(
                        r,
                        &["spec", "rules", &idx, "timeouts"],
                        "v1beta3",
                        "no timeout applies",
                        findings,
                    );
                }
                if !rule.backend_refs.is_empty() && matches!(v, "v1alpha1" | "v1beta1") {
                    pruned(
                        r,
                        &["spec", "rules", &idx, "backendRefs"],
                        "v1beta2",
                        "requests go to the parent",
                        findings,
                    );
                }
            }
        }
        _ => {}
    }
}

fn pruned(r: &Resource, path: &[&str], since: &str, effect: &str, findings: &mut Vec<Finding>) {
    let field = path.last().copied().unwrap_or_default();
    let msg = format!(
        "`{field}` does not exist in {}/{} {} (added in {since}); the API server drops it, so {effect}",
        r.group, r.version, r.id.kind
    );
    let hint = format!("use apiVersion {}/{since} or later", r.group);
    findings.push(
        Finding::new(Code::SchemaViolation, r.span_at(path), msg)
            .resource(r.id.clone())
            .hint(hint),
    );
}
