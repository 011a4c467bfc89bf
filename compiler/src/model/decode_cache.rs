//! Decoding shared between the two sides of `meshc diff`.
//!
//! What decoding one raw object yields (`decode_one`: the resource and its
//! findings) depends on the object's tree (its apiVersion and kind are read
//! from it) and on the default namespace, and on nothing else: no other
//! object, no other setting. Its source index only numbers the file, which
//! may differ between the sides (a file added before it), and is rewritten
//! on reuse.
//!
//! The key is the tree's identity. The head's load takes every file whose
//! name and text are the base's (the same git blob) from the base's parse
//! (`load::ParseCache`) as the very same `Arc<Node>`s, and every change made
//! to a tree after parsing (Flux substitution, a Helm release's namespace, a
//! kustomize patch) goes through `Arc::make_mut`, which copies a tree that
//! is shared. An entry holds its tree, so while it exists the tree is
//! shared: nothing changes it in place and no other tree can take its
//! address. A head object whose tree has an entry's address is therefore
//! the untouched parse the base decoded; anything changed, re-rendered or
//! substituted is a new tree and is decoded again.
//!
//! Rollouts whose `workloadRef` names another object's template are filled
//! in after decoding (`rollout::resolve_refs`), on each side: entries hold
//! what `decode_one` returned, before that step.

use super::Resource;
use crate::findings::Finding;
use crate::load::RawObject;
use crate::load::yaml::Node;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Decoded objects of one side, by tree identity and default namespace; the
/// other side takes each at most once.
#[derive(Default)]
pub struct DecodeCache {
    entries: Mutex<HashMap<Key, Entry>>,
    /// Set once the side that fills the cache is decoded: the other side
    /// only takes (what it decodes anew would never be asked for).
    sealed: AtomicBool,
}

/// The tree's address and the default namespace it was decoded with.
type Key = (usize, String);

struct Entry {
    /// Keeps the tree alive, hence shared (never changed in place) and its address its own.
    _tree: Arc<Node>,
    source: u32,
    decoded: Decoded,
}

/// What decoding one object yields: the resource (if it is one meshc
/// models and it is valid) and its findings.
pub(super) type Decoded = (Option<Resource>, Vec<Finding>);

/// Where a raw object's tree is, before decoding consumes the object.
pub(super) struct Place {
    tree: Arc<Node>,
    source: u32,
}

impl Place {
    pub(super) fn of(raw: &RawObject) -> Self {
        Place { tree: Arc::clone(&raw.node), source: raw.source }
    }
}

fn key(tree: &Arc<Node>, default_namespace: &str) -> Key {
    (Arc::as_ptr(tree) as usize, default_namespace.to_owned())
}

impl DecodeCache {
    /// How many decoded objects wait to be reused.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops recording: from now on the cache is only taken from.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Relaxed);
    }

    pub(super) fn recording(&self) -> bool {
        !self.sealed.load(Ordering::Relaxed)
    }

    /// The decoding of `raw`'s very tree, moved out, renumbered to `raw`'s source.
    pub(super) fn take(&self, raw: &RawObject, default_namespace: &str) -> Option<Decoded> {
        let entry = self.entries.lock().ok()?.remove(&key(&raw.node, default_namespace))?;
        let (mut resource, mut findings) = entry.decoded;
        if let Some(r) = &mut resource {
            r.source = raw.source;
        }
        // A parsed tree places every node in its object's file (`SAME_SOURCE`),
        // so every span decoding made is in the entry's source.
        for f in findings.iter_mut().filter(|f| f.span.source == entry.source) {
            f.span.source = raw.source;
        }
        Some((resource, findings))
    }

    /// Records what decoding the object at `place` yielded: the resource's
    /// decoded value is shared with the side that decoded it, not copied
    /// (`Resource`'s `Typed`), and so is its tree; the findings are copied.
    pub(super) fn put(&self, place: Place, default_namespace: &str, decoded: &Decoded) {
        let key = key(&place.tree, default_namespace);
        let entry = Entry { _tree: place.tree, source: place.source, decoded: decoded.clone() };
        if let Ok(mut map) = self.entries.lock() {
            map.insert(key, entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::objects::objects_of;
    use crate::model::decode_all_cached;

    const TEXT: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: api-http, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  port: http
  colour: blue
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80}]
";

    /// The base's objects, and the head's of the same text as `load::ParseCache`
    /// hands them over: the same trees, in another file number.
    fn sides() -> (Vec<RawObject>, Vec<RawObject>) {
        let (base, _) = objects_of(0, "shop.yaml", TEXT);
        let head = base.iter().cloned().map(|o| RawObject { source: 7, ..o }).collect();
        (base, head)
    }

    fn decode(raws: Vec<RawObject>, ns: &str, cache: Option<&DecodeCache>) -> (Vec<Resource>, Vec<Finding>) {
        let mut findings = Vec::new();
        let (resources, _) = decode_all_cached(raws, ns, &mut findings, cache, |_| {});
        (resources, findings)
    }

    #[test]
    fn an_untouched_parse_is_decoded_once_and_renumbered() {
        let (base, head) = sides();
        let cache = DecodeCache::default();
        let (base_resources, _) = decode(base, "default", Some(&cache));
        cache.seal();
        assert_eq!(cache.len(), 2);
        // What the head would get without the cache: its own decoding of the same text.
        let (fresh, _) = objects_of(7, "shop.yaml", TEXT);
        let (want, want_findings) = decode(fresh, "default", None);
        let (got, got_findings) = decode(head, "default", Some(&cache));
        assert!(cache.is_empty(), "every entry taken once");
        assert!(got.iter().zip(&base_resources).all(|(h, b)| Arc::ptr_eq(&h.node, &b.node)), "trees shared");
        assert!(got.iter().zip(&base_resources).all(|(h, b)| h.shares_typed(b)), "decoded values shared, not copied");
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
        assert_eq!(format!("{got_findings:?}"), format!("{want_findings:?}"));
        assert!(got_findings.iter().any(|f| f.message.contains("colour") && f.span.source == 7), "{got_findings:?}");
    }

    #[test]
    fn a_side_that_changes_a_shared_resource_changes_its_own_copy() {
        let (base, head) = sides();
        let cache = DecodeCache::default();
        let (base_resources, _) = decode(base, "default", Some(&cache));
        cache.seal();
        let (mut got, _) = decode(head, "default", Some(&cache));
        // As a Rollout's template filled in on one side only (`rollout::resolve_refs`).
        got[1].meta.labels.insert("side".to_owned(), "head".to_owned());
        assert!(!got[1].shares_typed(&base_resources[1]), "copied on write");
        assert!(base_resources[1].meta.labels.is_empty(), "the base's is unchanged");
        assert!(got[0].shares_typed(&base_resources[0]), "the untouched one still shared");
    }

    #[test]
    fn a_tree_changed_after_parsing_is_decoded_again() {
        let (base, mut head) = sides();
        let cache = DecodeCache::default();
        decode(base, "default", Some(&cache));
        cache.seal();
        // As Flux substitution or a Helm release's namespace would: copied on write.
        let node = Arc::make_mut(&mut head[1].node);
        node.value.edit_map(|top| top.retain(|(k, _)| k.name != "spec")).expect("a mapping");
        let (got, _) = decode(head, "default", Some(&cache));
        assert_eq!(cache.len(), 1, "the Service's entry is not taken");
        let crate::model::Spec::Service(spec) = &got[1].spec else { panic!("a Service") };
        assert!(spec.ports.is_empty(), "decoded from the changed tree: {spec:?}");
    }

    #[test]
    fn another_default_namespace_is_decoded_again() {
        let (base, head) = sides();
        let cache = DecodeCache::default();
        decode(base, "default", Some(&cache));
        cache.seal();
        let (got, _) = decode(head, "apps", Some(&cache));
        assert_eq!(cache.len(), 2, "nothing taken");
        assert_eq!(got[1].namespace(), "apps");
    }

    #[test]
    fn a_sealed_cache_records_nothing() {
        let (base, _) = sides();
        let cache = DecodeCache::default();
        cache.seal();
        decode(base, "default", Some(&cache));
        assert!(cache.is_empty());
    }
}
