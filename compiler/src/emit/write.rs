//! Writes a build into an output directory, and only ever touches files a
//! previous build wrote there.
//!
//! `DIR/.meshc-build` lists the files meshc wrote. A rebuild removes the
//! listed files it no longer writes (a workload deleted from git must not
//! leave a stale ProxyConfig behind), and never removes anything else. A
//! non-empty directory without that list is refused: it may be someone's
//! repository, and meshc cannot tell its files from stale ones.

use super::{Built, CONFIGS_DIR, KUSTOMIZATION_FILE};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

pub const OWNED_LIST: &str = ".meshc-build";
const HEADER: &str = "# Files written by `meshc build`; it removes those it no longer writes. Do not edit.";

/// Writes `built` into `dir`.
pub fn write_dir(dir: &Path, built: &Built) -> Result<(), String> {
    finish_dir(DirWriter::open(dir)?, built)
}

/// Writes the files of `built` that `out` has not written yet (all but
/// `built.written`), then the ownership list.
pub fn finish_dir(out: DirWriter, built: &Built) -> Result<(), String> {
    let all = built.files.iter().map(|(p, t)| (p.as_str(), t.as_str()));
    let all: Vec<(&str, &str)> = all.chain([(KUSTOMIZATION_FILE, built.kustomization.as_str())]).collect();
    all.par_iter().try_for_each(|(rel, text)| out.write(rel, text))?;
    out.finish(all.iter().map(|(rel, _)| *rel).chain(built.written.iter().map(String::as_str)))
}

/// An output directory being written: [`DirWriter::write`] each file (from
/// any thread, as soon as it is made), then [`DirWriter::finish`] with every
/// file of the build, which removes stale ones and replaces the list.
pub struct DirWriter {
    dir: PathBuf,
    previous: BTreeSet<String>,
}

impl DirWriter {
    pub fn open(dir: &Path) -> Result<DirWriter, String> {
        let previous = previous_files(dir)?;
        Ok(DirWriter { dir: dir.to_path_buf(), previous })
    }

    /// Writes `rel` unless it already holds the same bytes (a rebuild
    /// touches only what changed). Files are written in place: a temporary
    /// file and a rename per file cost 5x as much on ext4, and a build
    /// interrupted half-way leaves files whose signatures or bundle listing
    /// fail `verify-bundle`, never a valid mixture. The ownership list is
    /// still replaced atomically, last.
    pub fn write(&self, rel: &str, text: &str) -> Result<(), String> {
        let path = self.dir.join(rel);
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Removes what the previous build wrote and this one (`written`) did
    /// not, and records `written` as meshc's.
    pub fn finish<'a>(self, written: impl Iterator<Item = &'a str>) -> Result<(), String> {
        let current: BTreeSet<String> = written.map(str::to_owned).collect();
        for stale in self.previous.difference(&current) {
            remove_stale(&self.dir, stale)?;
        }
        let mut list = format!("{HEADER}\n");
        for f in &current {
            list.push_str(f);
            list.push('\n');
        }
        write_atomic(&self.dir.join(OWNED_LIST), &list)
    }
}

/// The files the last build wrote; empty for a new or empty directory.
fn previous_files(dir: &Path) -> Result<BTreeSet<String>, String> {
    if !dir.exists() {
        return Ok(BTreeSet::new());
    }
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let list = dir.join(OWNED_LIST);
    if !list.is_file() {
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty and has no {OWNED_LIST}: refusing to write into a directory `meshc build` did not create (use a new or empty directory)",
                dir.display()
            ));
        }
        return Ok(BTreeSet::new());
    }
    let text = std::fs::read_to_string(&list).map_err(|e| format!("cannot read {}: {e}", list.display()))?;
    Ok(text.lines().filter(|l| !l.starts_with('#') && is_ours(l)).map(str::to_owned).collect())
}

/// Only paths a build can write: a top-level file it names, or a config
/// or ServicePolicy file directly under `configs/<namespace>/` or
/// `servicepolicies/<namespace>/`. An edited list cannot make
/// meshc delete anything else.
fn is_ours(rel: &str) -> bool {
    let parts: Vec<Component> = Path::new(rel).components().collect();
    if !parts.iter().all(|c| matches!(c, Component::Normal(_))) {
        return false;
    }
    match parts.as_slice() {
        [Component::Normal(f)] => [super::CRDS_FILE, super::BUNDLE_FILE, KUSTOMIZATION_FILE].iter().any(|n| f == n),
        [Component::Normal(c), Component::Normal(_), Component::Normal(f)] => {
            (*c == CONFIGS_DIR || *c == super::SERVICE_POLICIES_DIR) && f.to_string_lossy().ends_with(".yaml")
        }
        _ => false,
    }
}

fn remove_stale(dir: &Path, rel: &str) -> Result<(), String> {
    let path = dir.join(rel);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove stale {}: {e}", path.display())),
    }
    // A namespace directory left empty goes too; `remove_dir` fails on a
    // non-empty one, which is what should happen.
    let per_namespace = |pp: &Path| pp == dir.join(CONFIGS_DIR) || pp == dir.join(super::SERVICE_POLICIES_DIR);
    if let Some(parent) = path.parent().filter(|p| p.parent().is_some_and(per_namespace)) {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so a reader (or a crash)
/// never sees half a file.
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::is_ours;

    #[test]
    fn only_build_paths_are_ours() {
        assert!(is_ours("bundle.yaml"));
        assert!(is_ours("configs/shop/deployment-web.yaml"));
        assert!(is_ours("servicepolicies/shop/api.web.yaml"));
        assert!(!is_ours("servicepolicies/shop"));
        assert!(!is_ours("../bundle.yaml"));
        assert!(!is_ours("configs/../../etc/passwd.yaml"));
        assert!(!is_ours("/etc/x.yaml"));
        assert!(!is_ours("README.md"));
        assert!(!is_ours("configs/shop/notes.txt"));
        assert!(!is_ours("configs/shop"));
    }
}
