//! Real git repositories for `meshc diff` tests: the base application of
//! `tests/golden/diff/_app/`, a base commit and a head commit.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/diff")
}

pub use mesh_test_support::copy_tree as copy_dir;

/// Runs git in `dir` with a fixed identity; its standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=meshc", "-c", "user.email=meshc@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The repository of a case: base commit, then head commit.
pub fn make_repo(case: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let k8s = dir.path().join("k8s");
    copy_dir(&golden().join("_app"), &k8s);
    if case.join("base").is_dir() {
        copy_dir(&case.join("base"), &k8s);
    }
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "base"]);
    if case.join("head").is_dir() {
        copy_dir(&case.join("head"), &k8s);
    }
    if let Ok(list) = std::fs::read_to_string(case.join("delete")) {
        for f in list.lines().filter(|l| !l.trim().is_empty()) {
            std::fs::remove_file(k8s.join(f.trim())).unwrap();
        }
    }
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "--allow-empty", "-m", "head"]);
    for e in std::fs::read_dir(case).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_file() && !matches!(name.as_str(), "args" | "expected" | "delete") {
            std::fs::copy(e.path(), dir.path().join(&name)).unwrap();
        }
    }
    dir
}
