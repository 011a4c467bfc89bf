//! The admission webhook's answer time for a typical pod (issue 18: within
//! 10 ms p99): AdmissionReview requests posted over TLS on kept-alive
//! connections, as the API server's webhook client does, one client after
//! the other and several at once.

use crate::stats::percentile;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name the API server calls the webhook by, and its certificate's.
pub const NAME: &str = "mesh-runtime.mesh-system.svc";
/// The pods' namespace; it asks for injection, so every review is answered
/// with a patch (the costly path).
pub const NAMESPACE: &str = "shop";

/// The Namespace, as the webhook reads it in Kubernetes mode.
pub fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "annotations": {"linkerd.io/inject": "enabled"}}})
}

/// A pod as a Deployment's ReplicaSet creates it: one app container with
/// ports, probes, resources and environment, a ServiceAccount token volume,
/// and the pod's own injection annotation (file mode reads no Namespace).
fn pod() -> Value {
    json!({
        "metadata": {
            "generateName": "webapp-5d8f7c9b4-",
            "namespace": NAMESPACE,
            "labels": {"app": "webapp", "pod-template-hash": "5d8f7c9b4"},
            "annotations": {"linkerd.io/inject": "enabled", "config.linkerd.io/skip-outbound-ports": "3306"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "webapp-5d8f7c9b4",
                "uid": "0b6f2a8e-7c1d-4c55-9e0a-3f1d2b7c9e01", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "serviceAccountName": "webapp",
            "containers": [{
                "name": "service",
                "image": "buoyantio/booksapp:v0.0.5",
                "args": ["prod:webapp"],
                "env": [{"name": "DATABASE_URL", "value": "sqlite3://db/db.sqlite3"},
                        {"name": "AUTHORS_SITE", "value": "http://authors:7001"},
                        {"name": "BOOKS_SITE", "value": "http://books:7002"}],
                "ports": [{"name": "service", "containerPort": 7000, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/ping", "port": 7000}},
                "livenessProbe": {"httpGet": {"path": "/ping", "port": 7000}},
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
            }],
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]
        }
    })
}

fn review(uid: usize) -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": format!("00000000-0000-4000-8000-{uid:012}"),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": NAMESPACE,
                "operation": "CREATE",
                "object": pod(),
            }
        })
        .to_string(),
    )
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Sender, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("webhook {addr}: {e}"))?;
    let name = rustls_pki_types::ServerName::try_from(NAME).map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
    let (send, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// Posts one review and checks that it came back with a patch.
async fn post(send: &mut Sender, body: Bytes) -> Result<(), String> {
    send.ready().await.map_err(|e| format!("connection: {e}"))?;
    let req = http::Request::post(format!("https://{NAME}/?timeout=10s"))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.map_err(|e| format!("response: {e}"))?.to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| format!("response is not JSON: {e}"))?;
    let allowed = answer.pointer("/response/allowed").and_then(Value::as_bool) == Some(true);
    if status != http::StatusCode::OK || !allowed || answer.pointer("/response/patch").is_none() {
        return Err(format!("the webhook did not mesh the pod ({status}): {answer}"));
    }
    Ok(())
}

/// Answer times of `clients` connections posting `per_client` reviews each,
/// at once, after `warmup` untimed reviews per connection.
pub async fn measure(
    addr: SocketAddr,
    anchors_pem: &str,
    clients: usize,
    per_client: usize,
    warmup: usize,
) -> Result<Vec<Duration>, String> {
    let tls = crate::certs::anchors_only(anchors_pem, &[])?;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let mut send = connect(addr, tls.clone()).await?;
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(per_client);
            for i in 0..warmup + per_client {
                let body = review(c * (warmup + per_client) + i);
                let t0 = Instant::now();
                post(&mut send, body).await?;
                if i >= warmup {
                    times.push(t0.elapsed());
                }
            }
            Ok::<_, String>(times)
        }));
    }
    let mut all = Vec::with_capacity(clients * per_client);
    for t in tasks {
        all.extend(t.await.map_err(|e| format!("a client task failed: {e}"))??);
    }
    Ok(all)
}

/// `p50 / p99 / max` in milliseconds with a tenth of a millisecond.
pub fn summary(times: &[Duration]) -> String {
    let ms = |p: f64| percentile(times, p).map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3));
    format!("{} / {} / {}", ms(50.0), ms(99.0), ms(100.0))
}
