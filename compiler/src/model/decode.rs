//! Typed decoding of a raw object, with findings that point at the line of
//! the offending field: every unknown field (the object is kept, as the API
//! server prunes them) and the first wrong type (the object is dropped, as
//! the API server rejects it).

use super::meta::ObjectMeta;
use crate::findings::{Code, Finding, Span};
use crate::load::RawObject;
use crate::load::objects::span_of;
use crate::load::yaml::{Node, Value};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The parts of every object meshc reads; `spec` is typed per kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<S> {
    #[serde(rename = "apiVersion")]
    pub _api_version: String,
    #[serde(rename = "kind")]
    pub _kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    // A named default: `#[serde(default)]` would make serde demand `S: Default`.
    #[serde(default = "none")]
    pub spec: Option<S>,
    /// Read but not interpreted: git manifests rarely carry status, and meshc
    /// computes what the controllers would write there.
    #[serde(default, rename = "status")]
    pub _status: Option<serde_json::Value>,
}

fn none<S>() -> Option<S> {
    None
}

/// A path segment, enough to find a field's position in the YAML tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Decodes `raw`. `strict` reports unknown fields (our CRD types list every
/// field; core kinds are read partially, so they are not strict).
pub fn decode<S: DeserializeOwned>(raw: &RawObject, strict: bool, findings: &mut Vec<Finding>) -> Option<Envelope<S>> {
    let mut json = raw.node.to_json();
    prune_nulls(&mut json);
    let mut track = serde_path_to_error::Track::new();
    let mut unknown: Vec<Vec<Seg>> = Vec::new();
    let result = {
        let de = serde_path_to_error::Deserializer::new(json, &mut track);
        serde_ignored::deserialize(de, |path| {
            if strict {
                unknown.push(ignored_path(&path));
            }
        })
    };
    for path in unknown.into_iter().filter(|p| !is_open_map(p)) {
        let (span, name) = key_span(raw, &path);
        let msg = format!("{} has no field `{}` (unknown field `{name}`)", raw.kind, display_path(&path));
        findings.push(
            Finding::new(Code::SchemaViolation, span, msg).hint(
                "the API server drops unknown fields (or kubectl rejects them): check the spelling against the CRD",
            ),
        );
    }
    match result {
        Ok(env) => Some(env),
        Err(err) => {
            let path = error_path(&track.path());
            let span = value_span(raw, &path);
            let at = if path.is_empty() { String::new() } else { format!(" at {}", display_path(&path)) };
            // Linkerd's admission webhook reads every policy.linkerd.io object
            // into its own Rust types, which are narrower than the CRD schema
            // (a u32 where the CRD says integer): either may be the one that refuses.
            let who = if raw.api_version.starts_with("policy.linkerd.io/") {
                "the API server or Linkerd's admission webhook rejects it"
            } else {
                "the API server rejects it"
            };
            let msg = format!(
                "{} is invalid{at}: {}; {who}, so it is left out of the analysis",
                raw.kind,
                clean(&err.to_string())
            );
            findings.push(Finding::new(Code::SchemaViolation, span, msg));
            None
        }
    }
}

/// Drops every mapping entry whose value is null, as the API server does
/// before validation: built-in types decode a null as the absent value, and
/// for CRDs "null values for fields that either don't specify the nullable
/// flag, or give it a false value, will be pruned before defaulting happens"
/// (Kubernetes, CustomResourceDefinition defaulting and nullable). So
/// `annotations:` with nothing after it is no annotations, not a wrong type.
fn prune_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

/// `metadata` keeps the rest of ObjectMeta in a catch-all map; those are not unknown.
fn is_open_map(path: &[Seg]) -> bool {
    matches!(path.first(), Some(Seg::Key(k)) if k == "metadata")
}

fn clean(msg: &str) -> String {
    msg.split(" at line ").next().unwrap_or(msg).to_owned()
}

fn ignored_path(path: &serde_ignored::Path) -> Vec<Seg> {
    use serde_ignored::Path as P;
    let mut out = Vec::new();
    let mut cur = path;
    loop {
        match cur {
            P::Root => break,
            P::Seq { parent, index } => {
                out.push(Seg::Index(*index));
                cur = parent;
            }
            P::Map { parent, key } => {
                out.push(Seg::Key(key.clone()));
                cur = parent;
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => cur = parent,
        }
    }
    out.reverse();
    out
}

fn error_path(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment as S;
    path.iter()
        .filter_map(|s| match s {
            S::Seq { index } => Some(Seg::Index(*index)),
            S::Map { key } => Some(Seg::Key(key.clone())),
            S::Enum { .. } | S::Unknown => None,
        })
        .collect()
}

pub fn display_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The deepest node along `path` (as far as it exists).
pub fn node_at<'a>(node: &'a Node, path: &[Seg]) -> &'a Node {
    let mut cur = node;
    for seg in path {
        let next = match (seg, &cur.value) {
            (Seg::Key(k), Value::Map(entries)) => entries.iter().find(|(key, _)| &key.name == k).map(|(_, v)| v),
            (Seg::Index(i), Value::Seq(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    cur
}

fn value_span(raw: &RawObject, path: &[Seg]) -> Span {
    let node = node_at(&raw.node, path);
    span_of(raw.source, node)
}

/// Position of the last key of `path` (the unknown field's name), and that name.
fn key_span(raw: &RawObject, path: &[Seg]) -> (Span, String) {
    let Some((Seg::Key(last), parent)) = path.split_last() else {
        return (raw.span(), display_path(path));
    };
    let parent = node_at(&raw.node, parent);
    if let Value::Map(entries) = &parent.value
        && let Some((key, value)) = entries.iter().find(|(k, _)| &k.name == last)
    {
        // A key is written where its value is (a patch file, for a patched field).
        let source = span_of(raw.source, value).source;
        let span = Span { source, line: key.line, column: key.column, offset: key.offset };
        return (span, last.clone());
    }
    (value_span(raw, path), last.clone())
}
