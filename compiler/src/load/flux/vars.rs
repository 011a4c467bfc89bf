//! The variables a Flux Kustomization substitutes: `postBuild.substitute`
//! over `postBuild.substituteFrom` (ConfigMaps and Secrets of the
//! repository, later entries over earlier ones), as kustomize-controller
//! merges them.

use crate::load::RawObject;
use crate::load::yaml::{Node, Value};
use std::collections::HashMap;

/// A ConfigMap or Secret of the repository, by kind, namespace and name.
type SourceKey = (String, Option<String>, String);

/// The data of every ConfigMap and Secret, as substitution reads it.
pub struct DataSources(HashMap<SourceKey, Vec<(String, String)>>);

impl DataSources {
    pub fn collect(objects: &[RawObject]) -> Self {
        let mut map = HashMap::new();
        for o in objects.iter().filter(|o| o.api_version == "v1" && matches!(o.kind.as_str(), "ConfigMap" | "Secret")) {
            let (namespace, Some(name)) = (meta_str(&o.node, "namespace"), meta_str(&o.node, "name")) else {
                continue;
            };
            map.insert((o.kind.clone(), namespace, name), data_of(o));
        }
        DataSources(map)
    }

    /// The data of ConfigMap or Secret (`kind`) `namespace/name`, if the repository holds it.
    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&[(String, String)]> {
        let key = (kind.to_owned(), namespace.map(str::to_owned), name.to_owned());
        self.0.get(&key).map(Vec::as_slice)
    }
}

/// A `substituteFrom` entry the repository does not hold.
pub type MissingSource = String;

/// What one Kustomization substitutes.
#[derive(Debug, Default)]
pub struct Vars {
    pub values: HashMap<String, String>,
    /// Required `substituteFrom` sources not in the repository: their
    /// variables are unknown (Flux would fail until they exist).
    pub missing: Vec<MissingSource>,
}

/// The variables of the Kustomization `k` (in namespace `namespace`), or
/// None when it has no `postBuild`: Flux then substitutes nothing.
pub fn of_kustomization(k: &Node, namespace: Option<&str>, data: &DataSources) -> Option<Vars> {
    let post = k.get("spec")?.get("postBuild")?;
    let mut vars = Vars::default();
    for entry in seq(post.get("substituteFrom")) {
        let kind = entry.get("kind").and_then(Node::as_str).unwrap_or("ConfigMap");
        let Some(name) = entry.get("name").and_then(Node::as_str) else { continue };
        let key = (kind.to_owned(), namespace.map(str::to_owned), name.to_owned());
        match data.0.get(&key) {
            Some(values) => vars.values.extend(values.iter().cloned()),
            None if entry.get("optional").is_some_and(|o| o.value == Value::Bool(true)) => {}
            None => vars.missing.push(format!("{kind} {}/{name}", namespace.unwrap_or("default"))),
        }
    }
    if let Some(Value::Map(entries)) = post.get("substitute").map(|n| &n.value) {
        for (k, v) in entries {
            vars.values.insert(k.name.to_string(), scalar_text(v));
        }
    }
    Some(vars)
}

pub fn meta_str(node: &Node, key: &str) -> Option<String> {
    node.get("metadata")?.get(key)?.as_str().map(str::to_owned)
}

fn seq(node: Option<&Node>) -> &[Node] {
    match node.map(|n| &n.value) {
        Some(Value::Seq(items)) => items,
        _ => &[],
    }
}

/// ConfigMap `data`, Secret `data` (base64) and `stringData`.
fn data_of(o: &RawObject) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let secret = o.kind == "Secret";
    for field in ["data", "stringData"] {
        let Some(Value::Map(entries)) = o.node.get(field).map(|n| &n.value) else { continue };
        for (k, v) in entries {
            let text = scalar_text(v);
            let text = if secret && field == "data" { decode_base64(&text) } else { Some(text) };
            if let Some(text) = text {
                out.push((k.name.to_string(), text));
            }
        }
    }
    out
}

fn decode_base64(text: &str) -> Option<String> {
    use base64ct::{Base64, Encoding};
    let bytes = Base64::decode_vec(text.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

/// A scalar as the string the API server stores in a `map[string]string`.
fn scalar_text(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Seq(_) | Value::Map(_) => String::new(),
    }
}
