//! Kustomization paths outside the checked directory: `meshc check
//! clusters/prod` follows `spec.path: ./apps` to the repository root's
//! `apps/`. The root is `--root`, else the git top level of the checked
//! directory, else the directory itself. Files read from outside are named
//! relative to the checked directory (`../../apps/web.yaml`), as every
//! finding is, and never from outside the root.

use super::normalise;
use crate::load::Loaded;
use crate::load::render::Where;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The checked directory and the root the user gave, if any.
pub struct Checked<'a> {
    pub dir: &'a Path,
    pub root: Option<&'a Path>,
    pub tools: &'a crate::load::render::Tools,
}

/// Where the checked directory sits in the repository.
pub struct Place {
    root: PathBuf,
    tools: crate::load::render::Tools,
    /// The checked directory relative to the root, `/`-separated ("" = the root).
    pub prefix: String,
    /// Repository paths of every file loaded so far.
    loaded: HashSet<String>,
}

impl Place {
    pub fn find(checked: &Checked<'_>, loaded: &Loaded) -> Place {
        let Where { dir, root } = Where::find(checked.dir, checked.root);
        let prefix = dir.strip_prefix(&root).map_or(String::new(), |p| {
            p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
        });
        let mut place = Place { root, prefix, loaded: HashSet::new(), tools: checked.tools.clone() };
        let names: Vec<String> = loaded.sources.iter().map(|s| place.repo_path(&s.name)).collect();
        place.loaded.extend(names);
        place
    }

    /// A source name (relative to the checked directory) as a repository path.
    pub fn repo_path(&self, name: &str) -> String {
        let joined = if self.prefix.is_empty() { name.to_owned() } else { format!("{}/{name}", self.prefix) };
        normalise(&joined).unwrap_or(joined)
    }

    /// Whether the files under repository path `path` are all loaded already.
    pub fn covers(&self, path: &str) -> bool {
        self.prefix.is_empty() || path == self.prefix || path.starts_with(&format!("{}/", self.prefix))
    }

    /// Reads the manifests under repository directory `path` that are not
    /// loaded yet; returns whether it found the directory.
    pub fn load(&mut self, path: &str, loaded: &mut Loaded) -> bool {
        let dir = self.root.join(path);
        let inside = dir.canonicalize().is_ok_and(|d| d.starts_with(&self.root));
        if !inside || !dir.is_dir() {
            return false;
        }
        let Ok(tree) = crate::load::read_tree(&dir) else {
            return false;
        };
        let up = "../".repeat(self.prefix.split('/').filter(|p| !p.is_empty()).count());
        let texts: Vec<_> = tree
            .texts
            .into_iter()
            .map(|(name, text)| (if path.is_empty() { name } else { format!("{path}/{name}") }, text))
            .filter(|(repo, _)| self.loaded.insert(repo.clone()))
            .collect();
        let texts = texts.into_iter().map(|(repo, text)| (format!("{up}{repo}"), text)).collect();
        crate::load::parse_into(loaded, texts, None);
        true
    }

    /// Renders the kustomizations among the sources loaded from `first` on
    /// (all the paths of one round at once, so their builds run in parallel).
    pub fn render(&self, loaded: &mut Loaded, first: usize) {
        let at = Where { dir: self.root.join(&self.prefix), root: self.root.clone() };
        crate::load::render::render_kustomizations(loaded, &at, &self.tools, first);
    }
}

pub(crate) fn git_top_level(dir: &Path) -> Option<PathBuf> {
    let out = Command::new("git").arg("-C").arg(dir).args(["rev-parse", "--show-toplevel"]).output().ok()?;
    let text = String::from_utf8(out.stdout).ok().filter(|_| out.status.success())?;
    Some(PathBuf::from(text.trim_end_matches(['\n', '\r'])))
}
