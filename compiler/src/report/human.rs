//! Human output: each finding as a miette diagnostic with the YAML around
//! the line, then a summary line.

use super::Summary;
use crate::findings::{Finding, Severity};
use crate::load::discover::Source;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use std::fmt;

struct Rendered<'a> {
    finding: &'a Finding,
    source: Option<NamedSource<String>>,
    span: Option<SourceSpan>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.finding.message)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.finding.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.finding.code.as_str()))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.finding.hint.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(None, span))))
    }
}

/// The label covers the rest of the line from the finding's position.
fn label_span(text: &str, offset: u32) -> Option<SourceSpan> {
    let start = usize::try_from(offset).ok().filter(|&o| o < text.len() && text.is_char_boundary(o))?;
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let len = text[start..end].trim_end().len().max(1).min(text.len() - start);
    Some(SourceSpan::new(start.into(), len))
}

pub fn render(findings: &[Finding], sources: &[Source], summary: Summary, color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1).with_width(110);
    let mut out = String::new();
    for finding in findings {
        let src = sources.get(finding.span.source as usize);
        let span =
            src.and_then(|s| if finding.span.line > 0 { label_span(&s.text, finding.span.offset) } else { None });
        let rendered = Rendered {
            finding,
            source: src.filter(|_| span.is_some()).map(|s| NamedSource::new(&s.name, s.text.clone())),
            span,
        };
        if handler.render_report(&mut out, &rendered).is_err() {
            out.push_str(&finding.message);
        }
        if span.is_none()
            && let Some(s) = src
        {
            out.push_str(&format!("  at {}:{}\n", s.name, finding.span.line));
        }
        out.push('\n');
    }
    out.push_str(&summary_line(&summary, sources.len()));
    out
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

pub fn summary_line(s: &Summary, files: usize) -> String {
    format!(
        "{}, {}, {} in {} ({}, {})\n",
        plural(s.errors, "error"),
        plural(s.warnings, "warning"),
        plural(s.infos, "info"),
        plural(files, "file"),
        plural(s.resources, "object"),
        plural(s.workloads, "workload")
    )
}
