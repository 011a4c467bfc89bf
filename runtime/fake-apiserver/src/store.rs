//! The object store: every object of every registered type, one
//! resourceVersion counter across all of them, and the change history that
//! watches replay.

use crate::error::ApiError;
use crate::patch::{self, PatchKind};
use crate::resource::{Behaviour, Gvr, ResourceType, Resources};
use crate::select::Selector;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// What a write did to an object, as a watch event names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One write, kept for watches until the next compaction.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub gvr: Gvr,
    pub kind: ChangeKind,
    /// The object before the write (None for a create).
    pub old: Option<Arc<Value>>,
    /// The object after the write; for a delete, the object as deleted,
    /// carrying the deletion's resourceVersion.
    pub new: Arc<Value>,
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The main resource: `.status` is kept as it was when the type has a
    /// status subresource.
    Main,
    /// The `/status` subresource: only `.status` changes.
    Status,
}

/// Where a watch may resume, and whether live watches must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tick {
    pub rv: u64,
    /// Bumped by [`Store::compact`] and by dropping watches: live watch
    /// streams end when it changes.
    pub epoch: u64,
}

type Key = (String, String);

#[derive(Default)]
struct State {
    rv: u64,
    /// Watches from a resourceVersion below this get 410 Gone.
    floor: u64,
    objects: BTreeMap<Gvr, BTreeMap<Key, Arc<Value>>>,
    log: VecDeque<Arc<Change>>,
    /// The most changes kept; older ones are forgotten as by compaction,
    /// but live watches that are caught up go on.
    history_limit: usize,
}

impl State {
    fn record(&mut self, change: Change) {
        self.log.push_back(Arc::new(change));
        while self.log.len() > self.history_limit.max(1) {
            if let Some(oldest) = self.log.pop_front() {
                self.floor = oldest.rv;
            }
        }
    }
}

/// Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct Store {
    state: Arc<Mutex<State>>,
    resources: Arc<Resources>,
    tick: Arc<watch::Sender<Tick>>,
}

impl Store {
    /// A store that remembers at most `history_limit` changes for watches
    /// to replay (like the real server's watch cache window): a watch from
    /// further back gets 410 Gone.
    pub fn new(resources: Resources, history_limit: usize) -> Self {
        let (tick, _) = watch::channel(Tick { rv: 1, epoch: 0 });
        let state = State { rv: 1, floor: 1, history_limit, ..State::default() };
        Store { state: Arc::new(Mutex::new(state)), resources: Arc::new(resources), tick: Arc::new(tick) }
    }

    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Forgets the change history: the resourceVersion advances by one (as an
    /// unrelated write elsewhere in a real cluster would), every earlier
    /// resourceVersion is too old to watch from (410 Gone), and live watch
    /// streams end, so clients reconnect, get 410 and relist.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.rv += 1;
        st.floor = st.rv;
        st.log.clear();
        let rv = st.rv;
        drop(st);
        self.tick.send_modify(|t| {
            t.rv = rv;
            t.epoch += 1;
        });
    }

    /// Ends every live watch stream (clients see the stream close).
    pub fn drop_watches(&self) {
        self.tick.send_modify(|t| t.epoch += 1);
    }

    pub fn get(&self, gvr: &Gvr, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let t = self.stored_type(gvr)?;
        let key = key(t, namespace, name);
        let st = self.lock();
        st.objects
            .get(gvr)
            .and_then(|m| m.get(&key))
            .map(|v| (**v).clone())
            .ok_or_else(|| ApiError::not_found(gvr, name))
    }

    /// The matching objects (all namespaces when `namespace` is None) and the
    /// resourceVersion of the list.
    pub fn list(&self, gvr: &Gvr, namespace: Option<&str>, selector: &Selector) -> Result<(Vec<Value>, u64), ApiError> {
        self.stored_type(gvr)?;
        let st = self.lock();
        let items = st
            .objects
            .get(gvr)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((ns, _), obj)| namespace.is_none_or(|want| want == ns) && selector.matches(obj))
            .map(|(_, obj)| (**obj).clone())
            .collect();
        Ok((items, st.rv))
    }

    /// Creates an object; `namespace` is the request's (ignored for
    /// cluster-scoped types). 409 AlreadyExists if the name is taken.
    pub fn create(&self, gvr: &Gvr, namespace: Option<&str>, object: Value) -> Result<Value, ApiError> {
        let t = self.stored_type(gvr)?.clone();
        let mut obj = check_type(&t, object)?;
        let meta = metadata_mut(&mut obj)?;
        if meta.get("resourceVersion").is_some_and(|v| !v.is_null() && v != "") {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        let name = created_name(meta).ok_or_else(|| {
            ApiError::invalid(
                gvr,
                "",
                format!("{} is invalid: metadata.name: Required value: name or generateName is required", t.kind),
            )
        })?;
        set_namespace(&t, meta, namespace, &name)?;
        meta.insert("name".into(), name.clone().into());
        meta.insert("uid".into(), new_uid().into());
        meta.insert("creationTimestamp".into(), now().into());
        meta.insert("generation".into(), 1.into());
        if t.status {
            // Like CRDs with a status subresource: status is not set on create.
            obj.as_object_mut().map(|o| o.remove("status"));
        }
        let key = key(&t, namespace, &name);
        let mut st = self.lock();
        if st.objects.get(gvr).is_some_and(|m| m.contains_key(&key)) {
            return Err(ApiError::already_exists(gvr, &name));
        }
        Ok(self.commit(&mut st, gvr, key, None, obj))
    }

    /// Replaces an object (PUT). A `metadata.resourceVersion` in `object`
    /// must be the live one (409 Conflict otherwise); none means
    /// unconditional.
    pub fn update(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let t = self.stored_type(gvr)?.clone();
        let object = check_type(&t, object)?;
        check_name(&t, &object, namespace, name)?;
        self.write(&t, namespace, name, part, |_| Ok(object))
    }

    /// Patches an object. A server-side apply patch creates it when absent
    /// (the bool is true then).
    pub fn patch(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        part: Part,
    ) -> Result<(Value, bool), ApiError> {
        let t = self.stored_type(gvr)?.clone();
        let result = self.write(&t, namespace, name, part, |live| patch::apply(kind, live, body));
        match result {
            Err(e) if kind == PatchKind::Apply && part == Part::Main && e.reason == "NotFound" => {
                let object = check_type(&t, patch::parse_object(body)?)?;
                check_name(&t, &object, namespace, name)?;
                Ok((self.create(gvr, namespace, object)?, true))
            }
            other => other.map(|v| (v, false)),
        }
    }

    /// Changes an object with a function of its live state, as a test
    /// would through PUT: the same metadata, generation and status rules.
    pub fn modify(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let t = self.stored_type(gvr)?.clone();
        self.write(&t, namespace, name, Part::Main, |live| {
            let mut v = live.clone();
            f(&mut v);
            Ok(v)
        })
    }

    /// Deletes an object at once (finalizers are not honoured). A
    /// `precondition_rv` must be the live resourceVersion.
    pub fn delete(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        name: &str,
        precondition_rv: Option<&str>,
    ) -> Result<Value, ApiError> {
        let t = self.stored_type(gvr)?.clone();
        let key = key(&t, namespace, name);
        let mut st = self.lock();
        let live =
            st.objects.get(gvr).and_then(|m| m.get(&key)).cloned().ok_or_else(|| ApiError::not_found(gvr, name))?;
        if precondition_rv.is_some_and(|rv| rv != live["metadata"]["resourceVersion"]) {
            return Err(ApiError::conflict(gvr, name));
        }
        st.rv += 1;
        let rv = st.rv;
        let mut gone = (*live).clone();
        gone["metadata"]["resourceVersion"] = rv.to_string().into();
        let gone = Arc::new(gone);
        st.objects.get_mut(gvr).map(|m| m.remove(&key));
        let change = Change { rv, gvr: gvr.clone(), kind: ChangeKind::Deleted, old: Some(live), new: gone.clone() };
        st.record(change);
        drop(st);
        self.tick.send_modify(|t| t.rv = rv);
        Ok((*gone).clone())
    }

    /// Creates an object of whatever registered type its `apiVersion` and
    /// `kind` name, in its own `metadata.namespace`.
    pub fn create_object(&self, object: Value) -> Result<Value, ApiError> {
        let t = self.type_of(&object)?;
        let ns = object["metadata"]["namespace"].as_str().map(str::to_owned);
        self.create(&t.gvr, ns.as_deref(), object)
    }

    /// The registered type of an object, from its `apiVersion` and `kind`.
    pub fn type_of(&self, object: &Value) -> Result<&ResourceType, ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or("");
        let kind = object["kind"].as_str().unwrap_or("");
        self.resources
            .by_kind(api_version, kind)
            .ok_or_else(|| ApiError::bad_request(format!("no resource type registered for {api_version} {kind}")))
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Tick> {
        self.tick.subscribe()
    }

    /// The changes after `rv`, or 410 Gone if history before it is forgotten.
    pub(crate) fn changes_after(&self, rv: u64) -> Result<(Vec<Arc<Change>>, u64), ApiError> {
        let st = self.lock();
        if rv < st.floor {
            return Err(ApiError::gone(format!("too old resource version: {rv} ({})", st.floor)));
        }
        let start = st.log.partition_point(|c| c.rv <= rv);
        Ok((st.log.range(start..).cloned().collect(), st.rv))
    }

    pub(crate) fn stored_type(&self, gvr: &Gvr) -> Result<&ResourceType, ApiError> {
        match self.resources.get(gvr) {
            Some(t) if t.behaviour == Behaviour::Stored => Ok(t),
            Some(_) => Err(ApiError::method_not_allowed(format!("{gvr} accepts only create"))),
            None => Err(ApiError::new(
                http::StatusCode::NOT_FOUND,
                "NotFound",
                format!("the server could not find the requested resource ({gvr})"),
            )),
        }
    }

    /// Read-modify-write of one object under the lock, with the real
    /// server's rules for resourceVersion, immutable metadata, generation
    /// and the status subresource.
    fn write(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let key = key(t, namespace, name);
        let mut st = self.lock();
        let live = st
            .objects
            .get(&t.gvr)
            .and_then(|m| m.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.gvr, name))?;
        let mut new = f(&live)?;
        let sent_rv = &new["metadata"]["resourceVersion"];
        if sent_rv.as_str().is_some_and(|rv| !rv.is_empty() && rv != live["metadata"]["resourceVersion"]) {
            return Err(ApiError::conflict(&t.gvr, name));
        }
        if !new.is_object() || !new["metadata"].is_object() {
            return Err(ApiError::bad_request("the object must have metadata"));
        }
        keep_fixed_fields(t, &live, &mut new, part);
        if without_rv(&new) == without_rv(&live) {
            // A no-op write: the real server neither bumps the
            // resourceVersion nor sends a watch event.
            return Ok((*live).clone());
        }
        if spec_of(&new) != spec_of(&live) {
            let generation = live["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = (generation + 1).into();
        }
        Ok(self.commit(&mut st, &t.gvr, key, Some(live), new))
    }

    fn commit(
        &self,
        st: &mut MutexGuard<'_, State>,
        gvr: &Gvr,
        key: Key,
        old: Option<Arc<Value>>,
        mut new: Value,
    ) -> Value {
        st.rv += 1;
        let rv = st.rv;
        new["metadata"]["resourceVersion"] = rv.to_string().into();
        let new = Arc::new(new);
        st.objects.entry(gvr.clone()).or_default().insert(key, new.clone());
        let kind = if old.is_some() { ChangeKind::Modified } else { ChangeKind::Added };
        st.record(Change { rv, gvr: gvr.clone(), kind, old, new: new.clone() });
        self.tick.send_modify(|t| t.rv = rv);
        (*new).clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written
        // in a way later readers would misread, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(t: &ResourceType, namespace: Option<&str>, name: &str) -> Key {
    let ns = if t.namespaced { namespace.unwrap_or("") } else { "" };
    (ns.to_string(), name.to_string())
}

/// Fills a missing apiVersion/kind and refuses a wrong one.
fn check_type(t: &ResourceType, mut object: Value) -> Result<Value, ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let want = [("apiVersion", t.api_version()), ("kind", t.kind.clone())];
    for (field, expected) in want {
        match map.get(field).and_then(Value::as_str) {
            None | Some("") => {
                map.insert(field.into(), expected.into());
            }
            Some(got) if got == expected => {}
            Some(got) => {
                return Err(ApiError::bad_request(format!(
                    "{field} {got:?} does not match the resource {} ({expected})",
                    t.gvr
                )));
            }
        }
    }
    map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    Ok(object)
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    obj["metadata"].as_object_mut().ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn created_name(meta: &Map<String, Value>) -> Option<String> {
    match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => Some(n.to_string()),
        _ => {
            let prefix = meta.get("generateName").and_then(Value::as_str).filter(|p| !p.is_empty())?;
            let suffix: String =
                (0..5).map(|_| fastrand::choice(b"bcdfghjklmnpqrstvwxz2456789").map_or('x', |&b| b as char)).collect();
            Some(format!("{prefix}{suffix}"))
        }
    }
}

fn set_namespace(
    t: &ResourceType,
    meta: &mut Map<String, Value>,
    request_ns: Option<&str>,
    name: &str,
) -> Result<(), ApiError> {
    if !t.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let body_ns = meta.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty());
    let ns = match (request_ns, body_ns) {
        (Some(r), Some(b)) if r != b => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(r), _) => r.to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) => return Err(ApiError::invalid(&t.gvr, name, "metadata.namespace: Required value")),
    };
    meta.insert("namespace".into(), ns.into());
    Ok(())
}

fn check_name(t: &ResourceType, object: &Value, namespace: Option<&str>, name: &str) -> Result<(), ApiError> {
    let body_name = object["metadata"]["name"].as_str().unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = object["metadata"]["namespace"].as_str().unwrap_or("");
    if t.namespaced && !body_ns.is_empty() && Some(body_ns) != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Keeps what a write may not change: identity metadata always, `.status`
/// on the main resource of a type with a status subresource, and all but
/// `.status` on `/status`.
fn keep_fixed_fields(t: &ResourceType, live: &Value, new: &mut Value, part: Part) {
    if part == Part::Status {
        let status = new.get("status").cloned();
        *new = live.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                new.as_object_mut().map(|o| o.remove("status"));
            }
        }
    } else if t.status {
        match live.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|o| o.remove("status"));
            }
        }
    }
    for field in ["name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion"] {
        match live["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                new["metadata"].as_object_mut().map(|m| m.remove(field));
            }
        }
    }
}

fn without_rv(v: &Value) -> Value {
    let mut v = v.clone();
    v["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
    v
}

/// Everything but metadata and status: what bumps `metadata.generation`.
fn spec_of(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

fn new_uid() -> String {
    let hex: String = (0..32).map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0')).collect();
    format!("{}-{}-4{}-a{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// RFC 3339 in whole seconds, as the API writes timestamps.
pub(crate) fn now() -> String {
    let t = jiff::Timestamp::now();
    jiff::Timestamp::from_second(t.as_second()).map(|t| t.to_string()).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}})
    }

    #[test]
    fn history_window_expires_old_resource_versions() {
        let store = Store::new(Resources::standard(), 3);
        let start = store.resource_version();
        for i in 0..5 {
            store.create_object(cm(&format!("c{i}"))).unwrap();
        }
        let now = store.resource_version();
        assert_eq!(store.changes_after(start).unwrap_err().code, http::StatusCode::GONE);
        let (kept, current) = store.changes_after(now - 3).unwrap();
        assert_eq!((kept.len(), current), (3, now));
        assert!(store.changes_after(now - 4).is_err());
    }

    #[test]
    fn compaction_expires_everything_before_it() {
        let store = Store::new(Resources::standard(), 100);
        store.create_object(cm("a")).unwrap();
        let before = store.resource_version();
        store.compact();
        assert!(store.changes_after(before).is_err());
        let (changes, rv) = store.changes_after(store.resource_version()).unwrap();
        assert!(changes.is_empty());
        assert_eq!(rv, before + 1);
    }

    #[test]
    fn delete_precondition_and_generation() {
        let store = Store::new(Resources::standard(), 100);
        let gvr = Gvr::core("configmaps");
        let created = store.create_object(cm("a")).unwrap();
        let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let changed = store.modify(&gvr, Some("ns"), "a", |o| o["data"] = json!({"k": "v"})).unwrap();
        assert_eq!(changed["metadata"]["generation"], 2);
        let err = store.delete(&gvr, Some("ns"), "a", Some(&rv)).unwrap_err();
        assert_eq!(err.code, http::StatusCode::CONFLICT);
        let live_rv = changed["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let gone = store.delete(&gvr, Some("ns"), "a", Some(&live_rv)).unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], store.resource_version().to_string());
    }
}
