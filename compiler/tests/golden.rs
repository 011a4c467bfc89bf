//! Golden cases: `tests/golden/<case>/input/` is checked as `meshc check`
//! would, and compared with
//! - `expect.txt`: the findings reasoned by hand from Linkerd's semantics,
//!   one `code file:line` per line (`#` comments); must match exactly;
//! - `expected.json`: the full JSON report, byte for byte.
//!
//! - `expected-outbound.json` (cases named `outbound-*`): every workload's
//!   outbound config, as `meshc build` signs it;
//! - `expect-outbound.txt` (cases named `outbound-*`): assertions on those
//!   configs reasoned by hand (grammar in `golden_outbound/mod.rs`).
//!
//! `MESHC_BLESS=1 cargo test --test golden` rewrites the expected files; review
//! the diff. `expect.txt` and `expect-outbound.txt` are never generated.

use meshc::findings::Code;
use meshc::load::Input;
use meshc::pipeline::{self, Options};
use meshc::report::{Summary, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[path = "golden_outbound/mod.rs"]
mod golden_outbound;

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
    // As `meshc check` does: MeshTest files under the input run too. Each
    // input is a repository of its own, not a part of meshc's checkout.
    let root = Some(case.join("input"));
    let options = Options { tests: Some(Vec::new()), root, ..Options::default() };
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
    compare(case, "expected.json", &actual_json, &mut problems)?;
    if case.file_name().is_some_and(|n| n.to_string_lossy().starts_with("outbound-")) {
        let mut outcome = outcome;
        compare(case, "expected-outbound.json", &outbound_json(&mut outcome), &mut problems)?;
        match std::fs::read_to_string(case.join(golden_outbound::FILE)) {
            Ok(text) => problems.extend(golden_outbound::check(&text, &outcome)),
            Err(e) => problems.push(format!("{}: {e} (write it by hand)", golden_outbound::FILE)),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n  ")) }
}

/// Compares `actual` with `case/name`, or rewrites it under MESHC_BLESS.
fn compare(case: &Path, name: &str, actual: &str, problems: &mut Vec<String>) -> Result<(), String> {
    let path = case.join(name);
    if mesh_test_support::blessing() {
        return std::fs::write(&path, actual).map_err(|e| e.to_string());
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => {}
        Ok(_) => problems.push(format!("{name} differs (MESHC_BLESS=1 to regenerate, then review the diff)")),
        Err(_) => problems.push(format!("{name} is missing (MESHC_BLESS=1 to generate it)")),
    }
    Ok(())
}

/// The outbound policy every workload's proxy enforces (its config's own
/// part composed with its namespace's ServicePolicies, as `meshc build`
/// signs them), keyed by kind/namespace/name.
fn outbound_json(outcome: &mut meshc::pipeline::Outcome) -> String {
    meshc::lower::outbound::complete(outcome);
    let map: std::collections::BTreeMap<String, &mesh_proxy_api::Outbound> = outcome
        .configs
        .iter()
        .flatten()
        .map(|c| (format!("{}/{}/{}", c.workload.kind, c.workload.namespace, c.workload.name), &c.outbound))
        .collect();
    serde_json::to_string_pretty(&map).expect("outbound serializes") + "\n"
}

/// Whether a case holds a kustomization file: meshc renders it with
/// kustomize, so the case runs only where kubectl (its kustomize) does.
fn needs_kustomize(case: &Path) -> bool {
    fn walk(dir: &Path) -> bool {
        std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { e.file_name() == "kustomization.yaml" }
        })
    }
    walk(&case.join("input"))
}

#[test]
fn golden_cases() {
    let kubectl = std::sync::LazyLock::new(|| {
        mesh_test_support::require_tool(
            "golden_cases (cases with a kustomization file)",
            "kubectl",
            &["version", "--client"],
            "install kubectl (Debian: `apt-get install kubectl`), whose `kubectl kustomize` meshc runs",
        )
    });
    let failures: Vec<String> = cases()
        .iter()
        .filter(|case| !needs_kustomize(case) || *kubectl)
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
