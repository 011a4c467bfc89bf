//! Block YAML for a document `meshc inject` changed. Documents it leaves
//! alone are written back byte for byte; a changed one is written from its
//! tree, keys in their order, strings quoted whenever a YAML 1.1 reader
//! (Kubernetes' go-yaml) could take them for anything but a string.

use crate::load::yaml::{Node, Value};
use std::fmt::Write;

pub fn emit(node: &Node) -> String {
    let mut out = String::new();
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => map(&mut out, entries, 0),
        Value::Seq(items) if !items.is_empty() => seq(&mut out, items, 0),
        _ => {
            out.push_str(&scalar(node));
            out.push('\n');
        }
    }
    out
}

fn map(out: &mut String, entries: &[(crate::load::yaml::Key, Node)], indent: usize) {
    for (i, (k, v)) in entries.iter().enumerate() {
        // The first entry of a sequence item follows its `- ` directly.
        if i > 0 || indent == 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&string(&k.name));
        out.push(':');
        nested(out, v, indent);
    }
}

fn seq(out: &mut String, items: &[Node], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match &item.value {
            Value::Map(entries) if !entries.is_empty() => {
                out.push(' ');
                map(out, entries, indent + 2);
            }
            _ => nested(out, item, indent),
        }
    }
}

/// A value after `key:` or `-`: on the same line if it is a scalar or
/// empty, else on the next lines, indented.
fn nested(out: &mut String, v: &Node, indent: usize) {
    match &v.value {
        Value::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            map(out, entries, indent + 2);
        }
        Value::Seq(items) if !items.is_empty() => {
            out.push('\n');
            seq(out, items, indent + 2);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => ".nan".to_owned(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { ".inf" } else { "-.inf" }.to_owned(),
        Value::Float(f) => {
            let mut s = String::new();
            let _ = write!(s, "{f:?}");
            s
        }
        Value::Str(s) => string(s),
        Value::Map(_) => "{}".to_owned(),
        Value::Seq(_) => "[]".to_owned(),
    }
}

/// Plain when it is made of name characters and cannot read as a number,
/// boolean or null; double-quoted (JSON escapes are YAML escapes) otherwise.
fn string(s: &str) -> String {
    const WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"];
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain { s.to_owned() } else { serde_json::Value::String(s.to_owned()).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse_documents;

    #[test]
    fn emitted_yaml_reads_back_as_the_same_tree() {
        let text = "a: 1\nb:\n  - x: \"on\"\n    y: [1, 2]\n  - - 3\n    - '007'\nc: {}\nd: \"multi\\nline: #\"\ne: null\nf: 1.5\n";
        let doc = &parse_documents(text).unwrap()[0];
        let again = &parse_documents(&emit(doc)).unwrap()[0];
        assert_eq!(doc.to_json(), again.to_json(), "{}", emit(doc));
    }
}
