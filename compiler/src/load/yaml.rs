//! YAML (and JSON, a subset) into a tree that keeps every node's position.
//!
//! serde-saphyr only reports positions through `Spanned<T>`, so the tree is
//! built by deserializing each child as `Spanned<Value>`. Typed decoding
//! later works on `serde_json::Value`s made from this tree, and uses the tree
//! to turn serde paths back into lines.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub line: u32,
    pub column: u32,
    pub offset: u32,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; a key keeps its own position for findings about it.
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: u32,
    pub column: u32,
    pub offset: u32,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON for typed decoding. Non-finite floats have no JSON
    /// form and become null, which typed decoding then reports.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect()),
        }
    }
}

fn spanned_pos<T>(s: &Spanned<T>) -> (u32, u32, u32) {
    let loc = s.referenced;
    let offset = loc.span().byte_offset().unwrap_or(0);
    (clamp(loc.line()), clamp(loc.column()), clamp(offset))
}

fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        let (line, column, offset) = spanned_pos(&spanned);
        Ok(Node { line, column, offset, value: spanned.value })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key_of(key), value));
        }
        Ok(Value::Map(entries))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Value, A::Error> {
        Err(de::Error::custom("unexpected enum"))
    }
}

/// Kubernetes keys are strings; YAML allows any scalar as a key, which we
/// keep as its text so the typed decoder reports it as an unknown field.
fn key_of(node: Node) -> Key {
    let name = match node.value {
        Value::Str(s) => s,
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Seq(_) | Value::Map(_) => "<complex key>".to_owned(),
    };
    Key { name, line: node.line, column: node.column, offset: node.offset }
}

/// Where a YAML or JSON text failed to parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFailure {
    pub line: u32,
    pub column: u32,
    pub offset: u32,
    pub message: String,
}

/// Parses every document in `text`. An empty document (`---` alone) yields
/// a `Null` node, which the caller skips.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, ParseFailure> {
    serde_saphyr::from_multiple::<Node>(text).map_err(|e| failure(&e))
}

fn failure(e: &serde_saphyr::Error) -> ParseFailure {
    let (line, column, offset) = match e.location() {
        Some(loc) => (clamp(loc.line()), clamp(loc.column()), clamp(loc.span().byte_offset().unwrap_or(0))),
        None => (1, 1, 0),
    };
    ParseFailure { line: line.max(1), column: column.max(1), offset, message: first_line(e) }
}

/// The error's text without its position: the finding carries the
/// position, and a salvaged chunk's own line numbers would mislead.
fn first_line(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let line = text.lines().next().unwrap_or("invalid YAML").trim();
    match line.find(" at line ") {
        Some(i) => line[..i].trim_end_matches(',').to_owned(),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_nodes_keep_positions() {
        let docs = parse_documents("a: 1\nb:\n  c: [x, y]\n---\nkind: Pod\n").unwrap();
        assert_eq!(docs.len(), 2);
        let c = docs[0].get("b").unwrap().get("c").unwrap();
        assert_eq!(c.line, 3);
        let Value::Seq(items) = &c.value else { panic!("not a seq") };
        assert_eq!((items[1].line, items[1].column), (3, 10));
        let kind = docs[1].get("kind").unwrap();
        assert_eq!((kind.line, kind.as_str()), (5, Some("Pod")));
    }

    #[test]
    fn keys_keep_positions() {
        let docs = parse_documents("spec:\n  podSelctor: {}\n").unwrap();
        let Value::Map(entries) = &docs[0].get("spec").unwrap().value else { panic!() };
        assert_eq!((entries[0].0.name.as_str(), entries[0].0.line), ("podSelctor", 2));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let err = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn json_is_yaml() {
        let docs = parse_documents("{\"kind\": \"Service\", \"spec\": {\"ports\": [{\"port\": 80}]}}").unwrap();
        assert_eq!(docs[0].get("kind").unwrap().as_str(), Some("Service"));
    }
}
