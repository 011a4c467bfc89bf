//! Cross-cluster findings that need only the manifests (before resolve):
//! Service names that look mirrored but are not, and export labels no Link selects.

use super::Links;
use super::link::{EXPORT_LABEL, FEDERATED_LABEL};
use crate::findings::{Code, Finding, Span};
use crate::model::route::ParentRef;
use crate::model::{Resource, Spec};
use crate::pipeline::Prepared;
use std::collections::HashSet;

/// A Service reference of a route: (namespace, name, where).
struct ServiceRef {
    namespace: String,
    name: String,
    span: Span,
}

/// Routes in a source cluster that name `<svc>-<cluster>` or
/// `<svc>-federated` where no Link creates it: `mirror-unresolved`, in place
/// of the `backend-unresolved` that would only say the Service is missing.
pub fn mirror_names(prepared: &[Prepared], links: &Links, names: &[&str]) -> Vec<(usize, Finding)> {
    let mut out = Vec::new();
    for (c, p) in prepared.iter().enumerate() {
        let services: HashSet<(&str, &str)> = p
            .resources
            .iter()
            .filter(|r| matches!(r.spec, Spec::Service(_)))
            .map(|r| (r.namespace(), r.name()))
            .collect();
        let mut suffixes: Vec<&str> = names.iter().copied().filter(|n| *n != names[c]).collect();
        suffixes.extend(links.links.iter().filter(|l| l.source_cluster == c).map(|l| l.target.as_str()));
        for r in &p.resources {
            for sref in service_refs(r) {
                if services.contains(&(sref.namespace.as_str(), sref.name.as_str())) {
                    continue;
                }
                if let Some(why) = why_unmirrored(&sref, c, prepared, links, names, &suffixes) {
                    let msg = format!(
                        "Service {}/{} does not exist in cluster {}: {why}",
                        sref.namespace, sref.name, names[c]
                    );
                    out.push((c, Finding::new(Code::MirrorUnresolved, sref.span, msg)));
                }
            }
        }
    }
    out
}

fn why_unmirrored(
    sref: &ServiceRef,
    c: usize,
    prepared: &[Prepared],
    links: &Links,
    names: &[&str],
    suffixes: &[&str],
) -> Option<String> {
    if let Some(base) = sref.name.strip_suffix("-federated") {
        return Some(format!(
            "no Link of cluster {} federates a Service {}/{base} (label `{FEDERATED_LABEL}: member` selected by a \
             Link's federatedServiceSelector)",
            names[c], sref.namespace
        ));
    }
    let target = suffixes.iter().find(|s| sref.name.len() > s.len() + 1 && sref.name.ends_with(&format!("-{s}")))?;
    let base = &sref.name[..sref.name.len() - target.len() - 1];
    let link = links.links.iter().position(|l| l.source_cluster == c && l.target == *target);
    let held = names.iter().position(|n| n == target);
    Some(match (link, held) {
        (None, _) => format!(
            "it would be the mirror of {}/{base} from cluster {target}, but cluster {} has no Link to {target}",
            sref.namespace, names[c]
        ),
        (Some(_), Some(t)) if !has_service(&prepared[t].resources, &sref.namespace, base) => {
            format!("cluster {target} has no Service {}/{base} to mirror", sref.namespace)
        }
        (Some(_), Some(_)) => format!(
            "cluster {target}'s Service {}/{base} is not exported: no selector of the Link to {target} matches its \
             labels (`{EXPORT_LABEL}: \"true\"` for gateway mode, `remote-discovery` for pod-to-pod, as \
             `linkerd multicluster link-gen` writes them)",
            sref.namespace
        ),
        // Target not in the repository: the Link's finding says so; nothing is known.
        (Some(_), None) => return None,
    })
}

fn has_service(resources: &[Resource], namespace: &str, name: &str) -> bool {
    resources.iter().any(|r| matches!(r.spec, Spec::Service(_)) && r.namespace() == namespace && r.name() == name)
}

fn is_service(group: Option<&str>, kind: Option<&str>) -> bool {
    group.is_none_or(str::is_empty) && kind.is_none_or(|k| k == "Service")
}

/// The fields of a parentRef or backendRef that name a Service.
struct Named<'a> {
    group: Option<&'a str>,
    kind: Option<&'a str>,
    name: &'a str,
    namespace: Option<&'a str>,
}

macro_rules! named {
    ($r:expr) => {
        Named {
            group: $r.group.as_deref(),
            kind: $r.kind.as_deref(),
            name: &$r.name,
            namespace: $r.namespace.as_deref(),
        }
    };
}

fn service_refs(r: &Resource) -> Vec<ServiceRef> {
    let (parents, backends): (&[ParentRef], Vec<Vec<Named>>) = match &r.spec {
        Spec::HttpRoute(s) => (
            &s.parent_refs,
            s.effective_rules().iter().map(|x| x.backend_refs.iter().map(|b| named!(b)).collect()).collect(),
        ),
        Spec::GrpcRoute(s) => {
            (&s.parent_refs, s.rules.iter().map(|x| x.backend_refs.iter().map(|b| named!(b)).collect()).collect())
        }
        Spec::TlsRoute(s) => {
            (&s.parent_refs, s.rules.iter().map(|x| x.backend_refs.iter().map(|b| named!(b)).collect()).collect())
        }
        Spec::TcpRoute(s) => {
            (&s.parent_refs, s.rules.iter().map(|x| x.backend_refs.iter().map(|b| named!(b)).collect()).collect())
        }
        _ => return Vec::new(),
    };
    let at = |path: &[&str], n: &Named| ServiceRef {
        namespace: n.namespace.unwrap_or(r.namespace()).to_owned(),
        name: n.name.to_owned(),
        span: r.span_at(path),
    };
    let mut out = Vec::new();
    for (i, p) in parents.iter().enumerate() {
        let n = named!(p);
        if is_service(n.group, n.kind) {
            out.push(at(&["spec", "parentRefs", &i.to_string(), "name"], &n));
        }
    }
    for (ri, rule) in backends.iter().enumerate() {
        for (bi, n) in rule.iter().enumerate().filter(|(_, n)| is_service(n.group, n.kind)) {
            out.push(at(&["spec", "rules", &ri.to_string(), "backendRefs", &bi.to_string(), "name"], n));
        }
    }
    out
}

/// Services labelled for export or federation that no Link to their
/// cluster selects (`isExported`, `isRemoteDiscovery`,
/// `isFederatedServiceMember` all false).
pub fn unselected_exports(prepared: &[Prepared], links: &Links, names: &[&str]) -> Vec<(usize, Finding)> {
    let mut out = Vec::new();
    for (t, p) in prepared.iter().enumerate() {
        let to_t: Vec<&super::link::Link> =
            links.links.iter().zip(&links.target_of).filter(|(_, to)| **to == Some(t)).map(|(l, _)| l).collect();
        for r in p.resources.iter().filter(|r| matches!(r.spec, Spec::Service(_))) {
            for key in [EXPORT_LABEL, FEDERATED_LABEL] {
                let Some(value) = r.meta.labels.get(key) else { continue };
                let selected = if key == EXPORT_LABEL {
                    to_t.iter().any(|l| l.exports(&r.meta.labels).is_some())
                } else {
                    to_t.iter().any(|l| l.federates(&r.meta.labels))
                };
                if selected {
                    continue;
                }
                let whom = if to_t.is_empty() {
                    format!("no Link in the repository targets cluster {}", names[t])
                } else {
                    format!("no selector of the {} Link(s) to cluster {} matches it", to_t.len(), names[t])
                };
                let msg = format!(
                    "Service {}/{} is labelled `{key}: {value}` but {whom}: nothing mirrors it",
                    r.namespace(),
                    r.name()
                );
                out.push((t, Finding::new(Code::ExportUnselected, r.span_at(&["metadata", "labels", key]), msg)));
            }
        }
    }
    out
}

/// A `mirror-unresolved` says more than the `backend-unresolved` or
/// `unresolved-reference` resolve reports on the same line: keep the first only.
pub fn drop_superseded(outcomes: &mut [crate::pipeline::Outcome]) {
    for o in outcomes {
        let lines: HashSet<(u32, u32)> = o
            .findings
            .iter()
            .filter(|f| f.code == Code::MirrorUnresolved)
            .map(|f| (f.span.source, f.span.line))
            .collect();
        if lines.is_empty() {
            continue;
        }
        o.findings.retain(|f| {
            !(matches!(f.code, Code::BackendUnresolved | Code::UnresolvedReference)
                && lines.contains(&(f.span.source, f.span.line)))
        });
    }
}
