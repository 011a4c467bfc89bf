//! Status conditions on ProxyConfig and MeshBundle objects, written by the
//! elected replica so that Flux's and Argo CD's health checks can read
//! what the runtime made of each object.
//!
//! Two conditions (runtime/deploy/README.md has the health-check snippets):
//! - `Ready`: `True` (reason `Accepted`) when the object verified and is
//!   in force; `False` with the refusal's reason otherwise.
//! - `Stalled`: `True` when the object itself can never be accepted as it
//!   is (bad signature, untrusted key, malformed, …), so a health check
//!   fails at once instead of waiting for its timeout. Refusals that a
//!   later object can cure (no bundle yet, a bundle from another commit)
//!   are `Ready=False` but not stalled: Flux and Argo CD apply a commit's
//!   objects one by one, and the runtime may see them in any order.
//!
//! The writer is level-based: it compares what the store decided with the
//! status each object carries (from the watch) and patches only the
//! difference, so a new leader repairs whatever its predecessor left.

use crate::hub::ConfigHub;
use crate::store::{ObjectKey, Status, Subject, check::BUNDLE_NAME};
use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Status patches in flight at once.
const CONCURRENT_PATCHES: usize = 16;
/// Everything is compared again this often, in case a write was lost.
const RESYNC: Duration = Duration::from_secs(60);
/// Wake-ups within this long are handled by one pass.
const COALESCE: Duration = Duration::from_millis(20);
/// A failed write is tried again after this long.
const RETRY: Duration = Duration::from_secs(1);

/// The Kubernetes form of a store status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conditions {
    pub ready: bool,
    pub stalled: bool,
    pub reason: String,
    pub message: String,
}

impl Conditions {
    pub fn of(status: &Status) -> Conditions {
        match status {
            Status::Accepted { digest } => Conditions {
                ready: true,
                stalled: false,
                reason: "Accepted".into(),
                message: format!("verified and served ({digest})"),
            },
            Status::Rejected(r) => Conditions {
                ready: false,
                stalled: is_permanent(r.reason),
                reason: reason_word(r.reason),
                message: format!("{}; the last good config stays served", r.message),
            },
        }
    }

    /// The conditions as an object carries them, or `None` when absent.
    pub fn observed(status: Option<&Value>) -> Option<(Conditions, i64)> {
        let ready = condition_of(status, "Ready")?;
        let stalled = condition_of(status, "Stalled")?;
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let c = Conditions {
            ready: text(ready, "status") == "True",
            stalled: text(stalled, "status") == "True",
            reason: text(ready, "reason"),
            message: text(ready, "message"),
        };
        Some((c, ready.get("observedGeneration").and_then(Value::as_i64).unwrap_or(-1)))
    }

    /// The merge patch that sets these conditions for `generation`. A
    /// condition whose status is the same as in `old` (the object's status)
    /// keeps its lastTransitionTime; the others get `now`.
    pub fn patch(&self, generation: i64, old: Option<&Value>, now: SystemTime) -> Value {
        let transition = |t: &str, status: bool| {
            let old = condition_of(old, t);
            let same = old.and_then(|c| c.get("status")).and_then(Value::as_str) == Some(word(status));
            match old.and_then(|c| c.get("lastTransitionTime")).filter(|_| same) {
                Some(t) => t.clone(),
                None => Value::String(crate::api::rfc3339(now)),
            }
        };
        let condition = |t: &str, status: bool, reason: &str, message: &str| {
            json!({
                "type": t,
                "status": word(status),
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": transition(t, status),
            })
        };
        let stalled_reason = if self.stalled { self.reason.as_str() } else { "Progressing" };
        // Argo CD shows the Stalled condition's message: it must say why.
        let stalled_message = if self.stalled { self.message.as_str() } else { "" };
        json!({"status": {
            "observedGeneration": generation,
            "conditions": [
                condition("Ready", self.ready, &self.reason, &self.message),
                condition("Stalled", self.stalled, stalled_reason, stalled_message),
            ],
        }})
    }
}

/// The condition of type `t` in an object's status.
fn condition_of<'a>(status: Option<&'a Value>, t: &str) -> Option<&'a Value> {
    let conditions = status?.get("conditions")?.as_array()?;
    conditions.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(t))
}

fn word(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Refusals that only a new version of the object itself can cure.
fn is_permanent(reason: &str) -> bool {
    // A rollback is permanent too: the object cannot grow a higher signed
    // sequence, only a new build can replace it.
    matches!(
        reason,
        "parse" | "untrusted-key" | "signature" | "payload" | "workload" | "digest" | "metadata" | "rollback"
    )
}

/// The store's reason words as CamelCase condition reasons.
pub fn reason_word(reason: &str) -> String {
    match reason {
        "parse" => "Malformed".into(),
        "signature" => "SignatureInvalid".into(),
        "payload" => "PayloadInvalid".into(),
        "workload" => "WrongWorkload".into(),
        "digest" => "DigestMismatch".into(),
        "metadata" => "MetadataMismatch".into(),
        other => other
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect(),
    }
}

/// What the watches last saw of an object: its generation and status.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub generation: i64,
    pub status: Option<Value>,
}

/// The objects the watches see, shared with the writer, which it wakes.
#[derive(Default)]
pub struct Board {
    objects: Mutex<BTreeMap<Subject, Observed>>,
    wake: Notify,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Subject, Observed>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, subject: Subject, observed: Observed) {
        self.lock().insert(subject, observed);
        self.wake.notify_one();
    }

    pub fn remove(&self, subject: &Subject) {
        self.lock().remove(subject);
    }

    /// Replaces every object of one kind ([`Subject::kind`]) after a relist.
    pub fn replace(&self, kind: &str, objects: impl IntoIterator<Item = (Subject, Observed)>) {
        let mut held = self.lock();
        held.retain(|s, _| s.kind() != kind);
        held.extend(objects);
        self.wake.notify_one();
    }

    /// The store decided something new.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn snapshot(&self) -> BTreeMap<Subject, Observed> {
        self.lock().clone()
    }
}

/// The patches that bring every observed object to what the store says.
pub fn plan(
    desired: &BTreeMap<Subject, Status>,
    observed: &BTreeMap<Subject, Observed>,
    now: SystemTime,
) -> Vec<(Subject, Value)> {
    observed
        .iter()
        .filter_map(|(subject, obs)| {
            let want = Conditions::of(desired.get(subject)?);
            let current = Conditions::observed(obs.status.as_ref());
            if current.as_ref().is_some_and(|(c, g)| *c == want && *g == obs.generation) {
                return None;
            }
            Some((subject.clone(), want.patch(obs.generation, obs.status.as_ref(), now)))
        })
        .collect()
}

/// Where statuses are written.
pub struct Writer {
    pub bundles: Api<DynamicObject>,
    /// ProxyConfigs are written through a namespaced API made from this client.
    pub client: kube::Client,
    pub config_resource: kube::api::ApiResource,
    /// ServicePolicies likewise.
    pub policy_resource: kube::api::ApiResource,
}

impl Writer {
    async fn write(&self, subject: &Subject, patch: &Value) -> Result<(), kube::Error> {
        let params = PatchParams::default();
        match subject {
            Subject::Bundle => self.bundles.patch_status(BUNDLE_NAME, &params, &Patch::Merge(patch)).await.map(|_| ()),
            Subject::Config(ObjectKey { namespace, name }) => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), namespace, &self.config_resource);
                api.patch_status(name, &params, &Patch::Merge(patch)).await.map(|_| ())
            }
            Subject::Policy(ObjectKey { namespace, name }) => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), namespace, &self.policy_resource);
                api.patch_status(name, &params, &Patch::Merge(patch)).await.map(|_| ())
            }
        }
    }

    /// While this replica leads, keeps every object's status in line with
    /// the store's decisions.
    pub async fn run(
        self,
        hub: Arc<ConfigHub>,
        board: Arc<Board>,
        mut leader: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        // What was written and not yet seen back through the watch: not
        // written again until the watch shows something else.
        let mut written: HashMap<Subject, Value> = HashMap::new();
        let mut failed = false;
        loop {
            let next = if failed { RETRY } else { RESYNC };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = board.wake.notified() => {}
                changed = leader.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(next) => written.clear(),
            }
            failed = false;
            // A commit's objects and the echoes of our own writes come in
            // bursts: one pass after the burst, not one per event.
            tokio::time::sleep(COALESCE).await;
            if !*leader.borrow_and_update() {
                written.clear();
                continue;
            }
            // Verdicts and generations are read together under the store's
            // lock, under which the watches change both (objects.rs). The
            // store's lock is held while a build is verified: wait for it
            // on the blocking pool, not on an async worker thread.
            let (store, seen) = (hub.clone(), board.clone());
            let (desired, observed) =
                crate::supervise::blocking(move || store.with_store(|s| (s.statuses().clone(), seen.snapshot()))).await;
            let patches: Vec<_> = plan(&desired, &observed, SystemTime::now())
                .into_iter()
                .filter(|(s, p)| written.get(s) != Some(p))
                .collect();
            let this = &self;
            let results: Vec<_> = futures_util::stream::iter(patches)
                .map(|(subject, patch)| async move {
                    let r = this.write(&subject, &patch).await;
                    (subject, patch, r)
                })
                .buffer_unordered(CONCURRENT_PATCHES)
                .collect()
                .await;
            for (subject, patch, result) in results {
                match result {
                    Ok(()) => {
                        written.insert(subject, patch);
                    }
                    // Gone meanwhile: its deletion event is on its way.
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        tracing::warn!(object = %subject, "cannot write the status; retrying: {e}");
                        failed = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
