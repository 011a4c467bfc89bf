//! `--format json`: a stable, versioned shape for tools.
//! `{"version":1,"findings":[...],"summary":{...}}`; `file` is relative to the path given.

use super::Summary;
use crate::findings::{Code, Finding, ResourceId, Severity};
use crate::load::discover::Source;
use serde::Serialize;

pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct Report<'a> {
    version: u32,
    findings: Vec<JsonFinding<'a>>,
    summary: Summary,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    code: Code,
    severity: Severity,
    message: &'a str,
    resource: Option<&'a ResourceId>,
    file: &'a str,
    line: u32,
    column: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

pub fn render(findings: &[Finding], sources: &[Source], summary: Summary) -> String {
    let mut out = serde_json::to_string_pretty(&report(findings, sources, summary)).expect("report serializes");
    out.push('\n');
    out
}

/// [`render`]'s bytes written to `out` as they are made: a large
/// repository's report is never held whole in memory (`meshc check`).
pub fn write(
    findings: &[Finding],
    sources: &[Source],
    summary: Summary,
    out: impl std::io::Write,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, &report(findings, sources, summary))?;
    out.write_all(b"\n")?;
    out.flush()
}

fn report<'a>(findings: &'a [Finding], sources: &'a [Source], summary: Summary) -> Report<'a> {
    let findings = findings
        .iter()
        .map(|f| JsonFinding {
            code: f.code,
            severity: f.severity,
            message: &f.message,
            resource: f.resource.as_ref(),
            file: sources.get(f.span.source as usize).map_or("", |s| s.name.as_str()),
            line: f.span.line,
            column: f.span.column,
            hint: f.hint.as_deref(),
        })
        .collect();
    Report { version: VERSION, findings, summary }
}
