//! Findings: what meshc reports. Every stage (load, model, resolve, analyze)
//! produces them, so they live at the crate root rather than under `analyze`.

pub mod catalogue;

use serde::Serialize;

pub use catalogue::{Code, Entry};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

/// apiVersion/kind/namespace/name of the resource a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceId {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A place in the input: which loaded source, and where in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub source: u32,
    pub line: u32,
    pub column: u32,
    /// Byte offset into the source text, for rendering a snippet.
    pub offset: u32,
}

impl Span {
    /// The start of a source, for findings about a whole file.
    pub fn file(source: u32) -> Span {
        Span { source, line: 1, column: 1, offset: 0 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub resource: Option<ResourceId>,
    pub span: Span,
    pub hint: Option<String>,
}

impl Finding {
    /// A finding with the catalogue's default severity for `code`.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Finding { code, severity: code.entry().severity, message: message.into(), resource: None, span, hint: None }
    }

    pub fn resource(mut self, id: ResourceId) -> Self {
        self.resource = Some(id);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Order used everywhere findings are printed: by place, then code, then text.
    pub fn sort_key(&self) -> (u32, u32, u32, &'static str, &str) {
        (self.span.source, self.span.line, self.span.column, self.code.as_str(), &self.message)
    }
}
