//! The admission webhook over TLS: real AdmissionReview requests, the patch
//! applied as the API server applies it, and the patched Pod compared with
//! what `meshc inject` makes of the pod template the Pod came from.

use crate::support::Files;
use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use meshc::inject::documents::{Namespaces, Options, inject_text};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// The name the API server calls the webhook by (the Service's DNS name).
const WEBHOOK_NAME: &str = "mesh-runtime.mesh-system.svc";

const DEPLOYMENTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations:
        linkerd.io/inject: enabled
        config.linkerd.io/skip-outbound-ports: "3306"
        config.linkerd.io/proxy-log-level: warn,mesh_proxy=debug
    spec:
      serviceAccountName: web
      initContainers:
        - name: migrate
          image: migrate
      containers:
        - name: main
          image: web
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations:
        linkerd.io/inject: enabled
        config.alpha.linkerd.io/proxy-enable-native-sidecar: "true"
        config.linkerd.io/proxy-memory-limit: 128Mi
    spec:
      containers:
        - name: main
          image: api
"#;

async fn start() -> (Files, mesh_runtime::Running, SocketAddr) {
    let files = Files::new();
    let mut settings = files.settings();
    settings.webhook.webhook_listen = Some("127.0.0.1:0".parse().unwrap());
    let rt = mesh_runtime::start(settings).await.unwrap();
    let addr = rt.webhook_addr.expect("the webhook listens");
    (files, rt, addr)
}

/// POSTs one body over TLS, checking the webhook's certificate against the
/// mesh's trust anchors for the Service's name (what `caBundle` does).
pub(crate) async fn post(addr: SocketAddr, anchors_pem: &str, body: String) -> (http::StatusCode, Value) {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(WEBHOOK_NAME).unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("https://{WEBHOOK_NAME}/?timeout=10s"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The Pod a Deployment's ReplicaSet creates from `template`.
fn pod_of(deployment: &str, template: &Value) -> Value {
    let mut pod = template.clone();
    pod["metadata"]["generateName"] = json!(format!("{deployment}-5d8f7c9b4-"));
    pod["metadata"]["labels"]["pod-template-hash"] = json!("5d8f7c9b4");
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-5d8f7c9b4"), "controller": true, "uid": "u"}]);
    pod
}

pub(crate) fn review(uid: &str, namespace: &str, pod: &Value) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": pod,
        }
    })
    .to_string()
}

fn templates(yaml: &str) -> Vec<(String, Value)> {
    meshc::load::yaml::parse_documents(yaml)
        .unwrap()
        .iter()
        .map(|d| d.to_json())
        .filter(|d| d.is_object())
        .map(|d| (d["metadata"]["name"].as_str().unwrap().to_owned(), d["spec"]["template"].clone()))
        .collect()
}

/// Labels and annotations that differ by origin: the controller's hash
/// label, and who injected the pod.
fn without_origin(mut meta: Value) -> Value {
    if let Some(labels) = meta["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    if let Some(a) = meta["annotations"].as_object_mut() {
        a.remove("linkerd.io/created-by");
    }
    json!({"labels": meta["labels"], "annotations": meta["annotations"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_patches_pods_as_meshc_inject_rewrites_their_templates() {
    let (files, rt, addr) = start().await;
    let (injected, messages) = inject_text(DEPLOYMENTS, &Namespaces::default(), &Options::default());
    assert!(messages.is_empty(), "{messages:?}");
    let originals = templates(DEPLOYMENTS);
    let expected = templates(&injected);
    assert_ne!(originals, expected, "meshc inject meshed nothing");
    for ((name, original), (_, cli)) in originals.iter().zip(&expected) {
        let mut pod = pod_of(name, original);
        let (status, answer) = post(addr, files.pki.anchors_pem(), review(name, "shop", &pod)).await;
        assert_eq!(status, http::StatusCode::OK, "{answer}");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        let response = &answer["response"];
        assert_eq!(response["uid"], name.as_str());
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch", "{answer}");
        let patch = Base64::decode_vec(response["patch"].as_str().unwrap()).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
        json_patch::patch(&mut pod, &patch).unwrap();
        assert_eq!(pod["spec"], cli["spec"], "{name}: the webhook's pod spec differs from meshc inject's");
        assert_eq!(without_origin(pod["metadata"].clone()), without_origin(cli["metadata"].clone()), "{name}");
        assert!(
            pod["metadata"]["annotations"]["linkerd.io/created-by"]
                .as_str()
                .unwrap()
                .starts_with("mesh-runtime/webhook")
        );
    }
    rt.shutdown.cancel();
    rt.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_admits_refused_and_unasked_pods_unchanged() {
    let (files, rt, addr) = start().await;
    let asked = json!({"linkerd.io/inject": "enabled"});
    let cases = [
        // Refused: the proxy would capture the node's traffic.
        (
            "host",
            json!({"metadata": {"annotations": asked}, "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "a"}]}}),
            true,
        ),
        // Refused: the app declares the proxy's inbound port.
        (
            "clash",
            json!({"metadata": {"annotations": asked}, "spec": {"containers": [{"name": "a", "image": "a", "ports": [{"containerPort": 4143}]}]}}),
            true,
        ),
        // Not asked (file mode knows no Namespaces: only the pod's annotation counts).
        ("plain", json!({"metadata": {}, "spec": {"containers": [{"name": "a", "image": "a"}]}}), false),
    ];
    for (uid, pod, refused) in cases {
        let (status, answer) = post(addr, files.pki.anchors_pem(), review(uid, "shop", &pod)).await;
        assert_eq!(status, http::StatusCode::OK);
        let response = &answer["response"];
        assert_eq!(response["allowed"], true, "{uid}: never rejected");
        assert!(response.get("patch").is_none(), "{uid}: {answer}");
        let warned = response["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w.as_str().unwrap().contains("not injected")));
        assert_eq!(warned, refused, "{uid}: {answer}");
    }
    // Not an AdmissionReview: 400, as Linkerd's server answers.
    let (status, _) = post(addr, files.pki.anchors_pem(), "{}".to_owned()).await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST);
    rt.shutdown.cancel();
    rt.stopped().await;
}
