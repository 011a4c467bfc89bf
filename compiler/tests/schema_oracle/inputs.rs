//! The objects compared, and meshc's answer for each: every object `meshc
//! check` loads from a directory (kustomize overlays and Flux substitutions
//! included, so the server sees what meshc sees), and the `schema-violation`
//! findings attributed to it.

use meshc::findings::{Code, Finding};
use meshc::load::{self, Input};
use meshc::pipeline::{self, Options};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One object as written, with meshc's verdict on it.
pub struct Object {
    /// Where it was written: `<input>/<file>:<line>`.
    pub origin: String,
    pub json: Value,
    /// meshc's `schema-violation` messages on this object (empty: accepted).
    pub meshc: Vec<String>,
}

impl Object {
    pub fn api_version(&self) -> &str {
        self.json["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.json["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> Option<&str> {
        self.json["metadata"]["name"].as_str().filter(|n| !n.is_empty())
    }

    /// The namespace the object is applied in, as meshc and kubectl default it.
    pub fn namespace(&self) -> &str {
        self.json["metadata"]["namespace"].as_str().unwrap_or("default")
    }
}

/// The objects of one checked directory, with meshc's findings on each.
pub fn check_dir(dir: &Path, label: &str) -> Vec<Object> {
    let input = Input::Path(dir.to_path_buf());
    let options = Options { tests: Some(Vec::new()), root: Some(dir.to_path_buf()), ..Options::default() };
    let loaded = load::load_cached_at(&input, None, options.root.as_deref(), &options.render)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let outcome = pipeline::check(&input, &options).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut objects: Vec<Object> = loaded
        .objects
        .iter()
        .map(|raw| {
            let span = raw.span();
            let file = loaded.sources.get(span.source as usize).map_or("?", |s| s.name.as_str());
            Object { origin: format!("{label}/{file}:{}", span.line), json: raw.node.to_json(), meshc: Vec::new() }
        })
        .collect();
    // By file name, not source index: a multicluster repository's outcome
    // numbers its sources across clusters (settings first), the plain load
    // above does not.
    let loaded_names: Vec<&str> = loaded.sources.iter().map(|s| s.name.as_str()).collect();
    let checked_names: Vec<&str> = outcome.sources.iter().map(|s| s.name.as_str()).collect();
    let name_of = |names: &[&str], i: u32| names.get(i as usize).map(|n| (*n).to_owned());
    let starts: Vec<(Option<String>, u32)> =
        loaded.objects.iter().map(|r| (name_of(&loaded_names, r.span().source), r.span().offset)).collect();
    for f in outcome.findings.iter().filter(|f| f.code == Code::SchemaViolation) {
        let file = name_of(&checked_names, f.span.source);
        if let Some(i) = attribute(f, file.as_deref(), &starts, &objects) {
            objects[i].meshc.push(f.message.clone());
        }
    }
    objects
}

/// The object a finding is about: the one written where the finding points
/// (the last object starting at or before it in the same file) when that is
/// the finding's resource, else the only object with the finding's identity
/// (a finding may point into a kustomize patch file).
fn attribute(f: &Finding, file: Option<&str>, starts: &[(Option<String>, u32)], objects: &[Object]) -> Option<usize> {
    let same_id = |o: &Object| {
        f.resource.as_ref().is_none_or(|r| {
            r.kind == o.kind()
                && Some(r.name.as_str()) == o.name()
                && r.namespace.as_deref().is_none_or(|ns| ns == o.namespace())
        })
    };
    let at = starts
        .iter()
        .enumerate()
        .filter(|(_, (source, offset))| file.is_some() && source.as_deref() == file && *offset <= f.span.offset)
        .max_by_key(|(_, (_, offset))| *offset)
        .map(|(i, _)| i);
    if let Some(i) = at.filter(|&i| same_id(&objects[i])) {
        return Some(i);
    }
    let f_id = f.resource.as_ref()?;
    let mut same: Vec<usize> = (0..objects.len()).filter(|&i| same_id(&objects[i])).collect();
    (same.len() == 1 && !f_id.name.is_empty()).then(|| same.remove(0))
}

/// Every example repository and every golden case's input.
pub fn corpus() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = Vec::new();
    for (parent, sub) in [("policies-examples", None), ("tests/golden", Some("input"))] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(parent))
            .unwrap_or_else(|e| panic!("{parent}: {e}"))
            .flatten()
            .map(|e| e.path())
            .map(|p| sub.map_or(p.clone(), |s| p.join(s)))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        for dir in found {
            let rel = dir.strip_prefix(&root).unwrap_or(&dir).display().to_string();
            dirs.push((rel, dir));
        }
    }
    dirs
}
