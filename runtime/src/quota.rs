//! How many long polls may be held open: at most `per_identity` for one
//! client identity, and at most `total` for everyone. Without the first,
//! one proxy could hold every slot and starve every other config poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a poll may not be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchRefused {
    /// The caller holds its whole share (429).
    IdentityQuota,
    /// Every slot is taken (503).
    Capacity,
}

impl WatchRefused {
    /// A metrics label.
    pub fn reason(self) -> &'static str {
        match self {
            WatchRefused::IdentityQuota => "identity-quota",
            WatchRefused::Capacity => "capacity",
        }
    }
}

pub struct WatchQuota {
    total: Arc<Semaphore>,
    per_identity: usize,
    /// Open polls per identity; an identity with none has no entry, so the
    /// map holds only identities that hold polls now.
    held: Mutex<HashMap<String, usize>>,
}

fn lock(m: &Mutex<HashMap<String, usize>>) -> MutexGuard<'_, HashMap<String, usize>> {
    // Each update is one counter step: a panic cannot leave half of one.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One held poll; its slots are given back when it drops.
pub struct WatchPermit {
    quota: Arc<WatchQuota>,
    identity: String,
    _total: OwnedSemaphorePermit,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut held = lock(&self.quota.held);
        if let Some(n) = held.get_mut(&self.identity) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.identity);
            }
        }
    }
}

impl WatchQuota {
    pub fn new(total: usize, per_identity: usize) -> Arc<WatchQuota> {
        let total = Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS)));
        Arc::new(WatchQuota { total, per_identity, held: Mutex::new(HashMap::new()) })
    }

    /// A slot for one more poll of `identity`'s. The identity's share is
    /// checked first: a caller over its own share is told so, whatever the
    /// others hold.
    pub fn acquire(self: &Arc<Self>, identity: &str) -> Result<WatchPermit, WatchRefused> {
        let mut held = lock(&self.held);
        let n = held.get(identity).copied().unwrap_or(0);
        if n >= self.per_identity {
            return Err(WatchRefused::IdentityQuota);
        }
        let total = self.total.clone().try_acquire_owned().map_err(|_| WatchRefused::Capacity)?;
        held.insert(identity.to_owned(), n + 1);
        Ok(WatchPermit { quota: self.clone(), identity: identity.to_owned(), _total: total })
    }

    /// Polls `identity` holds now.
    pub fn held_by(&self, identity: &str) -> usize {
        lock(&self.held).get(identity).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_identity_gets_its_share_and_the_others_theirs() {
        let q = WatchQuota::new(5, 2);
        let a1 = q.acquire("a").unwrap();
        let _a2 = q.acquire("a").unwrap();
        assert_eq!(q.acquire("a").err(), Some(WatchRefused::IdentityQuota));
        let _b1 = q.acquire("b").unwrap();
        let _b2 = q.acquire("b").unwrap();
        let _c1 = q.acquire("c").unwrap();
        assert_eq!(q.acquire("c").err(), Some(WatchRefused::Capacity), "five slots in all");
        drop(a1);
        assert_eq!(q.held_by("a"), 1);
        assert!(q.acquire("c").is_ok(), "a slot given back is anyone's");
    }

    #[test]
    fn identities_without_polls_leave_no_entry() {
        let q = WatchQuota::new(10, 10);
        let permits: Vec<_> = ["x", "y", "x"].iter().map(|i| q.acquire(i).unwrap()).collect();
        assert_eq!(q.held_by("x"), 2);
        drop(permits);
        assert!(lock(&q.held).is_empty());
    }
}
