//! The strategic-merge patches of a kustomization and of the bases it
//! builds on (`patches: [{path}]`, `patchesStrategicMerge`), read from the
//! repository so `origin.rs` can point patched fields at them, and the
//! original documents rendered objects came from.

use super::origin::Patch;
use super::sources::{Registry, Where, lexical};
use crate::load::Loaded;
use crate::load::yaml::{self, Node, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A patch document and the object it is for: `target` (kind, name) when
/// the kustomization gives one, else the document's own kind and name.
pub struct Targeted {
    pub patch: Patch,
    target: Target,
}

/// A patch's `target`: kind and name, each optional.
type Target = (Option<String>, Option<String>);

/// A file's documents, and the index of each (kind, name) among them.
type Indexed = (Vec<Node>, HashMap<(String, String), usize>);

/// Patches of the kustomization in `dir` and of every local kustomization
/// it builds on, bases first (kustomize applies a base's patches before
/// the overlay's).
pub fn collect(loaded: &mut Loaded, registry: &mut Registry, at: &Where, dir: &Path) -> Vec<Targeted> {
    let mut out = Vec::new();
    visit(loaded, registry, at, dir, &mut HashSet::new(), &mut out);
    out
}

fn visit(
    loaded: &mut Loaded,
    reg: &mut Registry,
    at: &Where,
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<Targeted>,
) {
    if !seen.insert(dir.to_path_buf()) || !dir.starts_with(&at.root) {
        return;
    }
    let Some(k) = super::kustomize::read_kustomization(dir) else { return };
    for key in ["resources", "components", "bases"] {
        for r in super::kustomize::strings(&k, key) {
            let sub = lexical(&dir.join(r));
            if sub.is_dir() {
                visit(loaded, reg, at, &sub, seen, out);
            }
        }
    }
    let mut files: Vec<(String, Target)> = Vec::new();
    if let Some(Value::Seq(items)) = k.get("patches").map(|n| &n.value) {
        for item in items {
            let Some(path) = item.get("path").and_then(Node::as_str) else { continue };
            let t = item.get("target");
            let field = |f: &str| t.and_then(|t| t.get(f)).and_then(Node::as_str).map(str::to_owned);
            files.push((path.to_owned(), (field("kind"), field("name"))));
        }
    }
    let strategic = super::kustomize::strings(&k, "patchesStrategicMerge");
    files.extend(strategic.into_iter().filter(|p| !p.contains('\n')).map(|p| (p, (None, None))));
    for (file, target) in files {
        let path = lexical(&dir.join(file));
        let Some(source) = reg.source(at, loaded, &path) else { continue };
        let docs = yaml::parse_documents(&loaded.sources[source as usize].text).unwrap_or_default();
        // A JSON 6902 patch is a list of operations, not an object.
        let objects = docs.into_iter().filter(|d| matches!(d.value, Value::Map(_)));
        out.extend(objects.map(|node| Targeted { patch: Patch { source, node }, target: target.clone() }));
    }
}

impl Targeted {
    /// Whether this patch is for `original` (the object as its file wrote it).
    pub fn targets(&self, original: &Node) -> bool {
        let (kind, name) = (original.get("kind").and_then(Node::as_str), meta_name(original));
        let own = |f: &str| self.patch.node.get(f).and_then(Node::as_str);
        let want_kind = self.target.0.as_deref().or(own("kind"));
        let want_name = self.target.1.as_deref().or(meta_name(&self.patch.node));
        want_kind.is_none_or(|k| Some(k) == kind) && want_name.is_none_or(|n| Some(n) == name)
    }
}

fn meta_name(node: &Node) -> Option<&str> {
    node.get("metadata").and_then(|m| m.get("name")).and_then(Node::as_str)
}

/// Parsed documents of origin files, each file parsed once per run, and
/// indexed by kind and name (a base file may hold thousands).
#[derive(Default)]
pub struct Originals(HashMap<u32, Indexed>);

impl Originals {
    /// The document of source `source` that `rendered` came from: same kind,
    /// and a name the rendered one contains (namePrefix and nameSuffix
    /// only add to it), the exact name first.
    pub fn find(&mut self, loaded: &Loaded, source: u32, rendered: &Node) -> Option<Node> {
        let (docs, index) = self.0.entry(source).or_insert_with(|| {
            let docs = yaml::parse_documents(&loaded.sources[source as usize].text).unwrap_or_default();
            let index = docs.iter().enumerate().rev().map(|(i, d)| (key(d), i)).collect();
            (docs, index)
        });
        if let Some(&i) = index.get(&key(rendered)) {
            return Some(docs[i].clone());
        }
        let kind = rendered.get("kind").and_then(Node::as_str);
        let name = meta_name(rendered).unwrap_or_default();
        let same_kind = || docs.iter().filter(|d| d.get("kind").and_then(Node::as_str) == kind);
        same_kind().find(|d| meta_name(d).is_some_and(|n| name.contains(n))).cloned()
    }
}

fn key(doc: &Node) -> (String, String) {
    let kind = doc.get("kind").and_then(Node::as_str).unwrap_or_default();
    (kind.to_owned(), meta_name(doc).unwrap_or_default().to_owned())
}
