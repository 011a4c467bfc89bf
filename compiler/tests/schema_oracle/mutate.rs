//! Mutated manifests, derived from the CRD schemas with a seeded generator:
//! a valid object (one the server accepted) is walked along its version's
//! `openAPIV3Schema`, every place a mutation fits is listed, and a seeded
//! sample of each category is taken. Valid rewrites (another enum value) are
//! in the set too, so a meshc that rejects too much is caught as well as one
//! that rejects too little.

use serde_json::{Value, json};

/// `(group, kind, [(version, openAPIV3Schema)])` of every CRD.
pub type Schemas = [(String, String, Vec<(String, Value)>)];

pub struct Mutant {
    /// What was changed, for the report (`wrong type at spec.port`).
    pub what: String,
    pub json: Value,
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    WrongType,
    OutsideEnum,
    OtherEnumValue,
    PatternMismatch,
    OutOfBounds,
    UnknownField,
    MissingRequired,
    OtherVersion,
}

const CATEGORIES: [Category; 8] = [
    Category::WrongType,
    Category::OutsideEnum,
    Category::OtherEnumValue,
    Category::PatternMismatch,
    Category::OutOfBounds,
    Category::UnknownField,
    Category::MissingRequired,
    Category::OtherVersion,
];

/// One applicable change: its category, where, and the new value (None:
/// remove the field).
struct Change {
    category: Category,
    base: usize,
    path: Vec<Seg>,
    value: Option<Value>,
}

/// SplitMix64: a fixed seed gives the same set on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Up to `per_category` mutants of each category from `bases`.
pub fn mutants(bases: &[&Value], schemas: &Schemas, rng: &mut Rng, per_category: usize) -> Vec<Mutant> {
    let mut changes = Vec::new();
    for (b, base) in bases.iter().enumerate() {
        let Some((versions, version)) = schema_of(base, schemas) else { continue };
        let Some((_, schema)) = versions.iter().find(|(v, _)| v == version) else { continue };
        let mut found = Vec::new();
        sites(base, schema, &mut Vec::new(), &mut found, rng);
        for (category, path, value) in found {
            changes.push(Change { category, base: b, path, value });
        }
        let group = base["apiVersion"].as_str().unwrap_or_default().split('/').next().unwrap_or_default();
        for (other, _) in versions.iter().filter(|(v, _)| v != version) {
            let api_version = json!(format!("{group}/{other}"));
            let path = vec![Seg::Key("apiVersion".into())];
            changes.push(Change { category: Category::OtherVersion, base: b, path, value: Some(api_version) });
        }
    }
    rng.shuffle(&mut changes);
    let mut out = Vec::new();
    for category in CATEGORIES {
        for change in changes.iter().filter(|c| c.category == category).take(per_category) {
            out.push(apply(bases[change.base], change, out.len()));
        }
    }
    out
}

fn schema_of<'a>(base: &'a Value, schemas: &'a Schemas) -> Option<(&'a [(String, Value)], &'a str)> {
    let (group, version) = base["apiVersion"].as_str()?.split_once('/')?;
    let kind = base["kind"].as_str()?;
    let (_, _, versions) = schemas.iter().find(|(g, k, _)| g == group && k == kind)?;
    Some((versions, version))
}

fn apply(base: &Value, change: &Change, index: usize) -> Mutant {
    let mut json = base.clone();
    json["metadata"]["name"] = json!(format!("mutant-{index:04}"));
    let at = display(&change.path);
    let what = match &change.value {
        Some(v) => format!("{:?} at {at}: {v}", change.category),
        None => format!("{:?}: {at} removed", change.category),
    };
    set(&mut json, &change.path, change.value.clone());
    Mutant { what, json }
}

/// Lists every change that fits `value` under `schema` at `path`.
fn sites(
    value: &Value,
    schema: &Value,
    path: &mut Vec<Seg>,
    out: &mut Vec<(Category, Vec<Seg>, Option<Value>)>,
    rng: &mut Rng,
) {
    if !path.is_empty() {
        leaf_changes(schema, path, out, rng);
    }
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let closed = props.is_some() && schema["x-kubernetes-preserve-unknown-fields"] != json!(true);
            if closed {
                let mut p = path.clone();
                p.push(Seg::Key("meshcOracleUnknownField".into()));
                out.push((Category::UnknownField, p, Some(json!("x"))));
            }
            for key in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if map.contains_key(key) {
                    let mut p = path.clone();
                    p.push(Seg::Key(key.into()));
                    out.push((Category::MissingRequired, p, None));
                }
            }
            for (key, child) in map {
                let child_schema = props.and_then(|p| p.get(key)).or_else(|| schema.get("additionalProperties"));
                // apiVersion, kind and metadata are the API server's own
                // (a wrong kind is another object, not a wrong value).
                let envelope = path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
                if let Some(child_schema) = child_schema.filter(|_| !envelope) {
                    path.push(Seg::Key(key.clone()));
                    sites(child, child_schema, path, out, rng);
                    path.pop();
                }
            }
            // Optional enum fields the object leaves out: set to a value in and
            // out of the enum.
            for (key, child_schema) in props.into_iter().flatten().filter(|(k, _)| !map.contains_key(*k)) {
                if child_schema["enum"].is_array() {
                    path.push(Seg::Key(key.clone()));
                    leaf_changes(child_schema, path, out, rng);
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                sites(item, &schema["items"], path, out, rng);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Changes to the value at `path` itself: a wrong type, an enum value
/// outside (and inside) the enum, a string the pattern refuses, a number or
/// length past its bound.
fn leaf_changes(schema: &Value, path: &[Seg], out: &mut Vec<(Category, Vec<Seg>, Option<Value>)>, rng: &mut Rng) {
    let mut push = |c: Category, v: Value| out.push((c, path.to_vec(), Some(v)));
    if let Some(wrong) = wrong_type(schema) {
        push(Category::WrongType, wrong);
    }
    if let Some(values) = schema["enum"].as_array().filter(|v| !v.is_empty()) {
        push(Category::OutsideEnum, json!("NotInTheEnum"));
        push(Category::OtherEnumValue, values[rng.below(values.len())].clone());
    }
    if schema["pattern"].is_string() {
        push(Category::PatternMismatch, json!("@@ Not/Matching @@"));
    }
    if let Some(max) = schema["maxLength"].as_u64() {
        push(Category::OutOfBounds, json!("a".repeat(max as usize + 1)));
    }
    if let Some(max) = schema["maximum"].as_i64() {
        push(Category::OutOfBounds, json!(max + 1));
    }
    if let Some(min) = schema["minimum"].as_i64() {
        push(Category::OutOfBounds, json!(min - 1));
    }
}

fn wrong_type(schema: &Value) -> Option<Value> {
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        return Some(json!({"notAScalar": true}));
    }
    Some(match schema["type"].as_str()? {
        "string" => json!(12345),
        "integer" | "number" => json!("twelve"),
        "boolean" => json!("maybe"),
        "object" => json!("a string"),
        "array" => json!("a string"),
        _ => return None,
    })
}

/// Sets (or with None removes) the field at `path`.
fn set(root: &mut Value, path: &[Seg], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = root;
    for seg in parents {
        cur = match seg {
            Seg::Key(k) => &mut cur[k.as_str()],
            Seg::Index(i) => &mut cur[*i],
        };
    }
    match (last, value) {
        (Seg::Key(k), Some(v)) => cur[k.as_str()] = v,
        (Seg::Key(k), None) => {
            if let Some(map) = cur.as_object_mut() {
                map.remove(k);
            }
        }
        (Seg::Index(i), Some(v)) => cur[*i] = v,
        (Seg::Index(i), None) => {
            if let Some(items) = cur.as_array_mut().filter(|items| *i < items.len()) {
                items.remove(*i);
            }
        }
    }
}

fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => s.push_str(&format!(".{k}")),
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}
