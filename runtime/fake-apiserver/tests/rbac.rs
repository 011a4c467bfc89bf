//! Opt-in RBAC: bearer tokens of ServiceAccounts authorized by loaded
//! Roles, ClusterRoles and their bindings, through a real kube::Client
//! (kubectl cannot take part: client-go sends credentials only over TLS).

mod common;

use common::*;
use fake_apiserver::{FakeApiServer, TokenInfo};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, WatchParams};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

const TOKEN: &str = "runtime-token";

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

/// The outcome of a request: Ok, or the API error's code and message.
fn outcome<T>(r: Result<T, kube::Error>) -> Result<(), (u16, String)> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err((status.code, status.message.clone())),
        Err(other) => panic!("expected an API answer, got {other:?}"),
    }
}

fn code<T>(r: Result<T, kube::Error>) -> u16 {
    outcome(r).err().map_or(200, |(code, _)| code)
}

fn rbac_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "keys", "namespace": "mesh-system"},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
             "resourceNames": ["trusted-keys"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "keys", "namespace": "mesh-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "keys"},
            "subjects": [{"kind": "ServiceAccount", "name": "runtime", "namespace": "mesh-system"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "watch-configs"},
        "rules": [
            {"apiGroups": ["meshc.io"], "resources": ["proxyconfigs"], "verbs": ["list", "watch"]},
            {"apiGroups": ["meshc.io"], "resources": ["proxyconfigs/status"], "verbs": ["patch"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "watch-configs"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "watch-configs"},
            "subjects": [{"kind": "ServiceAccount", "name": "runtime", "namespace": "mesh-system"}]}),
        // A ClusterRole bound by a RoleBinding grants in that namespace only.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "pod-reader", "namespace": "booksapp"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "runtime", "namespace": "mesh-system"}]}),
        // Not RBAC: skipped, so whole manifest sets can be loaded.
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runtime", "namespace": "mesh-system"}}),
    ]
}

async fn rbac_server() -> FakeApiServer {
    let server = server().await;
    server.tokens().insert(TOKEN, TokenInfo::new("mesh-system", "runtime", later()));
    assert_eq!(server.authorizer().load(&rbac_objects()), Ok(6));
    for (ns, name) in [("mesh-system", "trusted-keys"), ("mesh-system", "other"), ("booksapp", "trusted-keys")] {
        server
            .store()
            .create_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}}))
            .unwrap();
    }
    server.store().create_object(proxyconfig("booksapp", "web", "r1")).unwrap();
    server
}

#[tokio::test]
async fn resource_names_limit_get_and_named_list_and_watch() {
    let server = rbac_server().await;
    let client = server.client_with_token(TOKEN).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "mesh-system");
    assert_eq!(outcome(cms.get("trusted-keys").await), Ok(()));
    let named = ListParams::default().fields("metadata.name=trusted-keys");
    assert_eq!(outcome(cms.list(&named).await), Ok(()));
    let named_watch = WatchParams::default().fields("metadata.name=trusted-keys").timeout(1);
    assert_eq!(outcome(cms.watch(&named_watch, "0").await), Ok(()));

    let denied = outcome(cms.get("other").await);
    assert_eq!(
        denied,
        Err((
            403,
            "configmaps \"other\" is forbidden: User \"system:serviceaccount:mesh-system:runtime\" cannot get \
             resource \"configmaps\" in API group \"\" in the namespace \"mesh-system\""
                .into()
        ))
    );
    assert_eq!(code(cms.list(&ListParams::default()).await), 403, "an unnamed list is not limited by name");
    assert_eq!(code(cms.list(&ListParams::default().fields("metadata.name=other")).await), 403);
    assert_eq!(code(cms.delete("trusted-keys", &DeleteParams::default()).await), 403, "delete was not granted");
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "booksapp");
    assert_eq!(code(elsewhere.get("trusted-keys").await), 403, "a Role grants only in its namespace");
    let everywhere: Api<ConfigMap> = Api::all(client);
    assert_eq!(code(everywhere.list(&named).await), 403, "nor at the cluster scope");
}

#[tokio::test]
async fn cluster_roles_subresources_and_namespaced_bindings() {
    let server = rbac_server().await;
    let client = server.client_with_token(TOKEN).unwrap();
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &proxyconfig_resource());
    assert_eq!(outcome(all.list(&ListParams::default()).await), Ok(()));
    assert_eq!(outcome(all.watch(&WatchParams::default().timeout(1), "0").await), Ok(()));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "booksapp", &proxyconfig_resource());
    let status = Patch::Merge(json!({"status": {"observedGeneration": 1}}));
    assert_eq!(outcome(api.patch_status("web", &PatchParams::default(), &status).await), Ok(()));
    let spec = Patch::Merge(json!({"spec": {"sourceRevision": "forged"}}));
    let denied = outcome(api.patch("web", &PatchParams::default(), &spec).await);
    assert_eq!(
        denied,
        Err((
            403,
            "proxyconfigs.meshc.io \"web\" is forbidden: User \"system:serviceaccount:mesh-system:runtime\" \
             cannot patch resource \"proxyconfigs\" in API group \"meshc.io\" in the namespace \"booksapp\""
                .into()
        ))
    );
    assert_eq!(code(api.get("web").await), 403, "get was not granted, only list and watch");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "booksapp");
    assert_eq!(outcome(pods.list(&ListParams::default()).await), Ok(()));
    let other: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert_eq!(code(other.list(&ListParams::default()).await), 403);
    let cluster_wide: Api<Pod> = Api::all(client);
    let (code_, message) = outcome(cluster_wide.list(&ListParams::default()).await).unwrap_err();
    assert_eq!(code_, 403);
    assert!(message.ends_with("cannot list resource \"pods\" in API group \"\" at the cluster scope"), "{message}");
}

#[tokio::test]
async fn tokens_authenticate_and_requests_without_one_stay_unrestricted() {
    let server = rbac_server().await;
    let admin: Api<ConfigMap> = Api::all(server.client().unwrap());
    assert_eq!(outcome(admin.list(&ListParams::default()).await), Ok(()));

    let unknown: Api<ConfigMap> = Api::namespaced(server.client_with_token("nobody").unwrap(), "mesh-system");
    assert_eq!(code(unknown.get("trusted-keys").await), 401);
    // A proxy's identity token is for another audience, not for the API server.
    server.tokens().insert("proxy", TokenInfo::new("booksapp", "web", later()).with_audiences(&["identity.l5d.io"]));
    let proxy: Api<ConfigMap> = Api::namespaced(server.client_with_token("proxy").unwrap(), "mesh-system");
    assert_eq!(code(proxy.get("trusted-keys").await), 401);
    server.tokens().insert("old", TokenInfo::new("mesh-system", "runtime", SystemTime::now() - Duration::from_secs(1)));
    let expired: Api<ConfigMap> = Api::namespaced(server.client_with_token("old").unwrap(), "mesh-system");
    assert_eq!(code(expired.get("trusted-keys").await), 401);

    let runtime: Api<ConfigMap> = Api::namespaced(server.client_with_token(TOKEN).unwrap(), "mesh-system");
    assert_eq!(outcome(runtime.get("trusted-keys").await), Ok(()));
    assert!(server.tokens().revoke(TOKEN));
    assert_eq!(code(runtime.get("trusted-keys").await), 401, "a revoked token loses API access too");
}

#[tokio::test]
async fn enforcement_is_off_until_rbac_is_loaded() {
    let server = server().await;
    server.tokens().insert(TOKEN, TokenInfo::new("mesh-system", "runtime", later()));
    let api: Api<ConfigMap> = Api::all(server.client_with_token(TOKEN).unwrap());
    assert_eq!(outcome(api.list(&ListParams::default()).await), Ok(()));
    assert!(!server.authorizer().enabled());
    assert_eq!(server.authorizer().load(&[]), Ok(0));
    assert!(server.authorizer().enabled());
    assert_eq!(code(api.list(&ListParams::default()).await), 403, "loaded with no rules: nothing is granted");
}

#[tokio::test]
async fn malformed_rbac_objects_are_reported() {
    let server = server().await;
    let no_namespace = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "r"}, "rules": []});
    assert!(server.authorizer().load(&[no_namespace]).unwrap_err().contains("no metadata.namespace"));
    let bad_ref = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": []});
    assert!(server.authorizer().load(&[bad_ref]).unwrap_err().contains("must refer to a ClusterRole"));
}
