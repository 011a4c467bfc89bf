//! Kubernetes mode against a real kube-apiserver: the CRDs installed and
//! Established, the trust material and a `meshc build`'s objects created
//! through its API. Only a real server checks the runtime's status patches
//! against the CRDs' structural schema and status subresource, and serves
//! its watches with real resourceVersions and bookmarks.

use crate::kube::{NS, issuer_secret, keys_configmap, object_of, objects};
use crate::support::*;
use http::StatusCode;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use mesh_test_support::apiserver::RealApiServer;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kubectl(server: &RealApiServer, args: &[&str], stdin: Option<&Value>) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(v) = stdin {
        input.write_all(v.to_string().as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The condition `t` of the ProxyConfig `name` in `podinfo` (Null if absent).
async fn condition(api: &Api<DynamicObject>, name: &str, t: &str) -> Value {
    let object = api.get(name).await.unwrap();
    let conditions = object.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conditions.into_iter().find(|c| c["type"] == t).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_marks_objects_ready_real_apiserver() {
    let test = "kubernetes_mode_marks_objects_ready_real_apiserver";
    if !mesh_test_support::require_tool(test, "kubectl", &["version", "--client"], "apt-get install -y kubectl") {
        return;
    }
    let Some(server) = RealApiServer::start(test) else { return };
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/crds");
    kubectl(&server, &["apply", "--server-side", "-f", crds.to_str().unwrap()], None);
    let established = ["crd/proxyconfigs.meshc.io", "crd/meshbundles.meshc.io"];
    kubectl(&server, &["wait", "--for=condition=Established", "--timeout=60s", established[0], established[1]], None);
    for ns in [NS, "podinfo"] {
        kubectl(&server, &["create", "namespace", ns], None);
    }
    let files = Files::new();
    let pubkey = std::fs::read_to_string(&files.pubkey).unwrap();
    let mut items = vec![
        issuer_secret(&files),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mesh-identity-trust-roots", "namespace": NS},
            "data": {"ca-bundle.crt": files.pki.anchors_pem()}}),
        keys_configmap(&[("meshc.pub", pubkey)]),
    ];
    items.extend(objects(&files.dist));
    kubectl(&server, &["create", "-f", "-"], Some(&json!({"apiVersion": "v1", "kind": "List", "items": items})));

    let args =
        ["mesh-runtime", "--kubernetes", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pod-name", "r-a"];
    let settings = <mesh_runtime::Settings as clap::Parser>::try_parse_from(args).unwrap();
    let running = mesh_runtime::kube::start(settings, server.client().await).await.unwrap();
    let start = Instant::now();
    loop {
        let (code, body) = admin_get(running.admin_addr, "/ready").await;
        if code == StatusCode::OK {
            assert!(body.contains("bundle r1"), "{body}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every ProxyConfig gets Ready=True: the status patch passed the schema.
    let gvk = |kind| GroupVersionKind::gvk("meshc.io", "v1alpha1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk("ProxyConfig"), "proxyconfigs");
    let api: Api<DynamicObject> = Api::namespaced_with(server.client().await, "podinfo", &resource);
    for config in configs() {
        let name = object_of(&files.dist, &config.workload.name)["metadata"]["name"].as_str().unwrap().to_owned();
        let start = Instant::now();
        while condition(&api, &name, "Ready").await["status"] != "True" {
            let ready = condition(&api, &name, "Ready").await;
            assert!(start.elapsed() < Duration::from_secs(30), "{name}: never Ready=True: {ready}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(condition(&api, &name, "Ready").await["reason"], "Accepted");
        assert_eq!(condition(&api, &name, "Stalled").await["status"], "False");
        assert_eq!(api.get(&name).await.unwrap().data["status"]["observedGeneration"], 1);
    }
    let resource = ApiResource::from_gvk_with_plural(&gvk("MeshBundle"), "meshbundles");
    let bundles: Api<DynamicObject> = Api::all_with(server.client().await, &resource);
    let start = Instant::now();
    while bundles.get("meshc").await.unwrap().data["status"]["conditions"][0]["status"] != "True" {
        assert!(start.elapsed() < Duration::from_secs(30), "the MeshBundle never became Ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And the verified config is what the proxy is served.
    let c = config("podinfo-primary");
    let tls = tls_config(Some(&files.identity(&c.identity)), files.pki.anchors_pem());
    let served = get(running.api_addr, tls, &config_path(&workload_key(&c), None, None)).await;
    assert_eq!(served.status, StatusCode::OK);
    let digest = object_of(&files.dist, "podinfo-primary")["spec"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(served.digest(), digest);
    running.shutdown.cancel();
    running.stopped().await;
}
