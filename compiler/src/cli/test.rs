//! `meshc test PATH`: only the MeshTest files, as test results.

use super::{EXIT_FINDINGS, EXIT_USAGE};
use crate::findings::Code;
use crate::load::Input;
use crate::meshtest::{TestResult, junit};
use crate::pipeline::{self, Options};
use crate::query::render::text::Paint;
use clap::{Args, ValueEnum};
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TestArgs {
    /// A directory of manifests; every `*.meshtest.yaml` under it is run.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// A MeshTest file to run besides those under PATH (repeatable).
    #[arg(long = "tests", value_name = "FILE")]
    tests: Vec<PathBuf>,
    /// Mesh settings file (default: meshc.yaml at the root of PATH).
    #[arg(long)]
    settings: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Human,
    Json,
    /// JUnit XML: one testcase per flow.
    Junit,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(a: TestArgs) -> ExitCode {
    if !a.path.exists() {
        return fail(format!("{}: no such file or directory", a.path.display()));
    }
    let options = Options { settings_file: a.settings, tests: Some(a.tests), ..Options::default() };
    let o = match pipeline::check(&Input::Path(a.path.clone()), &options) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    // Errors that stop a test from running, in the test files themselves.
    let test_files: Vec<u32> = (0..o.sources.len() as u32)
        .filter(|&i| o.sources[i as usize].name.ends_with(crate::meshtest::SUFFIX))
        .collect();
    // Failures and unrunnable tests are results already; the rest (a test
    // file that does not parse, a wrong kind) are errors.
    let reported = |m: &str| o.tests.iter().any(|t| t.message == m || t.detail == m);
    let errors: Vec<String> = o
        .findings
        .iter()
        .filter(|f| f.code == Code::TestError || test_files.contains(&f.span.source))
        .filter(|f| !matches!(f.code, Code::FlowExpectationFailed | Code::InvariantViolated) && !reported(&f.message))
        .map(|f| {
            let file = o.sources.get(f.span.source as usize).map_or("", |s| s.name.as_str());
            format!("{file}:{}: {}: {}", f.span.line, f.code, f.message)
        })
        .collect();
    if o.tests.is_empty() && errors.is_empty() {
        return fail(format!("{}: no MeshTest files (*.meshtest.yaml) found", a.path.display()));
    }
    let failed = o.tests.iter().any(|t| !t.passed) || !errors.is_empty();
    match a.format {
        Format::Junit => out!("{}", junit::render(&o.tests)),
        Format::Json => {
            let passed = o.tests.iter().filter(|t| t.passed).count();
            let v = serde_json::json!({
                "version": 1,
                "tests": o.tests,
                "errors": errors,
                "summary": {"passed": passed, "failed": o.tests.len() - passed, "errors": errors.len()},
            });
            outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Format::Human => out!("{}", human(&o.tests, &errors, Paint::detect())),
    }
    if failed { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

fn human(results: &[TestResult], errors: &[String], paint: Paint) -> String {
    let mut out = String::new();
    for r in results {
        let (mark, verdict) = if r.passed {
            ("PASS", crate::query::evaluate::Verdict::Allow)
        } else {
            ("FAIL", crate::query::evaluate::Verdict::Deny)
        };
        let mark = if paint.0 { paint.verdict(verdict).replace(verdict.as_str(), mark) } else { mark.to_owned() };
        let _ = writeln!(out, "{mark} {} / {}  ({}:{})", r.test, r.name, r.file, r.line);
        if !r.passed {
            let _ = writeln!(out, "     {}", if r.detail.is_empty() { &r.message } else { &r.detail });
        }
    }
    for e in errors {
        let _ = writeln!(out, "ERROR {e}");
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let _ = writeln!(out, "\n{passed} passed, {} failed, {} errors", results.len() - passed, errors.len());
    out
}
