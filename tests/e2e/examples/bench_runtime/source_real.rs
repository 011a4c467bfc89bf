//! Kubernetes mode against a real kube-apiserver (the harness of
//! `mesh_test_support::apiserver`, with an embedded etcd): meshc's CRDs
//! installed with `kubectl apply --server-side`, the trust material created
//! and each build server-side applied, as Flux or Argo CD would.

use crate::workloads::{NAMESPACE, Signed};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use mesh_test_support::apiserver::RealApiServer;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use tokio::task::JoinSet;

/// Objects written at once: one apply each, as many in flight as a client
/// with a connection pool keeps busy without queueing in the API server's
/// priority and fairness.
const IN_FLIGHT: usize = 16;
const FIELD_MANAGER: &str = "bench-runtime";

pub struct Real {
    pub server: RealApiServer,
    client: kube::Client,
}

impl Real {
    /// Builds (if needed) and starts the harness, installs meshc's CRDs and
    /// waits until they are Established, and creates the namespaces.
    pub async fn start(system_ns: &str) -> Result<Real, String> {
        let server = tokio::task::spawn_blocking(|| RealApiServer::start("bench_runtime --modes kube-real"))
            .await
            .map_err(|e| format!("starting the API server harness: {e}"))?
            .ok_or("the real API server needs `go` (see docs/development.md)")?;
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/crds");
        kubectl(&server, &["apply", "--server-side", "-f", &crds.display().to_string()])?;
        let crd_names = ["crd/proxyconfigs.meshc.io", "crd/meshbundles.meshc.io"];
        kubectl(&server, &["wait", "--for=condition=Established", "--timeout=120s", crd_names[0], crd_names[1]])?;
        let client = server.client().await;
        for ns in [system_ns, NAMESPACE] {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            create(&client, &object).await?;
        }
        Ok(Real { server, client })
    }

    pub async fn create(&self, object: &Value) -> Result<(), String> {
        create(&self.client, object).await
    }

    /// Server-side applies every object of the build, [`IN_FLIGHT`] at a
    /// time; the first apply creates them.
    pub async fn apply(&self, signed: &Signed) -> Result<(), String> {
        let mut pending = signed.objects.iter();
        let mut running = JoinSet::new();
        loop {
            while running.len() < IN_FLIGHT {
                let Some(object) = pending.next() else { break };
                let (api, object) = (api_for(&self.client, object)?, object.clone());
                running.spawn(async move { apply_one(api, object).await });
            }
            match running.join_next().await {
                Some(done) => done.map_err(|e| format!("apply: {e}"))??,
                None => return Ok(()),
            }
        }
    }
}

async fn apply_one(api: Api<DynamicObject>, object: Value) -> Result<(), String> {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&object)).await.map_err(|e| format!("apply {name}: {e}"))?;
    Ok(())
}

async fn create(client: &kube::Client, object: &Value) -> Result<(), String> {
    let typed: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let name = typed.metadata.name.clone().unwrap_or_default();
    api_for(client, object)?.create(&PostParams::default(), &typed).await.map_err(|e| format!("create {name}: {e}"))?;
    Ok(())
}

/// The kinds the bench writes: (group, version, plural, namespaced).
fn api_for(client: &kube::Client, object: &Value) -> Result<Api<DynamicObject>, String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version, plural, namespaced) = match kind {
        "Namespace" => ("", "v1", "namespaces", false),
        "ConfigMap" => ("", "v1", "configmaps", true),
        "Secret" => ("", "v1", "secrets", true),
        "ProxyConfig" => ("meshc.io", "v1alpha1", "proxyconfigs", true),
        "MeshBundle" => ("meshc.io", "v1alpha1", "meshbundles", false),
        other => return Err(format!("the bench writes no {other}")),
    };
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let ns = object.pointer("/metadata/namespace").and_then(Value::as_str);
    Ok(match (namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (true, None) => return Err(format!("a {kind} without a namespace")),
        (false, _) => Api::all_with(client.clone(), &resource),
    })
}

fn kubectl(server: &RealApiServer, args: &[&str]) -> Result<(), String> {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .output()
        .map_err(|e| format!("kubectl: {e} (the real API server's setup needs kubectl)"))?;
    if !out.status.success() {
        return Err(format!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}
