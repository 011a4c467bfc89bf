//! Static endpoints file (JSON), re-read when its content changes.
//!
//! Format: `mesh_proxy_api::endpoints`.
//!
//! The file is polled every `interval`; a change of content is applied at
//! once. A file that cannot be read or parsed is logged and the last good
//! state is kept, so a half-written file never empties the mesh.

use super::{Discovery, Endpoints, ServiceKey};
use mesh_common::content_hash;
use mesh_proxy_api::endpoints::{Snapshot, parse};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// Discovery from a JSON file; see the module docs for the format.
pub struct StaticFile {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// One sender per Service port in the file, kept across reloads so
    /// receivers see updates; Services that leave the file publish empty.
    senders: HashMap<ServiceKey, watch::Sender<Endpoints>>,
    by_addr: HashMap<SocketAddr, ServiceKey>,
}

impl StaticFile {
    /// Reads `path` now (an unreadable or invalid file is an error at
    /// startup) and re-reads it every `interval` while the returned value
    /// lives. Must be called inside a tokio runtime.
    pub fn spawn(path: PathBuf, interval: Duration) -> Result<Arc<dyn Discovery>, String> {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let snap = parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = Arc::new(StaticFile { state: Mutex::new(State::default()) });
        file.apply(snap);
        let weak = Arc::downgrade(&file);
        tokio::spawn(poll(weak, path, interval, content_hash(&bytes)));
        Ok(file)
    }

    fn apply(&self, snap: Snapshot) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (key, tx) in &state.senders {
            if !snap.endpoints.contains_key(key) {
                tx.send_replace(Arc::new(Vec::new()));
            }
        }
        state.senders.retain(|key, tx| snap.endpoints.contains_key(key) || tx.receiver_count() > 0);
        for (key, eps) in snap.endpoints {
            match state.senders.get(&key) {
                Some(tx) => {
                    tx.send_if_modified(|cur| {
                        let changed = **cur != *eps;
                        if changed {
                            *cur = eps.clone();
                        }
                        changed
                    });
                }
                None => {
                    state.senders.insert(key, watch::channel(eps).0);
                }
            }
        }
        state.by_addr = snap.by_addr;
    }
}

async fn poll(file: Weak<StaticFile>, path: PathBuf, interval: Duration, mut last: u64) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(file) = file.upgrade() else { return };
        if let Some(hash) = reload(&file, &path, last) {
            last = hash;
        }
    }
}

/// Applies the file if its content changed and parses; returns the new hash.
fn reload(file: &StaticFile, path: &Path, last: u64) -> Option<u64> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "discovery file unreadable; keeping the last good endpoints");
            return None;
        }
    };
    let hash = content_hash(&bytes);
    if hash == last {
        return None;
    }
    match parse(&bytes) {
        Ok(snap) => {
            tracing::info!(path = %path.display(), "discovery file reloaded");
            file.apply(snap);
            Some(hash)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "discovery file invalid; keeping the last good endpoints");
            // Remember the bad content so it is not re-parsed and re-logged every poll.
            Some(hash)
        }
    }
}

impl Discovery for StaticFile {
    /// A Service port not in the file gets a receiver whose sender is gone
    /// (`has_changed()` errs), so callers can ask again later without this
    /// map growing with every name a client makes up.
    fn endpoints(&self, svc: &ServiceKey) -> watch::Receiver<Endpoints> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.senders.get(svc) {
            Some(tx) => tx.subscribe(),
            None => watch::channel(Arc::new(Vec::new())).1,
        }
    }

    fn service_at(&self, addr: SocketAddr) -> Option<ServiceKey> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).by_addr.get(&addr).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PODINFO: &str = r#"{"services":[{"namespace":"test","name":"podinfo","clusterIP":"10.96.0.10",
        "ports":[{"port":9898,"endpoints":[
          {"addr":"10.40.0.11:9898","identity":"podinfo.test.serviceaccount.identity.linkerd.cluster.local"},
          {"addr":"10.40.0.12:9898"}]}]}]}"#;

    fn key(name: &str, port: u16) -> ServiceKey {
        ServiceKey { namespace: "test".into(), name: name.into(), port }
    }

    #[test]
    fn parses_endpoints_identities_and_cluster_ips() {
        let snap = parse(PODINFO.as_bytes()).unwrap();
        let eps = &snap.endpoints[&key("podinfo", 9898)];
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].identity.as_deref(), Some("podinfo.test.serviceaccount.identity.linkerd.cluster.local"));
        assert_eq!(eps[1].identity, None, "no identity: unmeshed");
        assert_eq!(snap.by_addr[&"10.96.0.10:9898".parse().unwrap()], key("podinfo", 9898));
    }

    #[test]
    fn rejects_bad_documents_with_a_reason() {
        assert!(parse(b"{").is_err());
        let dup = r#"{"services":[{"namespace":"test","name":"a","ports":[{"port":1},{"port":1}]}]}"#;
        assert!(parse(dup.as_bytes()).unwrap_err().contains("listed twice"));
        let bad_addr =
            r#"{"services":[{"namespace":"test","name":"a","ports":[{"port":1,"endpoints":[{"addr":"x"}]}]}]}"#;
        assert!(parse(bad_addr.as_bytes()).is_err());
    }

    #[tokio::test]
    async fn reload_updates_watchers_and_keeps_last_good_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("endpoints.json");
        std::fs::write(&path, PODINFO).unwrap();
        let disc = StaticFile::spawn(path.clone(), Duration::from_millis(10)).unwrap();
        let mut rx = disc.endpoints(&key("podinfo", 9898));
        assert_eq!(rx.borrow_and_update().len(), 2);
        assert_eq!(disc.service_at("10.96.0.10:9898".parse().unwrap()), Some(key("podinfo", 9898)));
        assert_eq!(disc.service_at("10.96.0.10:80".parse().unwrap()), None);

        let one = r#"{"services":[{"namespace":"test","name":"podinfo","ports":[{"port":9898,"endpoints":[{"addr":"10.40.0.13:9898"}]}]}]}"#;
        std::fs::write(&path, one).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.unwrap().unwrap();
        assert_eq!(rx.borrow_and_update()[0].addr, "10.40.0.13:9898".parse().unwrap());
        assert_eq!(disc.service_at("10.96.0.10:9898".parse().unwrap()), None, "clusterIP removed");

        std::fs::write(&path, "not json").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!rx.has_changed().unwrap(), "a bad file keeps the last good endpoints");
        assert_eq!(rx.borrow()[0].addr, "10.40.0.13:9898".parse().unwrap());

        std::fs::write(&path, r#"{"services":[]}"#).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.unwrap().unwrap();
        assert!(rx.borrow().is_empty(), "a Service leaving the file publishes no endpoints");
    }

    #[tokio::test]
    async fn unknown_services_are_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("endpoints.json");
        std::fs::write(&path, PODINFO).unwrap();
        let disc = StaticFile::spawn(path, Duration::from_secs(60)).unwrap();
        let rx = disc.endpoints(&key("nope", 1));
        assert!(rx.borrow().is_empty());
        assert!(rx.has_changed().is_err(), "closed: the caller asks again later");
    }

    #[test]
    fn a_missing_file_is_an_error_at_startup() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err =
            rt.block_on(async { StaticFile::spawn("/nonexistent/eps.json".into(), Duration::from_secs(1)).err() });
        assert!(err.unwrap().contains("/nonexistent/eps.json"));
    }
}
