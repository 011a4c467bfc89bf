//! `meshc build` output applied to a real kube-apiserver (the harness of
//! `mesh_test_support::apiserver`) the way Flux and Argo CD apply it:
//! `kubectl apply --server-side`. The fake API server has no structural
//! schemas, so only a real one shows that the CRDs are accepted and
//! Established, that no field of a ProxyConfig or the MeshBundle is rejected
//! or silently pruned, and that reapplying an unchanged build is a no-op.

use mesh_test_support::apiserver::RealApiServer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn kubectl(server: &RealApiServer, args: &[&str]) -> Output {
    run(Command::new("kubectl").arg("--kubeconfig").arg(server.kubeconfig()).args(args))
}

fn meshc(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_meshc")).args(args).env("NO_COLOR", "1"))
}

/// Every file of the build, read back as the JSON documents meshc writes.
fn doc(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(text.trim_start_matches("---\n")).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `namespace/name` → the built ProxyConfig, from `configs/<namespace>/*.yaml`.
fn built_configs(dist: &Path) -> BTreeMap<String, Value> {
    let mut configs = BTreeMap::new();
    for ns in std::fs::read_dir(dist.join("configs")).unwrap().flatten() {
        for file in std::fs::read_dir(ns.path()).unwrap().flatten() {
            let config = doc(&file.path());
            let key = format!("{}/{}", config["metadata"]["namespace"].as_str().unwrap(), config["metadata"]["name"]);
            configs.insert(key.replace('"', ""), config);
        }
    }
    configs
}

fn get_json(server: &RealApiServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_slice(&kubectl(server, &all).stdout).unwrap()
}

/// `namespace/name` → (resourceVersion, spec) of every ProxyConfig, plus the
/// MeshBundle under `MeshBundle/meshc`.
fn served(server: &RealApiServer) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    for item in get_json(server, &["get", "proxyconfigs.meshc.io", "-A"])["items"].as_array().unwrap() {
        let key = format!(
            "{}/{}",
            item["metadata"]["namespace"].as_str().unwrap(),
            item["metadata"]["name"].as_str().unwrap()
        );
        out.insert(key, (item["metadata"]["resourceVersion"].as_str().unwrap().to_owned(), item["spec"].clone()));
    }
    let bundle = get_json(server, &["get", "meshbundles.meshc.io", "meshc"]);
    out.insert(
        "MeshBundle/meshc".into(),
        (bundle["metadata"]["resourceVersion"].as_str().unwrap().to_owned(), bundle["spec"].clone()),
    );
    out
}

#[test]
fn build_output_applies_server_side_to_a_real_apiserver_and_reapplies_as_a_no_op() {
    let test = "build_output_applies_server_side_to_a_real_apiserver_and_reapplies_as_a_no_op";
    if !mesh_test_support::require_tool(test, "kubectl", &["version", "--client"], "apt-get install -y kubectl") {
        return;
    }
    let Some(server) = RealApiServer::start(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (keys, dist) = (tmp.path().join("keys"), tmp.path().join("dist"));
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    meshc(&["keygen", "--out", &s(&keys), "--name", "meshc"]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/booksapp-rest");
    meshc(&["build", &s(&example), "--key", &s(&keys.join("meshc.key")), "--out", &s(&dist), "--revision", "r1"]);

    // CRDs first, as Flux orders them: custom resources of a CRD that is not
    // Established yet are refused.
    kubectl(&server, &["apply", "--server-side", "-f", &s(&dist.join("crds.yaml"))]);
    kubectl(
        &server,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/proxyconfigs.meshc.io",
            "crd/meshbundles.meshc.io",
        ],
    );
    let configs = built_configs(&dist);
    assert!(!configs.is_empty(), "the example builds ProxyConfigs");
    let namespaces: std::collections::BTreeSet<&str> =
        configs.values().map(|c| c["metadata"]["namespace"].as_str().unwrap()).collect();
    for ns in namespaces {
        kubectl(&server, &["create", "namespace", ns]);
    }

    kubectl(&server, &["apply", "--server-side", "-k", &s(&dist)]);
    let first = served(&server);
    // Every ProxyConfig is there with its spec exactly as built: a field the
    // structural schema does not declare would have been pruned without an
    // error, and the signed envelope would no longer match its clear fields.
    assert_eq!(first.len(), configs.len() + 1, "served: {:?}", first.keys().collect::<Vec<_>>());
    for (key, config) in &configs {
        let (_, spec) = first.get(key).unwrap_or_else(|| panic!("{key} was not created"));
        assert_eq!(spec, &config["spec"], "{key}: the server changed the spec");
    }
    let bundle = doc(&dist.join("bundle.yaml"));
    assert_eq!(first["MeshBundle/meshc"].1, bundle["spec"], "the server changed the MeshBundle's spec");

    // Server-side apply of the same objects by the same field manager writes
    // nothing: every resourceVersion stays where it was.
    kubectl(&server, &["apply", "--server-side", "-k", &s(&dist)]);
    let second = served(&server);
    for (key, (rv, _)) in &first {
        assert_eq!(&second[key].0, rv, "{key}: the second apply of an unchanged build wrote it");
    }
}
