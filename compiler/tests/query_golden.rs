//! Golden cases for the query commands, run through the real binary on the
//! example repositories: `tests/golden/queries/<case>/command` holds the
//! arguments (one per line, paths relative to the repository root) and
//! `stdout` what meshc must print; `exit` the exit code when it is not 0.
//!
//! `MESHC_BLESS=1 cargo test --test query_golden` rewrites `stdout`; review
//! the diff before committing it.

#[path = "support/bless.rs"]
mod bless;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cases() -> Vec<PathBuf> {
    let root = repo_root().join("tests/golden/queries");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden/queries exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.join("command").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn run_case(case: &Path) -> Result<(), String> {
    let command = std::fs::read_to_string(case.join("command")).map_err(|e| e.to_string())?;
    let args: Vec<&str> = command.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(&args)
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| e.to_string())?;
    // `exit` holds the expected exit code when it is not 0 (a failing test run).
    let want_exit: i32 =
        std::fs::read_to_string(case.join("exit")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    if out.status.code() != Some(want_exit) {
        return Err(format!(
            "exit {:?}, want {want_exit}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let got = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    bless::bless_or_compare(&case.join("stdout"), &got)
}

#[test]
fn query_golden_cases() {
    let cases = cases();
    assert!(cases.len() >= 10, "expected the query golden cases, found {}", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| run_case(c).err().map(|e| format!("{}: {e}", c.file_name().unwrap().to_string_lossy())))
        .collect();
    assert!(failures.is_empty(), "{} query golden case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Issue 15: `MESHC_BLESS` is refused under CI. This very binary, run on the
/// golden cases with both set, must fail with the refusal (before, it
/// rewrote every `stdout` and passed, comparing the output with itself).
#[test]
fn blessing_is_refused_under_ci() {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["query_golden_cases", "--exact", "--nocapture"])
        .env("CI", "true")
        .env("MESHC_BLESS", "1")
        .output()
        .expect("the test binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "blessing under CI passed:\n{text}");
    assert!(text.contains("MESHC_BLESS is refused under CI"), "{text}");
}
