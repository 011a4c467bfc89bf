//! The mutating admission webhook: the API server sends every Pod created
//! in a selected namespace (runtime/deploy/webhook.yaml); the webhook
//! answers with the JSON patch that meshes it, from the same function as
//! `meshc inject` (`mesh-inject`). Served over TLS with a certificate the
//! runtime's own issuer signs for `--webhook-name`, so the
//! MutatingWebhookConfiguration's `caBundle` is the mesh's trust anchors.

pub mod review;

use crate::api::{Body, error};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use mesh_inject::{Config, NamespaceMeta};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// An AdmissionReview holds one Pod: far below this (Linkerd allows 10 MB).
const MAX_REVIEW: usize = 4 * 1024 * 1024;

/// A namespace's annotations and labels.
pub type NamespaceInfo = (BTreeMap<String, String>, BTreeMap<String, String>);
pub type Lookup<'a> = Pin<Box<dyn Future<Output = Result<Option<NamespaceInfo>, String>> + Send + 'a>>;

/// Where the webhook reads a pod's Namespace (`linkerd.io/inject` and the
/// `config.linkerd.io/*` defaults): the API server in Kubernetes mode.
pub trait Namespaces: Send + Sync {
    fn get<'a>(&'a self, name: &'a str) -> Lookup<'a>;
}

/// File mode knows no Namespaces: only a pod's own annotations count.
pub struct NoNamespaces;

impl Namespaces for NoNamespaces {
    fn get<'a>(&'a self, _: &'a str) -> Lookup<'a> {
        Box::pin(async { Ok(None) })
    }
}

/// Fixed namespaces, for tests and benchmarks.
pub struct StaticNamespaces(pub BTreeMap<String, NamespaceInfo>);

impl Namespaces for StaticNamespaces {
    fn get<'a>(&'a self, name: &'a str) -> Lookup<'a> {
        let found = self.0.get(name).cloned();
        Box::pin(async move { Ok(found) })
    }
}

pub struct Webhook {
    pub config: Config,
    pub namespaces: Arc<dyn Namespaces>,
}

/// One HTTP request to the webhook.
pub async fn handle(hook: Arc<Webhook>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview");
    }
    let body = match Limited::new(req.into_body(), MAX_REVIEW).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let (status, answer) = answer(&hook, &body).await;
    let mut r = Response::new(Full::new(Bytes::from(answer)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

/// The status and body for one AdmissionReview. A namespace that cannot be
/// read is a 500: the API server then applies the failure policy, the only
/// case where the webhook does not admit the pod itself.
pub async fn answer(hook: &Webhook, body: &[u8]) -> (StatusCode, String) {
    let req = match review::parse(body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, serde_json::json!({"error": e}).to_string()),
    };
    let namespace = match req.pod {
        Some(_) => match hook.namespaces.get(&req.namespace).await {
            Ok(ns) => ns,
            Err(e) => {
                tracing::warn!(namespace = %req.namespace, "webhook: cannot read the namespace: {e}");
                let msg = format!("cannot read namespace {}: {e}", req.namespace);
                return (StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({"error": msg}).to_string());
            }
        },
        None => None,
    };
    let meta = namespace.as_ref().map(|(annotations, labels)| NamespaceMeta { annotations, labels });
    (StatusCode::OK, review::respond(&req, &hook.config, meta).to_string())
}
