//! Loading: files (or stdin) → sources → raw Kubernetes objects with positions.
//! Files are parsed in parallel; results keep the lexical file order.

pub mod discover;
pub mod flux;
pub mod git;
pub mod objects;
pub mod releases;
pub mod render;
pub mod yaml;

use crate::findings::{Code, Finding, Span};
use discover::Source;
pub use objects::RawObject;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The mesh settings file at the root of a checked directory.
pub const SETTINGS_FILE: &str = "meshc.yaml";

#[derive(Clone, Debug)]
pub enum Input {
    Path(PathBuf),
    /// Text already read (stdin, or a git blob), with the name findings use.
    Text {
        name: String,
        text: String,
    },
    /// A tree already read (a git revision): files named relative to its
    /// root, and the root's meshc.yaml.
    Files {
        files: Vec<FileText>,
        settings: Option<String>,
    },
}

#[derive(Debug, Default)]
pub struct Loaded {
    /// MeshTest files found under a directory (not read here: they are not manifests).
    pub test_files: Vec<FoundFile>,
    pub sources: Vec<Source>,
    pub objects: Vec<RawObject>,
    pub findings: Vec<Finding>,
    /// Objects holding Flux variables left without a value (`flux::Unknown`).
    pub unknown_values: Vec<flux::UnknownValues>,
    /// Helm releases not rendered, with why (`render::helm`).
    pub unrendered: Vec<releases::Release>,
}

/// An input that cannot be read at all (exit code 2), as opposed to a bad file inside it.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse results shared between the loads of two versions of a repository
/// (`meshc diff`): a file with the same name and text is parsed once, and
/// the second load gets the very same trees (`RawObject::node` is shared
/// and copied on write), which is what `model::DecodeCache` recognises.
/// Keyed by name and a 128-bit digest of the text (two SipHash keys).
#[derive(Default)]
pub struct ParseCache(Mutex<HashMap<(String, u64, u64), Parsed>>);

type Parsed = (Vec<RawObject>, Vec<Finding>);

fn digest(text: &str) -> (u64, u64) {
    use std::hash::{BuildHasher, Hasher};
    let one = |seed: u64| {
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
        h.write_u64(seed);
        h.write(text.as_bytes());
        h.finish()
    };
    (one(0x6d65_7368_6331), one(0x6469_6666_3032))
}

impl ParseCache {
    /// The cached parse of `name`/`text`, moved out (each is reused once),
    /// with its source index rewritten to `source`.
    fn take(&self, source: u32, name: &str, text: &str) -> Option<Parsed> {
        let (a, b) = digest(text);
        let (mut objects, mut findings) = self.0.lock().ok()?.remove(&(name.to_owned(), a, b))?;
        objects.iter_mut().for_each(|o| o.source = source);
        findings.iter_mut().for_each(|f| f.span.source = source);
        Some((objects, findings))
    }

    fn put(&self, name: &str, text: &str, parsed: &Parsed) {
        let (a, b) = digest(text);
        if let Ok(mut map) = self.0.lock() {
            map.insert((name.to_owned(), a, b), parsed.clone());
        }
    }
}

pub fn load(input: &Input) -> Result<Loaded, InputError> {
    load_cached(input, None)
}

/// [`load`], reusing (and filling) `cache`: the second of two loads takes
/// what the first one parsed.
pub fn load_cached(input: &Input, cache: Option<&ParseCache>) -> Result<Loaded, InputError> {
    load_cached_at(input, cache, None, &render::Tools::default())
}

/// [`load_cached`], with the repository root Flux paths are relative to
/// (None: the git top level of a checked directory, else the directory),
/// and the renderers to run on kustomizations.
pub fn load_cached_at(
    input: &Input,
    cache: Option<&ParseCache>,
    root: Option<&Path>,
    tools: &render::Tools,
) -> Result<Loaded, InputError> {
    let mut loaded = Loaded::default();
    let mut escaping = Vec::new();
    let texts: Vec<FileText> = match input {
        Input::Text { name, text } => vec![(name.clone(), Ok(text.clone()))],
        Input::Path(root) => {
            let tree = read_tree(root)?;
            loaded.test_files = tree.tests;
            escaping = tree.escaping;
            tree.texts
        }
        Input::Files { files, .. } => files.clone(),
    };
    parse_into(&mut loaded, texts, cache);
    if let Input::Path(dir) = input
        && dir.is_dir()
    {
        render::render_kustomizations(&mut loaded, &render::Where::find(dir, root), tools, 0);
    }
    for name in escaping {
        let span = Span::file(loaded.sources.len() as u32);
        let msg = format!("{name} is a symlink to a path outside the checked directory; meshc does not read it");
        loaded.findings.push(Finding::new(Code::SymlinkOutsideRoot, span, msg).hint(
            "Argo CD refuses a repository with such a link and `kubectl apply -f` applies whatever it points to on the machine that runs it; copy what it points to into the repository instead",
        ));
        loaded.sources.push(Source { name, text: String::new() });
    }
    let checked = match input {
        Input::Path(dir) if dir.is_dir() => Some(flux::Checked { dir, root, tools }),
        _ => None,
    };
    flux::expand(&mut loaded, checked);
    // After Flux: the releases of the directories Kustomizations apply count too.
    let at = match input {
        Input::Path(dir) if dir.is_dir() => Some(render::Where::find(dir, root)),
        _ => None,
    };
    loaded.unrendered = render::render_releases(&mut loaded, at.as_ref(), tools);
    Ok(loaded)
}

/// Parses `texts` in parallel and appends them, numbered after the sources
/// already loaded, in order.
pub(crate) fn parse_into(loaded: &mut Loaded, texts: Vec<FileText>, cache: Option<&ParseCache>) {
    let first = loaded.sources.len();
    let parsed: Vec<_> = texts
        .into_par_iter()
        .enumerate()
        .map(|(i, (name, text))| {
            let source = (first + i) as u32;
            let (objects, findings) = match (&text, cache) {
                (Ok(text), Some(cache)) => cache.take(source, &name, text).unwrap_or_else(|| {
                    let parsed = objects::objects_of(source, &name, text);
                    cache.put(&name, text, &parsed);
                    parsed
                }),
                (Ok(text), None) => objects::objects_of(source, &name, text),
                (Err(reason), _) => (Vec::new(), vec![unreadable(source, &name, reason)]),
            };
            // Only a manifest is quoted in findings: a file that holds no
            // object (a key, a values file) keeps its name, not its text.
            let text = text.ok().filter(|t| !objects.is_empty() || objects::looks_like_manifest(t));
            (Source { name, text: text.unwrap_or_default() }, objects, findings)
        })
        .collect();
    for (source, objects, findings) in parsed {
        loaded.sources.push(source);
        loaded.objects.extend(objects);
        loaded.findings.extend(findings);
    }
}

fn unreadable(source: u32, name: &str, reason: &str) -> Finding {
    Finding::new(Code::ParseError, Span::file(source), format!("{name}: {reason}"))
}

/// Reads every manifest under `root`; a file or directory that cannot be
/// read becomes an entry with the reason, reported as a parse error.
/// A file's display name and its text, or why it could not be read.
pub type FileText = (String, Result<String, String>);
/// A file found on disk: its display name and its path.
pub type FoundFile = (String, PathBuf);

/// What is read from a directory.
pub(crate) struct Tree {
    /// The manifests' texts.
    pub texts: Vec<FileText>,
    /// The MeshTest files found beside them.
    tests: Vec<FoundFile>,
    /// Links out of the directory, by name: reported, never read.
    escaping: Vec<String>,
}

pub(crate) fn read_tree(root: &Path) -> Result<Tree, InputError> {
    let found = discover::discover(root).map_err(|e| InputError(format!("cannot read {}: {e}", root.display())))?;
    let is_dir = root.is_dir();
    let (tests, files): (Vec<_>, Vec<_>) = found
        .files
        .into_iter()
        .filter(|(name, _)| !(is_dir && name == SETTINGS_FILE))
        .partition(|(name, _)| is_dir && name.ends_with(crate::meshtest::SUFFIX));
    let mut texts: Vec<_> = files.into_par_iter().map(|(name, path)| (name, discover::read_text(&path))).collect();
    texts.extend(found.errors.into_iter().map(|e| (e.name, Err(e.reason))));
    Ok(Tree { texts, tests, escaping: found.escaping })
}
