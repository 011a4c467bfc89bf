//! AdmissionReview v1 in, AdmissionReview v1 out, around
//! [`mesh_inject::inject_template`] (Linkerd: `controller/webhook/server.go`,
//! `processReq`; `controller/proxy-injector/webhook.go`, `Inject`).
//!
//! Differences from Linkerd's injector, on purpose: a pod the injector
//! refuses is admitted unchanged with a warning the client sees (`kubectl`
//! prints it), never rejected; and a pod's owner is read from its
//! `ownerReferences` and labels, with no API lookups (below).

use base64ct::{Base64, Encoding};
use mesh_inject::{Config, Context, NamespaceMeta, Outcome};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// What the webhook needs from a review's request.
#[derive(Debug)]
pub struct Request {
    pub uid: Json,
    pub api_version: String,
    /// `None` for anything but a Pod being created: admitted as it is.
    pub pod: Option<Json>,
    pub namespace: String,
}

/// Reads an AdmissionReview; `Err` (HTTP 400) when it is not one.
pub fn parse(body: &[u8]) -> Result<Request, String> {
    let review: Json = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let request = review.get("request").filter(|r| r.is_object()).ok_or("an AdmissionReview without a request")?;
    let uid =
        request.get("uid").filter(|u| u.as_str().is_some_and(|s| !s.is_empty())).ok_or("a request without uid")?;
    let api_version = review["apiVersion"].as_str().unwrap_or("admission.k8s.io/v1").to_owned();
    let is_pod = request["kind"]["kind"] == "Pod" && request["kind"]["group"].as_str().unwrap_or("").is_empty();
    let creates = request["operation"].as_str().is_none_or(|op| op == "CREATE");
    let pod = (is_pod && creates).then(|| request["object"].clone()).filter(Json::is_object);
    let namespace = request["namespace"]
        .as_str()
        .or_else(|| request["object"]["metadata"]["namespace"].as_str())
        .unwrap_or("default")
        .to_owned();
    Ok(Request { uid: uid.clone(), api_version, pod, namespace })
}

/// The AdmissionReview answering `req`: always allowed; with the patch when
/// the pod is injected, with a warning when the injector refuses it.
pub fn respond(req: &Request, config: &Config, namespace: Option<NamespaceMeta>) -> Json {
    let mut response = json!({"uid": req.uid, "allowed": true});
    if let Some(pod) = &req.pod {
        let (kind, name) = owner(pod);
        let overrides = BTreeMap::new();
        let ctx = Context {
            kind: &kind,
            name: &name,
            namespace: &req.namespace,
            namespace_meta: namespace,
            overrides: &overrides,
            config,
        };
        match mesh_inject::inject_template(pod, &ctx) {
            Outcome::Injected(ops) => {
                let patch = mesh_inject::value::json_patch(&ops, "").to_string();
                response["patchType"] = json!("JSONPatch");
                response["patch"] = json!(Base64::encode_string(patch.as_bytes()));
            }
            Outcome::Skipped(_) => {}
            Outcome::Refused(why) => response["warnings"] = json!([format!("mesh-proxy not injected: {why}")]),
        }
    }
    json!({"apiVersion": req.api_version, "kind": "AdmissionReview", "response": response})
}

/// The workload `meshc build` signed this pod's config for: its
/// controller's kind and name, seen through a ReplicaSet to the Deployment
/// (or Argo Rollout) that made it, from the `pod-template-hash` suffix both
/// controllers put in the ReplicaSet's name. Linkerd asks the API server;
/// the names make that unnecessary, so the webhook needs no read access to
/// workloads. A Job a CronJob created stays a Job: its name does not say
/// so reliably.
pub fn owner(pod: &Json) -> (String, String) {
    let meta = &pod["metadata"];
    let refs = meta["ownerReferences"].as_array().map(Vec::as_slice).unwrap_or_default();
    let controller = refs.iter().find(|r| r["controller"] == true).or(refs.first());
    let Some(r) = controller else {
        let name = meta["name"].as_str().or(meta["generateName"].as_str()).unwrap_or_default();
        return ("Pod".to_owned(), name.to_owned());
    };
    let (kind, name) = (r["kind"].as_str().unwrap_or_default(), r["name"].as_str().unwrap_or_default());
    if kind == "ReplicaSet" {
        for (label, parent) in [("pod-template-hash", "Deployment"), ("rollouts-pod-template-hash", "Rollout")] {
            let hash = meta["labels"][label].as_str().unwrap_or_default();
            if let Some(base) = name.strip_suffix(hash).and_then(|b| b.strip_suffix('-')).filter(|_| !hash.is_empty()) {
                return (parent.to_owned(), base.to_owned());
            }
        }
    }
    (kind.to_owned(), name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_sees_through_a_deployments_replicaset() {
        let pod = json!({"metadata": {
            "labels": {"pod-template-hash": "5d8f7c9b4"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f7c9b4", "controller": true}]}});
        assert_eq!(owner(&pod), ("Deployment".to_owned(), "web".to_owned()));
        let bare =
            json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "web", "controller": true}]}});
        assert_eq!(owner(&bare), ("ReplicaSet".to_owned(), "web".to_owned()));
        let sts = json!({"metadata": {"ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": true}]}});
        assert_eq!(owner(&sts), ("StatefulSet".to_owned(), "db".to_owned()));
        assert_eq!(owner(&json!({"metadata": {"name": "p"}})), ("Pod".to_owned(), "p".to_owned()));
    }

    #[test]
    fn bad_reviews_are_refused_and_other_objects_admitted_unchanged() {
        assert!(parse(b"{}").is_err());
        assert!(parse(br#"{"request": {"uid": ""}}"#).is_err());
        let svc = parse(br#"{"request": {"uid": "u", "kind": {"kind": "Service"}, "object": {}}}"#).unwrap();
        let out = respond(&svc, &Config::default(), None);
        assert_eq!(out["response"], json!({"uid": "u", "allowed": true}));
    }
}
