//! The objects of a Kubernetes-mode test, read and written through the API
//! with a `kube::Client`: the same calls reach the in-process fake and a real
//! kube-apiserver, so one test body runs on both.

use crate::servers::Server;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use mesh_test_support::apiserver::RealApiServer;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// The kinds these tests write: (group, version, plural, namespaced).
fn kind_of(kind: &str) -> (&'static str, &'static str, &'static str, bool) {
    match kind {
        "ConfigMap" => ("", "v1", "configmaps", true),
        "Secret" => ("", "v1", "secrets", true),
        "Namespace" => ("", "v1", "namespaces", false),
        "ProxyConfig" => ("meshc.io", "v1alpha1", "proxyconfigs", true),
        "MeshBundle" => ("meshc.io", "v1alpha1", "meshbundles", false),
        other => panic!("no test writes a {other}"),
    }
}

#[derive(Clone)]
pub(crate) struct Objects {
    client: kube::Client,
}

impl Objects {
    pub(crate) async fn of(server: &Server) -> Objects {
        Objects { client: server.client().await }
    }

    fn api(&self, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
        let (group, version, plural, namespaced) = kind_of(kind);
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        match (namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resource),
            (true, None) => panic!("a {kind} needs a namespace"),
            (false, _) => Api::all_with(self.client.clone(), &resource),
        }
    }

    fn api_for(&self, object: &Value) -> Api<DynamicObject> {
        self.api(object["kind"].as_str().expect("a kind"), object["metadata"]["namespace"].as_str())
    }

    pub(crate) async fn create(&self, object: &Value) {
        let typed: DynamicObject = serde_json::from_value(object.clone()).expect("an object");
        let name = &object["metadata"]["name"];
        self.api_for(object)
            .create(&PostParams::default(), &typed)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }

    /// Creates each object, or replaces the spec of the one already there,
    /// as `kubectl apply` would.
    pub(crate) async fn apply(&self, objects: &[Value]) {
        for o in objects {
            let (kind, ns) = (o["kind"].as_str().unwrap(), o["metadata"]["namespace"].as_str());
            let name = o["metadata"]["name"].as_str().unwrap();
            if self.get(kind, ns, name).await.is_none() {
                self.create(o).await;
            } else {
                self.replace(kind, ns, name, |live| live["spec"] = o["spec"].clone()).await;
            }
        }
    }

    pub(crate) async fn list(&self, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let found = self.api(kind, ns).list(&Default::default()).await.unwrap_or_else(|e| panic!("list {kind}: {e}"));
        found.items.into_iter().map(|o| serde_json::to_value(o).expect("an object serialises")).collect()
    }

    pub(crate) async fn get(&self, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let found = self.api(kind, ns).get_opt(name).await.unwrap_or_else(|e| panic!("get {kind} {name}: {e}"));
        found.map(|o| serde_json::to_value(o).expect("an object serialises"))
    }

    /// Edits the live object with `edit` and writes it back whole (a PUT
    /// with its resourceVersion), again from a fresh read when the runtime
    /// wrote to it in between (a status write moves the version on).
    pub(crate) async fn replace(&self, kind: &str, ns: Option<&str>, name: &str, edit: impl Fn(&mut Value)) {
        let api = self.api(kind, ns);
        for _ in 0..20 {
            let mut live = self.get(kind, ns, name).await.unwrap_or_else(|| panic!("no {kind} {name}"));
            edit(&mut live);
            let typed: DynamicObject = serde_json::from_value(live).expect("an object");
            match api.replace(name, &PostParams::default(), &typed).await {
                Ok(_) => return,
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => panic!("replace {kind} {name}: {e}"),
            }
        }
        panic!("replace {kind} {name}: twenty conflicts in a row");
    }

    pub(crate) async fn delete(&self, kind: &str, ns: Option<&str>, name: &str) {
        self.api(kind, ns)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }

    /// Removes an object's status, as a new leader finds it after its
    /// predecessor's writes were lost.
    pub(crate) async fn clear_status(&self, kind: &str, ns: Option<&str>, name: &str) {
        let patch = Patch::Merge(serde_json::json!({"status": null}));
        let api = self.api(kind, ns);
        api.patch_status(name, &PatchParams::default(), &patch).await.unwrap_or_else(|e| panic!("clear {name}: {e}"));
    }
}

/// What a real server needs before the objects of a build can be created:
/// meshc's CRDs, installed and Established, and the namespaces (the fake has
/// the CRDs built in and needs no Namespace objects).
pub(crate) async fn prepare(server: &Server, namespaces: &[&str]) {
    let Some(real) = server.real_server() else { return };
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/crds");
    kubectl(real, &["apply", "--server-side", "-f", crds.to_str().unwrap()]);
    let established = ["crd/proxyconfigs.meshc.io", "crd/meshbundles.meshc.io"];
    kubectl(real, &["wait", "--for=condition=Established", "--timeout=120s", established[0], established[1]]);
    for ns in namespaces {
        server.namespace(ns).await;
    }
}

/// Whether a real-server test can run: it drives the server with kubectl.
pub(crate) fn kubectl_present(test: &str) -> bool {
    mesh_test_support::require_tool(test, "kubectl", &["version", "--client"], "apt-get install -y kubectl")
}

fn kubectl(server: &RealApiServer, args: &[&str]) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
