//! Finds the manifest files under a path, in the order `kubectl apply -f`
//! would read them (lexical), without following a symlink loop twice.

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
    pub files: Vec<(String, PathBuf)>,
    pub errors: Vec<Unreadable>,
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
    walk(root, root, &mut seen, &mut found);
    found.files.sort();
    Ok(found)
}

fn walk(root: &Path, dir: &Path, seen: &mut HashSet<PathBuf>, found: &mut Discovered) {
    // Canonical paths detect symlink loops and directories reached twice.
    let Ok(canonical) = dir.canonicalize() else {
        return;
    };
    if !seen.insert(canonical) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.errors.push(Unreadable { name: relative(root, dir), reason: e.to_string() });
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
                walk(root, &path, seen, found);
            }
        } else if meta.is_file() && is_manifest_name(&file_name) {
            found.files.push((relative(root, &path), path));
        }
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

    #[test]
    fn binary_is_refused() {
        assert!(text_from_bytes(vec![0xff, 0xfe, 0x00]).is_err());
        assert!(text_from_bytes(b"a: \0".to_vec()).is_err());
        assert_eq!(text_from_bytes("\u{feff}a: 1".as_bytes().to_vec()).unwrap(), "a: 1");
    }
}
