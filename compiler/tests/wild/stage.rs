//! One stage of one source: its corpus files copied (at test time, never
//! committed) into a temporary directory, the stage's `meshc.yaml`, then the
//! pipeline with the stage's MeshTest file. meshc reads the files in lexical
//! order, as `kubectl apply -f DIR` applies them.

use super::spec::Stage;
use meshc::findings::{Code, Severity};
use meshc::load::Input;
use meshc::pipeline::{self, Options, Outcome};
use std::path::Path;

/// A finding as expect files name it: `code file:line`.
pub fn finding_key(o: &Outcome, f: &meshc::findings::Finding) -> String {
    let file = o.sources.get(f.span.source as usize).map_or("?", |s| s.name.as_str());
    format!("{} {file}:{}", f.code, f.span.line)
}

/// Findings on the manifests (not on the suite's own MeshTest file): those at
/// warning or error, and all of them (a real mistake may rightly be info).
pub fn findings(o: &Outcome) -> (Vec<String>, Vec<String>) {
    let on_manifests = o
        .findings
        .iter()
        .filter(|f| !matches!(f.code, Code::FlowExpectationFailed | Code::TestError | Code::InvariantViolated));
    let (mut alarms, mut all) = (Vec::new(), Vec::new());
    for f in on_manifests {
        if matches!(f.severity, Severity::Warning | Severity::Error) {
            alarms.push(finding_key(o, f));
        }
        all.push(finding_key(o, f));
    }
    (alarms, all)
}

/// Errors in the suite's own MeshTest file that are not about one flow (a
/// flow's own error fails that flow): they would drop flows unseen.
pub fn suite_errors(o: &Outcome) -> Vec<String> {
    o.findings
        .iter()
        .filter(|f| f.code == Code::TestError && !f.message.starts_with("flow "))
        .map(|f| format!("{}: {}", finding_key(o, f), f.message))
        .collect()
}

pub fn run(corpus_source: &Path, stage: &Stage) -> Result<Outcome, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for file in &stage.files {
        let copy = Copy::parse(file);
        let from = corpus_source.join(copy.from);
        let text =
            std::fs::read_to_string(&from).map_err(|e| format!("stage {}: {}: {e}", stage.name, from.display()))?;
        let text = without_objects(&text, &copy.without).map_err(|e| format!("stage {}: {file}: {e}", stage.name))?;
        let to = dir.path().join(copy.to);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&to, text).map_err(|e| e.to_string())?;
    }
    if let Some(settings) = &stage.settings {
        std::fs::copy(settings, dir.path().join("meshc.yaml")).map_err(|e| e.to_string())?;
    }
    let tests = stage.meshtest.iter().cloned().collect();
    let options = Options { tests: Some(tests), ..Options::default() };
    pipeline::check(&Input::Path(dir.path().to_owned()), &options).map_err(|e| format!("stage {}: {e}", stage.name))
}

/// A `stages.txt` file entry: `FROM[!KIND/NAME...][>TO]`.
struct Copy<'a> {
    from: &'a str,
    /// Objects left out (a state the source describes without them).
    without: Vec<(&'a str, &'a str)>,
    /// The name in the stage (a `.golden` file is YAML meshc would not discover).
    to: &'a str,
}

impl<'a> Copy<'a> {
    fn parse(entry: &'a str) -> Self {
        let (source, to) = entry.split_once('>').map_or((entry, None), |(s, t)| (s, Some(t)));
        let mut parts = source.split('!');
        let from = parts.next().unwrap_or(source);
        let without = parts.filter_map(|p| p.split_once('/')).collect();
        Copy { from, without, to: to.unwrap_or(from) }
    }
}

/// `text` with the documents of the named objects turned into comment
/// lines, so every other line keeps its number (findings name corpus lines).
fn without_objects(text: &str, without: &[(&str, &str)]) -> Result<String, String> {
    let mut out = Vec::new();
    let mut doc: Vec<&str> = Vec::new();
    let mut removed = 0;
    let mut flush = |doc: &mut Vec<&str>, out: &mut Vec<String>| {
        let is = |kind: &str, name: &str| {
            doc.iter().any(|l| l.trim_end() == format!("kind: {kind}"))
                && doc.iter().any(|l| l.trim_end() == format!("  name: {name}"))
        };
        let drop = without.iter().any(|(k, n)| is(k, n));
        removed += usize::from(drop);
        out.extend(
            doc.drain(..).map(|l| if drop { "# (left out by the wild suite)".to_owned() } else { l.to_owned() }),
        );
    };
    for line in text.lines() {
        if line.starts_with("---") {
            flush(&mut doc, &mut out);
            out.push(line.to_owned());
        } else {
            doc.push(line);
        }
    }
    flush(&mut doc, &mut out);
    if removed < without.len() {
        return Err(format!("{} object(s) to leave out, {removed} found", without.len()));
    }
    Ok(out.join("\n") + "\n")
}

#[test]
fn objects_are_left_out_line_for_line() {
    let text = "---\nkind: A\nmetadata:\n  name: x\n---\nkind: B\nmetadata:\n  name: y\n";
    let got = without_objects(text, &[("A", "x")]).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 8);
    assert!(lines[1].starts_with('#') && lines[3].starts_with('#'));
    assert_eq!(&lines[5..], ["kind: B", "metadata:", "  name: y"]);
    assert!(without_objects(text, &[("A", "y")]).is_err(), "a name of another kind matches nothing");
    let c = Copy::parse("a.yaml!HTTPRoute/r!Server/s>b.yaml");
    assert_eq!((c.from, c.to, c.without), ("a.yaml", "b.yaml", vec![("HTTPRoute", "r"), ("Server", "s")]));
}
