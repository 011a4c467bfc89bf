//! Golden cases: `tests/golden/<case>/input/` is checked as `meshc check`
//! would, and compared with
//! - `expect.txt`: the findings reasoned by hand from Linkerd's semantics,
//!   one `code file:line` per line (`#` comments); must match exactly;
//! - `expected.json`: the full JSON report, byte for byte.
//!
//! `MESHC_BLESS=1 cargo test --test golden` rewrites `expected.json`; review
//! the diff. `expect.txt` is never generated.

use meshc::findings::Code;
use meshc::load::Input;
use meshc::pipeline::{self, Options};
use meshc::report::{Summary, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(golden_root())
        .expect("tests/golden exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.join("input").is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn expectations(case: &Path) -> BTreeSet<String> {
    let path = case.join("expect.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} is missing", path.display()));
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn run_case(case: &Path) -> Result<(), String> {
    // As `meshc check` does: MeshTest files under the input run too.
    let options = Options { tests: Some(Vec::new()), ..Options::default() };
    let outcome = pipeline::check(&Input::Path(case.join("input")), &options).map_err(|e| e.to_string())?;
    let summary = Summary::new(&outcome.findings, outcome.objects, outcome.workloads());
    let actual_json = json::render(&outcome.findings, &outcome.sources, summary);
    let got: BTreeSet<String> = outcome
        .findings
        .iter()
        .map(|f| format!("{} {}:{}", f.code, outcome.sources[f.span.source as usize].name, f.span.line))
        .collect();
    let want = expectations(case);
    let mut problems = Vec::new();
    for missing in want.difference(&got) {
        problems.push(format!("expected but not reported: {missing}"));
    }
    for extra in got.difference(&want) {
        problems.push(format!("reported but not expected: {extra}"));
    }
    let expected_path = case.join("expected.json");
    if std::env::var_os("MESHC_BLESS").is_some() {
        std::fs::write(&expected_path, &actual_json).map_err(|e| e.to_string())?;
    } else {
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual_json => {}
            Ok(_) => {
                problems.push("expected.json differs (MESHC_BLESS=1 to regenerate, then review the diff)".to_owned())
            }
            Err(_) => problems.push("expected.json is missing (MESHC_BLESS=1 to generate it)".to_owned()),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n  ")) }
}

#[test]
fn golden_cases() {
    let failures: Vec<String> = cases()
        .iter()
        .filter_map(|case| {
            run_case(case).err().map(|e| format!("{}:\n  {e}", case.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(failures.is_empty(), "{} golden case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Every finding code has at least one golden case where it fires.
#[test]
fn every_code_has_a_case() {
    let fired: BTreeSet<String> = cases()
        .iter()
        .flat_map(|c| expectations(c))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    let missing: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).filter(|c| !fired.contains(*c)).collect();
    assert!(missing.is_empty(), "codes without a golden case: {missing:?}");
}
