//! The runtime's state: per workload, the newest config that verified and
//! that the newest verified MeshBundle lists with the same digest.
//!
//! Inputs are objects as they arrive (from files or, later, the Kubernetes
//! API): [`Store::set_bundle`], [`Store::set_config`], [`Store::remove_config`]
//! or several at once with [`Store::update`] (which also takes the shared
//! ServicePolicy objects: served under the same rules as configs),
//! and [`Store::set_trusted`] for key rotation. Each returns the objects
//! whose status changed, for logs, metrics and status conditions.
//!
//! Rules:
//! - An object that fails verification never replaces what is served: the
//!   last good config of that workload stays (and the last good bundle).
//! - Only workloads the current bundle lists are served. A config object
//!   the bundle does not list, or lists with another digest, is refused;
//!   a listed object that is missing or bad keeps its workload's last good
//!   config; a workload the bundle no longer lists is no longer served.
//! - Removing a trusted key drops whatever only that key signed.
//!
//! - Rollback: a bundle whose signed sequence is below the [`Floor`] (the
//!   newest bundle ever accepted, carried over restarts by the caller
//!   through [`Store::raise_floor`] and [`Store::floor`]), or equal to it
//!   with other content, is refused with reason `rollback`; the newer
//!   bundle stays, so the older configs mismatch it and are refused too.
//!
//! Pure: no I/O, no clock. Signatures are checked once per object content
//! (and again when the keys change), not on every bundle change.

pub mod check;
pub mod floor;

use bytes::Bytes;
use check::Bundle;
pub use floor::Floor;
use mesh_proxy_api::envelope::VerifyingKey;
use mesh_proxy_api::service_policy::Audience;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// A ProxyConfig object's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A config the runtime serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// `Kind/namespace/name`.
    pub workload: String,
    /// The signed identity: only a client with this identity gets it.
    pub identity: String,
    /// `sha256:…` of the signed payload.
    pub digest: String,
    pub key_id: String,
    /// The object it came from.
    pub object: ObjectKey,
    /// The object's JSON, as served.
    pub body: Bytes,
}

/// A shared ServicePolicy the runtime serves (to proxies of the
/// namespaces its audience includes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedPolicy {
    pub audience: Audience,
    /// `sha256:…` of the signed payload.
    pub digest: String,
    /// The object it came from (the Service's namespace).
    pub object: ObjectKey,
    /// The object's JSON, as served.
    pub body: Bytes,
}

/// Why an object is not accepted. `reason` is a fixed word (a metrics label
/// and, later, a status condition reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `parse`, `untrusted-key`, `signature`, `payload`, `workload`,
    /// `digest`, `metadata`, `rollback`, `no-bundle`, `not-in-bundle`,
    /// `bundle-mismatch`, `missing`.
    pub reason: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Rejection {
        Rejection { reason, message: message.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// Which object a status is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    Bundle,
    Config(ObjectKey),
    Policy(ObjectKey),
}

impl Subject {
    /// The object's kind, as Kubernetes names it (also a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Bundle => "MeshBundle",
            Subject::Config(_) => "ProxyConfig",
            Subject::Policy(_) => "ServicePolicy",
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Bundle => write!(f, "MeshBundle {}", check::BUNDLE_NAME),
            Subject::Config(k) => write!(f, "ProxyConfig {k}"),
            Subject::Policy(k) => write!(f, "ServicePolicy {k}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Verified and in force, with this digest.
    Accepted {
        digest: String,
    },
    Rejected(Rejection),
}

/// One object's new status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub subject: Subject,
    pub status: Status,
}

/// The latest content of one object and what checking it alone said.
struct Input<T> {
    bytes: Bytes,
    checked: Result<Arc<T>, Rejection>,
}

/// Changes to apply together; see [`Store::update`].
#[derive(Clone, Debug, Default)]
pub struct Update {
    pub bundle: Option<Bytes>,
    pub configs: Vec<(ObjectKey, Bytes)>,
    pub removed: Vec<ObjectKey>,
    /// ServicePolicy objects, new or changed, and removed.
    pub policies: Vec<(ObjectKey, Bytes)>,
    pub removed_policies: Vec<ObjectKey>,
}

#[derive(Default)]
pub struct Store {
    trusted: Vec<VerifyingKey>,
    /// The latest bundle content seen and whether it verified.
    bundle_input: Option<(Bytes, Result<(), Rejection>)>,
    /// The newest bundle that verified.
    bundle: Option<Arc<Bundle>>,
    configs: BTreeMap<ObjectKey, Input<Served>>,
    /// Workload (`Kind/ns/name`) → its last good config.
    served: BTreeMap<String, Arc<Served>>,
    policies: BTreeMap<ObjectKey, Input<ServedPolicy>>,
    /// ServicePolicy object → its last good content, for the objects the
    /// bundle lists.
    served_policies: BTreeMap<ObjectKey, Arc<ServedPolicy>>,
    statuses: BTreeMap<Subject, Status>,
    /// The newest bundle accepted, now or before a restart.
    floor: Option<Floor>,
    /// Bumped whenever what is served may have changed.
    revision: u64,
}

impl Store {
    pub fn new(trusted: Vec<VerifyingKey>) -> Store {
        Store { trusted, ..Store::default() }
    }

    pub fn trusted_keys(&self) -> usize {
        self.trusted.len()
    }

    /// The config served for `workload` (`Kind/namespace/name`).
    pub fn get(&self, workload: &str) -> Option<&Arc<Served>> {
        self.served.get(workload)
    }

    /// Changes whenever what is served may have changed: unchanged
    /// content (a status write seen back) leaves it as it is.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Every served config, by workload.
    pub fn served(&self) -> &BTreeMap<String, Arc<Served>> {
        &self.served
    }

    /// Every served ServicePolicy, by object.
    pub fn served_policies(&self) -> &BTreeMap<ObjectKey, Arc<ServedPolicy>> {
        &self.served_policies
    }

    pub fn bundle(&self) -> Option<&Bundle> {
        self.bundle.as_deref()
    }

    /// The newest bundle accepted: what the caller keeps across restarts.
    pub fn floor(&self) -> Option<&Floor> {
        self.floor.as_ref()
    }

    /// A floor from durable state (before the first bundle arrives). It
    /// only ever rises: a lower one is ignored.
    pub fn raise_floor(&mut self, floor: Floor) {
        if self.floor.as_ref().is_none_or(|f| f.sequence < floor.sequence) {
            self.floor = Some(floor);
        }
    }

    /// Verifies a bundle and refuses it if it is older than the floor.
    fn admit(&self, bytes: &Bytes) -> Result<Bundle, Rejection> {
        let bundle = check::bundle(bytes, &self.trusted)?;
        floor::admit(self.floor.as_ref(), &bundle)?;
        Ok(bundle)
    }

    /// `bundle` is now in force: it is the floor.
    fn accept(&mut self, bundle: Bundle) {
        self.floor = Some(Floor { sequence: bundle.sequence, digest: bundle.digest.clone() });
        self.bundle = Some(Arc::new(bundle));
    }

    pub fn status(&self, subject: &Subject) -> Option<&Status> {
        self.statuses.get(subject)
    }

    /// Every object's status, including listed objects that are missing.
    pub fn statuses(&self) -> &BTreeMap<Subject, Status> {
        &self.statuses
    }

    /// A new content of the MeshBundle.
    pub fn set_bundle(&mut self, bytes: Bytes) -> Vec<Change> {
        self.update(Update { bundle: Some(bytes), ..Update::default() })
    }

    /// A new content of the ProxyConfig object `key`.
    pub fn set_config(&mut self, key: ObjectKey, bytes: Bytes) -> Vec<Change> {
        self.update(Update { configs: vec![(key, bytes)], ..Update::default() })
    }

    /// The ProxyConfig object `key` is gone. If the bundle still lists it,
    /// its workload keeps its last good config.
    pub fn remove_config(&mut self, key: &ObjectKey) -> Vec<Change> {
        self.update(Update { removed: vec![key.clone()], ..Update::default() })
    }

    /// Several changes at once (a rewritten build directory), reconciled
    /// once. Contents equal to the ones held are skipped unchecked.
    pub fn update(&mut self, update: Update) -> Vec<Change> {
        let mut changed = false;
        if let Some(bytes) = update.bundle.filter(|b| self.bundle_input.as_ref().is_none_or(|(old, _)| old != b)) {
            let result = self.admit(&bytes).map(|b| self.accept(b));
            self.bundle_input = Some((bytes, result));
            changed = true;
        }
        for (key, bytes) in update.configs {
            if self.configs.get(&key).is_some_and(|i| i.bytes == bytes) {
                continue;
            }
            let checked = check::config(&key, &bytes, &self.trusted).map(Arc::new);
            self.configs.insert(key, Input { bytes, checked });
            changed = true;
        }
        for key in &update.removed {
            changed |= self.configs.remove(key).is_some();
        }
        for (key, bytes) in update.policies {
            if self.policies.get(&key).is_some_and(|i| i.bytes == bytes) {
                continue;
            }
            let checked = check::policy(&key, &bytes, &self.trusted).map(Arc::new);
            self.policies.insert(key, Input { bytes, checked });
            changed = true;
        }
        for key in &update.removed_policies {
            changed |= self.policies.remove(key).is_some();
        }
        if changed { self.reconcile() } else { Vec::new() }
    }

    /// New trusted keys: everything is checked again. What verified before
    /// and still verifies stays; what only a removed key signed is dropped.
    pub fn set_trusted(&mut self, trusted: Vec<VerifyingKey>) -> Vec<Change> {
        self.trusted = trusted;
        let latest = self.bundle_input.as_ref().map(|(b, _)| self.admit(b));
        let held = self.bundle.as_ref().map(|b| self.admit(&b.bytes));
        if let (Some((_, result)), Some(l)) = (self.bundle_input.as_mut(), &latest) {
            *result = l.as_ref().map(|_| ()).map_err(Clone::clone);
        }
        self.bundle = None;
        if let (Some(Ok(b)), _) | (_, Some(Ok(b))) = (latest, held) {
            self.accept(b);
        }
        for (key, input) in &mut self.configs {
            input.checked = check::config(key, &input.bytes, &self.trusted).map(Arc::new);
        }
        for (key, input) in &mut self.policies {
            input.checked = check::policy(key, &input.bytes, &self.trusted).map(Arc::new);
        }
        let trusted = &self.trusted;
        self.served.retain(|_, s| check::config(&s.object, &s.body, trusted).is_ok());
        self.served_policies.retain(|_, s| check::policy(&s.object, &s.body, trusted).is_ok());
        self.reconcile()
    }

    /// Recomputes what is served and every status; returns the statuses
    /// that changed.
    fn reconcile(&mut self) -> Vec<Change> {
        self.revision += 1;
        let mut statuses = BTreeMap::new();
        if let Some((_, result)) = &self.bundle_input {
            let status = match (result, &self.bundle) {
                (Err(r), _) => Status::Rejected(r.clone()),
                (Ok(()), Some(b)) => Status::Accepted { digest: b.digest.clone() },
                (Ok(()), None) => Status::Rejected(Rejection::new("untrusted-key", "no trusted key verifies it")),
            };
            statuses.insert(Subject::Bundle, status);
        }
        for (key, input) in &self.configs {
            statuses.insert(Subject::Config(key.clone()), self.config_status(key, input));
        }
        for (key, input) in &self.policies {
            statuses.insert(Subject::Policy(key.clone()), self.policy_status(key, input));
        }
        self.update_served();
        self.update_served_policies();
        if let Some(bundle) = &self.bundle {
            let missing =
                || Status::Rejected(Rejection::new("missing", "listed in the signed MeshBundle but not present"));
            for key in bundle.entries.keys().filter(|k| !self.configs.contains_key(*k)) {
                statuses.insert(Subject::Config(key.clone()), missing());
            }
            for key in bundle.policies.keys().filter(|k| !self.policies.contains_key(*k)) {
                statuses.insert(Subject::Policy(key.clone()), missing());
            }
        }
        let changes = statuses
            .iter()
            .filter(|(s, st)| self.statuses.get(*s) != Some(*st))
            .map(|(s, st)| Change { subject: s.clone(), status: st.clone() })
            .collect();
        self.statuses = statuses;
        changes
    }

    fn policy_status(&self, key: &ObjectKey, input: &Input<ServedPolicy>) -> Status {
        let served = match &input.checked {
            Ok(s) => s,
            Err(r) => return Status::Rejected(r.clone()),
        };
        let Some(bundle) = &self.bundle else {
            return Status::Rejected(Rejection::new("no-bundle", "no MeshBundle has verified yet"));
        };
        match bundle.policies.get(key) {
            None => Status::Rejected(Rejection::new("not-in-bundle", "not listed in the signed MeshBundle")),
            Some(e) if e.digest != served.digest => {
                let msg = format!("digest {} is not the signed MeshBundle's {}", served.digest, e.digest);
                Status::Rejected(Rejection::new("bundle-mismatch", msg))
            }
            Some(_) => Status::Accepted { digest: served.digest.clone() },
        }
    }

    /// Serves every listed ServicePolicy whose object is accepted, keeps
    /// the last good content of a listed one whose object is not, drops
    /// those the bundle no longer lists (as for configs).
    fn update_served_policies(&mut self) {
        let Some(bundle) = &self.bundle else { return };
        for (key, entry) in &bundle.policies {
            let accepted =
                self.policies.get(key).and_then(|i| i.checked.as_ref().ok()).filter(|s| s.digest == entry.digest);
            if let Some(s) = accepted {
                self.served_policies.insert(key.clone(), s.clone());
            }
        }
        self.served_policies.retain(|k, _| bundle.policies.contains_key(k));
    }

    fn config_status(&self, key: &ObjectKey, input: &Input<Served>) -> Status {
        let served = match &input.checked {
            Ok(s) => s,
            Err(r) => return Status::Rejected(r.clone()),
        };
        let Some(bundle) = &self.bundle else {
            return Status::Rejected(Rejection::new("no-bundle", "no MeshBundle has verified yet"));
        };
        match bundle.entries.get(key) {
            None => Status::Rejected(Rejection::new("not-in-bundle", "not listed in the signed MeshBundle")),
            Some(e) if e.digest != served.digest || check::workload_key(&e.workload) != served.workload => {
                let msg = format!("digest {} is not the signed MeshBundle's {}", served.digest, e.digest);
                Status::Rejected(Rejection::new("bundle-mismatch", msg))
            }
            Some(_) => Status::Accepted { digest: served.digest.clone() },
        }
    }

    /// Serves every listed workload whose object is accepted; keeps the
    /// last good config of listed workloads whose object is not; drops
    /// workloads the bundle no longer lists.
    fn update_served(&mut self) {
        let Some(bundle) = &self.bundle else { return };
        let mut listed = BTreeSet::new();
        for (key, entry) in &bundle.entries {
            let workload = check::workload_key(&entry.workload);
            let accepted = self
                .configs
                .get(key)
                .and_then(|i| i.checked.as_ref().ok())
                .filter(|s| s.digest == entry.digest && s.workload == workload);
            if let Some(s) = accepted {
                self.served.insert(workload.clone(), s.clone());
            }
            listed.insert(workload);
        }
        self.served.retain(|w, _| listed.contains(w));
    }
}

#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
