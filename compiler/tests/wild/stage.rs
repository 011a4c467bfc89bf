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

/// Findings at warning or error, except those about the suite's own MeshTest file.
pub fn alarms(o: &Outcome) -> Vec<String> {
    o.findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Warning | Severity::Error))
        .filter(|f| !matches!(f.code, Code::FlowExpectationFailed | Code::TestError | Code::InvariantViolated))
        .map(|f| finding_key(o, f))
        .collect()
}

pub fn run(corpus_source: &Path, stage: &Stage) -> Result<Outcome, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for file in &stage.files {
        // `FROM>TO`: copied under another name (a `.golden` file is YAML meshc would not discover).
        let (from, to) = file.split_once('>').unwrap_or((file, file));
        let (from, to) = (corpus_source.join(from), dir.path().join(to));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(&from, &to).map_err(|e| format!("stage {}: {}: {e}", stage.name, from.display()))?;
    }
    if let Some(settings) = &stage.settings {
        std::fs::copy(settings, dir.path().join("meshc.yaml")).map_err(|e| e.to_string())?;
    }
    let tests = stage.meshtest.iter().cloned().collect();
    let options = Options { tests: Some(tests), ..Options::default() };
    pipeline::check(&Input::Path(dir.path().to_owned()), &options).map_err(|e| format!("stage {}: {e}", stage.name))
}
