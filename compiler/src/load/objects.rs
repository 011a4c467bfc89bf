//! Turns parsed documents into Kubernetes objects: expands `kind: List`,
//! recognises files that are not manifests, and salvages the documents of a
//! file around a syntax error.

use super::yaml::{self, Node, ParseFailure, Value};
use crate::findings::{Code, Finding, Span};
use std::sync::Arc;

/// One Kubernetes object as written, with its position.
#[derive(Clone, Debug)]
pub struct RawObject {
    pub source: u32,
    pub api_version: String,
    pub kind: String,
    /// Shared, copied on write (`Arc::make_mut`): the two sides of `meshc
    /// diff` hold one tree for a file both have (`ParseCache`), and a tree
    /// still shared when decoded was never changed after parsing, which is
    /// what lets `model::DecodeCache` reuse its decoding.
    pub node: Arc<Node>,
    /// The kustomization file whose `kustomize build` produced this object
    /// (`load/render`); None for an object read as written. Flux applies
    /// (and substitutes) what the build of its path produced, wherever the
    /// base file sits.
    pub rendered_in: Option<u32>,
}

impl RawObject {
    pub fn span(&self) -> Span {
        span_of(self.source, &self.node)
    }
}

/// Where `node` was written: in `source`, the file of the object holding
/// it, unless the node says otherwise (a field set by a kustomize patch).
pub fn span_of(source: u32, node: &Node) -> Span {
    let source = if node.source == yaml::SAME_SOURCE { source } else { node.source };
    Span { source, line: node.line, column: node.column, offset: node.offset }
}

/// Files with these names are renderer inputs, never manifests.
fn renderer_input(name: &str) -> Option<&'static str> {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base {
        "kustomization.yaml" | "kustomization.yml" | "Kustomization" => {
            Some("a Kustomize file; run `kustomize build DIR | meshc check -` to check what it renders")
        }
        "Chart.yaml" | "Chart.lock" => Some("Helm chart metadata; run `helm template CHART | meshc check -`"),
        "values.yaml" | "values.yml" => {
            Some("Helm values; run `helm template CHART -f values.yaml | meshc check -` to check what they render")
        }
        _ => None,
    }
}

/// Parses one source into objects and findings.
pub fn objects_of(source: u32, name: &str, text: &str) -> (Vec<RawObject>, Vec<Finding>) {
    let file_span = Span::file(source);
    if let Some(why) = renderer_input(name) {
        return (Vec::new(), vec![Finding::new(Code::SkippedFile, file_span, format!("{name} is {why}"))]);
    }
    if looks_like_helm_template(text) {
        let msg = format!(
            "{name} is a Helm template (it uses .Values, .Release, .Chart, include or template); render it first, e.g. `helm template . | meshc check -`"
        );
        return (Vec::new(), vec![Finding::new(Code::SkippedFile, file_span, msg)]);
    }
    let (docs, failure) = match yaml::parse_documents(text) {
        Ok(docs) => (docs, None),
        Err(failure) => salvage(text, failure),
    };
    let mut findings = Vec::new();
    if let Some(f) = failure {
        if text.contains("{{") {
            let msg = format!(
                "{name} looks like a template (`{{{{ ... }}}}`) and is not valid YAML ({}); render it first, e.g. `helm template . | meshc check -`",
                f.message
            );
            return (Vec::new(), vec![Finding::new(Code::SkippedFile, file_span, msg)]);
        }
        let span = f.span(source);
        findings.push(
            Finding::new(Code::ParseError, span, format!("{name}: {}", f.message))
                .hint("kubectl applies only the documents before the broken one, Flux and Argo CD none of the file; meshc still checks the other documents"),
        );
    }
    let docs: Vec<Node> = docs.into_iter().filter(|d| d.value != Value::Null).collect();
    if !docs.is_empty() && docs.iter().all(|d| !looks_like_object(d)) {
        let msg = format!("{name} holds no Kubernetes object (no apiVersion and kind); values or config file?");
        findings.push(Finding::new(Code::SkippedFile, file_span, msg));
        return (Vec::new(), findings);
    }
    let mut objects = Vec::new();
    for doc in docs {
        collect(source, doc, &mut objects, &mut findings);
    }
    (objects, findings)
}

/// Whether a text that yielded no object still looks like a manifest (a
/// broken one, whose parse error is worth quoting): a line that sets
/// `apiVersion` or `kind`, in YAML or JSON.
pub fn looks_like_manifest(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start().trim_start_matches("- ").trim_start_matches(['{', ' ']);
        ["apiVersion:", "kind:", "\"apiVersion\"", "\"kind\""].iter().any(|k| line.starts_with(k))
    })
}

/// Helm's own template vocabulary; a bare `{{ $value }}` is left alone, since
/// rendered manifests carry those (Prometheus rules, Grafana dashboards).
fn looks_like_helm_template(text: &str) -> bool {
    const MARKERS: &[&str] =
        &[".Values.", ".Release.", ".Chart.", "{{ include ", "{{- include ", "{{ template ", "{{- template "];
    text.contains("{{") && MARKERS.iter().any(|m| text.contains(m))
}

fn looks_like_object(node: &Node) -> bool {
    node.get("apiVersion").is_some() || node.get("kind").is_some()
}

fn collect(source: u32, node: Node, out: &mut Vec<RawObject>, findings: &mut Vec<Finding>) {
    let span = span_of(source, &node);
    if !matches!(node.value, Value::Map(_)) {
        findings.push(Finding::new(
            Code::SchemaViolation,
            span,
            "document is not a Kubernetes object (expected a mapping)",
        ));
        return;
    }
    let api_version = node.get("apiVersion").and_then(Node::as_str).map(str::to_owned);
    let kind = node.get("kind").and_then(Node::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        let msg = "object has no apiVersion or kind (both must be strings); kubectl rejects it";
        findings.push(Finding::new(Code::SchemaViolation, span, msg));
        return;
    };
    if kind.ends_with("List") && api_version == "v1" {
        expand_list(source, node, out, findings);
        return;
    }
    out.push(RawObject { source, api_version, kind, node: Arc::new(node), rendered_in: None });
}

fn expand_list(source: u32, mut node: Node, out: &mut Vec<RawObject>, findings: &mut Vec<Finding>) {
    let span = span_of(source, &node);
    let Value::Map(entries) = &mut node.value else {
        return;
    };
    let items =
        entries.iter_mut().find(|(k, _)| k.name == "items").map(|(_, v)| std::mem::replace(&mut v.value, Value::Null));
    match items {
        Some(Value::Seq(items)) => {
            for item in items {
                collect(source, item, out, findings);
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => findings.push(Finding::new(Code::SchemaViolation, span, "List `items` must be a sequence")),
    }
}

/// When a multi-document file fails to parse, each `---`-separated chunk is
/// parsed on its own, so one broken document does not hide the others.
fn salvage(text: &str, first: ParseFailure) -> (Vec<Node>, Option<ParseFailure>) {
    let mut docs = Vec::new();
    let mut failure = None;
    for (line0, offset0, chunk) in split_documents(text) {
        match yaml::parse_documents(chunk) {
            Ok(parsed) => docs.extend(parsed.into_iter().map(|mut n| {
                shift(&mut n, line0, offset0);
                n
            })),
            Err(mut f) => {
                f.line += line0;
                f.offset += offset0;
                failure.get_or_insert(f);
            }
        }
    }
    // A failure the chunks cannot place (e.g. a broken directive) keeps the original.
    (docs, Some(failure.unwrap_or(first)))
}

/// Chunks of `text` between document markers, with the line and byte offset
/// each chunk starts at (0-based line delta).
fn split_documents(text: &str) -> Vec<(u32, u32, &str)> {
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut offset) = (0usize, 0u32, 0usize);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            chunks.push((start_line, start as u32, &text[start..offset]));
            start = offset;
            start_line = i as u32;
        }
        offset += line.len();
    }
    chunks.push((start_line, start as u32, &text[start..]));
    chunks
}

fn shift(node: &mut Node, lines: u32, offset: u32) {
    node.line += lines;
    node.offset += offset;
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| shift(n, lines, offset)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            k.line += lines;
            k.offset += offset;
            shift(v, lines, offset)
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_expanded() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Pod\n";
        let (objs, findings) = objects_of(0, "l.yaml", text);
        assert!(findings.is_empty(), "{findings:?}");
        let kinds: Vec<_> = objs.iter().map(|o| (o.kind.as_str(), o.node.line)).collect();
        assert_eq!(kinds, [("Service", 4), ("Pod", 7)]);
    }

    #[test]
    fn broken_document_does_not_hide_the_others() {
        let text = "apiVersion: v1\nkind: Service\n---\napiVersion: v1\nkind: [\n---\napiVersion: v1\nkind: Pod\n";
        let (objs, findings) = objects_of(0, "f.yaml", text);
        assert_eq!(
            objs.iter().map(|o| (o.kind.as_str(), o.node.line)).collect::<Vec<_>>(),
            [("Service", 1), ("Pod", 7)]
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, Code::ParseError);
        assert!((5..=6).contains(&findings[0].span.line), "{:?}", findings[0]);
    }

    #[test]
    fn helm_template_and_values_are_skipped() {
        let (objs, f) = objects_of(
            0,
            "templates/x.yaml",
            "metadata:\n  name: {{ .Values.name }}\n  labels: {{- include \"x\" . | nindent 4 }}\n",
        );
        assert!(objs.is_empty());
        assert_eq!(f[0].code, Code::SkippedFile);
        let (_, f) = objects_of(0, "conf/settings.yaml", "replicas: 3\nimage: x\n");
        assert_eq!(f[0].code, Code::SkippedFile);
        let (_, f) = objects_of(0, "kustomization.yaml", "resources: [a.yaml]\n");
        assert!(f[0].message.contains("kustomize build"));
    }

    #[test]
    fn parseable_helm_templates_are_skipped_but_prometheus_templates_are_not() {
        let (objs, f) =
            objects_of(0, "svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Values.name }}\n");
        assert!(objs.is_empty());
        assert_eq!(f[0].code, Code::SkippedFile);
        let rule = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rules}\ndata: {summary: '{{ $labels.instance }} is down'}\n";
        let (objs, f) = objects_of(0, "rules.yaml", rule);
        assert_eq!((objs.len(), f.len()), (1, 0));
    }

    #[test]
    fn object_without_kind_is_a_violation() {
        let (objs, f) = objects_of(0, "a.yaml", "apiVersion: v1\nkind: Service\n---\napiVersion: v1\nmetadata: {}\n");
        assert_eq!(objs.len(), 1);
        assert_eq!((f[0].code, f[0].span.line), (Code::SchemaViolation, 4));
    }
}
