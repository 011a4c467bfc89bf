//! The webhook's view of Namespaces: their labels and annotations
//! (`linkerd.io/inject`, `config.linkerd.io/*` defaults), kept by a
//! metadata-only watch, as Linkerd's proxy injector reads them from a
//! shared metadata informer (linkerd2 `controller/proxy-injector/webhook.go`,
//! `api.Get(k8s.NS, ...)` on `MetadataAPI`). A review then costs no round
//! trip to the API server. Metadata-only: a Namespace's labels and
//! annotations are all the webhook reads, a few hundred bytes each.

use crate::webhook::{Lookup, NamespaceInfo, Namespaces};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

type Meta = PartialObjectMeta<Namespace>;

/// The watched Namespaces, with a GET for what the watch does not hold
/// yet: before its first list, and a Namespace created a moment before its
/// first pod (a miss must not leave that pod without its proxy).
pub struct WatchedNamespaces {
    store: Store<Meta>,
    api: Api<Namespace>,
}

impl WatchedNamespaces {
    /// Starts the watch; it runs until `shutdown`.
    pub fn spawn(client: kube::Client, shutdown: CancellationToken) -> (Self, impl Future<Output = ()> + Send) {
        let (store, writer) = reflector::store();
        let meta: Api<Meta> = Api::all(client.clone());
        let stream = reflector::reflector(writer, watcher::watcher(meta, watcher::Config::default().any_semantic()))
            .default_backoff();
        let run = async move {
            let mut stream = std::pin::pin!(stream);
            let mut failing = false;
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = stream.next() => next,
                };
                match next {
                    None => return,
                    Some(Ok(_)) => failing = false,
                    Some(Err(e)) if !failing => {
                        tracing::warn!("namespaces watch failed; the webhook reads them one by one meanwhile: {e}");
                        failing = true;
                    }
                    Some(Err(_)) => {}
                }
            }
        };
        (WatchedNamespaces { store, api: Api::all(client) }, run)
    }

    /// The store is filled at once when the first list completes, so
    /// before that every name misses.
    fn cached(&self, name: &str) -> Option<NamespaceInfo> {
        self.store.get(&ObjectRef::new(name)).map(|ns| info(&ns.metadata))
    }
}

/// What the webhook reads of a Namespace: its annotations and labels.
fn info(meta: &ObjectMeta) -> NamespaceInfo {
    (meta.annotations.clone().unwrap_or_default(), meta.labels.clone().unwrap_or_default())
}

impl Namespaces for WatchedNamespaces {
    fn get<'a>(&'a self, name: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            if let Some(info) = self.cached(name) {
                return Ok(Some(info));
            }
            let ns = self.api.get_opt(name).await.map_err(|e| e.to_string())?;
            Ok(ns.map(|ns| info(&ns.metadata)))
        })
    }
}
