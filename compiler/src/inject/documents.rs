//! `meshc inject` on manifests: every pod template of every document is
//! given to [`super::inject_template`], and the result is written back into
//! the document's tree. A document with nothing to change is written back
//! byte for byte (comments and all); a changed one is written from its tree
//! with its keys in order (its comments are lost), keeping the `---` before it.

use super::value::{Op, Step, Y};
use super::{Config, Context, NamespaceMeta, Outcome};
use crate::load::yaml::{Key, Node, SAME_SOURCE, Value, parse_documents};
use std::collections::BTreeMap;

/// The injector's inputs other than the manifests.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub config: Config,
    /// Flags as annotations (see [`Context::overrides`]).
    pub overrides: BTreeMap<String, String>,
    /// Namespace of objects that name none.
    pub default_namespace: String,
}

/// A Namespace's annotations and labels.
type NamespaceInfo = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Namespaces found in the input: annotations and labels by name.
#[derive(Clone, Debug, Default)]
pub struct Namespaces(BTreeMap<String, NamespaceInfo>);

impl Options {
    /// What meshc's settings say about the cluster: the control plane's
    /// namespace, trust and cluster domains, and the default namespace;
    /// with the namespaces `meshc.yaml` declares.
    pub fn from_settings(
        settings: &crate::settings::Settings,
        overrides: BTreeMap<String, String>,
    ) -> (Options, Namespaces) {
        let config = Config {
            control_plane_namespace: settings.control_plane_namespace.clone(),
            trust_domain: settings.trust_domain.clone(),
            cluster_domain: settings.cluster_domain.clone(),
            default_skip_inbound_ports: settings.default_skip_inbound_ports.clone(),
            ..Config::default()
        };
        let mut namespaces = Namespaces::default();
        for (name, ns) in &settings.namespaces {
            namespaces.insert(name, ns.annotations.clone(), ns.labels.clone());
        }
        (Options { config, overrides, default_namespace: settings.default_namespace.clone() }, namespaces)
    }
}

/// One pod template left as it was, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// `Kind/namespace/name`, with `items[i]` of a List.
    pub object: String,
    /// Asked for injection, but injecting would break it.
    pub refused: bool,
    pub why: String,
}

impl Namespaces {
    /// Adds (or replaces) one namespace's metadata.
    pub fn insert(&mut self, name: &str, annotations: BTreeMap<String, String>, labels: BTreeMap<String, String>) {
        self.0.insert(name.to_owned(), (annotations, labels));
    }

    /// Adds every Namespace of a text (Lists included).
    pub fn collect(&mut self, text: &str) {
        // Parsing is most of the cost: only documents that can hold a Namespace.
        for chunk in chunks(text).into_iter().filter(|c| c.contains("Namespace")) {
            let Ok(docs) = parse_documents(chunk) else { continue };
            for doc in &docs {
                for (_, obj) in objects(doc) {
                    if obj.get("kind").and_then(Node::as_str) == Some("Namespace") {
                        let meta = obj.get("metadata");
                        let name = meta.and_then(|m| m.get("name")).and_then(Node::as_str).unwrap_or_default();
                        let map = |k: &str| strings(meta.and_then(|m| m.get(k)));
                        self.0.insert(name.to_owned(), (map("annotations"), map("labels")));
                    }
                }
            }
        }
    }
}

/// The text with every pod template injected, and a message per template
/// left alone.
pub fn inject_text(text: &str, namespaces: &Namespaces, options: &Options) -> (String, Vec<Message>) {
    let mut out = String::with_capacity(text.len() * 2);
    let mut messages = Vec::new();
    for chunk in chunks(text) {
        match inject_chunk(chunk, namespaces, options, &mut messages) {
            Some(doc) => {
                out.push_str(preamble(chunk));
                out.push_str(&super::yaml_out::emit(&doc));
            }
            None => out.push_str(chunk),
        }
    }
    (out, messages)
}

/// The changed document, or `None` to keep the text as it is (nothing to
/// change, or it does not parse: `meshc check` reports that).
fn inject_chunk(chunk: &str, namespaces: &Namespaces, options: &Options, messages: &mut Vec<Message>) -> Option<Node> {
    let mut docs = parse_documents(chunk).ok()?;
    if docs.len() != 1 {
        return None;
    }
    let mut doc = docs.pop()?;
    let original = doc.to_json();
    let mut changed = false;
    let paths: Vec<(Vec<Step>, String)> = objects(&doc).into_iter().map(|(p, o)| (p, describe(o, options))).collect();
    for (obj_path, label) in paths {
        let Some(obj) = node_at_mut(&mut doc, &obj_path) else { continue };
        changed |= inject_object(obj, &label, namespaces, options, messages);
    }
    // Re-injecting an injected template gives the same tree: keep the text.
    (changed && doc.to_json() != original).then_some(doc)
}

fn inject_object(
    obj: &mut Node,
    label: &str,
    namespaces: &Namespaces,
    options: &Options,
    messages: &mut Vec<Message>,
) -> bool {
    let kind = obj.get("kind").and_then(Node::as_str).unwrap_or_default().to_owned();
    let Some(template_path) = template_path(&kind) else { return false };
    let meta = obj.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Node::as_str).unwrap_or_default().to_owned();
    let namespace =
        meta.and_then(|m| m.get("namespace")).and_then(Node::as_str).unwrap_or(&options.default_namespace).to_owned();
    let Some(template) = node_at_mut(obj, &template_path) else { return false };
    let ns = namespaces.0.get(&namespace).map(|(a, l)| NamespaceMeta { annotations: a, labels: l });
    let ctx = Context {
        kind: &kind,
        name: &name,
        namespace: &namespace,
        namespace_meta: ns,
        overrides: &options.overrides,
        config: &options.config,
    };
    match super::inject_template(&template.to_json(), &ctx) {
        Outcome::Injected(ops) => apply(template, &ops).is_ok(),
        Outcome::Skipped(why) => {
            messages.push(Message { object: label.to_owned(), refused: false, why });
            false
        }
        Outcome::Refused(why) => {
            messages.push(Message { object: label.to_owned(), refused: true, why });
            false
        }
    }
}

fn describe(obj: &Node, options: &Options) -> String {
    let meta = obj.get("metadata");
    let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(Node::as_str);
    format!(
        "{}/{}/{}",
        obj.get("kind").and_then(Node::as_str).unwrap_or("?"),
        field("namespace").unwrap_or(&options.default_namespace),
        field("name").unwrap_or("?")
    )
}

/// Where a kind keeps its pod template (the object itself for a Pod).
pub fn template_path(kind: &str) -> Option<Vec<Step>> {
    let keys: &[&str] = match kind {
        "Pod" => &[],
        // Argo Rollouts' Rollout carries a Deployment's template.
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ReplicationController" | "Job" | "Rollout" => {
            &["spec", "template"]
        }
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        _ => return None,
    };
    Some(super::value::key(keys))
}

/// The objects of a document with their paths: the document, or a List's items.
fn objects(doc: &Node) -> Vec<(Vec<Step>, &Node)> {
    let is_list = doc.get("kind").and_then(Node::as_str).is_some_and(|k| k == "List" || k.ends_with("List"));
    match (is_list, doc.get("items").map(|i| &i.value)) {
        (true, Some(Value::Seq(items))) => {
            items.iter().enumerate().map(|(i, n)| (vec![Step::Key("items".to_owned()), Step::Index(i)], n)).collect()
        }
        _ => vec![(Vec::new(), doc)],
    }
}

fn strings(node: Option<&Node>) -> BTreeMap<String, String> {
    match node.map(|n| &n.value) {
        Some(Value::Map(entries)) => {
            entries.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.name.to_string(), s.to_owned()))).collect()
        }
        _ => BTreeMap::new(),
    }
}

/// The text cut before each `---` line, so each piece holds one document
/// (with the comments before it) and pieces concatenate to the text.
fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > start && is_separator(line) {
            out.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The `---` line and the comments before a document's first line: kept
/// when the document is rewritten.
fn preamble(chunk: &str) -> &str {
    let mut end = 0;
    for line in chunk.split_inclusive('\n') {
        let t = line.trim();
        let kept = t.is_empty() || t.starts_with('#') || (end == 0 && is_separator(line));
        if !kept || !line.ends_with('\n') {
            break;
        }
        end += line.len();
    }
    &chunk[..end]
}

fn is_separator(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\n', '\r']))
}

fn node_at_mut<'a>(node: &'a mut Node, path: &[Step]) -> Option<&'a mut Node> {
    let mut node = node;
    for step in path {
        node = match (step, &mut node.value) {
            (Step::Key(k), Value::Map(entries)) => {
                entries.iter_mut().find(|(key, _)| key.name == *k).map(|(_, v)| v)?
            }
            (Step::Index(i), Value::Seq(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The operations on a tree (RFC 6902 `add` and `remove`, as in
/// [`super::value::apply_json`]); new map members go last.
fn apply(target: &mut Node, ops: &[Op]) -> Result<(), ()> {
    for op in ops {
        let (path, value) = match op {
            Op::Add(path, v) => (path, Some(node_of(v))),
            Op::Remove(path) => (path, None),
        };
        let (last, parents) = path.split_last().ok_or(())?;
        let parent = node_at_mut(target, parents).ok_or(())?;
        let value_at = &mut parent.value;
        let edited = match (last, &*value_at, value) {
            (Step::Key(k), Value::Map(_), Some(v)) => {
                value_at.edit_map(|entries| match entries.iter_mut().find(|(key, _)| key.name == *k) {
                    Some((_, old)) => *old = v,
                    None => entries.push((Key { name: k.as_str().into(), line: 0, column: 0, offset: 0 }, v)),
                })
            }
            (Step::Key(k), Value::Map(_), None) => {
                value_at.edit_map(|entries| entries.retain(|(key, _)| key.name != *k))
            }
            (Step::Index(i), Value::Seq(items), Some(v)) if *i <= items.len() => {
                value_at.edit_seq(|items| items.insert(*i, v))
            }
            (Step::Index(i), Value::Seq(items), None) if *i < items.len() => value_at.edit_seq(|items| {
                items.remove(*i);
            }),
            (Step::End, Value::Seq(_), Some(v)) => value_at.edit_seq(|items| items.push(v)),
            _ => None,
        };
        edited.ok_or(())?;
    }
    Ok(())
}

fn node_of(y: &Y) -> Node {
    let value = match y {
        Y::Bool(b) => Value::Bool(*b),
        Y::Int(i) => Value::Int(*i),
        Y::Str(s) => Value::Str(s.as_str().into()),
        Y::Seq(items) => Value::Seq(items.iter().map(node_of).collect()),
        Y::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (Key { name: k.as_str().into(), line: 0, column: 0, offset: 0 }, node_of(v)))
                .collect(),
        ),
    };
    Node { line: 0, column: 0, offset: 0, source: SAME_SOURCE, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_text() {
        let text = "# c\na: 1\n---\nb: 2\n--- # x\n---\nc: 3";
        let parts = chunks(text);
        assert_eq!(parts.concat(), text);
        assert_eq!(parts.len(), 4);
    }
}
