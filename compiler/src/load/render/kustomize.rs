//! kustomize overlays. A directory holding a kustomization file is a
//! kustomize input: its files are not applied as they are written, but as
//! `kustomize build` renders them. meshc builds each root (a kustomization
//! directory that no other one contains or refers to: overlays, not the
//! bases they share) through a wrapper kustomization in a temporary
//! directory that adds `buildMetadata: [originAnnotations]`, so the user's
//! files are never written to. The origin annotation is removed again
//! before the objects are read.
//!
//! Without a kustomize engine the files stay as they were read, with the
//! kustomization file's `skipped-file` finding and the command to run.

use super::origin;
use super::patches::{self, Originals};
use super::run::{self, Failure};
use super::sources::{Registry, Where, lexical};
use super::{Kustomize, Tools};
use crate::findings::{Code, Finding, Span};
use crate::load::objects::objects_of;
use crate::load::yaml::{self, Node, Value};
use crate::load::{Loaded, RawObject};
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

const FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];
const ORIGIN: &str = "config.kubernetes.io/origin";

/// One kustomization file among the sources.
struct KFile {
    source: u32,
    /// Its directory, as a source-name prefix ("" = the checked directory).
    dir: String,
}

/// Renders the kustomization directories among the sources from `from` on
/// (those loaded by this step), replacing the objects read from their files.
pub fn render_kustomizations(loaded: &mut Loaded, at: &Where, tools: &Tools, from: usize) {
    let kfiles: Vec<KFile> = (from..loaded.sources.len())
        .filter_map(|i| {
            let name = &loaded.sources[i].name;
            let (dir, base) = name.rsplit_once('/').unwrap_or(("", name));
            FILES.contains(&base).then(|| KFile { source: i as u32, dir: dir.to_owned() })
        })
        .collect();
    let Some(engine) = tools.kustomize().filter(|_| !kfiles.is_empty()) else {
        return;
    };
    let under = |name: &str, dir: &str| dir.is_empty() || name.starts_with(&format!("{dir}/"));
    let consumed = |name: &str| kfiles.iter().any(|k| under(name, &k.dir));
    let first_object = loaded.objects.iter().position(|o| o.source as usize >= from).unwrap_or(loaded.objects.len());
    let sources = &loaded.sources;
    let mut kept: Vec<RawObject> = loaded.objects.split_off(first_object);
    kept.retain(|o| !consumed(&sources[o.source as usize].name));
    loaded.objects.append(&mut kept);
    let kfile_sources: HashSet<u32> = kfiles.iter().map(|k| k.source).collect();
    loaded.findings.retain(|f| !(f.code == Code::SkippedFile && kfile_sources.contains(&f.span.source)));
    let roots = roots(&kfiles, at);
    let built: Vec<_> = roots
        .par_iter()
        .map(|k| build(&engine, &at.path_of(&k.dir), tools).map_err(|f| plain_failure(&engine, at, k, tools, f)))
        .collect();
    let mut registry = Registry::new(loaded);
    let mut originals = Originals::default();
    for (k, result) in roots.iter().zip(built) {
        match result {
            Ok((output, wrapper)) => {
                let mut r = Reader { loaded, registry: &mut registry, originals: &mut originals, at };
                r.read_output(k, &output, &wrapper)
            }
            Err(failure) => loaded.findings.push(failed(&engine, k, failure)),
        }
    }
}

/// The kustomization directories to build: those not under another one and
/// not named by another one's `resources`, `components` or `bases`.
fn roots<'k>(kfiles: &'k [KFile], at: &Where) -> Vec<&'k KFile> {
    let mut referenced = HashSet::new();
    for k in kfiles {
        let dir = at.path_of(&k.dir);
        let Some(node) = read_kustomization(&dir) else { continue };
        for key in ["resources", "components", "bases"] {
            referenced.extend(strings(&node, key).into_iter().map(|r| lexical(&dir.join(r))));
        }
    }
    let nested = |k: &KFile| {
        kfiles.iter().any(|o| o.dir != k.dir && (o.dir.is_empty() || k.dir.starts_with(&format!("{}/", o.dir))))
    };
    kfiles.iter().filter(|k| !nested(k) && !referenced.contains(&at.path_of(&k.dir))).collect()
}

pub(super) fn read_kustomization(dir: &Path) -> Option<Node> {
    let file = FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file())?;
    let text = crate::load::discover::read_text(&file).ok()?;
    yaml::parse_documents(&text).ok()?.into_iter().next()
}

pub(super) fn strings(node: &Node, key: &str) -> Vec<String> {
    match node.get(key).map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().filter_map(Node::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Builds `dir` through a wrapper that asks for origin annotations; returns
/// the output and the wrapper's directory (origin paths are relative to it).
fn build(engine: &Kustomize, dir: &Path, tools: &Tools) -> Result<(String, PathBuf), Failure> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let tmp = std::env::temp_dir().canonicalize().map_err(|e| Failure::Start(e.to_string()))?;
    let wrapper = tmp.join(format!("meshc-kustomize-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&wrapper).map_err(|e| Failure::Start(format!("{}: {e}", wrapper.display())))?;
    // kustomize refuses absolute resource paths: name the directory from the wrapper.
    let up = "../".repeat(wrapper.components().count() - 1);
    let target = format!("{up}{}", dir.strip_prefix("/").unwrap_or(dir).display());
    let text = format!("resources:\n- {}\nbuildMetadata: [originAnnotations]\n", serde_json::Value::String(target));
    let result = std::fs::write(wrapper.join("kustomization.yaml"), text)
        .map_err(|e| Failure::Start(e.to_string()))
        .and_then(|()| {
            let mut args = engine.build.clone();
            args.push(wrapper.display().to_string());
            run::run(&engine.program, &args, &wrapper, tools.timeout)
        });
    let _ = std::fs::remove_dir_all(&wrapper);
    result.map(|out| (out, wrapper))
}

/// A failed build's message as the user would see it: the wrapper's build
/// names temporary paths, so a failing one is run again on the directory
/// itself, from the checked directory, and absolute paths into it are cut.
fn plain_failure(engine: &Kustomize, at: &Where, k: &KFile, tools: &Tools, failure: Failure) -> Failure {
    let Failure::Exit(_) = failure else { return failure };
    let mut args = engine.build.clone();
    args.push(shown_dir(k).to_owned());
    match run::run(&engine.program, &args, &at.dir, tools.timeout) {
        Err(Failure::Exit(msg)) => {
            // kubectl logs through klog: `E1206 ... run.go:72] "command failed" err="..."`.
            let msg = msg.split_once(" err=\"").map_or(msg.as_str(), |(_, m)| m.trim_end_matches('"'));
            Failure::Exit(msg.replace(&format!("{}/", at.dir.display()), ""))
        }
        _ => failure,
    }
}

fn shown_dir(k: &KFile) -> &str {
    if k.dir.is_empty() { "." } else { &k.dir }
}

fn failed(engine: &Kustomize, k: &KFile, failure: Failure) -> Finding {
    let program = engine
        .program
        .file_name()
        .map_or_else(|| engine.program.display().to_string(), |n| n.to_string_lossy().into_owned());
    let tool = format!("{program} {}", engine.build.join(" "));
    let msg = format!("`{tool} {}` {failure}; none of the objects of this kustomization are checked", shown_dir(k));
    Finding::new(Code::RenderFailed, Span::file(k.source), msg)
}

/// What reading one root's output works with.
struct Reader<'a> {
    loaded: &'a mut Loaded,
    registry: &'a mut Registry,
    originals: &'a mut Originals,
    at: &'a Where,
}

impl Reader<'_> {
    /// Reads what kustomize rendered for root `k`: each object positioned in
    /// its origin file (and its patches), the origin annotation removed.
    fn read_output(&mut self, k: &KFile, output: &str, wrapper: &Path) {
        // Named as the build, not the kustomization file (which objects_of skips).
        let (objects, findings) = objects_of(k.source, &format!("kustomize build {}", k.dir), output);
        self.loaded.findings.extend(findings.into_iter().map(|f| Finding { span: Span::file(k.source), ..f }));
        let patches = patches::collect(self.loaded, self.registry, self.at, &self.at.path_of(&k.dir));
        for mut o in objects {
            let origin = take_origin(std::sync::Arc::make_mut(&mut o.node)).map(|p| lexical(&wrapper.join(p)));
            let source = match &origin {
                Some(path) => match self.registry.source(self.at, self.loaded, path) {
                    Some(s) => s,
                    None => {
                        self.loaded.findings.push(outside_root(k, &o, path));
                        continue;
                    }
                },
                // Generated (configMapGenerator, secretGenerator): the kustomization wrote it.
                None => k.source,
            };
            let original = self.originals.find(self.loaded, source, &o.node);
            let written = original.as_ref().unwrap_or(&*o.node);
            let targeting: Vec<_> = patches.iter().filter(|p| p.targets(written)).map(|p| &p.patch).collect();
            origin::place(std::sync::Arc::make_mut(&mut o.node), original.as_ref(), &targeting);
            self.loaded.objects.push(RawObject { source, rendered_in: Some(k.source), ..o });
        }
    }
}

fn outside_root(k: &KFile, o: &RawObject, path: &Path) -> Finding {
    let msg = format!(
        "kustomize rendered {} from {}, outside the repository root; meshc does not read files there and leaves the object out",
        o.kind,
        path.display()
    );
    Finding::new(Code::SymlinkOutsideRoot, Span::file(k.source), msg)
}

/// Removes the origin annotation (and `annotations` if it is left empty);
/// returns its `path`.
fn take_origin(node: &mut Node) -> Option<String> {
    let Value::Map(top) = &mut node.value else { return None };
    let meta = &mut top.iter_mut().find(|(k, _)| k.name == "metadata")?.1.value;
    let Value::Map(entries) = &mut *meta else { return None };
    let at = entries.iter().position(|(k, _)| k.name == "annotations")?;
    let annotations = &mut entries[at].1.value;
    let Value::Map(listed) = &*annotations else { return None };
    let i = listed.iter().position(|(k, _)| k.name == ORIGIN)?;
    let (_, value) = annotations.edit_map(|a| a.remove(i))?;
    if matches!(annotations, Value::Map(a) if a.is_empty()) {
        meta.edit_map(|entries| entries.remove(at));
    }
    let origin = yaml::parse_documents(value.as_str()?).ok()?.into_iter().next()?;
    origin.get("path").and_then(Node::as_str).map(str::to_owned)
}
