//! CI-native renderers: GitHub Actions workflow commands (annotations on the
//! PR diff) and SARIF 2.1.0 (code scanning, GitLab, Azure DevOps).

use crate::findings::{Code, Finding, Severity};
use crate::load::discover::Source;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn file(f: &Finding, sources: &[Source], prefix: &str) -> String {
    let name = sources.get(f.span.source as usize).map_or("", |s| s.name.as_str());
    if prefix.is_empty() || name.starts_with('<') {
        name.to_owned()
    } else {
        format!("{}/{name}", prefix.trim_end_matches('/'))
    }
}

/// `::error file=...,line=...::message` lines; `prefix` makes paths relative to the repository root.
pub fn github(findings: &[Finding], sources: &[Source], prefix: &str) -> String {
    let mut out = String::new();
    for f in findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut message = f.message.clone();
        if let Some(h) = &f.hint {
            message.push('\n');
            message.push_str(h);
        }
        out.push_str(&format!(
            "::{level} file={},line={},col={},title={}::{}\n",
            escape_property(&file(f, sources, prefix)),
            f.span.line.max(1),
            f.span.column.max(1),
            f.code,
            escape_data(&message)
        ));
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

pub fn sarif(findings: &[Finding], sources: &[Source], prefix: &str) -> String {
    let used: BTreeSet<Code> = findings.iter().map(|f| f.code).collect();
    let rules: Vec<Value> = used
        .iter()
        .map(|c| {
            let e = c.entry();
            json!({
                "id": c.as_str(),
                "shortDescription": {"text": e.summary},
                "fullDescription": {"text": e.explanation},
                "help": {"text": e.fix},
                "defaultConfiguration": {"level": level(e.severity)},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut text = f.message.clone();
            if let Some(h) = &f.hint {
                text.push_str(&format!(" Hint: {h}"));
            }
            json!({
                "ruleId": f.code.as_str(),
                "level": level(f.severity),
                "message": {"text": text},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": file(f, sources, prefix)},
                    "region": {"startLine": f.span.line.max(1), "startColumn": f.span.column.max(1)},
                }}],
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "meshc", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&log).expect("SARIF serializes");
    out.push('\n');
    out
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}
