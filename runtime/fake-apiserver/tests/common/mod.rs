//! Helpers shared by the integration tests.
#![allow(dead_code)]

use fake_apiserver::{FakeApiServer, Options};
use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn server() -> FakeApiServer {
    let options = Options { bookmark_interval: Duration::from_millis(100), ..Options::default() };
    FakeApiServer::start_with(options).await.expect("fake API server starts")
}

pub fn proxyconfig_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("meshc.io", "v1alpha1", "ProxyConfig"), "proxyconfigs")
}

pub fn proxyconfigs(server: &FakeApiServer, ns: Option<&str>) -> Api<DynamicObject> {
    let client = server.client().expect("client");
    match ns {
        Some(ns) => Api::namespaced_with(client, ns, &proxyconfig_resource()),
        None => Api::all_with(client, &proxyconfig_resource()),
    }
}

/// A ProxyConfig object as JSON, with a spec that says which revision it is.
pub fn proxyconfig(ns: &str, name: &str, revision: &str) -> Value {
    json!({
        "apiVersion": "meshc.io/v1alpha1",
        "kind": "ProxyConfig",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "meshc"}},
        "spec": {"sourceRevision": revision, "workload": {"kind": "Deployment", "namespace": ns, "name": name}},
    })
}

pub fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("a Kubernetes object")
}

/// Runs a kube-runtime watcher in the background and hands its events over.
pub struct Watched {
    rx: mpsc::UnboundedReceiver<watcher::Result<Event<DynamicObject>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watched {
    pub fn start(api: Api<DynamicObject>, config: watcher::Config) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut events = watcher::watcher(api, config).boxed();
            while let Some(e) = events.next().await {
                if tx.send(e).is_err() {
                    return;
                }
            }
        });
        Watched { rx, task }
    }

    /// The next event, failing the test if none comes in time.
    pub async fn next(&mut self) -> watcher::Result<Event<DynamicObject>> {
        tokio::time::timeout(WAIT, self.rx.recv()).await.expect("a watcher event in time").expect("watcher runs")
    }

    /// Skips events until one satisfies `pred`, and returns it.
    pub async fn until(
        &mut self,
        mut pred: impl FnMut(&watcher::Result<Event<DynamicObject>>) -> bool,
    ) -> watcher::Result<Event<DynamicObject>> {
        loop {
            let e = self.next().await;
            if pred(&e) {
                return e;
            }
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn name_of(o: &DynamicObject) -> &str {
    o.metadata.name.as_deref().unwrap_or("")
}

pub fn revision_of(o: &DynamicObject) -> &str {
    o.data["spec"]["sourceRevision"].as_str().unwrap_or("")
}

/// Polls `f` until it is true, failing the test after [`WAIT`].
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
