//! Finds the manifest files under a path, in the order `kubectl apply -f`
//! would read them (lexical), without following a symlink loop twice, and
//! never out of the directory it was given: meshc runs on untrusted pull
//! requests next to secrets, and a link `x.yaml -> /etc/key.pem` must not
//! be read (its content would be quoted in findings).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Larger files are reported rather than read: no real manifest is this big,
/// and it keeps a stray artifact from exhausting memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// One input text and how findings name it.
#[derive(Clone, Debug)]
pub struct Source {
    /// Relative to the path the user gave, `/`-separated; `<stdin>` for `-`.
    pub name: String,
    pub text: String,
}

/// A file that could not be read as text.
#[derive(Clone, Debug)]
pub struct Unreadable {
    pub name: String,
    pub reason: String,
}

#[derive(Default, Debug)]
pub struct Discovered {
    /// Display name, and the real path to read (inside the root).
    pub files: Vec<(String, PathBuf)>,
    pub errors: Vec<Unreadable>,
    /// Symlinks (to files or directories) whose target is outside the root,
    /// by the link's own name, sorted. Never read, never followed.
    pub escaping: Vec<String>,
}

/// Lists manifest files under `root` (a file or a directory), sorted by
/// their relative name. Hidden directories (`.git`, ...) are not entered.
pub fn discover(root: &Path) -> std::io::Result<Discovered> {
    let meta = std::fs::metadata(root)?;
    let mut found = Discovered::default();
    if meta.is_file() {
        let name = root.file_name().map_or_else(|| root.display().to_string(), |n| n.to_string_lossy().into_owned());
        found.files.push((name, root.to_path_buf()));
        return Ok(found);
    }
    let mut seen = HashSet::new();
    let real_root = root.canonicalize()?;
    walk(&Walk { root, real_root: &real_root }, root, &mut seen, &mut found);
    found.files.sort();
    found.escaping.sort();
    Ok(found)
}

/// The directory given, as named and as resolved.
struct Walk<'a> {
    root: &'a Path,
    real_root: &'a Path,
}

fn walk(w: &Walk<'_>, dir: &Path, seen: &mut HashSet<PathBuf>, found: &mut Discovered) {
    // Canonical paths detect symlink loops and directories reached twice.
    let Ok(canonical) = dir.canonicalize() else {
        return;
    };
    if !canonical.starts_with(w.real_root) {
        found.escaping.push(relative(w.root, dir));
        return;
    }
    if !seen.insert(canonical) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.errors.push(Unreadable { name: relative(w.root, dir), reason: e.to_string() });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        }; // dangling symlink
        if meta.is_dir() {
            if !file_name.starts_with('.') {
                walk(w, &path, seen, found);
            }
        } else if meta.is_file() && is_manifest_name(&file_name) {
            add_file(w, entry, path, found);
        }
    }
}

/// A file in a directory already inside the root is inside it, unless it
/// is a symlink: then its target decides, and it is read by that target.
fn add_file(w: &Walk<'_>, entry: std::fs::DirEntry, path: PathBuf, found: &mut Discovered) {
    let name = relative(w.root, &path);
    if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
        found.files.push((name, path));
        return;
    }
    match path.canonicalize() {
        Ok(real) if real.starts_with(w.real_root) => found.files.push((name, real)),
        Ok(_) => found.escaping.push(name),
        Err(e) => found.errors.push(Unreadable { name, reason: e.to_string() }),
    }
}

/// Whether `path` (a file under the directory `root`) resolves inside `root`.
pub fn resolves_inside(root: &Path, path: &Path) -> bool {
    match (root.canonicalize(), path.canonicalize()) {
        (Ok(root), Ok(real)) => real.starts_with(root),
        _ => false,
    }
}

pub fn is_manifest_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| MANIFEST_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Reads a file as UTF-8 text, refusing huge and binary files.
pub fn read_text(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("file is larger than {} MiB", MAX_FILE_BYTES / 1024 / 1024));
    }
    text_from_bytes(bytes)
}

pub fn text_from_bytes(bytes: Vec<u8>) -> Result<String, String> {
    let text = String::from_utf8(bytes).map_err(|e| {
        format!("not UTF-8 text (invalid byte at offset {}); binary file?", e.utf8_error().valid_up_to())
    })?;
    if text.contains('\0') {
        return Err("contains NUL bytes; binary file?".to_owned());
    }
    Ok(text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_manifests_sorted_and_survives_symlink_loops() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/.git")).unwrap();
        std::fs::write(root.join("b/z.yaml"), "").unwrap();
        std::fs::write(root.join("b/.git/x.yaml"), "").unwrap();
        std::fs::write(root.join("a.YML"), "").unwrap();
        std::fs::write(root.join("notes.txt"), "").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root, root.join("b/loop")).unwrap();
        let found = discover(root).unwrap();
        let names: Vec<_> = found.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.YML", "b/z.yaml"]);
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_root_are_listed_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("key.yaml"), "secret").unwrap();
        std::fs::write(root.join("sub/a.yaml"), "").unwrap();
        std::os::unix::fs::symlink(outside.join("key.yaml"), root.join("key.yaml")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("sub/out")).unwrap();
        std::os::unix::fs::symlink("sub/a.yaml", root.join("inside.yaml")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("sub/up")).unwrap();
        let found = discover(&root).unwrap();
        let names: Vec<_> = found.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["inside.yaml", "sub/a.yaml"], "a link inside the root is followed");
        assert_eq!(found.escaping, ["key.yaml", "sub/out", "sub/up"]);
        assert!(!resolves_inside(&root, &root.join("key.yaml")));
        assert!(resolves_inside(&root, &root.join("inside.yaml")));
    }

    #[test]
    fn binary_is_refused() {
        assert!(text_from_bytes(vec![0xff, 0xfe, 0x00]).is_err());
        assert!(text_from_bytes(b"a: \0".to_vec()).is_err());
        assert_eq!(text_from_bytes("\u{feff}a: 1".as_bytes().to_vec()).unwrap(), "a: 1");
    }
}
