//! Flux Kustomizations (`kustomize.toolkit.fluxcd.io`) in the repository:
//! which Kustomization applies each file, and the post-build variable
//! substitution it makes there. `spec.path` is relative to the repository
//! root (`outside.rs`).
//!
//! A file is applied by the Kustomization with the longest `spec.path` that
//! contains it (Flux applies a path recursively, and a nested Kustomization
//! is the one written for that directory). A file no Kustomization of the
//! repository applies is applied by something the repository does not hold
//! (an OCI source, a cluster bootstrap): its `${VAR:=default}` take their
//! defaults and a variable without one is reported once, as unknown.

mod apply;
mod argo;
pub mod envsubst;
pub(crate) mod outside;
pub(crate) mod vars;

pub use outside::Checked;
use outside::Place;

use super::Loaded;
use super::objects::span_of;
use super::yaml::Node;
use crate::findings::{Code, Finding};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use vars::{DataSources, Vars, meta_str};

const GROUP: &str = "kustomize.toolkit.fluxcd.io/";
const DISABLE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// An object in which Flux variables stayed without a value: what is
/// checked of it (entries dropped, values emptied) is not what the cluster
/// will hold, so findings that follow from those values are not certain
/// (`resolve::unknown`).
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownValues {
    /// The object, as its source and the offset of its document.
    pub source: u32,
    pub offset: u32,
    /// The variables, in order of first use.
    pub vars: Vec<String>,
    /// Where the object differs from what the cluster may hold: each value
    /// left empty and each list entry dropped, as its byte offset and depth
    /// in the object's tree. A finding about a field that contains none of
    /// them does not depend on the variables.
    pub uses: Vec<(u32, u32)>,
    /// Where their values would come from, for messages: `from Flux
    /// Kustomization NS/NAME`, or set outside the repository.
    pub scope: String,
}

/// One Flux Kustomization found in the repository.
struct Kustomization {
    object: usize,
    /// `Flux Kustomization NS/NAME`, for messages.
    id: String,
    /// `spec.path`, normalised and relative to the root ("" = the root), or
    /// None when it leaves the repository.
    path: Option<String>,
    vars: Option<Vars>,
    /// Whether it applies the subdirectories of its path too (Flux always;
    /// Argo CD with `directory.recurse`).
    recurse: bool,
}

/// Expands what the repository's Flux Kustomizations do to its files.
/// `checked` is the directory checked, when the input is one: paths outside
/// it are then followed within the repository root.
pub fn expand(loaded: &mut Loaded, checked: Option<Checked<'_>>) {
    let any_kustomization = loaded.objects.iter().any(|o| is_flux_kustomization(o) || argo::is_application(o));
    if !any_kustomization && !loaded.sources.iter().any(|s| envsubst::has_reference(&s.text)) {
        return;
    }
    let mut place = checked.filter(|_| any_kustomization).map(|c| Place::find(&c, loaded));
    let data = DataSources::collect(&loaded.objects);
    let (ks, dirs) = follow(loaded, &data, place.as_mut());
    let has_refs: Vec<bool> = loaded.sources.iter().map(|s| envsubst::has_reference(&s.text)).collect();
    let cover = covering(&ks, &dirs);
    report_paths(loaded, &ks, &dirs);
    report_cycles(loaded, &ks, &cover);
    let mut unresolved: HashMap<Option<usize>, Vec<apply::Unresolved>> = HashMap::new();
    for object in 0..loaded.objects.len() {
        // Kustomizations and Applications were substituted while following them.
        let o = &loaded.objects[object];
        // A rendered object may hold a patch's `${VAR}` its base file lacks.
        let refs = has_refs[o.source as usize] || o.rendered_in.is_some();
        if !refs || is_flux_kustomization(o) || argo::is_application(o) {
            continue;
        }
        let by = cover[applied_from(o)];
        substitute_object(loaded, object, by.map(|c| &ks[c]), unresolved.entry(by).or_default());
    }
    report_unresolved(loaded, &ks, unresolved);
}

/// The Kustomizations with their own specs substituted (by the Kustomization
/// that applies them), after loading the directories outside the checked one
/// they apply, and each source's directory as a repository path.
fn follow(loaded: &mut Loaded, data: &DataSources, mut place: Option<&mut Place>) -> (Vec<Kustomization>, Vec<String>) {
    let (mut tried, mut substituted) = (HashSet::new(), HashSet::new());
    loop {
        let dirs = repo_dirs(loaded, place.as_deref());
        let ks = kustomizations(loaded, data);
        let cover = covering(&ks, &dirs);
        for k in &ks {
            let o = &loaded.objects[k.object];
            let source = o.source as usize;
            let refs = envsubst::has_reference(&loaded.sources[source].text) || o.rendered_in.is_some();
            // Once: a second pass would substitute what `$${...}` escaped.
            if refs && substituted.insert(k.object) {
                substitute_object(loaded, k.object, cover[applied_from(o)].map(|c| &ks[c]), &mut Vec::new());
            }
        }
        let ks = kustomizations(loaded, data);
        let Some(place) = place.as_deref_mut() else {
            return (ks, dirs);
        };
        let outside: Vec<String> =
            ks.iter().filter_map(|k| k.path.clone()).filter(|p| !place.covers(p) && tried.insert(p.clone())).collect();
        if outside.is_empty() {
            return (ks, dirs);
        }
        let first = loaded.sources.len();
        for path in outside {
            place.load(&path, loaded);
        }
        place.render(loaded, first);
    }
}

/// Each source's directory, relative to the repository root.
fn repo_dirs(loaded: &Loaded, place: Option<&Place>) -> Vec<String> {
    let dir = |name: &str| match place {
        Some(p) => parent_dir(&p.repo_path(name)).to_owned(),
        None => parent_dir(name).to_owned(),
    };
    loaded.sources.iter().map(|s| dir(&s.name)).collect()
}

/// The source whose directory says which Kustomization applies `o`: for a
/// rendered object, the kustomization file built (Flux builds its path and
/// applies the output, wherever the base files sit).
fn applied_from(o: &super::RawObject) -> usize {
    o.rendered_in.unwrap_or(o.source) as usize
}

fn is_flux_kustomization(o: &super::RawObject) -> bool {
    o.kind == "Kustomization" && o.api_version.starts_with(GROUP)
}

fn kustomizations(loaded: &Loaded, data: &DataSources) -> Vec<Kustomization> {
    let mut ks = Vec::new();
    for (object, o) in loaded.objects.iter().enumerate() {
        if argo::is_application(o) {
            ks.extend(argo::applications(object, o));
        } else if is_flux_kustomization(o) {
            ks.push(flux_kustomization(object, o, data));
        }
    }
    ks
}

fn flux_kustomization(object: usize, o: &super::RawObject, data: &DataSources) -> Kustomization {
    let namespace = meta_str(&o.node, "namespace");
    let name = meta_str(&o.node, "name").unwrap_or_default();
    let raw = o.node.get("spec").and_then(|s| s.get("path")).and_then(Node::as_str).unwrap_or("./");
    Kustomization {
        object,
        id: format!("Flux Kustomization {}/{name}", namespace.as_deref().unwrap_or("flux-system")),
        path: normalise(raw),
        vars: vars::of_kustomization(&o.node, namespace.as_deref(), data),
        recurse: true,
    }
}

/// `./apps/../base/` → `base`; None when the path climbs out of the root.
pub(crate) fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn parent_dir(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// For each source, the Kustomization with the longest path above it.
fn covering(ks: &[Kustomization], dirs: &[String]) -> Vec<Option<usize>> {
    let mut by_path: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, k) in ks.iter().enumerate() {
        if let Some(p) = &k.path {
            by_path.entry(p.as_str()).or_default().push(i);
        }
    }
    let lookup = |file_dir: &str| -> Option<usize> {
        let mut dir = file_dir;
        loop {
            let applies = |&&k: &&usize| dir == file_dir || ks[k].recurse;
            if let Some(&k) = by_path.get(dir).and_then(|list| list.iter().find(applies)) {
                return Some(k);
            }
            if dir.is_empty() {
                return None;
            }
            dir = parent_dir(dir);
        }
    };
    dirs.iter().map(|d| lookup(d)).collect()
}

fn substitute_object(loaded: &mut Loaded, object: usize, by: Option<&Kustomization>, out: &mut Vec<apply::Unresolved>) {
    let mut own = Vec::new();
    let uses = substitute_one(loaded, object, by, &mut own);
    if own.is_empty() {
        return;
    }
    let o = &loaded.objects[object];
    let scope = match by {
        Some(k) => format!("from {}", k.id),
        None => "set outside the repository, since no Flux Kustomization in it applies this file".to_owned(),
    };
    let vars = own.iter().map(|u| u.name.clone()).collect();
    loaded.unknown_values.push(UnknownValues { source: o.source, offset: o.node.offset, vars, uses, scope });
    apply::merge(out, own);
}

fn substitute_one(
    loaded: &mut Loaded,
    object: usize,
    by: Option<&Kustomization>,
    out: &mut Vec<apply::Unresolved>,
) -> Vec<(u32, u32)> {
    let o = &mut loaded.objects[object];
    let disabled = o
        .node
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(DISABLE_ANNOTATION))
        .and_then(Node::as_str)
        == Some("disabled");
    let data_source = o.api_version == "v1" && matches!(o.kind.as_str(), "ConfigMap" | "Secret");
    match by {
        _ if disabled => Vec::new(),
        // Flux substitutes only under a postBuild.
        Some(Kustomization { vars: None, .. }) => Vec::new(),
        Some(Kustomization { vars: Some(vars), .. }) => apply::substitute(
            o.source,
            Arc::make_mut(&mut o.node),
            &|name| vars.values.get(name).map(String::as_str),
            out,
        ),
        // Outside any Kustomization, scripts in ConfigMaps keep their `${...}`.
        None if data_source => Vec::new(),
        None => apply::substitute(o.source, Arc::make_mut(&mut o.node), &|_| None, out),
    }
}

fn report_paths(loaded: &mut Loaded, ks: &[Kustomization], dirs: &[String]) {
    for k in ks {
        let exists = k.path.as_deref().is_some_and(|p| {
            p.is_empty() || dirs.iter().any(|d| d == p || d.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
        });
        if exists {
            continue;
        }
        let o = &loaded.objects[k.object];
        let spec = o.node.get("spec");
        let path = spec.and_then(|s| s.get("path").or_else(|| s.get("source")?.get("path")));
        let at = path.unwrap_or(&*o.node);
        let msg = format!(
            "{} applies a path that is not in the repository: kustomize-controller (Argo CD's repo server) fails it with \"kustomization path not found\" (\"app path does not exist\") and applies nothing from it",
            k.id
        );
        let hint = "spec.path is relative to the repository root (--root, else the git top level of the checked directory, else the directory); a path in another source (an OCIRepository) cannot be followed";
        let mut f = Finding::new(Code::KustomizationPathMissing, span_of(o.source, at), msg).hint(hint);
        // An Application's repoURL is often another repository: not certain.
        if argo::is_application(o) {
            f = f.severity(crate::findings::Severity::Info);
        }
        loaded.findings.push(f);
    }
}

/// Kustomizations that apply each other: following "applied by" from one
/// comes back to it. Each cycle is reported once, at its first member.
fn report_cycles(loaded: &mut Loaded, ks: &[Kustomization], cover: &[Option<usize>]) {
    let parent = |k: usize| cover[applied_from(&loaded.objects[ks[k].object])].filter(|&p| p != k);
    let mut reported = vec![false; ks.len()];
    for start in 0..ks.len() {
        let mut chain = vec![start];
        let mut at = start;
        while let Some(p) = parent(at) {
            if chain.len() > ks.len() || reported[p] {
                break;
            }
            if p == start {
                chain.iter().for_each(|&k| reported[k] = true);
                let names: Vec<&str> = chain.iter().map(|&k| ks[k].id.as_str()).collect();
                let o = &loaded.objects[ks[start].object];
                let msg = format!("these apply each other in a cycle: {}", names.join(" <- "));
                loaded.findings.push(Finding::new(Code::KustomizationCycle, o.span(), msg));
                break;
            }
            chain.push(p);
            at = p;
        }
    }
}

fn report_unresolved(loaded: &mut Loaded, ks: &[Kustomization], all: HashMap<Option<usize>, Vec<apply::Unresolved>>) {
    let mut all: Vec<_> = all.into_iter().collect();
    all.sort_by_key(|(k, _)| *k);
    for (by, unresolved) in all {
        let why = match by.map(|k| &ks[k]) {
            Some(k) => match k.vars.as_ref().map(|v| v.missing.as_slice()).unwrap_or_default() {
                [] => format!("{} does not set it", k.id),
                missing => format!(
                    "{} takes its variables from {}, which the repository does not hold",
                    k.id,
                    missing.join(", ")
                ),
            },
            None => "no Flux Kustomization in the repository applies this file, so its variables are set outside it"
                .to_owned(),
        };
        for u in unresolved {
            let msg = format!(
                "${{{}}} has no value and no default ({why}); used {} time(s) in this scope: meshc checks list entries that use it as absent and other values as empty, as Flux would substitute them",
                u.name, u.uses
            );
            loaded.findings.push(Finding::new(Code::UnresolvedVariable, u.at, msg));
        }
    }
}

#[cfg(test)]
mod tests;
