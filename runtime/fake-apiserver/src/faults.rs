//! Request counters, a request log, and failures a test injects.

use http::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The verb of a request, as RBAC names them (plus discovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// `/version`, `/api`, `/apis`, `/openapi/…` and group discovery.
    Discovery,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub verb: Verb,
    /// The resource's plural ("" for discovery).
    pub resource: String,
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub status: u16,
}

const LOG_LIMIT: usize = 10_000;

#[derive(Default)]
struct Inner {
    counts: HashMap<(Verb, String), u64>,
    log: VecDeque<Logged>,
    /// Verb → (failures left, status to fail with).
    fail: HashMap<Verb, (u32, StatusCode)>,
}

/// Shared between the server and the test; cheap to clone.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
}

impl Faults {
    /// Fails the next `n` requests of `verb` (on any resource) with `status`
    /// and a Status body, before they touch the store.
    pub fn fail_next(&self, verb: Verb, n: u32, status: StatusCode) {
        self.lock().fail.insert(verb, (n, status));
    }

    /// How many requests of `verb` the server received, on any resource.
    pub fn count(&self, verb: Verb) -> u64 {
        self.lock().counts.iter().filter(|((v, _), _)| *v == verb).map(|(_, n)| n).sum()
    }

    /// How many requests of `verb` on `resource` (plural name).
    pub fn count_for(&self, verb: Verb, resource: &str) -> u64 {
        self.lock().counts.get(&(verb, resource.to_string())).copied().unwrap_or(0)
    }

    /// The last requests received (at most 10,000), oldest first.
    pub fn log(&self) -> Vec<Logged> {
        self.lock().log.iter().cloned().collect()
    }

    /// Counts a request and says whether an injected failure applies to it.
    pub(crate) fn admit(&self, verb: Verb, resource: &str) -> Option<StatusCode> {
        let mut inner = self.lock();
        *inner.counts.entry((verb, resource.to_string())).or_default() += 1;
        let (left, status) = inner.fail.get_mut(&verb)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(*status)
    }

    pub(crate) fn record(&self, entry: Logged) {
        let mut inner = self.lock();
        if inner.log.len() == LOG_LIMIT {
            inner.log.pop_front();
        }
        inner.log.push_back(entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
