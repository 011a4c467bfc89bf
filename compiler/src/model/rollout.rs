//! Argo Rollouts (`argoproj.io/v1alpha1` Rollout) as workloads.
//!
//! A Rollout runs pods like a Deployment, through ReplicaSets it owns. Its pod
//! template is `spec.template`, or, with `spec.workloadRef`, the template of
//! the Deployment, ReplicaSet or PodTemplate it names in its own namespace
//! (argo-rollouts `rollout/templateref.go`, `informerBasedTemplateResolver.Resolve`:
//! it copies that object's template, and its selector when the Rollout has
//! none). A Rollout with both is invalid (`template must be empty for
//! workload reference rollout`), and one whose reference cannot be resolved
//! gets no template: either way the controller creates no pods.
//!
//! What the controller adds to the pods (`rollouts-pod-template-hash`) and
//! what Linkerd's injector adds (`linkerd.io/proxy-replicaset` with the
//! ReplicaSet's generated name, since a Rollout is not an owner kind the
//! injector follows past the ReplicaSet) are values only a running cluster
//! knows; meshc leaves them out rather than guess them.

use super::core::{PodTemplate, RolloutSpec};
use super::decode::{Seg, node_at};
use super::{Resource, Spec, split_api_version};
use crate::findings::{Code, Finding, Referent};
use crate::load::RawObject;
use crate::load::objects::span_of;
use crate::load::yaml::Node;

/// The Rollout's own template, or `None` (with a finding) when it is invalid
/// as Argo Rollouts validates it. With a `workloadRef` the template is filled
/// in by `resolve_refs` once every object is decoded.
pub fn template(raw: &RawObject, spec: RolloutSpec, findings: &mut Vec<Finding>) -> Option<PodTemplate> {
    match (spec.workload_ref, spec.template) {
        (Some(_), Some(t)) if !is_empty(&t) => {
            let msg = "Rollout has both spec.template and spec.workloadRef; Argo Rollouts rejects it (template must be \
                       empty for workload reference rollout) and creates no pods";
            let segs = ["spec", "template"].map(|s| Seg::Key(s.to_owned()));
            findings.push(Finding::new(Code::SchemaViolation, span_of(raw.source, node_at(&raw.node, &segs)), msg));
            None
        }
        (Some(_), _) => Some(PodTemplate::default()),
        (None, t) => Some(t.unwrap_or_default()),
    }
}

/// Argo's `EmptyTemplate`: a template with nothing in it.
fn is_empty(t: &PodTemplate) -> bool {
    t.metadata.labels.is_empty()
        && t.metadata.annotations.is_empty()
        && t.spec.containers.is_empty()
        && t.spec.init_containers.is_empty()
}

/// Gives each Rollout with a `workloadRef` the template it names; drops the
/// ones whose reference the controller could not resolve (they run no pods).
pub fn resolve_refs(resources: &mut Vec<Resource>, findings: &mut Vec<Finding>) {
    let rollouts: Vec<usize> =
        (0..resources.len()).filter(|&i| is_rollout(&resources[i]) && workload_ref(&resources[i]).is_some()).collect();
    let mut dropped = Vec::new();
    for i in rollouts {
        match referenced_template(resources, i) {
            Ok(template) => resources[i].spec = Spec::Workload(Box::new(template)),
            Err(finding) => {
                if !resources[i].ignores(finding.code) {
                    findings.push(*finding);
                }
                dropped.push(i);
            }
        }
    }
    let mut index = 0;
    resources.retain(|_| {
        index += 1;
        !dropped.contains(&(index - 1))
    });
}

fn is_rollout(r: &Resource) -> bool {
    r.group == "argoproj.io" && r.id.kind == "Rollout"
}

fn workload_ref(r: &Resource) -> Option<&Node> {
    r.node.get("spec")?.get("workloadRef")
}

/// The template the Rollout at `i` runs, or the finding that says why it runs none.
fn referenced_template(resources: &[Resource], i: usize) -> Result<PodTemplate, Box<Finding>> {
    let r = &resources[i];
    let field = |k: &str| workload_ref(r).and_then(|n| n.get(k)).and_then(Node::as_str).unwrap_or("");
    let (group, _) = split_api_version(field("apiVersion"));
    let (kind, name) = (field("kind"), field("name"));
    let at = |k: &str| {
        let segs = ["spec", "workloadRef", k].map(|s| Seg::Key(s.to_owned()));
        span_of(r.source, node_at(&r.node, &segs))
    };
    let finding = |code, k: &str, msg: String| Box::new(Finding::new(code, at(k), msg).resource(r.id.clone()));
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet") => {}
        ("", "PodTemplate") => {
            let msg = format!(
                "Rollout {}/{} runs the pods of PodTemplate {name}, which meshc does not read: its pods are not \
                 seen, so Servers selecting them and their verdicts as clients and servers are not checked",
                r.namespace(),
                r.name()
            );
            return Err(finding(Code::UnmodelledResource, "kind", msg));
        }
        _ => {
            let msg = format!(
                "Rollout workloadRef kind `{group}/{kind}` is not one Argo Rollouts resolves (apps/Deployment, \
                 apps/ReplicaSet, PodTemplate): the Rollout gets no template and creates no pods"
            );
            return Err(finding(Code::SchemaViolation, "kind", msg));
        }
    }
    // The last definition wins, as with duplicates.
    let target = resources
        .iter()
        .rev()
        .find(|t| t.group == "apps" && t.id.kind == kind && t.namespace() == r.namespace() && t.name() == name);
    match target.map(|t| &t.spec) {
        Some(Spec::Workload(template)) => Ok((**template).clone()),
        _ => {
            let msg = format!(
                "Rollout {}/{} refers to {kind} {}/{name}, which does not exist: Argo Rollouts cannot resolve its \
                 pod template, so it creates no pods",
                r.namespace(),
                r.name(),
                r.namespace()
            );
            let mut f = finding(Code::UnresolvedReference, "name", msg);
            f.referent = Some(Referent::object(kind, r.namespace(), name));
            Err(f)
        }
    }
}
