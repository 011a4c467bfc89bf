//! The wild corpus (`../shared/corpus/wild`: Linkerd manifests other people
//! wrote, with the outcomes their sources state) as a test suite. See
//! README.md here for the files and the current figures.
//!
//! It passes while recording the current truth, and fails when
//! (a) an outcome that agreed stops agreeing, (b) a finding appears that is
//! neither a listed real mistake nor a listed false alarm, (c) a listed gap
//! is fixed (remove it from `known-gaps.txt`), or README.md's table is stale.

mod ratelimits;
mod routing;
mod spec;
mod stage;
mod tally;

use spec::{Gap, Source};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tally::Tally;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wild")
}

/// `../shared` beside the repository; `MESHC_SHARED` names another place
/// (a git worktree that is not a sibling of `shared/`).
fn corpus_dir() -> PathBuf {
    let shared = std::env::var_os("MESHC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("corpus/wild")
}

fn subdirs(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Per outcome ID, the failures of its checks (empty: it agrees).
type Checked = BTreeMap<String, Vec<String>>;

/// Findings over all stages: at warning or error, and at any severity.
#[derive(Default)]
struct Raised {
    alarms: BTreeSet<String>,
    all: BTreeSet<String>,
}

/// Runs every stage: MeshTest flows, routing expectations, and the findings raised.
fn run_source(corpus: &Path, s: &Source, problems: &mut Vec<String>) -> (Checked, Raised) {
    let mut checked = Checked::new();
    let mut raised = Raised::default();
    let routing_text = std::fs::read_to_string(s.dir.join("routing.txt")).unwrap_or_default();
    let routes = routing::parse(&routing_text).unwrap_or_else(|e| {
        problems.push(format!("{}: {e}", s.name));
        Vec::new()
    });
    let stage_names: BTreeSet<&str> = s.stages.iter().map(|st| st.name.as_str()).collect();
    for x in routes.iter().filter(|x| !stage_names.contains(x.stage.as_str())) {
        problems.push(format!("{}: routing.txt:{}: no stage `{}` in stages.txt", s.name, x.line, x.stage));
    }
    let limits = ratelimits::parse(&std::fs::read_to_string(s.dir.join("ratelimits.txt")).unwrap_or_default())
        .unwrap_or_else(|e| {
            problems.push(format!("{}: {e}", s.name));
            Vec::new()
        });
    for x in limits.iter().filter(|x| !stage_names.contains(x.stage.as_str())) {
        problems.push(format!("{}: ratelimits.txt:{}: no stage `{}` in stages.txt", s.name, x.line, x.stage));
    }
    for st in &s.stages {
        let o = match stage::run(&corpus.join(&s.name), st) {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{}: {e}", s.name));
                continue;
            }
        };
        for t in &o.tests {
            let id = t.name.split_whitespace().next().unwrap_or("").to_owned();
            let failures = checked.entry(id).or_default();
            if !t.passed {
                failures.push(format!("[{}] {}: {}", st.name, t.name, t.message));
            }
        }
        for x in routes.iter().filter(|x| x.stage == st.name) {
            let failures = checked.entry(x.id.clone()).or_default();
            if let Err(e) = routing::check(&o, x) {
                failures.push(format!("[{}] routing.txt:{}: {e}", st.name, x.line));
            }
        }
        for x in limits.iter().filter(|x| x.stage == st.name) {
            let failures = checked.entry(x.id.clone()).or_default();
            if let Err(e) = ratelimits::check(&o, x) {
                failures.push(format!("[{}] ratelimits.txt:{}: {e}", st.name, x.line));
            }
        }
        problems.extend(stage::suite_errors(&o).into_iter().map(|e| format!("{}: [{}] {e}", s.name, st.name)));
        let (alarms, all) = stage::findings(&o);
        raised.alarms.extend(alarms);
        raised.all.extend(all);
    }
    (checked, raised)
}

fn judge_outcomes(s: &Source, checked: &Checked, t: &mut Tally, problems: &mut Vec<String>) {
    for id in checked.keys().filter(|id| !s.stated.contains(*id)) {
        problems.push(format!("{}: `{id}` is not an outcome SOURCE.md states (flow names start with the ID)", s.name));
    }
    for id in &s.stated {
        let differs = s.gaps.get(&Gap::Differs(id.clone()));
        let cannot = s.gaps.get(&Gap::CannotExpress(id.clone()));
        match (checked.get(id), differs, cannot.is_some()) {
            (Some(_), _, true) => {
                problems.push(format!("{}: {id} is checked and also listed as cannot-express", s.name))
            }
            (None, _, true) => {
                t.cannot += 1;
                println!("{}: {id} cannot be expressed yet: {}", s.name, cannot.map_or("", |w| w.as_str()));
            }
            (None, _, false) => {
                problems.push(format!("{}: {id} is neither checked nor listed as cannot-express", s.name))
            }
            (Some(f), None, _) if f.is_empty() => t.agree += 1,
            (Some(f), Some(_), _) if f.is_empty() => {
                problems.push(format!("{}: {id} now agrees, remove `differs {id}` from known-gaps", s.name));
            }
            (Some(f), Some(why), _) => {
                t.differ += 1;
                println!("{}: {id} differs ({why}): {}", s.name, f.join("; "));
            }
            (Some(f), None, _) => {
                problems.push(format!("{}: {id} agreed and no longer does: {}", s.name, f.join("; ")));
            }
        }
    }
}

/// Every warning or error is a listed real mistake or a listed false alarm;
/// every listed real mistake is found (at any severity).
fn judge_findings(s: &Source, raised: &Raised, t: &mut Tally, problems: &mut Vec<String>) {
    for key in &raised.alarms {
        if s.gaps.contains_key(&Gap::FalseAlarm(key.clone())) {
            t.false_alarms += 1;
        } else if s.gaps.contains_key(&Gap::Unmodelled(key.clone())) {
            t.unmodelled += 1;
        } else if !s.expected_findings.contains_key(key) {
            problems.push(format!(
                "{}: new finding `{key}`: a real mistake (expect.txt), a false alarm or unmodelled?",
                s.name
            ));
        }
    }
    for key in s.expected_findings.keys() {
        if raised.all.contains(key) {
            t.true_findings += 1;
        } else {
            problems.push(format!("{}: the real mistake `{key}` is no longer found", s.name));
        }
    }
    for gap in s.gaps.keys() {
        if let Gap::FalseAlarm(key) | Gap::Unmodelled(key) = gap
            && !raised.alarms.contains(key)
        {
            problems.push(format!("{}: `{key}` is no longer raised, remove it from known-gaps", s.name));
        }
    }
}

/// The line README.md has for each outcome that differs or cannot be expressed.
fn readme_lines(s: &Source) -> Vec<String> {
    s.gaps
        .iter()
        .filter_map(|(gap, why)| match gap {
            Gap::Differs(id) | Gap::CannotExpress(id) => Some(format!("- `{}` {id}: {why}", s.name)),
            Gap::FalseAlarm(_) | Gap::Unmodelled(_) => None,
        })
        .collect()
}

#[test]
fn wild_corpus_agrees_with_its_sources() {
    let corpus = corpus_dir();
    if !mesh_test_support::require_path("wild_corpus_agrees_with_its_sources", &corpus, "the wild corpus") {
        return;
    }
    let suite = suite_dir();
    let mut problems = Vec::new();
    for missing in subdirs(&corpus).difference(&subdirs(&suite)) {
        problems.push(format!("corpus source {missing} has no suite directory in {}", suite.display()));
    }
    let mut rows = Vec::new();
    let mut gap_lines = Vec::new();
    for name in subdirs(&suite) {
        let s = match spec::load(&suite, &corpus, &name) {
            Ok(s) => s,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        gap_lines.extend(readme_lines(&s));
        let (checked, raised) = run_source(&corpus, &s, &mut problems);
        let mut t = Tally::default();
        judge_outcomes(&s, &checked, &mut t, &mut problems);
        judge_findings(&s, &raised, &mut t, &mut problems);
        rows.push((name, t));
    }
    let table = tally::table(&rows);
    println!("{table}");
    tally::check_readme(&suite.join("README.md"), &table, &gap_lines, &mut problems);
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
