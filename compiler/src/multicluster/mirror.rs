//! The service mirror, offline: which target Services each Link exports, and
//! the mirrored (`<svc>-<target>`) and federated (`<svc>-federated`) Services
//! that appear in the source cluster (`cluster_watcher.go`:
//! `mirrorServiceName`, `federatedServiceName`, `getMirrorServiceLabels`,
//! `getCommonServiceAnnotations`).

use super::link::{Link, Mode};
use crate::findings::ResourceId;
use crate::model::core::{ServicePort, ServiceSpec};
use crate::model::meta::{LabelSelector, ObjectMeta};
use crate::model::{Resource, Spec, Typed};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A target Service that a Link mirrors into its source cluster.
#[derive(Clone, Debug)]
pub struct Export {
    pub link: usize,
    pub mode: Mode,
    pub target_cluster: usize,
    /// Index of the Service in the target cluster's resources.
    pub service: usize,
    pub namespace: String,
    /// The Service's name in the target cluster.
    pub name: String,
    /// `<name>-<targetClusterName>`, in the source cluster.
    pub mirror: String,
}

/// A `<svc>-federated` Service of one cluster and its members.
#[derive(Clone, Debug)]
pub struct Federated {
    pub cluster: usize,
    pub namespace: String,
    pub name: String,
    /// (cluster, Service resource index) of each member, the local one first.
    pub members: Vec<(usize, usize)>,
}

/// The label the local service mirror federates by (chart
/// `localServiceMirror.federatedServiceSelector`).
fn local_federated_selector() -> LabelSelector {
    LabelSelector {
        match_labels: BTreeMap::from([(super::link::FEDERATED_LABEL.to_owned(), "member".to_owned())]),
        match_expressions: Vec::new(),
    }
}

/// Every export of every Link whose target the repository holds. A mirror
/// appears only where its namespace exists in the source cluster.
pub fn exports(links: &[Link], clusters: &[&[Resource]], target_of: &[Option<usize>]) -> Vec<Export> {
    let namespaces: Vec<BTreeSet<&str>> = clusters.iter().map(|r| namespaces(r)).collect();
    let mut out = Vec::new();
    for (l, link) in links.iter().enumerate() {
        let Some(t) = target_of[l] else { continue };
        for (i, svc) in clusters[t].iter().enumerate() {
            let Spec::Service(spec) = &svc.spec else { continue };
            if is_headless(spec) || !namespaces[link.source_cluster].contains(svc.namespace()) {
                continue;
            }
            let Some(mode) = link.exports(&svc.meta.labels) else { continue };
            out.push(Export {
                link: l,
                mode,
                target_cluster: t,
                service: i,
                namespace: svc.namespace().to_owned(),
                name: svc.name().to_owned(),
                mirror: format!("{}-{}", svc.name(), link.target),
            });
        }
    }
    out
}

/// Federated Services per source cluster: a member for each Link whose
/// target's Service matches its federated selector, and the cluster's own
/// Service when it matches the local service mirror's (`local[c]`, from the
/// cluster's multicluster values, else the chart's default; only where the
/// multicluster extension runs, i.e. the cluster holds a Link).
pub fn federated(
    links: &[Link],
    clusters: &[&[Resource]],
    target_of: &[Option<usize>],
    local: &[Option<LabelSelector>],
) -> Vec<Federated> {
    let default = local_federated_selector();
    let mut by_key: BTreeMap<(usize, String, String), Vec<(usize, usize)>> = BTreeMap::new();
    let sources: BTreeSet<usize> = links.iter().map(|l| l.source_cluster).collect();
    for &c in &sources {
        let local = local.get(c).and_then(Option::as_ref).unwrap_or(&default);
        for (i, svc) in federable(clusters[c]) {
            if crate::resolve::selector::matches(local, &svc.meta.labels) {
                by_key.entry((c, svc.namespace().to_owned(), svc.name().to_owned())).or_default().push((c, i));
            }
        }
    }
    for (l, link) in links.iter().enumerate() {
        let Some(t) = target_of[l] else { continue };
        for (i, svc) in federable(clusters[t]) {
            if link.federates(&svc.meta.labels) {
                let key = (link.source_cluster, svc.namespace().to_owned(), svc.name().to_owned());
                by_key.entry(key).or_default().push((t, i));
            }
        }
    }
    by_key
        .into_iter()
        .map(|((cluster, namespace, name), members)| Federated { cluster, namespace, name, members })
        .collect()
}

fn federable(resources: &[Resource]) -> impl Iterator<Item = (usize, &Resource)> {
    resources.iter().enumerate().filter(|(_, r)| matches!(&r.spec, Spec::Service(s) if !is_headless(s)))
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

fn namespaces(resources: &[Resource]) -> BTreeSet<&str> {
    resources.iter().map(|r| if r.id.kind == "Namespace" { r.name() } else { r.namespace() }).collect()
}

/// The mirror Service the service mirror creates for `export`: the target's
/// ports (name, protocol, port, targetPort only), no selector, labels and
/// annotations copied minus the excluded ones. Its place is the Link's.
pub fn mirror_service(export: &Export, link: &Link, target: &Resource) -> Option<Resource> {
    let Spec::Service(spec) = &target.spec else { return None };
    let mut labels = copied_labels(&target.meta.labels, &link.spec.excluded_labels);
    labels.insert("mirror.linkerd.io/mirrored-service".to_owned(), "true".to_owned());
    labels.insert("mirror.linkerd.io/cluster-name".to_owned(), link.target.clone());
    if export.mode == Mode::PodToPod {
        labels.insert("multicluster.linkerd.io/remote-discovery".to_owned(), link.target.clone());
        labels.insert("multicluster.linkerd.io/remote-service".to_owned(), export.name.clone());
    }
    let mut annotations = copied_annotations(&target.meta.annotations, &link.spec.excluded_annotations);
    let domain = link.spec.target_cluster_domain.as_deref().unwrap_or("cluster.local");
    annotations.insert(
        "mirror.linkerd.io/remote-svc-fq-name".to_owned(),
        format!("{}.{}.svc.{domain}", export.name, export.namespace),
    );
    let meta = ObjectMeta {
        name: Some(export.mirror.clone()),
        namespace: Some(export.namespace.clone()),
        labels,
        annotations,
        ..ObjectMeta::default()
    };
    Some(service(meta, mirrored_ports(&spec.ports), link))
}

/// `<name>-federated` in the member's namespace, labels, annotations and
/// ports from the oldest member (`first`), placed at the Link that federates it.
pub fn federated_service(f: &Federated, first: &Resource, link: &Link) -> Option<Resource> {
    let Spec::Service(spec) = &first.spec else { return None };
    let mut labels = copied_labels(&first.meta.labels, &link.spec.excluded_labels);
    labels.insert("mirror.linkerd.io/mirrored-service".to_owned(), "true".to_owned());
    let annotations = copied_annotations(&first.meta.annotations, &link.spec.excluded_annotations);
    let meta = ObjectMeta {
        name: Some(format!("{}-federated", f.name)),
        namespace: Some(f.namespace.clone()),
        labels,
        annotations,
        ..ObjectMeta::default()
    };
    Some(service(meta, mirrored_ports(&spec.ports), link))
}

fn service(meta: ObjectMeta, ports: Vec<ServicePort>, link: &Link) -> Resource {
    let id = ResourceId {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
    };
    let spec = ServiceSpec { selector: None, ports, type_: Some("ClusterIP".to_owned()), cluster_ip: None };
    let typed = Typed { id, group: String::new(), version: "v1".to_owned(), meta, spec: Spec::Service(spec) };
    Resource::new(typed, link.span.source, link.node.clone())
}

fn mirrored_ports(ports: &[ServicePort]) -> Vec<ServicePort> {
    ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: p.port,
            target_port: p.target_port.clone(),
            protocol: p.protocol.clone(),
            app_protocol: None,
        })
        .collect()
}

/// `excludedLabels` / `excludedAnnotations` entries: exact keys, or `prefix/*`.
fn excluded(key: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == p,
    })
}

fn copied_labels(labels: &BTreeMap<String, String>, exclude: &[String]) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !k.starts_with("mirror.linkerd.io") && !excluded(k, exclude))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn copied_annotations(annotations: &BTreeMap<String, String>, exclude: &[String]) -> BTreeMap<String, String> {
    const DROPPED: &[&str] = &["service.kubernetes.io/topology-aware-hints", "service.kubernetes.io/topology-mode"];
    annotations
        .iter()
        .filter(|(k, _)| !DROPPED.contains(&k.as_str()))
        .filter(|(k, _)| k.as_str() == "config.linkerd.io/opaque-ports" || !excluded(k, exclude))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Mirror names that no export produced, by source cluster: (namespace, name) → Export index.
pub fn by_source(exports: &[Export], links: &[Link]) -> HashMap<(usize, String, String), usize> {
    exports
        .iter()
        .enumerate()
        .map(|(i, e)| ((links[e.link].source_cluster, e.namespace.clone(), e.mirror.clone()), i))
        .collect()
}
