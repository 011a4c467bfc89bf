//! The root `meshc.yaml` of a multicluster repository: which clusters it
//! holds, where, with which settings. Bad entries are findings and are left
//! out; the others are checked.

use crate::findings::{Code, Finding, Span};
use crate::load::discover::Source;
use crate::load::{self, Input, InputError, SETTINGS_FILE};
use crate::pipeline::Options;
use crate::settings::clusters::ClusterEntry;
use crate::settings::{self, SettingsFile};
use std::path::{Path, PathBuf};

/// A repository whose `meshc.yaml` declares `clusters:`.
pub struct Repository {
    pub root: PathBuf,
    /// The root `meshc.yaml` (source 0 of the combined outcome).
    pub source: Source,
    /// The top-level settings every cluster shares.
    pub shared: SettingsFile,
    /// The clusters that can be checked, with the place of their entry.
    pub clusters: Vec<(ClusterEntry, Span)>,
    pub findings: Vec<Finding>,
}

/// The repository at `input` when its settings file declares `clusters:`.
pub fn repository(input: &Input, options: &Options) -> Result<Option<Repository>, InputError> {
    let Input::Path(root) = input else { return Ok(None) };
    if !root.is_dir() {
        return Ok(None);
    }
    let path = match &options.settings_file {
        Some(p) => p.clone(),
        None => root.join(SETTINGS_FILE),
    };
    if !path.is_file() || (options.settings_file.is_none() && !load::discover::resolves_inside(root, &path)) {
        return Ok(None);
    }
    let text =
        load::discover::read_text(&path).map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?;
    // Cheap test first: most repositories are one cluster.
    if !text.contains("clusters") {
        return Ok(None);
    }
    let mut findings = Vec::new();
    let mut shared = settings::parse_file(0, &text, &mut findings);
    let Some(entries) = shared.clusters.take() else { return Ok(None) };
    let spans = entry_spans(&text);
    let name = if options.settings_file.is_some() { path.display().to_string() } else { SETTINGS_FILE.to_owned() };
    let source = Source { name, text };
    let entries: Vec<(ClusterEntry, Span)> =
        entries.into_iter().enumerate().map(|(i, e)| (e, spans.get(i).copied().unwrap_or(Span::file(0)))).collect();
    let clusters = valid_clusters(root, entries, &mut findings);
    Ok(Some(Repository { root: root.clone(), source, shared, clusters, findings }))
}

/// The line of each `clusters:` entry.
fn entry_spans(text: &str) -> Vec<Span> {
    let Ok(docs) = load::yaml::parse_documents(text) else { return Vec::new() };
    let Some(list) = docs.iter().find_map(|d| d.get("clusters")) else { return Vec::new() };
    match &list.value {
        load::yaml::Value::Seq(items) => {
            items.iter().map(|n| Span { source: 0, line: n.line, column: n.column, offset: n.offset }).collect()
        }
        _ => Vec::new(),
    }
}

fn valid_clusters(
    root: &Path,
    entries: Vec<(ClusterEntry, Span)>,
    findings: &mut Vec<Finding>,
) -> Vec<(ClusterEntry, Span)> {
    let mut out: Vec<(ClusterEntry, Span)> = Vec::new();
    for (entry, span) in entries {
        let mut bad = |msg: String| findings.push(Finding::new(Code::MulticlusterInvalid, span, msg));
        if entry.name.is_empty() || !mesh_proxy_api::names::is_dns_label(&entry.name) {
            bad(format!("meshc.yaml: cluster name `{}` is not a DNS label; the cluster is not checked", entry.name));
            continue;
        }
        if out.iter().any(|(e, _)| e.name == entry.name) {
            bad(format!("meshc.yaml: a second cluster named `{}`; only the first is checked", entry.name));
            continue;
        }
        let dir = root.join(&entry.directory);
        if entry.directory.trim().is_empty() || !dir.is_dir() || !load::discover::resolves_inside(root, &dir) {
            bad(format!(
                "meshc.yaml: cluster `{}`: directory `{}` does not exist in the repository; the cluster is not checked",
                entry.name, entry.directory
            ));
            continue;
        }
        if let Some((other, _)) = out.iter().find(|(e, _)| nested(root, &e.directory, &entry.directory)) {
            bad(format!(
                "meshc.yaml: cluster `{}`: directory `{}` overlaps cluster `{}`'s `{}`: each object must belong to \
                 one cluster; the cluster is not checked",
                entry.name, entry.directory, other.name, other.directory
            ));
            continue;
        }
        let mut entry = entry;
        if let Some(Err(e)) = entry.runtime.as_ref().map(super::links_file::check_runtime) {
            findings.push(Finding::new(
                Code::MulticlusterInvalid,
                span,
                format!("meshc.yaml: cluster `{}`: {e}; its sources' links files leave it out", entry.name),
            ));
            entry.runtime = None;
        }
        out.push((entry, span));
    }
    out
}

/// Whether one of two directories contains the other (or they are the same).
fn nested(root: &Path, a: &str, b: &str) -> bool {
    match (root.join(a).canonicalize(), root.join(b).canonicalize()) {
        (Ok(a), Ok(b)) => a.starts_with(&b) || b.starts_with(&a),
        _ => false,
    }
}

/// The settings a cluster is checked with: the shared keys, then the
/// cluster's own, then the flags.
pub fn cluster_options(repo: &Repository, entry: &ClusterEntry, options: &Options) -> Options {
    let mut overrides = repo.shared.clone();
    overrides.clusters = None;
    if let Some(own) = entry.settings.clone() {
        crate::pipeline::overlay(&mut overrides, own);
    }
    crate::pipeline::overlay(&mut overrides, options.overrides.clone());
    Options { overrides, settings_file: None, ..options.clone() }
}
