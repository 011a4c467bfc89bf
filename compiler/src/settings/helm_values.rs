//! Mesh settings from the repository's own Linkerd install: a Flux
//! HelmRelease of the `linkerd-control-plane` chart carries the values that
//! decide default policy, cluster networks and identities. meshc.yaml and
//! flags still win over them.

use super::SettingsFile;
use super::version::{LinkerdVersion, Mapped};
use crate::findings::{Code, Finding, Severity, Span};
use crate::load::RawObject;
use crate::load::objects::span_of;
use crate::load::yaml::{Node, Value};

const CHART: &str = "linkerd-control-plane";

/// Settings from the first HelmRelease of Linkerd's control-plane chart, if any.
pub fn from_helm_release(objects: &[RawObject]) -> Option<SettingsFile> {
    let release = flux_release_of_chart(objects, CHART)?;
    let spec = release.node.get("spec")?;
    let values = spec.get("values");
    let get = |path: &[&str]| -> Option<&Node> {
        let mut node = values?;
        for key in path {
            node = node.get(key)?;
        }
        Some(node)
    };
    let text = |path: &[&str]| get(path).and_then(scalar_text);
    let namespace = spec
        .get("targetNamespace")
        .or_else(|| release.node.get("metadata").and_then(|m| m.get("namespace")))
        .and_then(Node::as_str)
        .map(str::to_owned);
    Some(SettingsFile {
        default_inbound_policy: text(&["proxy", "defaultInboundPolicy"]),
        cluster_networks: text(&["clusterNetworks"]).map(|s| split_list(&s)),
        trust_domain: text(&["identityTrustDomain"]).or_else(|| text(&["clusterDomain"])),
        cluster_domain: text(&["clusterDomain"]),
        control_plane_namespace: namespace,
        probe_networks: get(&["policyController", "probeNetworks"]).map(list),
        egress_namespace: text(&["egress", "globalEgressNetworkNamespace"]),
        default_opaque_ports: text(&["proxy", "opaquePorts"]),
        default_skip_inbound_ports: text(&["proxyInit", "ignoreInboundPorts"]),
        service_account_token_projection: get(&["identity", "serviceAccountTokenProjection"]).and_then(bool_value),
        ..SettingsFile::default()
    })
}

/// The first Flux HelmRelease among `objects` whose chart is `chart`
/// (by name, or a repository path ending in it).
pub(crate) fn flux_release_of_chart<'a>(objects: &'a [RawObject], chart: &str) -> Option<&'a RawObject> {
    objects.iter().find(|o| {
        o.kind == "HelmRelease"
            && o.api_version.starts_with("helm.toolkit.fluxcd.io/")
            && chart_name(&o.node).is_some_and(|c| c == chart || c.ends_with(&format!("/{chart}")))
    })
}

fn chart_name(node: &Node) -> Option<&str> {
    node.get("spec")?.get("chart")?.get("spec")?.get("chart")?.as_str()
}

fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bool_value(node: &Node) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => None,
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()
}

/// probeNetworks is a YAML list in the chart, but a comma string is accepted too.
fn list(node: &Node) -> Vec<String> {
    match &node.value {
        Value::Seq(items) => items.iter().filter_map(scalar_text).collect(),
        _ => scalar_text(node).map(|s| split_list(&s)).unwrap_or_default(),
    }
}

/// The chart version of the repository's Linkerd control plane, and where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartVersion {
    /// `HelmRelease NS/NAME` or `Application NS/NAME`, for messages.
    pub creator: String,
    /// The version field, or the object when it has none.
    pub span: Span,
    /// None: no version given (Flux installs the newest chart).
    pub version: Option<String>,
}

/// The chart version of the first Flux HelmRelease (`spec.chart.spec.version`)
/// or Argo CD Application (`targetRevision` of the source naming the chart)
/// of `linkerd-control-plane`.
pub fn chart_version(objects: &[RawObject]) -> Option<ChartVersion> {
    objects.iter().find_map(|o| {
        let meta = |k: &str| o.node.get("metadata").and_then(|m| m.get(k)).and_then(Node::as_str);
        // Named only for the two kinds that can say it (every object is looked at).
        let id = || format!("{}/{}", meta("namespace").unwrap_or("default"), meta("name").unwrap_or("?"));
        let (creator, version) = if o.kind == "HelmRelease" && o.api_version.starts_with("helm.toolkit.fluxcd.io/") {
            chart_name(&o.node).filter(|c| is_linkerd_chart(c))?;
            let spec = o.node.get("spec")?.get("chart")?.get("spec")?;
            (format!("HelmRelease {}", id()), spec.get("version"))
        } else if o.kind == "Application" && o.api_version.starts_with("argoproj.io/") {
            (format!("Application {}", id()), argo_revision(o.node.get("spec")?)?)
        } else {
            return None;
        };
        let span = version.map_or_else(|| o.span(), |n| span_of(o.source, n));
        Some(ChartVersion { creator, span, version: version.and_then(scalar_text) })
    })
}

fn is_linkerd_chart(name: &str) -> bool {
    name == CHART || name.ends_with(&format!("/{CHART}"))
}

/// `Some(revision)` when `source` or one of `sources` is the Linkerd chart.
fn argo_revision(spec: &Node) -> Option<Option<&Node>> {
    let many = match spec.get("sources").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().collect(),
        _ => Vec::new(),
    };
    spec.get("source")
        .into_iter()
        .chain(many)
        .find(|s| s.get("chart").and_then(Node::as_str).is_some_and(is_linkerd_chart))
        .map(|s| s.get("targetRevision"))
}

/// Which release the rules follow: an explicit `linkerdVersion` wins, else
/// the chart version maps to one; the finding says which and from where.
pub fn apply_chart_version(
    settings: &mut super::Settings,
    explicit: bool,
    chart: &ChartVersion,
    findings: &mut Vec<Finding>,
) {
    // Without a version Flux installs the newest chart: the newest release meshc models stands for it.
    let mapped = match &chart.version {
        Some(v) => LinkerdVersion::from_chart(v),
        None => Ok(Mapped { version: settings.linkerd_version, note: Some("no version: the newest chart".to_owned()) }),
    };
    let of = match &chart.version {
        Some(v) => format!("chart {CHART} {v} of {}", chart.creator),
        None => format!("chart {CHART} of {}", chart.creator),
    };
    let finding = match (explicit, mapped) {
        (true, Ok(m)) if m.version.minor == settings.linkerd_version.minor => return,
        (true, _) => {
            let msg = format!("Linkerd {}: linkerdVersion is set, and wins over {of}", settings.linkerd_version);
            Finding::new(Code::LinkerdVersion, chart.span, msg)
        }
        (false, Ok(m)) => {
            settings.linkerd_version = m.version;
            let note = m.note.map_or(String::new(), |n| format!(" ({n})"));
            let msg = format!("Linkerd {} from {of}: version-dependent rules follow it{note}", m.version);
            Finding::new(Code::LinkerdVersion, chart.span, msg)
        }
        (false, Err(e)) => {
            let msg = format!("{of}: {e}; rules follow Linkerd {}, the newest meshc models", settings.linkerd_version);
            Finding::new(Code::LinkerdVersion, chart.span, msg)
                .severity(Severity::Warning)
                .hint("set linkerdVersion in meshc.yaml to the release the cluster runs")
        }
    };
    findings.push(finding);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::objects::objects_of;

    const FLUX: &str = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: linkerd, namespace: linkerd}\nspec:\n  chart:\n    spec:\n      chart: linkerd-control-plane\n      version: 1.16.11\n";
    const ARGO: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: linkerd-cp, namespace: argocd}\nspec:\n  sources:\n  - {repoURL: https://helm.linkerd.io/edge, chart: linkerd-crds, targetRevision: 2025.10.7}\n  - {repoURL: https://helm.linkerd.io/edge, chart: linkerd-control-plane, targetRevision: 2025.4.4}\n";

    fn chart_of(text: &str) -> ChartVersion {
        let (objects, _) = objects_of(0, "cp.yaml", text);
        chart_version(&objects).expect("a Linkerd control-plane release")
    }

    #[test]
    fn flux_and_argo_chart_versions_are_read_where_written() {
        let flux = chart_of(FLUX);
        assert_eq!(
            (flux.creator.as_str(), flux.version.as_deref(), flux.span.line),
            ("HelmRelease linkerd/linkerd", Some("1.16.11"), 8)
        );
        // The CRD chart's revision is not the control plane's.
        let argo = chart_of(ARGO);
        assert_eq!(
            (argo.creator.as_str(), argo.version.as_deref(), argo.span.line),
            ("Application argocd/linkerd-cp", Some("2025.4.4"), 7)
        );
    }

    #[test]
    fn an_explicit_setting_wins_and_an_unknown_chart_is_reported() {
        let mut findings = Vec::new();
        let mut s = super::super::Settings::default();
        apply_chart_version(&mut s, false, &chart_of(FLUX), &mut findings);
        assert_eq!(s.linkerd_version.minor, 14);
        assert!(
            findings[0]
                .message
                .starts_with("Linkerd 2.14 from chart linkerd-control-plane 1.16.11 of HelmRelease linkerd/linkerd")
        );
        let mut s = super::super::Settings { linkerd_version: LinkerdVersion::new(12), ..Default::default() };
        apply_chart_version(&mut s, true, &chart_of(FLUX), &mut findings);
        assert_eq!(s.linkerd_version.minor, 12, "meshc.yaml wins over the chart");
        assert!(findings[1].message.contains("wins over chart"));
        let mut s = super::super::Settings::default();
        apply_chart_version(&mut s, false, &chart_of(&FLUX.replace("1.16.11", "1.18.11-edge")), &mut findings);
        assert_eq!((s.linkerd_version.minor, findings[2].severity), (19, Severity::Warning));
    }
}
