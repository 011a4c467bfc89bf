//! Discovery from the runtime controller: per Service port, a task long polls
//! `GET /v1/endpoints/<ns>/<svc>/<port>?after=<version>` (runtime/API.md) and
//! feeds a watch channel.
//!
//! Lifecycle: the task starts on the first `endpoints()` call for a Service
//! port and stops once every receiver is dropped; a later call starts a new
//! one. At most `max_services` ports are watched at a time (10,000 by
//! default): past that, `endpoints()` returns a closed, empty receiver (the
//! caller asks again later, as for an unknown Service in the file
//! implementation), so a client inventing names cannot grow this without
//! bound. Until the first answer arrives a new receiver holds no endpoints.
//!
//! A failed poll keeps the last good endpoints and retries with capped,
//! jittered backoff.
//!
//! Cluster IP → Service (transparent outbound) asks
//! `GET /v1/services/by-cluster-ip/<ip>/<port>` through [`ClusterIps`],
//! which caches the answers.

use super::cluster_ip::ClusterIps;
use super::{Discovery, Endpoint, Endpoints, Lookup, ServiceKey};
use crate::source::http::client::encode_segment;
use crate::source::http::{Backoff, PollTiming, RuntimeClient};
use http::StatusCode;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use tokio::runtime::Handle;
use tokio::sync::watch;

/// The default bound on Service ports watched at once.
pub const MAX_WATCHED_SERVICES: usize = 10_000;

pub struct RuntimeDiscovery {
    shared: Arc<Shared>,
    cluster_ips: ClusterIps,
}

struct Shared {
    client: Arc<RuntimeClient>,
    timing: PollTiming,
    max_services: usize,
    handle: Handle,
    watches: Mutex<HashMap<ServiceKey, watch::Sender<Endpoints>>>,
}

impl RuntimeDiscovery {
    /// Must be called inside a tokio runtime (the watch tasks run on it).
    pub fn new(client: Arc<RuntimeClient>, timing: PollTiming, max_services: usize) -> Result<Self, String> {
        let handle = Handle::try_current().map_err(|e| format!("runtime discovery: {e}"))?;
        let watches = Mutex::new(HashMap::new());
        let cluster_ips = ClusterIps::new(client.clone());
        Ok(RuntimeDiscovery { shared: Arc::new(Shared { client, timing, max_services, handle, watches }), cluster_ips })
    }

    /// Service ports with a running watch.
    pub fn watched(&self) -> usize {
        self.shared.lock().len()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceKey, watch::Sender<Endpoints>>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets `key`'s watch if nobody holds a receiver. `endpoints()`
    /// subscribes under the same lock, so a receiver taken in between keeps
    /// the watch alive instead of being left on a stopped task.
    fn release(&self, key: &ServiceKey, tx: &watch::Sender<Endpoints>) -> bool {
        let mut watches = self.lock();
        if tx.receiver_count() > 0 {
            return false;
        }
        if watches.get(key).is_some_and(|t| t.same_channel(tx)) {
            watches.remove(key);
        }
        true
    }
}

impl Discovery for RuntimeDiscovery {
    fn endpoints(&self, svc: &ServiceKey) -> watch::Receiver<Endpoints> {
        let mut watches = self.shared.lock();
        if let Some(tx) = watches.get(svc) {
            return tx.subscribe();
        }
        if watches.len() >= self.shared.max_services {
            tracing::warn!(limit = self.shared.max_services, service = ?svc, "too many watched Services; not watching this one");
            return watch::channel(Arc::new(Vec::new())).1;
        }
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        watches.insert(svc.clone(), tx.clone());
        let task =
            watch_port(Arc::downgrade(&self.shared), self.shared.client.clone(), self.shared.timing, svc.clone(), tx);
        self.shared.handle.spawn(task);
        rx
    }

    /// Only what the cache holds; [`Discovery::lookup_service_at`] asks.
    fn service_at(&self, addr: SocketAddr) -> Option<ServiceKey> {
        self.cluster_ips.cached(addr).flatten()
    }

    fn lookup_service_at(&self, addr: SocketAddr) -> Lookup<'_> {
        Box::pin(self.cluster_ips.lookup(addr))
    }
}

/// Polls one Service port until nobody listens.
async fn watch_port(
    shared: Weak<Shared>,
    client: Arc<RuntimeClient>,
    timing: PollTiming,
    key: ServiceKey,
    tx: watch::Sender<Endpoints>,
) {
    let base = format!(
        "/v1/endpoints/{}/{}/{}?wait={}",
        encode_segment(&key.namespace),
        encode_segment(&key.name),
        key.port,
        timing.wait_param()
    );
    let mut version: Option<String> = None;
    let mut backoff = Backoff::new(timing.retry_min, timing.retry_max);
    let mut failing: Option<String> = None;
    loop {
        let path = match &version {
            Some(v) => format!("{base}&after={}", crate::source::http::client::encode_query(v)),
            None => base.clone(),
        };
        let Some(reply) = unless_released(&shared, &key, &tx, client.get(&path, timing.request_timeout())).await else {
            return;
        };
        match reply.and_then(|r| answer(&r)) {
            Ok(update) => {
                backoff.reset();
                if failing.take().is_some() {
                    tracing::info!(service = ?key, "endpoints reachable again");
                }
                if let Some((v, eps)) = update {
                    version = Some(v);
                    publish(&tx, eps);
                }
            }
            Err(e) => {
                if failing.as_ref() != Some(&e) {
                    tracing::warn!(service = ?key, error = %e, "endpoints poll failed; keeping the last good endpoints");
                    failing = Some(e);
                }
                let pause = tokio::time::sleep(backoff.next_delay());
                if unless_released(&shared, &key, &tx, pause).await.is_none() {
                    return;
                }
            }
        }
    }
}

/// Runs `fut` unless every receiver goes away first and the watch is
/// released (`None`: stop).
async fn unless_released<T>(
    shared: &Weak<Shared>,
    key: &ServiceKey,
    tx: &watch::Sender<Endpoints>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tx.closed() => {
                let shared = shared.upgrade()?;
                if shared.release(key, tx) {
                    return None;
                }
            }
        }
    }
}

/// 200: the new version and endpoints; 304: nothing new.
fn answer(reply: &crate::source::http::Reply) -> Result<Option<(String, Vec<Endpoint>)>, String> {
    match reply.status {
        StatusCode::OK => mesh_proxy_api::endpoints::decode_answer(&reply.body).map(Some),
        StatusCode::NOT_MODIFIED => Ok(None),
        status => Err(format!("runtime answered {status}: {}", reply.error_message())),
    }
}

fn publish(tx: &watch::Sender<Endpoints>, eps: Vec<Endpoint>) {
    tx.send_if_modified(|cur| {
        let changed = **cur != eps;
        if changed {
            *cur = Arc::new(eps);
        }
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::http::Reply;
    use bytes::Bytes;

    fn reply(status: u16, body: &str) -> Reply {
        Reply { status: StatusCode::from_u16(status).unwrap(), digest: None, body: Bytes::from(body.to_string()) }
    }

    #[test]
    fn answers_parse_endpoints_and_identities() {
        let body = r#"{"version":"17","endpoints":[{"addr":"10.40.0.11:9898","identity":"a.b.serviceaccount.identity.linkerd.cluster.local"},{"addr":"10.40.0.12:9898"}],"extra":1}"#;
        let (version, eps) = answer(&reply(200, body)).unwrap().unwrap();
        assert_eq!(version, "17");
        assert_eq!(eps.len(), 2);
        assert!(eps[0].identity.is_some() && eps[1].identity.is_none(), "no identity: unmeshed");
        assert!(answer(&reply(304, "")).unwrap().is_none());
        assert!(answer(&reply(200, r#"{"version":"1","endpoints":[{"addr":"x"}]}"#)).is_err());
        assert!(answer(&reply(503, r#"{"error":"not synced"}"#)).unwrap_err().contains("not synced"));
    }
}
