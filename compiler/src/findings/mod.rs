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

/// What a finding names besides its own resource, as data: the object a
/// reference names that does not exist or cannot be used, or the identity a
/// policy names that nothing has. What lowers or drops findings afterwards
/// (`resolve::unknown`, `multicluster::identity`) reads this and the code,
/// never the message, so rewording a message cannot change a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Referent {
    /// `kind` as Kubernetes spells it (`Server`, `NetworkAuthentication`).
    Object { kind: String, namespace: String, name: String },
    /// A workload identity (`SA.NS.serviceaccount.identity.DOMAIN`), or a
    /// `*.`-suffix pattern of them.
    Identity(String),
}

impl Referent {
    pub fn object(kind: &str, namespace: &str, name: &str) -> Referent {
        Referent::Object { kind: kind.to_owned(), namespace: namespace.to_owned(), name: name.to_owned() }
    }

    /// The namespace of the object, or of the ServiceAccount an identity
    /// names (the label before `serviceaccount`); none for a pattern that
    /// spans namespaces.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Referent::Object { namespace, .. } => Some(namespace),
            Referent::Identity(id) => {
                let labels: Vec<&str> = id.split('.').collect();
                // SA.NS.serviceaccount...: the namespace needs a label before it.
                let at = labels.iter().position(|l| *l == "serviceaccount").filter(|at| *at >= 2)?;
                Some(labels[at - 1])
            }
        }
    }

    /// Whether this is the object `id`; the kind in any case, as Linkerd
    /// reads a reference's kind.
    pub fn is(&self, id: &ResourceId) -> bool {
        match self {
            Referent::Object { kind, namespace, name } => {
                kind.eq_ignore_ascii_case(&id.kind) && id.namespace.as_ref() == Some(namespace) && *name == id.name
            }
            Referent::Identity(_) => false,
        }
    }
}

impl From<&ResourceId> for Referent {
    fn from(id: &ResourceId) -> Referent {
        let namespace = id.namespace.clone().unwrap_or_default();
        Referent::Object { kind: id.kind.clone(), namespace, name: id.name.clone() }
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
    /// What the finding names besides its resource; see [`Referent`].
    pub referent: Option<Referent>,
}

impl Finding {
    /// A finding with the catalogue's default severity for `code`.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: code.entry().severity,
            message: message.into(),
            resource: None,
            span,
            hint: None,
            referent: None,
        }
    }

    /// What the finding names besides its resource (a `Referent`, or an
    /// `Option` of one where only some failures name an object).
    pub fn referent(mut self, referent: impl Into<Option<Referent>>) -> Self {
        self.referent = referent.into();
        self
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
