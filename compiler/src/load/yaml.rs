//! YAML (and JSON, a subset) into a tree that keeps every node's position.
//!
//! The tree is built straight from granit-parser's events (the parser under
//! serde-saphyr). Going through serde-saphyr's `Spanned<T>` for every node
//! cost 2.6 times the scan itself, and parsing dominates meshc's run time.
//! Typed decoding later works on `serde_json::Value`s made from this tree,
//! and uses the tree to turn serde paths back into lines.
//!
//! Scalars resolve as Kubernetes resolves them (go-yaml v2, YAML 1.1
//! booleans such as `yes`/`on`), merge keys (`<<`) are applied, and aliases
//! are expanded within a budget so an alias bomb is an error, not a hang.

mod key_name;

use granit_parser::{Event, Parser, ScalarStyle, ScanError, Span as GSpan};
use key_name::Interner;
pub use key_name::KeyName;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub line: u32,
    pub column: u32,
    pub offset: u32,
    /// The source this node was written in, when it is not the source of
    /// the object holding it ([`SAME_SOURCE`]): a field a kustomize patch
    /// set lives in the patch file (`load/render`). Fits the padding before
    /// `value`, so it costs no memory.
    pub source: u32,
    pub value: Value,
}

/// [`Node::source`] of a node written in its object's own source.
pub const SAME_SOURCE: u32 = u32::MAX;

/// A node's value. Strings and collections are boxed slices, not `String`s
/// and `Vec`s: a check holds every tree to its end, and without a capacity
/// word a node is 40 bytes instead of 48 (a tenth of a tree's memory).
/// Collections are edited, rarely (kustomize, Helm, `meshc inject`), as
/// vectors: [`Value::edit_seq`], [`Value::edit_map`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    Seq(Box<[Node]>),
    /// Keys in document order; a key keeps its own position for findings about it.
    Map(Box<[(Key, Node)]>),
}

impl Value {
    /// Runs `edit` on the items of a sequence as a vector; `None` (and
    /// nothing run) when this is not a sequence.
    pub fn edit_seq<R>(&mut self, edit: impl FnOnce(&mut Vec<Node>) -> R) -> Option<R> {
        let Value::Seq(items) = self else { return None };
        Some(edit_as_vec(items, edit))
    }

    /// Runs `edit` on the entries of a mapping as a vector; `None` (and
    /// nothing run) when this is not a mapping.
    pub fn edit_map<R>(&mut self, edit: impl FnOnce(&mut Vec<(Key, Node)>) -> R) -> Option<R> {
        let Value::Map(entries) = self else { return None };
        Some(edit_as_vec(entries, edit))
    }
}

/// Runs `edit` on a boxed slice's items as a vector, and boxes them again.
fn edit_as_vec<T, R>(items: &mut Box<[T]>, edit: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let mut vec = std::mem::take(items).into_vec();
    let out = edit(&mut vec);
    *items = vec.into_boxed_slice();
    out
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// Shared with every key of the same name in its parse (`KeyName`).
    pub name: KeyName,
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

    /// Keeps the tree's shape (keys, items, positions) and drops its scalar
    /// values: all a span lookup by path needs, once the typed specs are
    /// decoded.
    pub fn drop_scalars(&mut self) {
        match &mut self.value {
            Value::Str(_) => self.value = Value::Null,
            Value::Seq(items) => items.iter_mut().for_each(Node::drop_scalars),
            Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| v.drop_scalars()),
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
        }
    }

    /// Empties every string, keeping each node's kind (a string stays a
    /// string, of no length and no allocation) and position: for a tree
    /// whose strings were read, where a later reader still asks what kind
    /// of value a field holds (`query::svc::own_pod`: `replicas`).
    pub fn empty_strings(&mut self) {
        match &mut self.value {
            Value::Str(s) => *s = Box::default(),
            Value::Seq(items) => items.iter_mut().for_each(Node::empty_strings),
            Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| v.empty_strings()),
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
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
            Value::Str(s) => J::String(s.to_string()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.name.to_string(), v.to_json())).collect()),
        }
    }
}

/// Parses every document in `text`. An empty document (`---` alone) yields
/// a `Null` node, which the caller skips.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, ParseFailure> {
    build(text).map(|b| b.docs)
}

fn build(text: &str) -> Result<Builder, ParseFailure> {
    let mut builder = Builder {
        docs: Vec::new(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        budget: MAX_NODES,
        doc_start: 0,
        key_probes: 0,
        names: Interner::default(),
    };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| scan_failure(&e))?;
        builder.event(event, span)?;
    }
    Ok(builder)
}

/// Nodes one text may expand to (aliases included); past it, an alias bomb.
const MAX_NODES: usize = 5_000_000;

/// A collection being built, with its position and anchor.
enum Open {
    Seq(Node, usize, Vec<Node>),
    /// Entries so far, their key names, and a key waiting for its value.
    Map(Node, usize, Vec<(Key, Node)>, KeyNames, Option<Node>),
}

struct Builder {
    docs: Vec<Node>,
    stack: Vec<Open>,
    /// Anchored nodes with their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    budget: usize,
    /// How many documents were complete when the current one started.
    doc_start: usize,
    /// Key comparisons and lookups made by the duplicate and merge checks,
    /// which tests hold linear in the number of keys.
    key_probes: u64,
    /// Key names, one allocation per distinct name.
    names: Interner,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: GSpan) -> Result<(), ParseFailure> {
        let at = position(&span);
        match event {
            Event::DocumentStart(..) => {
                self.anchors.clear();
                self.doc_start = self.docs.len();
            }
            // A document without a node (`---` alone) is an empty document.
            Event::DocumentEnd if self.docs.len() == self.doc_start => {
                self.docs.push(Node {
                    line: at.0,
                    column: at.1,
                    offset: at.2,
                    source: SAME_SOURCE,
                    value: Value::Null,
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.as_ref().and_then(|t| t.core_suffix().map(str::to_owned));
                let node = Node {
                    line: at.0,
                    column: at.1,
                    offset: at.2,
                    source: SAME_SOURCE,
                    value: resolve_scalar(&text, style, tag.as_deref()),
                };
                self.finish(node, anchor)?;
            }
            Event::Alias(id) => {
                let (anchored, size) =
                    self.anchors.get(&id).ok_or_else(|| failure_at(at, "alias to an unknown anchor"))?;
                // The budget is charged before the copy, so a bomb never allocates.
                self.budget = self
                    .budget
                    .checked_sub(*size)
                    .ok_or_else(|| failure_at(at, "document has too many nodes (alias expansion)"))?;
                let mut node = anchored.clone();
                (node.line, node.column, node.offset) = at;
                self.finish(node, 0)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.stack.push(Open::Seq(
                    Node { line: at.0, column: at.1, offset: at.2, source: SAME_SOURCE, value: Value::Null },
                    anchor,
                    Vec::new(),
                ));
            }
            Event::MappingStart(_, anchor, _) => {
                let node = Node { line: at.0, column: at.1, offset: at.2, source: SAME_SOURCE, value: Value::Null };
                self.stack.push(Open::Map(node, anchor, Vec::new(), KeyNames::default(), None));
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq(mut node, anchor, items)) = self.stack.pop() {
                    // Trees live as long as the check (findings point into
                    // them): no spare capacity (boxed slices have none).
                    node.value = Value::Seq(items.into_boxed_slice());
                    self.finish(node, anchor)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(mut node, anchor, entries, _, _)) = self.stack.pop() {
                    let entries = merge_keys(entries, at, &mut self.key_probes)?;
                    node.value = Value::Map(entries.into_boxed_slice());
                    self.finish(node, anchor)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Places a completed node into its parent (or as a document).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), ParseFailure> {
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| failure_at((node.line, node.column, node.offset), "document has too many nodes"))?;
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), count(&node)));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Open::Seq(_, _, items)) => items.push(node),
            Some(Open::Map(_, _, entries, keys, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    let key = key_of(key, &mut self.names);
                    if !keys.insert(&key.name, entries, &mut self.key_probes) {
                        let msg = format!("duplicate key `{}`; kubectl rejects the object", key.name);
                        return Err(failure_at((key.line, key.column, key.offset), &msg));
                    }
                    entries.push((key, node));
                }
            },
        }
        Ok(())
    }
}

fn count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(count).sum(),
        Value::Map(entries) => entries.iter().map(|(_, v)| 1 + count(v)).sum(),
        _ => 0,
    }
}

/// The key names of a mapping being built. Small mappings (nearly all of
/// them) are scanned, which costs no allocation; past [`SCAN_LIMIT`] keys the
/// names go into a hash set, so a mapping of n keys costs O(n) probes, not
/// O(n²) (a hostile 200,000-key ConfigMap took a minute).
#[derive(Default)]
struct KeyNames(Option<HashSet<KeyName>>);

const SCAN_LIMIT: usize = 16;

impl KeyNames {
    /// Adds `name` unless `entries` (the mapping's keys so far) has it;
    /// false when it is a duplicate.
    fn insert(&mut self, name: &KeyName, entries: &[(Key, Node)], probes: &mut u64) -> bool {
        if let Some(set) = &mut self.0 {
            *probes += 1;
            return set.insert(name.clone());
        }
        *probes += entries.len() as u64;
        if entries.iter().any(|(k, _)| k.name == *name) {
            return false;
        }
        if entries.len() >= SCAN_LIMIT {
            let mut set: HashSet<KeyName> = entries.iter().map(|(k, _)| k.name.clone()).collect();
            *probes += set.len() as u64;
            set.insert(name.clone());
            self.0 = Some(set);
        }
        true
    }
}

/// Applies `<<` merge keys: explicit keys win, then earlier merged maps.
fn merge_keys(
    entries: Vec<(Key, Node)>,
    at: (u32, u32, u32),
    probes: &mut u64,
) -> Result<Vec<(Key, Node)>, ParseFailure> {
    if !entries.iter().any(|(k, _)| k.name == "<<") {
        return Ok(entries);
    }
    let (merges, mut out): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(k, _)| k.name == "<<");
    let mut names: HashSet<KeyName> = out.iter().map(|(k, _)| k.name.clone()).collect();
    *probes += names.len() as u64;
    for (_, source) in merges {
        let maps = match source.value {
            Value::Map(m) => vec![m],
            Value::Seq(items) => {
                items.into_iter().filter_map(|n| if let Value::Map(m) = n.value { Some(m) } else { None }).collect()
            }
            _ => return Err(failure_at(at, "merge key `<<` needs a mapping or a list of mappings")),
        };
        for (k, v) in maps.into_iter().flatten() {
            *probes += 1;
            if names.insert(k.name.clone()) {
                out.push((k, v));
            }
        }
    }
    Ok(out)
}

fn position(span: &GSpan) -> (u32, u32, u32) {
    let m = span.start;
    (clamp(m.line()), clamp(m.col() + 1), clamp(m.byte_offset().unwrap_or(0)))
}

fn clamp(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Plain scalars resolve as go-yaml v2 (what kubectl uses) does: YAML 1.1
/// booleans, decimal/hex/octal integers, floats; quoted and block scalars
/// and `!!str` are strings.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::Str(text.into()),
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain && tag.is_none() {
        return Value::Str(text.into());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => return Value::Bool(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => {
            return Value::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i);
    }
    if looks_like_float(text)
        && let Ok(f) = text.replace('_', "").parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.into())
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let digits = body.replace('_', "");
    let (radix, digits) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h.to_owned())
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o.to_owned())
    } else if let Some(b) = digits.strip_prefix("0b") {
        (2, b.to_owned())
    } else if digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
        (8, digits[1..].to_owned())
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.bytes().all(|c| (c as char).is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(&digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// Only numeric shapes: Rust's float parser also takes `inf` and `nan`.
fn looks_like_float(text: &str) -> bool {
    let body = text.trim_start_matches(['-', '+']);
    body.bytes().any(|c| c.is_ascii_digit())
        && body.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+' | b'_'))
}

/// Kubernetes keys are strings; YAML allows any scalar as a key, which we
/// keep as its text so the typed decoder reports it as an unknown field.
fn key_of(node: Node, names: &mut Interner) -> Key {
    let name = match node.value {
        Value::Str(s) => names.intern(&s),
        Value::Null => names.intern("null"),
        Value::Bool(b) => names.intern(&b.to_string()),
        Value::Int(i) => names.intern(&i.to_string()),
        Value::Float(f) => names.intern(&f.to_string()),
        Value::Seq(_) | Value::Map(_) => names.intern("<complex key>"),
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

impl ParseFailure {
    pub fn span(&self, source: u32) -> crate::findings::Span {
        crate::findings::Span { source, line: self.line, column: self.column, offset: self.offset }
    }
}

fn failure_at(at: (u32, u32, u32), message: &str) -> ParseFailure {
    ParseFailure { line: at.0.max(1), column: at.1.max(1), offset: at.2, message: message.to_owned() }
}

fn scan_failure(e: &ScanError) -> ParseFailure {
    let m = e.marker();
    let at = (clamp(m.line()), clamp(m.col() + 1), clamp(m.byte_offset().unwrap_or(0)));
    let message = e.info();
    failure_at(at, if message.is_empty() { "invalid YAML" } else { message.lines().next().unwrap_or("invalid YAML") })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a check keeps of a tree after decoding: every position a
    /// finding or proof can cite, by the same paths, and no string.
    #[test]
    fn dropping_scalars_keeps_every_position() {
        let text = "metadata:\n  name: web\nspec:\n  ports: [{port: 80, name: http}]\n  tls: true\n";
        let mut doc = parse_documents(text).unwrap().remove(0);
        let before = doc.clone();
        doc.drop_scalars();
        let at = |d: &Node, path: &[&str]| {
            let mut n = d;
            for k in path {
                n = match (k.parse::<usize>(), &n.value) {
                    (Ok(i), Value::Seq(items)) => &items[i],
                    _ => n.get(k).unwrap(),
                };
            }
            (n.line, n.column, n.offset)
        };
        for path in [&["metadata", "name"][..], &["spec", "ports", "0", "name"], &["spec", "ports", "0", "port"]] {
            assert_eq!(at(&doc, path), at(&before, path), "{path:?}");
        }
        assert_eq!(doc.get("metadata").unwrap().get("name").unwrap().value, Value::Null);
        assert_eq!(doc.get("spec").unwrap().get("tls").unwrap().value, Value::Bool(true));
    }

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
    fn scalars_resolve_as_kubectl_does() {
        let docs =
            parse_documents("a: yes\nb: 'yes'\nc: 8080\nd: 0x1F\ne: 1.5\nf: ~\ng: 0777\nh: inf\ni: !!str 12\nj: 1e3\n")
                .unwrap();
        let v = |k: &str| docs[0].get(k).unwrap().value.clone();
        assert_eq!(v("a"), Value::Bool(true), "YAML 1.1 boolean");
        assert_eq!(v("b"), Value::Str("yes".into()), "quoted is a string");
        assert_eq!(v("c"), Value::Int(8080));
        assert_eq!(v("d"), Value::Int(31));
        assert_eq!(v("e"), Value::Float(1.5));
        assert_eq!(v("f"), Value::Null);
        assert_eq!(v("g"), Value::Int(0o777), "YAML 1.1 octal");
        assert_eq!(v("h"), Value::Str("inf".into()), "only .inf is infinity");
        assert_eq!(v("i"), Value::Str("12".into()));
        assert_eq!(v("j"), Value::Float(1000.0));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "base: &b {app: web, tier: front}\nsel:\n  <<: *b\n  tier: back\nlist: [*b]\n";
        let docs = parse_documents(text).unwrap();
        let sel = docs[0].get("sel").unwrap();
        assert_eq!(sel.get("app").unwrap().as_str(), Some("web"));
        assert_eq!(sel.get("tier").unwrap().as_str(), Some("back"), "explicit keys win over merged ones");
        let Value::Seq(items) = &docs[0].get("list").unwrap().value else { panic!() };
        assert_eq!((items[0].line, items[0].get("app").unwrap().as_str()), (5, Some("web")));
    }

    #[test]
    fn duplicate_keys_and_alias_bombs_are_errors() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("duplicate key `a`"));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        assert!(parse_documents(&bomb).unwrap_err().message.contains("too many nodes"));
    }

    /// A mapping of n keys, and a mapping that merges it: the duplicate and
    /// merge checks must cost O(n) probes, not O(n²).
    #[test]
    fn key_checks_are_linear_in_the_number_of_keys() {
        let probes = |n: usize| {
            let mut text = String::from("data: &base\n");
            for i in 0..n {
                text.push_str(&format!("  k{i}: v\n"));
            }
            text.push_str("merged:\n  <<: *base\n  extra: 1\n");
            let built = build(&text).unwrap();
            assert_eq!(
                built.docs[0].get("merged").and_then(|m| m.get(&format!("k{}", n - 1))).and_then(Node::as_str),
                Some("v")
            );
            built.key_probes
        };
        let (small, big) = (probes(2_000), probes(20_000));
        assert!(big <= 11 * small, "10x the keys cost {}x the probes ({small} → {big})", big / small.max(1));
        assert!(big <= 40 * 20_000, "{big} probes for 20,000 keys");
    }

    #[test]
    fn empty_documents_are_null() {
        let docs = parse_documents("---\n---\nkind: Pod\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, Value::Null);
    }

    #[test]
    fn json_is_yaml() {
        let docs = parse_documents("{\"kind\": \"Service\", \"spec\": {\"ports\": [{\"port\": 80}]}}").unwrap();
        assert_eq!(docs[0].get("kind").unwrap().as_str(), Some("Service"));
    }
}
