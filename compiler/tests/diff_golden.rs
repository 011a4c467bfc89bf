//! Golden cases for `meshc diff`, on real git repositories made by the test.
//!
//! `tests/golden/diff/_app/` is the base application. For each case
//! directory: `base/` files overlay it for the first commit, `head/` files
//! for the second (`delete` lists files the head removes), `args` holds
//! extra arguments (one per line) and any other file (a traffic file) is
//! copied next to the repository. The case runs
//! `meshc diff HEAD~1 HEAD k8s ARGS` in the repository and compares stdout
//! with `expected`; `MESHC_BLESS=1` rewrites `expected`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/diff")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=meshc", "-c", "user.email=meshc@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
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

fn run_case(case: &Path) -> Result<(), String> {
    let repo = make_repo(case);
    let extra = std::fs::read_to_string(case.join("args")).unwrap_or_default();
    let out = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(["diff", "HEAD~1", "HEAD", "k8s"])
        .args(extra.lines().map(str::trim).filter(|l| !l.is_empty()))
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)));
    }
    let got = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    let expected = case.join("expected");
    if std::env::var_os("MESHC_BLESS").is_some() {
        std::fs::write(&expected, &got).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want = std::fs::read_to_string(&expected).map_err(|e| format!("{}: {e}", expected.display()))?;
    if got == want { Ok(()) } else { Err(format!("output differs:\n--- got\n{got}\n--- expected\n{want}")) }
}

#[test]
fn diff_golden_cases() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "found {} diff cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| run_case(c).err().map(|e| format!("{}: {e}", c.file_name().unwrap().to_string_lossy())))
        .collect();
    assert!(failures.is_empty(), "{} diff case(s) failed:\n{}", failures.len(), failures.join("\n"));
}
