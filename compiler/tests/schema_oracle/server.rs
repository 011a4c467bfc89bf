//! The server's side: the reference CRDs installed, and one server-side
//! dry-run apply per object (`dryRun=All`, so nothing is stored and every
//! object is answered on its own), many in flight.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use mesh_test_support::apiserver::RealApiServer;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The reference CRDs (Helm templates: the lines holding `{{ ... }}` are
/// chart metadata and conditionals, dropped).
pub fn crd_texts() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let kept: Vec<&str> = text.lines().filter(|l| !l.contains("{{")).collect();
            (p, kept.join("\n") + "\n")
        })
        .collect()
}

fn kubectl(server: &RealApiServer, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(server.kubeconfig()).args(args);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes()).unwrap_or_else(|e| panic!("kubectl stdin: {e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    assert!(out.status.success(), "kubectl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Installs every reference CRD and waits until each is Established (custom
/// resources of a CRD that is not are refused).
pub fn install_crds(server: &RealApiServer) {
    for (path, text) in crd_texts() {
        eprintln!("installing {}", path.display());
        kubectl(server, &["apply", "--server-side", "-f", "-"], Some(&text));
    }
    kubectl(server, &["wait", "--for=condition=Established", "--timeout=120s", "crd", "--all"], None);
}

pub fn create_namespaces<'a>(server: &RealApiServer, names: impl IntoIterator<Item = &'a str>) {
    // A name that is not an RFC 1123 label (an unsubstituted `${VAR}`) is no
    // namespace; its objects are rejected, as in a cluster.
    let label = |ns: &str| {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        ns.len() <= 63 && ns.starts_with(ok) && ns.ends_with(ok) && ns.chars().all(|c| ok(c) || c == '-')
    };
    let docs: Vec<String> = names
        .into_iter()
        .filter(|ns| label(ns))
        .map(|ns| format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"))
        .collect();
    kubectl(server, &["apply", "--server-side", "-f", "-"], Some(&docs.join("\n---\n")));
}

/// How `fieldValidation` is set on the apply: `Strict` is what `kubectl
/// apply` (client-side or `--server-side`) and Argo CD send; Flux's
/// kustomize-controller sends none, which the server takes as `Warn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    Strict,
    ServerDefault,
}

/// The server's answer on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    Rejected(String),
    /// No CRD serves this apiVersion and kind: not compared.
    UnknownKind,
}

pub struct Applier {
    client: kube::Client,
    discovery: Arc<Discovery>,
}

impl Applier {
    pub async fn new(server: &RealApiServer) -> Applier {
        let client = server.client().await;
        let discovery = Discovery::new(client.clone()).run().await.unwrap_or_else(|e| panic!("discovery: {e}"));
        Applier { client, discovery: Arc::new(discovery) }
    }

    /// Dry-run applies every object, sixteen requests in flight; answers in
    /// input order.
    pub async fn apply_all(&self, objects: &[&Value], mode: Validation) -> Vec<Answer> {
        let mut answers = vec![Answer::UnknownKind; objects.len()];
        for (chunk_no, chunk) in objects.chunks(16).enumerate() {
            let mut set = tokio::task::JoinSet::new();
            for (i, object) in chunk.iter().enumerate() {
                let (client, discovery, object) = (self.client.clone(), self.discovery.clone(), (*object).clone());
                set.spawn(async move { (i, apply_one(client, &discovery, object, mode).await) });
            }
            while let Some(done) = set.join_next().await {
                let (i, answer) = done.unwrap_or_else(|e| panic!("apply task: {e}"));
                answers[chunk_no * 16 + i] = answer;
            }
        }
        answers
    }
}

const LINKERD_GROUPS: &[&str] = &["policy.linkerd.io", "linkerd.io", "workload.linkerd.io", "multicluster.linkerd.io"];

async fn apply_one(client: kube::Client, discovery: &Discovery, object: Value, mode: Validation) -> Answer {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let Some((resource, caps)) = discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, kind)) else {
        // Every kind of Linkerd's own groups is installed: another kind there
        // does not exist, and kubectl refuses it ("no matches for kind").
        if LINKERD_GROUPS.contains(&group) {
            return Answer::Rejected(format!("no matches for kind \"{kind}\" in version \"{api_version}\""));
        }
        return Answer::UnknownKind;
    };
    // kubectl refuses an object without a name before it reaches the server.
    let Some(name) = object["metadata"]["name"].as_str().filter(|n| !n.is_empty()) else {
        return Answer::Rejected("kubectl: resource name may not be empty".into());
    };
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client, namespace, &resource),
        Scope::Cluster => Api::all_with(client, &resource),
    };
    let params = PatchParams::apply("meshc-schema-oracle").dry_run();
    let params = match mode {
        Validation::Strict => params.validation_strict(),
        Validation::ServerDefault => params,
    };
    match api.patch(name, &params, &Patch::Apply(&object)).await {
        Ok(_) => Answer::Accepted,
        Err(kube::Error::Api(status)) => Answer::Rejected(status.message.clone()),
        Err(e) => Answer::Rejected(format!("client: {e}")),
    }
}

/// `(group, kind, [(served version, openAPIV3Schema)])`.
pub type CrdSchema = (String, String, Vec<(String, Value)>);

/// The served versions of every installed CRD kind, and each version's
/// `openAPIV3Schema`, for the mutation generator.
pub fn crd_schemas() -> Vec<CrdSchema> {
    let mut out = Vec::new();
    for (path, text) in crd_texts() {
        let input = meshc::load::Input::Text { name: path.display().to_string(), text };
        let loaded = meshc::load::load(&input).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for raw in loaded.objects.iter().filter(|r| r.kind == "CustomResourceDefinition") {
            let crd = raw.node.to_json();
            let group = crd["spec"]["group"].as_str().unwrap_or_default().to_owned();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default().to_owned();
            let versions = crd["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["served"] == Value::Bool(true))
                .map(|v| {
                    let name = v["name"].as_str().unwrap_or_default().to_owned();
                    (name, v["schema"]["openAPIV3Schema"].clone())
                })
                .collect();
            out.push((group, kind, versions));
        }
    }
    out
}
