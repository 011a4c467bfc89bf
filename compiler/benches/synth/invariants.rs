//! The 50 invariants over `edges` that measure invariant cost on the
//! synthetic repository, in four families: the issue's namespace isolation
//! (most fail early, on a kubelet edge), the same made to hold (every edge
//! walked), "no unmeshed client reaches an HTTP route" per namespace, and
//! database isolation on port 5432. Shared by the in-process test and `check_scale
//! --invariants`, which writes them as a MeshTest for the process benchmark.

use std::fmt::Write as _;

/// The invariants, over the repository's namespace names (sorted).
pub fn fifty(namespaces: &[String]) -> Vec<String> {
    let ns = |i: usize| &namespaces[i % namespaces.len()];
    let mut out = Vec::new();
    for i in 0..10 {
        out.push(format!(
            r#"edges.all(e, e.client.namespace == e.target.namespace || e.target.namespace == "{}")"#,
            ns(i)
        ));
    }
    for i in 0..15 {
        out.push(format!(
            r#"edges.all(e, e.client.namespace == e.target.namespace || e.client.kind == "kubelet" || e.target.namespace != "absent-{i}")"#
        ));
    }
    for i in 0..15 {
        out.push(format!(
            r#"!edges.exists(e, e.client.kind == "unmeshed" && e.target.namespace == "{}" && e.route.startsWith("HTTPRoute"))"#,
            ns(10 + i)
        ));
    }
    for i in 0..10 {
        out.push(format!(
            r#"edges.all(e, e.target.port != 5432 || e.client.namespace == e.target.namespace || e.client.kind != "workload" || e.target.namespace == "{}")"#,
            ns(30 + i)
        ));
    }
    out
}

/// The namespaces `generate` writes for `cfg`, sorted as the test sorts them.
pub fn namespaces(cfg: &super::Config) -> Vec<String> {
    let mut out: Vec<String> = (0..cfg.namespaces.max(1)).map(super::namespace_name).collect();
    out.sort();
    out
}

/// A MeshTest file holding `invariants`, one per entry, as YAML.
pub fn meshtest_yaml(invariants: &[String]) -> String {
    let mut out = String::from(
        "apiVersion: meshc.io/v1alpha1\nkind: MeshTest\nmetadata: {name: scale-invariants}\nspec:\n  invariants:\n",
    );
    for (i, expr) in invariants.iter().enumerate() {
        // Single-quoted YAML: the expressions hold double quotes, never single ones.
        assert!(!expr.contains('\''), "invariant {i} holds a single quote");
        let _ = writeln!(out, "  - name: scale-{i:02}\n    expr: '{expr}'");
    }
    out
}
