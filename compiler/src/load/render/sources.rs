//! Files a renderer read, as meshc's sources: named relative to the checked
//! directory like every other file (`../base/web.yaml` for a base beside
//! it), and read only inside the repository root.

use crate::load::Loaded;
use crate::load::discover::{Source, read_text};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// The checked directory and the repository root, both canonical.
pub struct Where {
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl Where {
    /// The checked directory `dir` and its repository root: `root` if
    /// given, else the git top level, else `dir` (as Flux paths are read).
    pub fn find(dir: &Path, root: Option<&Path>) -> Where {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let root = root.map(Path::to_path_buf).or_else(|| crate::load::flux::outside::git_top_level(&dir));
        let root = root.and_then(|r| r.canonicalize().ok()).filter(|r| dir.starts_with(r)).unwrap_or(dir.clone());
        Where { dir, root }
    }

    /// The file or directory a source name (relative to the checked directory) names.
    pub fn path_of(&self, name: &str) -> PathBuf {
        lexical(&self.dir.join(name))
    }

    /// The source name of an absolute path, if it is inside the root.
    pub fn name_of(&self, path: &Path) -> Option<String> {
        let path = lexical(path);
        if !path.starts_with(&self.root) {
            return None;
        }
        let (here, there): (Vec<_>, Vec<_>) = (self.dir.components().collect(), path.components().collect());
        let common = here.iter().zip(&there).take_while(|(a, b)| a == b).count();
        let up = std::iter::repeat_n("..".to_owned(), here.len() - common);
        let down = there[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned());
        Some(up.chain(down).collect::<Vec<_>>().join("/"))
    }
}

/// `a/./b/../c` → `a/c`, without touching the disk (the renderer reported
/// the path it read; symlinks were resolved by it).
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Source indexes by name, adding a source (text only, no objects) for a
/// file the renderer read that meshc had not loaded.
pub struct Registry {
    by_name: HashMap<String, u32>,
}

impl Registry {
    pub fn new(loaded: &Loaded) -> Registry {
        let by_name = loaded.sources.iter().enumerate().map(|(i, s)| (s.name.clone(), i as u32)).collect();
        Registry { by_name }
    }

    /// The source of `path`, read if needed; None outside the root or unreadable.
    pub fn source(&mut self, at: &Where, loaded: &mut Loaded, path: &Path) -> Option<u32> {
        let name = at.name_of(path)?;
        if let Some(&i) = self.by_name.get(&name) {
            if loaded.sources[i as usize].text.is_empty() {
                loaded.sources[i as usize].text = read_text(path).ok()?;
            }
            return Some(i);
        }
        let text = read_text(path).ok()?;
        let i = loaded.sources.len() as u32;
        loaded.sources.push(Source { name: name.clone(), text });
        self.by_name.insert(name, i);
        Some(i)
    }
}
