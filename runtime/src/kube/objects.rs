//! ProxyConfig, ServicePolicy and MeshBundle objects, watched and fed to the store.
//!
//! The store sees each object as `meshc build` wrote it: apiVersion, kind,
//! name, namespace and spec. Everything the API server adds (status,
//! resourceVersion, managedFields, labels) is left out, so writing a
//! status never looks like a new config, and the proxy gets the same
//! bytes in both modes.
//!
//! Events that arrive together (a commit applied by Flux, a relist) are
//! applied as one store update: the store reconciles once per batch, not
//! once per object.

use super::status::{Board, Observed};
use crate::hub::ConfigHub;
use crate::store::{Floor, ObjectKey, Subject, Update, check::BUNDLE_NAME};
use bytes::Bytes;
use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::Config};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const GROUP: &str = "meshc.io";
pub const VERSION: &str = "v1alpha1";
/// A batch takes every event that follows the previous one within
/// `BATCH_IDLE`, for at most `BATCH_MAX` or `BATCH` events: a commit's
/// objects arrive one by one, and each store update costs O(configs).
const BATCH: usize = 4096;
const BATCH_IDLE: Duration = Duration::from_millis(5);
const BATCH_MAX: Duration = Duration::from_millis(100);

/// `first` and the events that follow it closely.
async fn gather<S, E>(first: E, stream: &mut std::pin::Pin<&mut S>) -> Vec<E>
where
    S: futures_util::Stream<Item = E>,
{
    let mut events = vec![first];
    let deadline = tokio::time::Instant::now() + BATCH_MAX;
    while events.len() < BATCH {
        let idle = deadline.min(tokio::time::Instant::now() + BATCH_IDLE);
        match tokio::time::timeout_at(idle, stream.next()).await {
            Ok(Some(e)) => events.push(e),
            Ok(None) | Err(_) => break,
        }
    }
    events
}

pub fn proxy_configs() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, "ProxyConfig"), "proxyconfigs")
}

pub fn service_policies() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, "ServicePolicy"), "servicepolicies")
}

pub fn mesh_bundles() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, "MeshBundle"), "meshbundles")
}

/// Which kind a watch carries.
#[derive(Clone, Copy)]
pub enum Kind {
    Config,
    Bundle,
    Policy,
}

/// An object as the store takes it, and what the status writer needs.
struct Seen {
    subject: Subject,
    bytes: Bytes,
    observed: Observed,
}

fn seen(kind: Kind, o: &DynamicObject) -> Option<Seen> {
    let name = o.metadata.name.clone()?;
    let subject = match kind {
        Kind::Bundle => Subject::Bundle,
        Kind::Config => Subject::Config(ObjectKey { namespace: o.metadata.namespace.clone()?, name: name.clone() }),
        Kind::Policy => Subject::Policy(ObjectKey { namespace: o.metadata.namespace.clone()?, name: name.clone() }),
    };
    let (api_version, kind_name) = o.types.as_ref().map_or(("", ""), |t| (t.api_version.as_str(), t.kind.as_str()));
    let mut metadata = json!({"name": name});
    if let Some(ns) = &o.metadata.namespace {
        metadata["namespace"] = json!(ns);
    }
    let doc = json!({"apiVersion": api_version, "kind": kind_name, "metadata": metadata, "spec": o.data.get("spec")});
    let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let observed = Observed { generation: o.metadata.generation.unwrap_or(0), status: o.data.get("status").cloned() };
    Some(Seen { subject, bytes, observed })
}

/// The object `key` (a ProxyConfig or a ServicePolicy, as `kind` says) is
/// gone: whatever the batch held for it is replaced by its removal.
fn unstage(kind: Kind, key: ObjectKey, state: &mut Batch) {
    state.known.remove(&key);
    let (changed, removed) = match kind {
        Kind::Policy => (&mut state.update.policies, &mut state.update.removed_policies),
        Kind::Config | Kind::Bundle => (&mut state.update.configs, &mut state.update.removed),
    };
    changed.retain(|(k, _)| *k != key);
    removed.push(key);
}

/// Watches one kind and applies it to `hub`; `synced` turns true after
/// the first complete list.
pub struct ObjectWatch {
    pub kind: Kind,
    pub api: Api<DynamicObject>,
    pub hub: Arc<ConfigHub>,
    pub board: Arc<Board>,
    pub synced: Arc<AtomicBool>,
    /// Where a risen rollback floor goes to be recorded ([`super::state`]).
    pub floor: Arc<tokio::sync::watch::Sender<Option<Floor>>>,
}

/// The state of one watch between batches.
#[derive(Default)]
struct Batch {
    update: Update,
    /// What the status writer learns once the store has judged `update`:
    /// a generation must never be reported with an older content's verdict.
    seen: Vec<(Subject, Option<Observed>)>,
    relisted: Option<BTreeMap<Subject, Observed>>,
    /// Objects of a relist in progress (`Init` … `InitDone`).
    relist: Option<Vec<Seen>>,
    /// Object names the store holds from this watch.
    known: BTreeSet<ObjectKey>,
    /// A complete list is in this batch: the watch is synced once the
    /// store has applied it.
    listed: bool,
}

impl ObjectWatch {
    pub async fn run(self, shutdown: CancellationToken) {
        let config = match self.kind {
            // One bundle per cluster, by name: nothing else is read.
            Kind::Bundle => Config::default().fields(&format!("metadata.name={BUNDLE_NAME}")),
            Kind::Config | Kind::Policy => Config::default(),
        };
        let stream = watcher::watcher(self.api.clone(), config).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut state = Batch::default();
        let mut failing = false;
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return,
                next = stream.next() => match next { Some(e) => e, None => return },
            };
            let events = gather(first, &mut stream).await;
            for event in events {
                match event {
                    Ok(e) => {
                        failing = false;
                        self.event(e, &mut state);
                    }
                    Err(e) if !failing => {
                        tracing::warn!(kind = self.kind_name(), "watch failed; retrying with backoff: {e}");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
            let update = std::mem::take(&mut state.update);
            let relisted = state.relisted.take();
            let seen = std::mem::take(&mut state.seen);
            // The board learns generations under the store's lock, in the
            // same step as the store judges their content: the status
            // writer reads both under that lock, so it never pairs a
            // verdict with another generation than the one judged.
            let (board, kind) = (self.board.clone(), self.kind_name());
            let observe = move || {
                if let Some(listed) = relisted {
                    board.replace(kind, listed);
                }
                for (subject, observed) in seen {
                    match observed {
                        Some(o) => board.set(subject, o),
                        None => board.remove(&subject),
                    }
                }
            };
            let any = update.bundle.is_some()
                || !update.configs.is_empty()
                || !update.removed.is_empty()
                || !update.policies.is_empty()
                || !update.removed_policies.is_empty();
            if any {
                self.hub
                    .update(move |s| {
                        let changes = s.update(update);
                        observe();
                        changes
                    })
                    .await;
                let now = self.hub.with_store(|s| s.floor().cloned());
                self.floor.send_if_modified(|held| {
                    let changed = *held != now;
                    *held = now;
                    changed
                });
            } else {
                self.hub.with_store(|_| observe());
            }
            if std::mem::take(&mut state.listed) {
                self.synced.store(true, Ordering::Relaxed);
            }
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Config => "ProxyConfig",
            Kind::Bundle => "MeshBundle",
            Kind::Policy => "ServicePolicy",
        }
    }

    fn event(&self, event: Event<DynamicObject>, state: &mut Batch) {
        match event {
            Event::Init => state.relist = Some(Vec::new()),
            Event::InitApply(o) => {
                if let (Some(list), Some(s)) = (state.relist.as_mut(), seen(self.kind, &o)) {
                    list.push(s);
                }
            }
            Event::InitDone => {
                let list = state.relist.take().unwrap_or_default();
                self.relisted(list, state);
                // Synced once the store holds the list, not before.
                state.listed = true;
            }
            Event::Apply(o) => {
                if let Some(s) = seen(self.kind, &o) {
                    state.seen.push((s.subject.clone(), Some(s.observed.clone())));
                    self.stage(s, state);
                }
            }
            Event::Delete(o) => {
                if let Some(s) = seen(self.kind, &o) {
                    state.seen.push((s.subject.clone(), None));
                    if let Subject::Config(key) | Subject::Policy(key) = s.subject {
                        unstage(self.kind, key, state);
                    }
                    // A deleted MeshBundle keeps the last good one served:
                    // the store has no way to "unset" it, by design.
                }
            }
        }
    }

    /// Adds one object's content to the pending update.
    fn stage(&self, s: Seen, state: &mut Batch) {
        match s.subject {
            Subject::Bundle => state.update.bundle = Some(s.bytes),
            Subject::Config(key) => {
                state.update.removed.retain(|k| *k != key);
                state.known.insert(key.clone());
                state.update.configs.push((key, s.bytes));
            }
            Subject::Policy(key) => {
                state.update.removed_policies.retain(|k| *k != key);
                state.known.insert(key.clone());
                state.update.policies.push((key, s.bytes));
            }
        }
    }

    /// A complete list replaces what this watch had: objects missing from
    /// it were deleted while the watch was down.
    fn relisted(&self, list: Vec<Seen>, state: &mut Batch) {
        let listed: BTreeMap<Subject, Observed> =
            list.iter().map(|s| (s.subject.clone(), s.observed.clone())).collect();
        let names: BTreeSet<&ObjectKey> = listed
            .keys()
            .filter_map(|s| match s {
                Subject::Config(k) | Subject::Policy(k) => Some(k),
                Subject::Bundle => None,
            })
            .collect();
        let gone: Vec<ObjectKey> = state.known.iter().filter(|k| !names.contains(k)).cloned().collect();
        for key in gone {
            unstage(self.kind, key, state);
        }
        // A relist supersedes what single events said before it.
        state.seen.clear();
        state.relisted = Some(listed);
        for s in list {
            self.stage(s, state);
        }
    }
}
