//! Helm releases whose chart the repository holds: a Flux HelmRelease whose
//! chart is a path of a GitRepository source, an Argo CD Application whose
//! source path holds a chart (`helm:` settings or a Chart.yaml). Each is
//! rendered as the controller would, with `helm template RELEASE CHART
//! --namespace NS --values FILE... --set K=V...`, and its objects replace
//! the release's unknown context. Objects point at the chart template Helm
//! names in its `# Source:` comments (line 1: the template's own lines are
//! not those of the output).
//!
//! A release that is not rendered (chart elsewhere, no helm, helm failed)
//! stays unknown context (`releases.rs`), with the reason.

use super::helm_values::{self, Values};
use super::run::{self, Failure};
use super::sources::{Registry, Where};
use super::{Engine, Tools};
use crate::findings::{Code, Finding};
use crate::load::flux::vars::DataSources;
use crate::load::objects::objects_of;
use crate::load::releases::{self, Release};
use crate::load::yaml::{Key, Node, SAME_SOURCE, Value};
use crate::load::{Loaded, RawObject};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// One release to render.
struct Plan {
    /// The HelmRelease or Application, as an object index.
    object: usize,
    release: Release,
    /// The Helm release name.
    name: String,
    /// The chart directory, absolute, and as the repository path shown.
    chart: PathBuf,
    shown: String,
    values: Values,
}

/// Renders the releases among the objects whose chart is in the repository
/// (`at`: the checked directory, None for text input, where no chart is
/// read); returns those left unrendered, each with why.
pub fn render_releases(loaded: &mut Loaded, at: Option<&Where>, tools: &Tools) -> Vec<Release> {
    let data = DataSources::collect(&loaded.objects);
    let mut plans = Vec::new();
    let mut unrendered = Vec::new();
    for (object, o) in loaded.objects.iter().enumerate() {
        for p in plans_of(object, o, at, &data) {
            match p {
                Ok(plan) => plans.push(plan),
                Err(release) => unrendered.push(release),
            }
        }
    }
    let (Some(at), false) = (at, plans.is_empty()) else {
        return unrendered;
    };
    let Some(helm) = tools.helm() else {
        let why = match tools.helm {
            Engine::Never => "--helm-bin none",
            _ => "helm is not installed (not on PATH; --helm-bin names it)",
        };
        unrendered.extend(plans.into_iter().map(|p| Release { why: Some(why.to_owned()), ..p.release }));
        return unrendered;
    };
    let outputs: Vec<_> = plans.par_iter().map(|p| template(&helm, p, tools)).collect();
    let mut registry = Registry::new(loaded);
    let first_rendered = loaded.objects.len();
    let mut charts = Vec::new();
    for (plan, output) in plans.into_iter().zip(outputs) {
        match output {
            Ok(text) => {
                read_output(loaded, &mut registry, at, &plan, &text);
                charts.push(format!("{}/", plan.shown));
            }
            Err(failure) => {
                let o = &loaded.objects[plan.object];
                let msg = format!(
                    "`helm template {} {}` {failure}; none of the objects of this release are checked",
                    plan.name, plan.shown
                );
                loaded.findings.push(Finding::new(Code::RenderFailed, o.span(), msg));
                unrendered.push(Release { why: Some("helm template failed".to_owned()), ..plan.release });
            }
        }
    }
    drop_chart_files(loaded, first_rendered, &charts);
    unrendered
}

/// A rendered chart's files are Helm's input, not objects the cluster
/// gets as written: a template without template syntax was read as an
/// object and would be checked twice (`duplicate-resource`).
fn drop_chart_files(loaded: &mut Loaded, first_rendered: usize, charts: &[String]) {
    let mut rendered = loaded.objects.split_off(first_rendered);
    let sources = &loaded.sources;
    loaded.objects.retain(|o| !charts.iter().any(|c| sources[o.source as usize].name.starts_with(c.as_str())));
    loaded.objects.append(&mut rendered);
}

/// The releases object `o` declares: a plan for each chart in the
/// repository, else the release with why it cannot be rendered.
fn plans_of(object: usize, o: &RawObject, at: Option<&Where>, data: &DataSources) -> Vec<Result<Plan, Release>> {
    let argo = o.kind == "Application" && o.api_version.starts_with("argoproj.io/");
    let release = if argo { releases::application(o) } else { releases::release_of(o) };
    let Some(release) = release else { return Vec::new() };
    let Some(spec) = o.node.get("spec") else { return Vec::new() };
    let meta = |k: &str| o.node.get("metadata").and_then(|m| m.get(k)).and_then(Node::as_str);
    let unknown = |why: String| Err(Release { why: Some(why), ..release.clone() });
    if o.kind == "HelmRelease" {
        let chart = match flux_chart(spec) {
            Ok(path) => path,
            Err(why) => return vec![unknown(why)],
        };
        // Flux's default release name: `[targetNamespace-]name`.
        let name = text(spec, "releaseName").map(str::to_owned).unwrap_or_else(|| {
            let name = meta("name").unwrap_or_default();
            text(spec, "targetNamespace").map_or_else(|| name.to_owned(), |ns| format!("{ns}-{name}"))
        });
        let values = helm_values::flux(spec, meta("namespace"), data);
        return vec![plan(object, release, name, &chart, at, values)];
    }
    let many = match spec.get("sources").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for source in spec.get("source").into_iter().chain(many) {
        if let Some(chart) = text(source, "chart") {
            let repo = text(source, "repoURL").unwrap_or("?");
            out.push(unknown(format!("its chart {chart} comes from the Helm repository {repo}")));
            continue;
        }
        let Some(path) = text(source, "path") else { continue };
        let helm = source.get("helm");
        let has_chart = at.is_some_and(|at| chart_dir(at, path).is_some());
        if helm.is_none() && !has_chart {
            continue;
        }
        let name = helm.and_then(|h| text(h, "releaseName")).or(meta("name")).unwrap_or_default().to_owned();
        out.push(plan(object, release.clone(), name, path, at, Ok(helm_values::argo(helm))));
    }
    out
}

fn plan(
    object: usize,
    release: Release,
    name: String,
    chart: &str,
    at: Option<&Where>,
    values: Result<Values, String>,
) -> Result<Plan, Release> {
    let unknown = |why: String| Err(Release { why: Some(why), ..release.clone() });
    let Some(at) = at else {
        return unknown("meshc reads charts only when it checks a directory".to_owned());
    };
    let Some(dir) = chart_dir(at, chart) else {
        return unknown(format!("its chart path {chart} holds no Chart.yaml in the repository"));
    };
    let values = match values {
        Ok(v) => v,
        Err(why) => return unknown(why),
    };
    let shown = at.name_of(&dir).unwrap_or_else(|| chart.to_owned());
    Ok(Plan { object, release, name, chart: dir, shown, values })
}

/// The chart path of a HelmRelease whose chart is in a GitRepository, or
/// why it is not in the repository.
fn flux_chart(spec: &Node) -> Result<String, String> {
    if let Some(r) = spec.get("chartRef") {
        let (kind, name) = (text(r, "kind").unwrap_or("?"), text(r, "name").unwrap_or("?"));
        return Err(format!("its chart comes from {kind} {name} (spec.chartRef), not a path of the repository"));
    }
    let chart = spec.get("chart").and_then(|c| c.get("spec"));
    let path = chart.and_then(|c| text(c, "chart")).unwrap_or("?");
    let source = chart.and_then(|c| c.get("sourceRef"));
    let kind = source.and_then(|s| text(s, "kind")).unwrap_or("?");
    if kind != "GitRepository" {
        let name = source.and_then(|s| text(s, "name")).unwrap_or("?");
        return Err(format!("its chart {path} comes from {kind} {name}, not from the repository"));
    }
    Ok(path.to_owned())
}

/// The chart directory a repository path names, if it holds a Chart.yaml
/// inside the root. Paths are relative to the repository root.
fn chart_dir(at: &Where, path: &str) -> Option<PathBuf> {
    let path = crate::load::flux::normalise(path)?;
    let dir = at.root.join(path);
    (dir.join("Chart.yaml").is_file() && at.name_of(&dir).is_some()).then_some(dir)
}

fn text<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    node.get(key).and_then(Node::as_str).filter(|s| !s.is_empty())
}

/// Runs `helm template` for one plan, its inline values in a temporary file.
fn template(helm: &Path, p: &Plan, tools: &Tools) -> Result<String, Failure> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut args = vec!["template".to_owned(), p.name.clone(), p.chart.display().to_string()];
    if let Some(ns) = &p.release.namespace {
        args.extend(["--namespace".to_owned(), ns.clone()]);
    }
    for file in &p.values.files {
        args.extend(["--values".to_owned(), p.chart.join(file).display().to_string()]);
    }
    let tmp = std::env::temp_dir().join(format!(
        "meshc-helm-values-{}-{}.json",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    if let Some(inline) = &p.values.inline {
        std::fs::write(&tmp, inline.to_string()).map_err(|e| Failure::Start(format!("{}: {e}", tmp.display())))?;
        args.extend(["--values".to_owned(), tmp.display().to_string()]);
    }
    for (string, kv) in &p.values.set {
        args.extend([if *string { "--set-string" } else { "--set" }.to_owned(), kv.clone()]);
    }
    let result = run::run(helm, &args, &p.chart, tools.timeout);
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Reads what `helm template` printed for `plan`: each object in the
/// template file its `# Source:` comment names, in the release namespace.
fn read_output(loaded: &mut Loaded, registry: &mut Registry, at: &Where, plan: &Plan, output: &str) {
    let release = &loaded.objects[plan.object];
    let (release_source, release_at) = (release.source, release.span());
    // The chart's own files were read as skipped Helm templates and metadata.
    let prefix = format!("{}/", plan.shown);
    let sources = &loaded.sources;
    loaded.findings.retain(|f| {
        !(f.code == Code::SkippedFile
            && sources.get(f.span.source as usize).is_some_and(|s| s.name.starts_with(&prefix)))
    });
    for doc in documents(output) {
        let template = doc.lines().find_map(|l| l.strip_prefix("# Source: ")).map(str::trim);
        // `CHART/templates/x.yaml`: the chart's name, then the path in it.
        let file = template.and_then(|t| t.split_once('/')).map(|(_, rest)| plan.chart.join(rest));
        let source = file.filter(|f| f.is_file()).and_then(|f| registry.source(at, loaded, &f));
        let (objects, findings) =
            objects_of(source.unwrap_or(release_source), &format!("helm template {}", plan.name), doc);
        loaded.findings.extend(findings.into_iter().map(|f| Finding { span: release_at, ..f }));
        for mut o in objects {
            match source {
                Some(_) => pin(std::sync::Arc::make_mut(&mut o.node), (1, 1, 0, SAME_SOURCE)),
                None => pin(
                    std::sync::Arc::make_mut(&mut o.node),
                    (release_at.line, release_at.column, release_at.offset, SAME_SOURCE),
                ),
            }
            if let Some(ns) = &plan.release.namespace {
                default_namespace(&mut o, ns);
            }
            loaded.objects.push(RawObject { rendered_in: Some(release_source), ..o });
        }
    }
}

/// The documents of a multi-document output, split at `---` lines.
fn documents(output: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let (mut start, mut at) = (0, 0);
    for line in output.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(&output[start..at]);
            start = at + line.len();
        }
        at += line.len();
    }
    docs.push(&output[start..]);
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

/// Places every node and key of an object at one position.
fn pin(node: &mut Node, at: (u32, u32, u32, u32)) {
    (node.line, node.column, node.offset, node.source) = at;
    match &mut node.value {
        Value::Map(entries) => {
            for (key, value) in entries {
                (key.line, key.column, key.offset) = (at.0, at.1, at.2);
                pin(value, at);
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|i| pin(i, at)),
        _ => {}
    }
}

/// Kinds that have no namespace: Helm applies them as written.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "APIService",
    "IngressClass",
    "RuntimeClass",
];

/// Helm applies an object without a namespace in the release namespace.
fn default_namespace(o: &mut RawObject, ns: &str) {
    if CLUSTER_SCOPED.contains(&o.kind.as_str()) {
        return;
    }
    let Value::Map(top) = &mut std::sync::Arc::make_mut(&mut o.node).value else { return };
    let Some((_, meta)) = top.iter_mut().find(|(k, _)| k.name == "metadata") else { return };
    let (line, column, offset) = (meta.line, meta.column, meta.offset);
    let Value::Map(fields) = &meta.value else { return };
    if fields.iter().any(|(k, v)| k.name == "namespace" && !matches!(v.value, Value::Null)) {
        return;
    }
    let key = Key { name: "namespace".into(), line, column, offset };
    let value = Node { line, column, offset, source: SAME_SOURCE, value: Value::Str(ns.into()) };
    meta.value.edit_map(|fields| {
        fields.retain(|(k, _)| k.name != "namespace");
        fields.push((key, value));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_at_document_markers() {
        let out = "---\n# Source: web/templates/a.yaml\nkind: A\n---\n# Source: web/templates/b.yaml\nkind: B\n";
        let docs = documents(out);
        assert_eq!(docs, ["# Source: web/templates/a.yaml\nkind: A\n", "# Source: web/templates/b.yaml\nkind: B\n"]);
    }
}
