//! Substitution applied to a parsed object. Flux substitutes the text of
//! each object after `kustomize build` re-serialised it, so a substituted
//! value is read again as a plain YAML scalar (`port: ${PORT}` becomes a
//! number). Working on the tree keeps every line and column as written.

use super::envsubst::{self, Substituted};
use crate::findings::Span;
use crate::load::objects::span_of;
use crate::load::yaml::{self, Node, Value};

/// A variable left without a value, where it was first used.
#[derive(Debug)]
pub struct Unresolved {
    pub name: String,
    pub at: Span,
    pub uses: usize,
}

/// Substitutes every string scalar of `node`. A sequence entry that holds an
/// unresolved variable is removed (its value is unknown, so meshc checks the
/// list without it); elsewhere the value is Flux's, the empty string.
/// Returns where the object now differs from what the cluster may hold:
/// each value left empty and each entry dropped, as its offset and depth in
/// the tree (the root is 0).
pub fn substitute<'a>(
    source: u32,
    node: &mut Node,
    lookup: &impl Fn(&str) -> Option<&'a str>,
    out: &mut Vec<Unresolved>,
) -> Vec<(u32, u32)> {
    let mut w = Walk { source, lookup, out, unknown_at: Vec::new() };
    walk(&mut w, node, 0);
    w.unknown_at
}

struct Walk<'w, L> {
    source: u32,
    lookup: &'w L,
    out: &'w mut Vec<Unresolved>,
    unknown_at: Vec<(u32, u32)>,
}

/// Returns whether `node` holds a value left unresolved (not already dropped).
fn walk<'a, L: Fn(&str) -> Option<&'a str>>(w: &mut Walk<'_, L>, node: &mut Node, depth: u32) -> bool {
    match &mut node.value {
        Value::Str(s) if envsubst::has_reference(s) => {
            let Substituted { text, unresolved, changed } = envsubst::substitute(s, w.lookup);
            let at = span_of(w.source, node);
            for name in &unresolved {
                record(w.out, name, at);
            }
            if !unresolved.is_empty() {
                w.unknown_at.push((at.offset, depth));
            }
            if changed {
                node.value = reread(text);
            }
            !unresolved.is_empty()
        }
        Value::Seq(_) => {
            node.value.edit_seq(|items| {
                items.retain_mut(|item| {
                    let before = w.unknown_at.len();
                    let dropped = walk(w, item, depth + 1);
                    if dropped {
                        // The entry is gone: what is unknown is the entry.
                        w.unknown_at.truncate(before);
                        w.unknown_at.push((item.offset, depth + 1));
                    }
                    !dropped
                });
            });
            false
        }
        Value::Map(entries) => entries.iter_mut().fold(false, |any, (_, v)| walk(w, v, depth + 1) || any),
        _ => false,
    }
}

/// Adds one object's unresolved variables to its scope's: the first use is
/// where the scope's finding points.
pub fn merge(scope: &mut Vec<Unresolved>, object: Vec<Unresolved>) {
    for u in object {
        match scope.iter_mut().find(|s| s.name == u.name) {
            Some(s) => s.uses += u.uses,
            None => scope.push(u),
        }
    }
}

fn record(out: &mut Vec<Unresolved>, name: &str, at: Span) {
    match out.iter_mut().find(|u| u.name == name) {
        Some(u) => u.uses += 1,
        None => out.push(Unresolved { name: name.to_owned(), at, uses: 1 }),
    }
}

/// The substituted text as YAML reads a plain scalar; a text that would not
/// be one scalar (`a: b`, `[x]`) stays a string.
fn reread(text: String) -> Value {
    if text.trim().is_empty() {
        return Value::Null;
    }
    match yaml::parse_documents(&text).as_deref() {
        Ok([one]) if !matches!(one.value, Value::Seq(_) | Value::Map(_)) => one.value.clone(),
        _ => Value::Str(text.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Node {
        yaml::parse_documents(text).unwrap().remove(0)
    }

    #[test]
    fn values_are_reread_and_unknown_entries_dropped() {
        let mut n =
            doc("port: ${PORT}\nname: ${N:=web}\nnets:\n- cidr: ${POD:=10.0.0.0/8}\n- cidr: ${VNET}\nother: ${VNET}\n");
        let mut out = Vec::new();
        substitute(0, &mut n, &|k| (k == "PORT").then_some("8080"), &mut out);
        assert_eq!(n.get("port").unwrap().value, Value::Int(8080));
        assert_eq!(n.get("name").unwrap().as_str(), Some("web"));
        let Value::Seq(nets) = &n.get("nets").unwrap().value else { panic!("nets is not a sequence") };
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0].get("cidr").unwrap().as_str(), Some("10.0.0.0/8"));
        assert_eq!(n.get("other").unwrap().value, Value::Null);
        assert_eq!((out.len(), out[0].name.as_str(), out[0].uses, out[0].at.line), (1, "VNET", 2, 5));
    }

    #[test]
    fn a_value_that_is_not_a_scalar_stays_text() {
        let mut n = doc("a: ${X}\n");
        substitute(0, &mut n, &|_| Some("k: v"), &mut Vec::new());
        assert_eq!(n.get("a").unwrap().as_str(), Some("k: v"));
    }
}
