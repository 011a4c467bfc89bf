//! Argo CD Applications (`argoproj.io`) whose source is a path of the
//! repository (`spec.source.path`, each of `spec.sources[].path`): they
//! apply that directory as a Flux Kustomization does, but only its own
//! files unless `directory.recurse: true` (Argo CD's default), and with no
//! variable substitution. Helm sources are rendered (`render/helm.rs`) or
//! stay unknown context (`releases.rs`).

use super::{Kustomization, normalise};
use crate::load::RawObject;
use crate::load::yaml::{Node, Value};

pub fn is_application(o: &RawObject) -> bool {
    o.kind == "Application" && o.api_version.starts_with("argoproj.io/")
}

/// One entry per path source of the Application `o` (object index `object`).
pub fn applications(object: usize, o: &RawObject) -> Vec<Kustomization> {
    let Some(spec) = o.node.get("spec") else {
        return Vec::new();
    };
    let meta = |k: &str| o.node.get("metadata").and_then(|m| m.get(k)).and_then(Node::as_str);
    let id = format!("Argo CD Application {}/{}", meta("namespace").unwrap_or("argocd"), meta("name").unwrap_or("?"));
    let many = match spec.get("sources").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().collect(),
        _ => Vec::new(),
    };
    let sources = spec.get("source").into_iter().chain(many);
    sources
        .filter(|s| s.get("chart").is_none())
        .filter_map(|s| {
            let path = s.get("path").and_then(Node::as_str)?;
            let recurse = s.get("directory").and_then(|d| d.get("recurse")).map(|r| &r.value);
            Some(Kustomization {
                object,
                id: id.clone(),
                path: normalise(path),
                vars: None,
                recurse: recurse == Some(&Value::Bool(true)),
            })
        })
        .collect()
}
