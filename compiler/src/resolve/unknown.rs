//! Findings whose truth depends on objects the repository does not hold: a
//! Helm release meshc does not render may create, in its namespace, the pods
//! a Server selects, the ServiceAccount an identity names, the Service a
//! reference or backend names. Such a finding is not certain: it drops to
//! info and says which release may make it false.

use crate::findings::{Code, Finding, Severity};
use crate::load::releases::Release;

/// Codes that a release's objects can make false.
const DEPENDS_ON_RELEASES: &[Code] =
    &[Code::ServerSelectsNothing, Code::IdentityMatchesNothing, Code::UnresolvedReference, Code::BackendUnresolved];

/// Downgrades the findings a release in their namespace may make false.
pub fn downgrade(findings: &mut [Finding], releases: &[Release], default_namespace: &str) {
    if releases.is_empty() {
        return;
    }
    let namespace = |r: &Release| r.namespace.clone().unwrap_or_else(|| default_namespace.to_owned());
    for f in findings.iter_mut().filter(|f| DEPENDS_ON_RELEASES.contains(&f.code)) {
        // The namespace of the object looked for first, then the finding's own.
        let looked_for = releases.iter().find(|r| names_object_in(f, &namespace(r)));
        let own = || releases.iter().find(|r| f.code != Code::IdentityMatchesNothing && is_in(f, &namespace(r)));
        let Some(release) = looked_for.or_else(own) else {
            continue;
        };
        f.severity = Severity::Info;
        f.message
            .push_str(&format!(" (may be created by {}, which meshc does not render: not certain)", release.creator));
    }
}

fn is_in(f: &Finding, namespace: &str) -> bool {
    f.resource.as_ref().and_then(|id| id.namespace.as_deref()) == Some(namespace)
}

/// Whether the message names an object in `namespace`: for an identity
/// `SA.NS.serviceaccount...` (the resource's own name would mislead), else
/// a `NS/NAME` reference.
fn names_object_in(f: &Finding, namespace: &str) -> bool {
    if f.code == Code::IdentityMatchesNothing {
        return f.message.contains(&format!(".{namespace}.serviceaccount."));
    }
    f.message.contains(&format!(" {namespace}/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{ResourceId, Span};

    fn finding(code: Code, namespace: &str, message: &str) -> Finding {
        let id = ResourceId {
            api_version: "policy.linkerd.io/v1alpha1".into(),
            kind: "MeshTLSAuthentication".into(),
            namespace: Some(namespace.into()),
            name: "m".into(),
        };
        Finding::new(code, Span::default(), message).resource(id)
    }

    #[test]
    fn only_findings_about_a_release_namespace_drop_to_info() {
        let releases = [Release { creator: "HelmRelease flux-system/web".into(), namespace: Some("web".into()) }];
        let mut findings = vec![
            // The identity is in ns other: the resource's own namespace web does not matter.
            finding(Code::IdentityMatchesNothing, "web", "web/m names identity a.other.serviceaccount.identity.x"),
            finding(Code::IdentityMatchesNothing, "other", "other/m names identity a.web.serviceaccount.identity.x"),
            finding(Code::ServerSelectsNothing, "web", "Server s selects no pod in namespace web"),
            finding(Code::ServerSelectsNothing, "batch", "Server s selects no pod in namespace batch"),
            finding(Code::SchemaViolation, "web", "bad"),
        ];
        downgrade(&mut findings, &releases, "default");
        let severities: Vec<_> = findings.iter().map(|f| f.severity).collect();
        let schema = Code::SchemaViolation.entry().severity;
        assert_eq!(
            severities,
            [Severity::Info, Severity::Info, Severity::Info, Code::ServerSelectsNothing.entry().severity, schema]
        );
        assert!(!findings[0].message.contains("may be created"));
        assert!(findings[2].message.contains("may be created by HelmRelease flux-system/web"));
    }
}
