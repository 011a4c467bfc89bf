//! The patch the injector computes: ordered values and JSON-patch-like
//! operations on a pod template.
//!
//! Values keep the order they are built in (serde_json's maps here sort
//! their keys), so `meshc inject` writes `name:` first in a container and
//! the webhook's JSON patch lists fields as a reader expects.

use serde_json::Value as Json;

/// A value added by the injector, its map keys in construction order.
#[derive(Clone, Debug, PartialEq)]
pub enum Y {
    Bool(bool),
    Int(i64),
    Str(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
}

impl Y {
    pub fn str(s: impl Into<String>) -> Y {
        Y::Str(s.into())
    }

    pub fn map<const N: usize>(entries: [(&str, Y); N]) -> Y {
        Y::Map(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn to_json(&self) -> Json {
        match self {
            Y::Bool(b) => Json::Bool(*b),
            Y::Int(i) => Json::from(*i),
            Y::Str(s) => Json::String(s.clone()),
            Y::Seq(items) => Json::Array(items.iter().map(Y::to_json).collect()),
            Y::Map(entries) => Json::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

/// Where an operation applies inside the pod template (`metadata`, `spec`).
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// The end of a sequence (`-` in a JSON pointer).
    End,
}

/// One operation, with RFC 6902 meaning: `Add` to a map member replaces it,
/// `Add` at an index inserts; `Remove` removes the member or item.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Add(Vec<Step>, Y),
    Remove(Vec<Step>),
}

pub fn key(parts: &[&str]) -> Vec<Step> {
    parts.iter().map(|p| Step::Key((*p).to_owned())).collect()
}

pub fn at(parts: &[&str], last: Step) -> Vec<Step> {
    let mut path = key(parts);
    path.push(last);
    path
}

/// The operations as an RFC 6902 JSON patch whose paths start at `prefix`
/// (`""` for a Pod, as the webhook sees it).
pub fn json_patch(ops: &[Op], prefix: &str) -> Json {
    let pointer = |path: &[Step]| {
        let mut out = prefix.to_owned();
        for step in path {
            out.push('/');
            match step {
                Step::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Step::Index(i) => out.push_str(&i.to_string()),
                Step::End => out.push('-'),
            }
        }
        out
    };
    Json::Array(
        ops.iter()
            .map(|op| match op {
                Op::Add(path, value) => {
                    serde_json::json!({"op": "add", "path": pointer(path), "value": value.to_json()})
                }
                Op::Remove(path) => serde_json::json!({"op": "remove", "path": pointer(path)}),
            })
            .collect(),
    )
}

/// Applies the operations to a JSON pod template, as an API server applies
/// the webhook's patch. An operation whose parent is missing or of the
/// wrong type is an error: the injector only emits operations on parents
/// it created or saw.
pub fn apply_json(target: &mut Json, ops: &[Op]) -> Result<(), String> {
    for op in ops {
        let (path, value) = match op {
            Op::Add(path, v) => (path, Some(v.to_json())),
            Op::Remove(path) => (path, None),
        };
        let Some((last, parents)) = path.split_last() else {
            return Err("an operation on the whole template".to_owned());
        };
        let mut node = &mut *target;
        for step in parents {
            node = match (step, node) {
                (Step::Key(k), Json::Object(m)) => m.get_mut(k).ok_or_else(|| format!("no member {k}"))?,
                (Step::Index(i), Json::Array(a)) => a.get_mut(*i).ok_or_else(|| format!("no item {i}"))?,
                _ => return Err(format!("cannot step through {step:?}")),
            };
        }
        match (last, node, value) {
            (Step::Key(k), Json::Object(m), Some(v)) => {
                m.insert(k.clone(), v);
            }
            (Step::Key(k), Json::Object(m), None) => {
                m.remove(k).ok_or_else(|| format!("no member {k} to remove"))?;
            }
            (Step::Index(i), Json::Array(a), Some(v)) if *i <= a.len() => a.insert(*i, v),
            (Step::Index(i), Json::Array(a), None) if *i < a.len() => {
                a.remove(*i);
            }
            (Step::End, Json::Array(a), Some(v)) => a.push(v),
            (step, _, _) => return Err(format!("cannot apply at {step:?}")),
        }
    }
    Ok(())
}
