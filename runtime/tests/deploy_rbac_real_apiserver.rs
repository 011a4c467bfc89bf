//! runtime/deploy/ applied to a real kube-apiserver (`kubectl apply
//! --server-side -k`), and its RBAC judged by the real RBAC authorizer through
//! SubjectAccessReviews: every permission the runtime uses is allowed, and the
//! neighbouring ones it must not have are denied. tests/deploy.rs checks the
//! same calls through fake-apiserver's own evaluator; this is the oracle for
//! that evaluator.

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::Api;
use kube::api::PostParams;
use mesh_runtime::Settings;
use mesh_test_support::apiserver::RealApiServer;
use std::path::{Path, PathBuf};
use std::process::Command;

// tests/deploy.rs's helpers; this crate uses two of them.
#[allow(dead_code)]
#[path = "deploy/support.rs"]
mod support;
use support::{deployed_settings, trusted_keys};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy_dir() -> PathBuf {
    repo().join("runtime/deploy")
}

const SA_NAMESPACE: &str = "mesh-system";
const SA: &str = "mesh-runtime";

/// One request as RBAC sees it: verb, API group, resource (with
/// `/subresource`), namespace (empty: cluster-wide) and name (empty: any).
/// A list or watch with a `metadata.name` field selector is authorized with
/// that name, as the real RequestInfo derives it.
type Request<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

async fn allowed(reviews: &Api<SubjectAccessReview>, (verb, group, resource, ns, name): Request<'_>) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{SA_NAMESPACE}:{SA}")),
            // The groups the API server gives every ServiceAccount token.
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{SA_NAMESPACE}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: some(ns),
                name: some(name),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = reviews.create(&PostParams::default(), &review).await.expect("SubjectAccessReview");
    answer.status.expect("SubjectAccessReview status").allowed
}

/// Every call mesh-runtime --kubernetes makes (the list in runtime/deploy/rbac.yaml's comments).
fn used(s: &Settings) -> Vec<(String, String, String, String, String)> {
    let ns = s.kube.namespace.as_str();
    let (keys_kind, keys_name) = trusted_keys(s);
    let keys_resource = if keys_kind == "Secret" { "secrets" } else { "configmaps" };
    let mut out = Vec::new();
    let mut add = |verb: &str, group: &str, resource: &str, ns: &str, name: &str| {
        out.push((verb.into(), group.into(), resource.into(), ns.into(), name.into()));
    };
    for verb in ["list", "watch"] {
        for (group, resource) in
            [("meshc.io", "proxyconfigs"), ("meshc.io", "meshbundles"), ("", "services"), ("", "pods")]
        {
            add(verb, group, resource, "", "");
        }
        add(verb, "discovery.k8s.io", "endpointslices", "", "");
        add(verb, "", "namespaces", "", "");
        add(verb, "", keys_resource, ns, &keys_name);
        add(verb, "", "configmaps", ns, &s.kube.trust_roots);
        add(verb, "", "secrets", ns, &s.kube.issuer_secret);
    }
    add("patch", "meshc.io", "proxyconfigs/status", "booksapp", "web");
    add("patch", "meshc.io", "meshbundles/status", "", "meshc");
    add("create", "coordination.k8s.io", "leases", ns, "");
    for verb in ["get", "update"] {
        add(verb, "coordination.k8s.io", "leases", ns, &s.kube.lease);
        add(verb, "", "configmaps", ns, &s.kube.state_configmap);
    }
    add("create", "", "configmaps", ns, "");
    add("get", "", "namespaces", "", "booksapp");
    add("create", "authentication.k8s.io", "tokenreviews", "", "");
    out
}

/// Calls next to those, which a compromised runtime must not be able to make.
fn denied(s: &Settings) -> Vec<(String, String, String, String, String)> {
    let ns = s.kube.namespace.as_str();
    let (_, keys_name) = trusted_keys(s);
    let rows: Vec<(&str, &str, &str, &str, &str)> = vec![
        ("list", "", "secrets", "", ""),
        ("list", "", "secrets", ns, ""),
        ("get", "", "secrets", ns, "other"),
        ("list", "", "secrets", ns, "other"),
        ("get", "", "secrets", ns, s.kube.issuer_secret.as_str()),
        ("delete", "", "secrets", ns, s.kube.issuer_secret.as_str()),
        ("list", "", "configmaps", "booksapp", s.kube.trust_roots.as_str()),
        ("get", "", "configmaps", ns, keys_name.as_str()),
        ("update", "", "configmaps", ns, s.kube.trust_roots.as_str()),
        ("delete", "", "configmaps", ns, s.kube.state_configmap.as_str()),
        ("create", "", "configmaps", "booksapp", ""),
        ("patch", "meshc.io", "proxyconfigs", "booksapp", "web"),
        ("update", "meshc.io", "proxyconfigs", "booksapp", "web"),
        ("create", "meshc.io", "proxyconfigs", "booksapp", ""),
        ("get", "meshc.io", "proxyconfigs", "booksapp", "web"),
        ("delete", "meshc.io", "proxyconfigs", "booksapp", "web"),
        ("deletecollection", "meshc.io", "proxyconfigs", "booksapp", ""),
        ("patch", "meshc.io", "meshbundles", "", "meshc"),
        ("delete", "meshc.io", "meshbundles", "", "meshc"),
        ("delete", "", "pods", "booksapp", "web-1"),
        ("patch", "", "pods", "booksapp", "web-1"),
        ("get", "coordination.k8s.io", "leases", ns, "someone-else"),
        ("delete", "coordination.k8s.io", "leases", ns, s.kube.lease.as_str()),
        ("create", "coordination.k8s.io", "leases", "kube-system", ""),
        ("update", "", "namespaces", "", "booksapp"),
        ("patch", "", "namespaces", "", "booksapp"),
        ("delete", "", "namespaces", "", "booksapp"),
    ];
    rows.into_iter().map(|(a, b, c, d, e)| (a.into(), b.into(), c.into(), d.into(), e.into())).collect()
}

#[tokio::test]
async fn deploy_rbac_is_what_the_real_apiserver_rbac_authorizer_allows() {
    let test = "deploy_rbac_is_what_the_real_apiserver_rbac_authorizer_allows";
    if !mesh_test_support::require_tool(test, "kubectl", &["version", "--client"], "apt-get install -y kubectl") {
        return;
    }
    let Some(server) = RealApiServer::start(test) else { return };
    let deploy = deploy_dir();
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["apply", "--server-side", "-k"])
        .arg(&deploy)
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "kubectl apply -k runtime/deploy:\n{}", String::from_utf8_lossy(&out.stderr));

    let settings = deployed_settings();
    let reviews: Api<SubjectAccessReview> = Api::all(server.client().await);
    let mut wrong = Vec::new();
    for (want, rows) in [(true, used(&settings)), (false, denied(&settings))] {
        for (verb, group, resource, ns, name) in &rows {
            let got =
                allowed(&reviews, (verb.as_str(), group.as_str(), resource.as_str(), ns.as_str(), name.as_str())).await;
            if got != want {
                wrong.push(format!("{verb} {group}/{resource} ns={ns:?} name={name:?}: allowed={got}, want {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "the real RBAC authorizer disagrees:\n{}", wrong.join("\n"));
}
