//! Golden cases for `meshc diff`, on real git repositories made by the test.
//!
//! `tests/golden/diff/_app/` is the base application. For each case
//! directory: `base/` files overlay it for the first commit, `head/` files
//! for the second (`delete` lists files the head removes), `args` holds
//! extra arguments (one per line) and any other file (a traffic file) is
//! copied next to the repository. The case runs
//! `meshc diff HEAD~1 HEAD k8s ARGS` in the repository and compares stdout
//! with `expected`; `MESHC_BLESS=1` rewrites `expected`.

#[path = "support/bless.rs"]
mod bless;
#[path = "support/gitrepo.rs"]
mod gitrepo;

use gitrepo::{golden, make_repo};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    bless::bless_or_compare(&case.join("expected"), &got)
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
