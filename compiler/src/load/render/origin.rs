//! Positions for rendered objects. kustomize's output has no lines; its
//! `config.kubernetes.io/origin` annotation names the file each object came
//! from. Each field of the rendered object takes the position of the same
//! field in a patch that sets it, else in the original object, else its
//! parent's: a finding on `inject: enabled` added by an overlay's patch
//! points at the patch file, one on the base's `containerPort` at the base.
//!
//! Matching is by field path; list items by their `name` key when they have
//! one (how strategic merge matches containers and ports), else by index.
//! JSON 6902 patches and inline patches carry no object to match: fields
//! they add take their parent's position.

use crate::load::yaml::{Key, Node, SAME_SOURCE, Value};

/// A strategic-merge patch document, in the source it was read from.
pub struct Patch {
    pub source: u32,
    pub node: Node,
}

/// Sets the positions of `rendered` (an object read from `origin_source`)
/// from `original` (its document there, if found) and `patches` (those that
/// target it, in the order kustomize applies them).
pub fn place(rendered: &mut Node, original: Option<&Node>, patches: &[&Patch]) {
    let layers: Vec<(u32, &Node)> = patches.iter().map(|p| (p.source, &p.node)).collect();
    let top = original.map_or((1, 1, 0, SAME_SOURCE), |o| (o.line, o.column, o.offset, SAME_SOURCE));
    walk(rendered, original, &layers, top);
}

type At = (u32, u32, u32, u32);

fn walk(r: &mut Node, original: Option<&Node>, patches: &[(u32, &Node)], parent: At) {
    // A scalar is where it was written with the value it has: the base if
    // the base wrote it so (a merge key a patch repeats), else the last
    // patch that did; a value neither wrote (a name a namePrefix changed)
    // stays the base's. A container a patch added (absent from the
    // original) is where the patch wrote it.
    let from_patch = match r.value {
        Value::Map(_) | Value::Seq(_) => patches.last().filter(|_| original.is_none()),
        ref v if original.is_some_and(|o| &o.value == v) => None,
        ref v => patches.iter().rev().find(|(_, p)| &p.value == v).or(patches.last().filter(|_| original.is_none())),
    };
    let at = match (from_patch, original) {
        (Some((source, p)), _) => (p.line, p.column, p.offset, *source),
        (None, Some(o)) => (o.line, o.column, o.offset, SAME_SOURCE),
        (None, None) => parent,
    };
    (r.line, r.column, r.offset, r.source) = at;
    match &mut r.value {
        Value::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                let o = original.and_then(|o| o.get(&key.name));
                let ps: Vec<(u32, &Node)> = patches.iter().filter_map(|(s, p)| Some((*s, p.get(&key.name)?))).collect();
                walk(value, o, &ps, at);
                place_key(key, original, patches, value);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let name = item.get("name").and_then(Node::as_str).map(str::to_owned);
                let o = original.and_then(|o| item_of(o, i, name.as_deref()));
                let ps: Vec<(u32, &Node)> =
                    patches.iter().filter_map(|(s, p)| Some((*s, item_of(p, i, name.as_deref())?))).collect();
                walk(item, o, &ps, at);
            }
        }
        _ => {}
    }
}

/// A key sits in the file its value was placed in, on the line of the key there.
fn place_key(key: &mut Key, original: Option<&Node>, patches: &[(u32, &Node)], value: &Node) {
    let written = |n: &Node| match &n.value {
        Value::Map(entries) => {
            entries.iter().find(|(k, _)| k.name == key.name).map(|(k, _)| (k.line, k.column, k.offset))
        }
        _ => None,
    };
    let from = if value.source == SAME_SOURCE {
        original.and_then(written)
    } else {
        patches.iter().rev().find(|(s, _)| *s == value.source).and_then(|(_, p)| written(p))
    };
    (key.line, key.column, key.offset) = from.unwrap_or((value.line, value.column, value.offset));
}

/// Item `i` of a sequence node, or the item with `name` when named.
fn item_of<'n>(node: &'n Node, i: usize, name: Option<&str>) -> Option<&'n Node> {
    let Value::Seq(items) = &node.value else {
        return None;
    };
    match name {
        Some(name) => items.iter().find(|it| it.get("name").and_then(Node::as_str) == Some(name)),
        None => items.get(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse_documents;

    fn doc(text: &str) -> Node {
        parse_documents(text).unwrap().remove(0)
    }

    #[test]
    fn fields_point_at_the_patch_that_set_them_else_the_base() {
        let base = doc(
            "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx\n",
        );
        let patch = Patch {
            source: 7,
            node: doc(
                "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    metadata:\n      annotations:\n        linkerd.io/inject: enabled\n    spec:\n      containers:\n      - name: web\n        image: nginx:2\n",
            ),
        };
        // Rendered output: reordered keys, a prefixed name, fields from both.
        let mut r = doc(
            "kind: Deployment\nmetadata:\n  name: p-web\n  namespace: prod\nspec:\n  template:\n    metadata:\n      annotations:\n        linkerd.io/inject: enabled\n    spec:\n      containers:\n      - image: nginx:2\n        name: web\n",
        );
        place(&mut r, Some(&base), &[&patch]);
        let at = |path: &[&str]| {
            let n = path.iter().fold(&r, |n, k| match k.parse::<usize>() {
                Ok(i) => match &n.value {
                    Value::Seq(items) => &items[i],
                    _ => panic!("not a list"),
                },
                Err(_) => n.get(k).unwrap(),
            });
            (n.source, n.line)
        };
        assert_eq!(at(&["metadata", "name"]), (SAME_SOURCE, 3), "renamed by namePrefix: still the base's line");
        assert_eq!(
            at(&["metadata", "namespace"]),
            (SAME_SOURCE, 3),
            "added by a transformer: where its parent map starts"
        );
        let inject = ["spec", "template", "metadata", "annotations", "linkerd.io/inject"];
        assert_eq!(at(&inject), (7, 8), "added by the patch");
        assert_eq!(
            at(&["spec", "template", "metadata"]),
            (7, 7),
            "a map the patch added (a map is where its first key is)"
        );
        assert_eq!(at(&["spec", "template", "spec"]), (SAME_SOURCE, 7), "a map both wrote: the base's");
        assert_eq!(at(&["spec", "template", "spec", "containers", "0", "image"]), (7, 12), "overridden by the patch");
        assert_eq!(
            at(&["spec", "template", "spec", "containers", "0", "name"]),
            (SAME_SOURCE, 8),
            "a merge key the patch repeats"
        );
    }
}
