//! Object semantics through a real kube::Client: metadata, status
//! subresource, optimistic concurrency, patches, TokenReview, discovery.

mod common;

use common::*;
use fake_apiserver::{Gvr, ResourceType, Resources, TokenInfo, Verb};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use serde_json::json;
use std::time::{Duration, SystemTime};

fn api_error_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_fills_metadata_and_refuses_duplicates() {
    let server = server().await;
    let api = proxyconfigs(&server, Some("booksapp"));
    let mut object = proxyconfig("booksapp", "web", "r1");
    object["status"] = json!({"conditions": [{"type": "Verified", "status": "True"}]});
    let created = api.create(&PostParams::default(), &dynamic(object.clone())).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(meta.resource_version.as_deref(), Some(server.store().resource_version().to_string().as_str()));
    assert!(created.data.get("status").is_none(), "status is not set on create");
    let again = api.create(&PostParams::default(), &dynamic(object)).await.unwrap_err();
    assert_eq!(api_error_code(&again), 409);
}

#[tokio::test]
async fn replace_status_changes_only_status() {
    let server = server().await;
    let api = proxyconfigs(&server, Some("booksapp"));
    let created = api.create(&PostParams::default(), &dynamic(proxyconfig("booksapp", "web", "r1"))).await.unwrap();

    let mut with_status = created.clone();
    with_status.data["status"] =
        json!({"conditions": [{"type": "Verified", "status": "False", "reason": "BadSignature"}]});
    with_status.data["spec"]["sourceRevision"] = json!("sneaky");
    let updated = api.replace_status("web", &PostParams::default(), &with_status).await.unwrap();
    assert_eq!(updated.data["status"]["conditions"][0]["reason"], "BadSignature");
    assert_eq!(revision_of(&updated), "r1", "/status ignores spec changes");
    assert_eq!(updated.metadata.generation, Some(1));

    // The main resource ignores status and bumps generation on spec changes.
    let mut new_spec = updated.clone();
    new_spec.data["spec"]["sourceRevision"] = json!("r2");
    new_spec.data["status"] = json!({"conditions": []});
    let replaced = api.replace("web", &PostParams::default(), &new_spec).await.unwrap();
    assert_eq!(revision_of(&replaced), "r2");
    assert_eq!(replaced.data["status"]["conditions"][0]["reason"], "BadSignature");
    assert_eq!(replaced.metadata.generation, Some(2));

    // A label change is a metadata change: no new generation.
    let patch = json!({"metadata": {"labels": {"team": "books"}}});
    let labelled = api.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    let status_patch = json!({"status": {"observedGeneration": 2}});
    let patched = api.patch_status("web", &PatchParams::default(), &Patch::Merge(&status_patch)).await.unwrap();
    assert_eq!(patched.data["status"]["observedGeneration"], 2);
    assert_eq!(patched.data["status"]["conditions"][0]["reason"], "BadSignature");
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict() {
    let server = server().await;
    let api = proxyconfigs(&server, Some("booksapp"));
    let first = api.create(&PostParams::default(), &dynamic(proxyconfig("booksapp", "web", "r1"))).await.unwrap();
    let mut a = first.clone();
    a.data["spec"]["sourceRevision"] = json!("r2");
    api.replace("web", &PostParams::default(), &a).await.unwrap();
    let mut b = first.clone();
    b.data["spec"]["sourceRevision"] = json!("r3");
    let err = api.replace("web", &PostParams::default(), &b).await.unwrap_err();
    assert_eq!(api_error_code(&err), 409);
    let err = api.replace_status("web", &PostParams::default(), &b).await.unwrap_err();
    assert_eq!(api_error_code(&err), 409);
    assert_eq!(revision_of(&api.get("web").await.unwrap()), "r2");
    // A no-op write keeps the resourceVersion.
    let live = api.get("web").await.unwrap();
    let same = api.replace("web", &PostParams::default(), &live).await.unwrap();
    assert_eq!(same.metadata.resource_version, live.metadata.resource_version);
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let server = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client().unwrap(), "mesh-system");
    let pp = PatchParams::apply("mesh-runtime");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keys"}, "data": {"a": "1"}});
    let created = cms.patch("keys", &pp, &Patch::Apply(&cm)).await.unwrap();
    assert_eq!(created.data.unwrap()["a"], "1");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keys"}, "data": {"b": "2"}});
    let merged = cms.patch("keys", &pp, &Patch::Apply(&cm)).await.unwrap();
    let data = merged.data.unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("1", "2"));
    let err = cms.patch("keys", &PatchParams::default(), &Patch::Apply(&cm)).await.unwrap_err();
    assert_eq!(api_error_code(&err), 400, "apply needs a field manager");
}

#[tokio::test]
async fn list_with_selectors() {
    let server = server().await;
    for (name, tier) in [("a", "front"), ("b", "back"), ("c", "front")] {
        let mut o = proxyconfig("ns", name, "r1");
        o["metadata"]["labels"]["tier"] = json!(tier);
        server.store().create_object(o).unwrap();
    }
    let api = proxyconfigs(&server, None);
    let names = |l: kube::core::ObjectList<kube::api::DynamicObject>| {
        l.items.iter().map(|o| name_of(o).to_string()).collect::<Vec<_>>()
    };
    let front = api.list(&ListParams::default().labels("tier in (front)")).await.unwrap();
    assert_eq!(front.metadata.resource_version, Some(server.store().resource_version().to_string()));
    assert_eq!(names(front), ["a", "c"]);
    let one = api.list(&ListParams::default().fields("metadata.name=b")).await.unwrap();
    assert_eq!(names(one), ["b"]);
    let bad = api.list(&ListParams::default().fields("spec.x=1")).await.unwrap_err();
    assert_eq!(api_error_code(&bad), 400);
}

#[tokio::test]
async fn token_review_accepts_only_live_tokens() {
    let server = server().await;
    let hour = Duration::from_secs(3600);
    let tokens = server.tokens();
    tokens.insert(
        "live",
        TokenInfo::new("booksapp", "webapp", SystemTime::now() + hour)
            .with_audiences(&["mesh"])
            .bound_to_pod("webapp-1"),
    );
    tokens.insert("expired", TokenInfo::new("booksapp", "webapp", SystemTime::now() - hour));
    tokens.insert("revoked", TokenInfo::new("booksapp", "books", SystemTime::now() + hour));
    assert!(tokens.revoke("revoked"));
    let api: Api<TokenReview> = Api::all(server.client().unwrap());
    let review = |token: &str, audiences: Option<Vec<String>>| {
        let api = api.clone();
        let body =
            TokenReview { spec: TokenReviewSpec { token: Some(token.into()), audiences }, ..TokenReview::default() };
        async move { api.create(&PostParams::default(), &body).await.unwrap().status.unwrap() }
    };
    let ok = review("live", Some(vec!["mesh".into()])).await;
    assert_eq!(ok.authenticated, Some(true));
    let user = ok.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("system:serviceaccount:booksapp:webapp"));
    assert!(user.groups.unwrap().contains(&"system:serviceaccounts:booksapp".to_string()));
    assert_eq!(ok.audiences, Some(vec!["mesh".to_string()]));
    for (token, audiences) in
        [("expired", None), ("revoked", None), ("unknown", None), ("live", Some(vec!["other".into()]))]
    {
        let refused = review(token, audiences).await;
        assert_eq!(refused.authenticated, Some(false), "{token}");
        assert!(refused.error.is_some_and(|e| !e.is_empty()), "{token}");
        assert!(refused.user.is_none(), "{token}");
    }
    assert_eq!(server.faults().count_for(Verb::Create, "tokenreviews"), 5);
}

#[tokio::test]
async fn discovery_matches_registrations() {
    let server = server().await;
    let discovery = Discovery::new(server.client().unwrap()).run().await.unwrap();
    let find = |group: &str, plural: &str| {
        discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.group == group && ar.plural == plural)
            .unwrap_or_else(|| panic!("{group}/{plural} discovered"))
    };
    let (pc, caps) = find("meshc.io", "proxyconfigs");
    assert_eq!((pc.kind.as_str(), caps.scope.clone()), ("ProxyConfig", Scope::Namespaced));
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
    let (_, caps) = find("meshc.io", "meshbundles");
    assert_eq!(caps.scope, Scope::Cluster);
    let (lease, _) = find("coordination.k8s.io", "leases");
    assert_eq!(lease.kind, "Lease");
    find("discovery.k8s.io", "endpointslices");
    find("", "pods");
    let (tr, caps) = find("authentication.k8s.io", "tokenreviews");
    assert_eq!(tr.kind, "TokenReview");
    assert_eq!(caps.operations, vec!["create".to_string()]);
}

/// The built-in registration of meshc's kinds is what schemas/crds/ says.
#[test]
fn standard_registration_matches_the_repo_crds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/crds");
    let mut from_crds = Resources::empty();
    for file in ["proxyconfig.crd.yaml", "meshbundle.crd.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let crd: serde_json::Value = serde_json::from_str(text.trim_start_matches("---").trim()).unwrap();
        from_crds.add_crd(&crd).unwrap();
    }
    let standard = Resources::standard();
    for plural in ["proxyconfigs", "meshbundles"] {
        let gvr = Gvr::new("meshc.io", "v1alpha1", plural);
        let (a, b): (&ResourceType, &ResourceType) = (from_crds.get(&gvr).unwrap(), standard.get(&gvr).unwrap());
        assert_eq!(
            (&a.kind, &a.singular, a.namespaced, a.status),
            (&b.kind, &b.singular, b.namespaced, b.status),
            "{plural}"
        );
        assert_eq!(a.short_names, b.short_names, "{plural}");
    }
}
