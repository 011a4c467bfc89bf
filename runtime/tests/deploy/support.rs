//! Loading runtime/deploy/ and the GitOps examples, and the harnesses that
//! evaluate their health checks.

use super::{deploy_dir, repo};
use kube::api::{Api, ListParams, WatchParams};
use mesh_runtime::Settings;
use mesh_runtime::kube::status::Conditions;
use mesh_runtime::store::{Rejection, Status};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::SystemTime;

/// Every document of a YAML file, parsed as Kubernetes reads YAML (meshc's parser).
pub fn load_yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = meshc::load::yaml::parse_documents(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    docs.iter().map(|d| d.to_json()).filter(|v| !v.is_null()).collect()
}

pub fn kustomization_resources() -> Vec<String> {
    let k = load_yaml(&deploy_dir().join("kustomization.yaml")).remove(0);
    let resources = k["resources"].as_array().expect("kustomization resources");
    resources.iter().map(|r| r.as_str().expect("a resource path").to_string()).collect()
}

/// `*.yaml` under `dir`, relative to `root`.
pub fn yaml_files(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let relative = path.strip_prefix(root).expect("under root");
            out.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Every object the kustomization applies, in its order.
pub fn deploy_objects() -> Vec<Value> {
    kustomization_resources().iter().flat_map(|f| load_yaml(&deploy_dir().join(f))).collect()
}

pub fn object(kind: &str, name: &str) -> Value {
    let found = deploy_objects().into_iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name);
    found.unwrap_or_else(|| panic!("runtime/deploy has no {kind} {name}"))
}

pub fn deployment() -> Value {
    object("Deployment", "mesh-runtime")
}

pub fn container() -> Value {
    let containers = deployment()["spec"]["template"]["spec"]["containers"].clone();
    let mut containers = containers.as_array().cloned().unwrap_or_default();
    assert_eq!(containers.len(), 1, "one container, mesh-runtime");
    containers.remove(0)
}

pub fn container_port(name: &str) -> u16 {
    let ports = container()["ports"].as_array().cloned().unwrap_or_default();
    let port = ports.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no container port {name}"));
    port["containerPort"].as_u64().and_then(|p| u16::try_from(p).ok()).expect("a port number")
}

/// The runtime's settings from the Deployment's arguments, parsed by the
/// runtime's own command line.
pub fn deployed_settings() -> Settings {
    let args = container()["args"].as_array().cloned().unwrap_or_default();
    let args: Vec<String> = args.iter().map(|a| a.as_str().expect("string args").to_string()).collect();
    let argv = std::iter::once("mesh-runtime".to_string()).chain(args);
    <Settings as clap::Parser>::try_parse_from(argv).unwrap_or_else(|e| panic!("the Deployment's args: {e}"))
}

/// `--trusted-keys`: the kind and name of the object holding the keys.
pub fn trusted_keys(settings: &Settings) -> (&'static str, String) {
    match settings.kube.trusted_keys.split_once('/') {
        Some(("configmap", name)) => ("ConfigMap", name.to_string()),
        Some(("secret", name)) => ("Secret", name.to_string()),
        _ => panic!("--trusted-keys {:?} is neither configmap/NAME nor secret/NAME", settings.kube.trusted_keys),
    }
}

pub fn allowed<T>(what: &str, r: Result<T, kube::Error>) {
    if let Err(e) = r {
        panic!("the runtime's ServiceAccount must be allowed to {what}: {e}");
    }
}

pub fn forbidden<T>(what: &str, r: Result<T, kube::Error>) {
    match r {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        Err(e) => panic!("{what}: expected 403 Forbidden, got {e}"),
        Ok(_) => panic!("the runtime's ServiceAccount must not be allowed to {what}"),
    }
}

pub async fn list_and_watch_all<K>(client: &kube::Client, what: &str)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    allowed(&format!("list {what} in all namespaces"), api.list(&ListParams::default()).await);
    allowed(&format!("watch {what} in all namespaces"), api.watch(&WatchParams::default().timeout(1), "0").await);
}

pub async fn list_and_watch_named<K>(client: &kube::Client, ns: &str, name: &str)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let fields = format!("metadata.name={name}");
    let what = format!("{} {ns}/{name}", K::kind(&()));
    allowed(&format!("list {what}"), api.list(&ListParams::default().fields(&fields)).await);
    let watch = WatchParams::default().fields(&fields).timeout(1);
    allowed(&format!("watch {what}"), api.watch(&watch, "0").await);
}

/// The status the runtime writes for an object it verified and serves,
/// made by the runtime's own status code.
pub fn accepted_status(generation: i64) -> Value {
    let status = Status::Accepted { digest: "sha256:00".into() };
    Conditions::of(&status).patch(generation, None, SystemTime::now())["status"].clone()
}

/// The status for an object it refused (the last good config stays served).
pub fn refused_status(generation: i64) -> Value {
    let status =
        Status::Rejected(Rejection::new("signature", "no signature verifies with a trusted key (keyid 3b5f…)"));
    Conditions::of(&status).patch(generation, None, SystemTime::now())["status"].clone()
}

pub fn with_status(kind: &str, generation: i64, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "meshc.io/v1alpha1", "kind": kind,
        "metadata": {"name": "web", "namespace": "booksapp", "generation": generation},
        "spec": {},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

struct AlwaysReady;

impl mesh_runtime::serve::Readiness for AlwaysReady {
    fn ready(&self) -> Result<String, String> {
        Ok("ready\n".into())
    }
}

/// The status codes the runtime's admin server answers for `paths`.
pub async fn admin_answers(paths: &[&str]) -> Vec<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let metrics = Arc::new(mesh_runtime::metrics::Metrics::new());
    tokio::spawn(mesh_runtime::serve::admin(listener, metrics, Arc::new(AlwaysReady), shutdown.clone()));
    let mut codes = Vec::new();
    for path in paths {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: runtime\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok());
        codes.push(code.unwrap_or_else(|| panic!("not an HTTP answer: {response:?}")));
    }
    shutdown.cancel();
    codes
}

/// One kind's Flux `healthCheckExprs` entry, compiled.
pub struct FluxCheck {
    current: cel::Program,
    failed: cel::Program,
}

impl FluxCheck {
    /// (current, failed) as Flux decides them: the object's top-level
    /// fields are the variables, and an expression that errors (a field
    /// not there yet) counts as not true, as Flux keeps waiting on it.
    pub fn eval(&self, object: &Value) -> (bool, bool) {
        let mut context = cel::Context::default();
        for (key, value) in object.as_object().into_iter().flatten() {
            context.add_variable_from_value(key.clone(), cel::to_value(value).expect("JSON converts to CEL"));
        }
        let truth = |p: &cel::Program| matches!(p.execute(&context), Ok(cel::Value::Bool(true)));
        (truth(&self.current), truth(&self.failed))
    }
}

/// The meshc.io entries of flux/policy-health.yaml, by kind.
pub fn flux_health_checks() -> Vec<(String, FluxCheck)> {
    let path = repo().join("policies-examples/gitops/flux/policy-health.yaml");
    let k = load_yaml(&path).remove(0);
    let exprs = k["spec"]["healthCheckExprs"].as_array().cloned().unwrap_or_default();
    let compile = |e: &Value, field: &str| {
        let text = e[field].as_str().unwrap_or_else(|| panic!("{field} expression missing"));
        cel::Program::compile(text).unwrap_or_else(|err| panic!("{field}: {text}: {err:?}"))
    };
    let checks: Vec<(String, FluxCheck)> = exprs
        .iter()
        .filter(|e| e["apiVersion"] == "meshc.io/v1alpha1")
        .map(|e| {
            let kind = e["kind"].as_str().expect("kind").to_string();
            (kind, FluxCheck { current: compile(e, "current"), failed: compile(e, "failed") })
        })
        .collect();
    let kinds: BTreeSet<&str> = checks.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["MeshBundle", "ProxyConfig"]), "both meshc.io kinds are checked");
    checks
}

/// The Argo CD health scripts of argocd/health-checks.yaml, by kind.
pub fn argocd_health_scripts() -> Vec<(String, String)> {
    let path = repo().join("policies-examples/gitops/argocd/health-checks.yaml");
    let cm = load_yaml(&path).remove(0);
    let prefix = "resource.customizations.health.meshc.io_";
    let scripts: Vec<(String, String)> = cm["data"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.as_str()?.to_string())))
        .collect();
    let kinds: BTreeSet<&str> = scripts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["MeshBundle", "ProxyConfig"]), "both meshc.io kinds are checked");
    scripts
}

/// Argo CD runs gopher-lua (5.1); the scripts use only 5.1 constructs, so
/// any of these runs them.
pub fn lua_interpreter(test: &str) -> Option<String> {
    mesh_test_support::require_one_of(test, &["lua5.4", "lua"], &["-v"], "apt-get install -y lua5.4")
}

/// Runs a health script as Argo CD does (the script body with the live
/// object as the global `obj`) and returns (status, message).
pub fn run_lua_health(lua: &str, script: &str, object: &Value) -> (String, String) {
    let harness = format!(
        "obj = {}\nlocal function health()\n{script}\nend\nlocal hs = health()\n\
         io.write(tostring(hs.status), \"\\n\", tostring(hs.message), \"\\n\")\n",
        lua_value(object)
    );
    let out = Command::new(lua).arg("-e").arg(&harness).output().expect("lua runs");
    assert!(out.status.success(), "lua failed: {}\n{harness}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let status = lines.next().unwrap_or_default().to_string();
    (status, lines.next().unwrap_or_default().to_string())
}

/// A JSON value as a Lua table constructor, as Argo CD hands objects to
/// Lua (nulls are absent fields).
fn lua_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().filter(|i| !i.is_null()).map(lua_value).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for byte in s.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            // Decimal escapes keep any byte (UTF-8 included) intact.
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}
