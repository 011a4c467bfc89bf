//! The source revision a build records: what the bundle was built from.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

/// What git says about the build's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `HEAD`'s commit when `path` is in a git work tree, with `-dirty` when
    /// files under `path` differ from it (so a bundle never claims a commit
    /// it was not built from); `unknown` otherwise.
    pub revision: String,
    /// `HEAD`'s committer time (Unix seconds), only when `path` is clean:
    /// a dirty tree is not that commit.
    pub committed_at: Option<u64>,
}

pub fn detect(path: &Path) -> Source {
    let revision = detect_revision(path);
    let clean = revision != "unknown" && !revision.ends_with("-dirty");
    let dir = containing_dir(path);
    let committed_at =
        clean.then(|| git(dir, &["log", "-1", "--format=%ct", "HEAD"])).flatten().and_then(|t| t.trim().parse().ok());
    Source { revision, committed_at }
}

fn containing_dir(path: &Path) -> &Path {
    if path.is_dir() { path } else { path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")) }
}

fn detect_revision(path: &Path) -> String {
    let dir = containing_dir(path);
    let Some(head) = git(dir, &["rev-parse", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let head = head.trim();
    let target = if path.is_dir() {
        ".".to_owned()
    } else {
        path.file_name().map_or(".".into(), |f| f.to_string_lossy().into_owned())
    };
    match git(dir, &["status", "--porcelain", "--", &target]) {
        Some(status) if status.trim().is_empty() => head.to_owned(),
        Some(_) => format!("{head}-dirty"),
        None => "unknown".to_owned(),
    }
}
