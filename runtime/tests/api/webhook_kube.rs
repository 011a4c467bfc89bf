//! The webhook in Kubernetes mode reads a pod's Namespace from its
//! metadata-only watch, as Linkerd's injector reads its informer: a
//! namespace's `linkerd.io/inject` decides for pods that say nothing, a
//! change to it is seen without a restart, a namespace created just before
//! its first pod is read by name, and once the watch holds a namespace the
//! reviews cost the API server nothing.

use crate::kube::{WAIT, populate, server};
use crate::kube_objects::Objects;
use crate::servers::Server;
use crate::webhook::{post, review};
use fake_apiserver::Verb;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn namespace(name: &str, inject: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "annotations": {"linkerd.io/inject": inject}}})
}

/// A pod that says nothing about injection: its namespace decides.
fn plain_pod() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "main", "image": "web"}]}})
}

async fn start_with_webhook(server: &Server) -> mesh_runtime::Running {
    let args = ["mesh-runtime", "--kubernetes", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
    let args = args.into_iter().chain(["--pod-name", "replica-a", "--webhook-listen", "127.0.0.1:0"]);
    let settings = <mesh_runtime::Settings as clap::Parser>::try_parse_from(args).unwrap();
    mesh_runtime::kube::start(settings, server.client().await).await.unwrap()
}

/// Whether the webhook meshes a plain pod created in `ns`.
async fn meshes(rt: &mesh_runtime::Running, anchors: &str, ns: &str) -> bool {
    let addr = rt.webhook_addr.expect("the webhook listens");
    let (status, answer) = post(addr, anchors, review("u", ns, &plain_pod())).await;
    assert_eq!(status, http::StatusCode::OK, "{answer}");
    answer["response"].get("patch").is_some()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn namespace_annotation_decides(real: bool, test: &str) {
    let Some(server) = server(test, real).await else { return };
    let files = populate(&server).await;
    let objects = Objects::of(&server).await;
    objects.create(&namespace("shop", "enabled")).await;
    objects.create(&namespace("legacy", "disabled")).await;
    let rt = start_with_webhook(&server).await;
    let anchors = files.pki.anchors_pem();

    assert!(meshes(&rt, anchors, "shop").await, "shop asks for injection");
    assert!(!meshes(&rt, anchors, "legacy").await, "legacy refuses it");

    // A namespace created a moment before its first pod: read by name if
    // the watch has not brought it yet.
    objects.create(&namespace("fresh", "enabled")).await;
    assert!(meshes(&rt, anchors, "fresh").await, "a new namespace that asks for injection");

    // Turned off: seen without a restart.
    objects
        .replace("Namespace", None, "shop", |ns| ns["metadata"]["annotations"]["linkerd.io/inject"] = json!("disabled"))
        .await;
    eventually("shop's change is seen", async || !meshes(&rt, anchors, "shop").await).await;

    // Once the watch holds them, reviews read no Namespace from the server.
    if let Some(fake) = server.fake_server() {
        eventually("the watch holds fresh", async || {
            let before = fake.faults().count_for(Verb::Get, "namespaces");
            meshes(&rt, anchors, "fresh").await && fake.faults().count_for(Verb::Get, "namespaces") == before
        })
        .await;
        let before = fake.faults().count_for(Verb::Get, "namespaces");
        for ns in ["fresh", "legacy", "shop", "fresh"] {
            meshes(&rt, anchors, ns).await;
        }
        assert_eq!(fake.faults().count_for(Verb::Get, "namespaces"), before, "reviews went to the API server");
    }
    rt.shutdown.cancel();
    rt.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_reads_namespaces_from_its_watch() {
    namespace_annotation_decides(false, "webhook_reads_namespaces_from_its_watch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_reads_namespaces_from_its_watch_real_apiserver() {
    namespace_annotation_decides(true, "webhook_reads_namespaces_from_its_watch_real_apiserver").await;
}
