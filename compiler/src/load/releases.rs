//! Helm releases the repository declares: Flux HelmReleases and Argo CD
//! Applications with a Helm source. Those `render::helm` cannot render
//! (chart elsewhere, no helm) stay unrendered: what they create (workloads,
//! Services, ServiceAccounts) is unknown to meshc; later stages consult this
//! list before they report as certain a finding that such objects could
//! make false (DESIGN: "unknown context").

use super::RawObject;
use super::yaml::{Node, Value};

/// A release whose objects meshc cannot see, and the namespace they land in.
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    /// `HelmRelease NS/NAME` or `Application NS/NAME`, for messages.
    pub creator: String,
    /// None: the namespace objects without one get (`defaultNamespace`).
    pub namespace: Option<String>,
    /// Why meshc did not render it, for messages.
    pub why: Option<String>,
}

/// The release object `o` declares, if it is one.
pub(crate) fn release_of(o: &RawObject) -> Option<Release> {
    let spec = o.node.get("spec")?;
    let meta = |k: &str| o.node.get("metadata").and_then(|m| m.get(k)).and_then(Node::as_str);
    let id = format!("{}/{}", meta("namespace").unwrap_or("default"), meta("name").unwrap_or("?"));
    if o.kind == "HelmRelease" && o.api_version.starts_with("helm.toolkit.fluxcd.io/") {
        let namespace = text(spec, "targetNamespace").or_else(|| meta("namespace")).map(str::to_owned);
        return Some(Release { creator: format!("HelmRelease {id}"), namespace, why: None });
    }
    if o.kind == "Application" && o.api_version.starts_with("argoproj.io/") && has_helm_source(spec) {
        return application(o);
    }
    None
}

/// The release an Argo CD Application makes when a source of it is a
/// chart (Argo CD also takes a path holding a Chart.yaml as one).
pub(crate) fn application(o: &RawObject) -> Option<Release> {
    let spec = o.node.get("spec")?;
    let meta = |k: &str| o.node.get("metadata").and_then(|m| m.get(k)).and_then(Node::as_str);
    let id = format!("{}/{}", meta("namespace").unwrap_or("default"), meta("name").unwrap_or("?"));
    let namespace = spec.get("destination").and_then(|d| text(d, "namespace")).map(str::to_owned);
    Some(Release { creator: format!("Application {id}"), namespace, why: None })
}

fn text<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    node.get(key).and_then(Node::as_str).filter(|s| !s.is_empty())
}

/// `source` or any of `sources` names a chart or carries Helm parameters.
fn has_helm_source(spec: &Node) -> bool {
    let is_helm = |s: &Node| s.get("chart").is_some() || s.get("helm").is_some();
    let many = match spec.get("sources").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().any(is_helm),
        _ => false,
    };
    many || spec.get("source").is_some_and(is_helm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::objects::objects_of;

    #[test]
    fn flux_and_argo_helm_releases_are_found() {
        let text = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: podinfo, namespace: flux-system}\nspec: {targetNamespace: apps, chart: {spec: {chart: podinfo}}}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web, namespace: argocd}\nspec:\n  destination: {namespace: web}\n  sources: [{repoURL: x, path: k8s}, {repoURL: y, chart: web, targetRevision: 1.0.0}]\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: plain, namespace: argocd}\nspec: {destination: {namespace: p}, source: {repoURL: x, path: k8s}}\n";
        let (objects, _) = objects_of(0, "r.yaml", text);
        let found: Vec<Release> = objects.iter().filter_map(release_of).collect();
        let got: Vec<_> = found.iter().map(|r| (r.creator.as_str(), r.namespace.as_deref())).collect();
        assert_eq!(got, [("HelmRelease flux-system/podinfo", Some("apps")), ("Application argocd/web", Some("web"))]);
    }
}
