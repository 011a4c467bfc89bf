//! `meshc build` of a multicluster repository writes each source cluster's
//! mesh-runtime links file (`OUT/<cluster>/links.json`), signed with the
//! build's key; its content is what the Link, the target cluster's exports
//! and meshc.yaml's `runtime:` say (docs/multicluster.md, "Build").

use base64ct::{Base64, Encoding};
use mesh_proxy_api::envelope::{self, LINKS_PAYLOAD_TYPE};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn meshc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshc")).args(args).env("NO_COLOR", "1").output().expect("meshc runs")
}

fn example(mode: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/emojivoto-multicluster").join(mode)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds `repo` into `dir/dist` with a fresh key; returns (the build's stderr, the public key's path).
fn build(repo: &Path, dir: &Path) -> (Output, String) {
    let d = dir.display().to_string();
    let keygen = meshc(&["keygen", "--out", &d, "--name", "mc"]);
    assert_eq!(keygen.status.code(), Some(0), "{}", stderr(&keygen));
    let out = format!("{d}/dist");
    let key = format!("{d}/mc.key");
    let built = meshc(&["build", &repo.display().to_string(), "--key", &key, "--out", &out, "--revision", "r1"]);
    (built, format!("{d}/mc.pub"))
}

/// The links document east's links.json signs, opened with the build's public key.
fn opened(dir: &Path, public: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("dist/east/links.json")).expect("east's links.json");
    let env: envelope::Envelope = serde_json::from_str(&text).expect("a DSSE envelope");
    let key = envelope::verifying_key_from_pem(&std::fs::read_to_string(public).unwrap()).unwrap();
    let payload = envelope::verified_payload(&env, LINKS_PAYLOAD_TYPE, &[key]).expect("signed by the build's key");
    serde_json::from_slice(&payload).unwrap()
}

/// The chapter 12 example in gateway mode: east's Link (east/link.yaml)
/// names west's gateway at 203.0.113.20, port "4143", identity
/// linkerd-gateway.linkerd-multicluster…; west labels emoji-svc and
/// voting-svc `mirror.linkerd.io/exported: "true"`, which the Link's
/// `selector` selects (gateway mode), each with the one port 8080;
/// meshc.yaml gives west's runtime's URL, and its identity defaults to
/// mesh-runtime in mesh-system under west's identity domain (linkerd,
/// cluster.local). West holds no Link: no links file.
#[test]
fn gateway_links_file_names_the_gateway_the_exports_and_the_remote_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let (built, public) = build(&example("gateway"), dir.path());
    assert_eq!(built.status.code(), Some(0), "{}", stderr(&built));
    assert!(stderr(&built).contains("cluster east: wrote 2 ProxyConfig(s), its links file"), "{}", stderr(&built));
    let expected = json!({"links": [{
        "targetCluster": "west",
        "gateway": {"addresses": ["203.0.113.20"], "port": 4143,
                    "identity": "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"},
        "remote": {"runtime": "https://10.20.255.1:8443",
                   "runtimeIdentity": "mesh-runtime.mesh-system.serviceaccount.identity.linkerd.cluster.local"},
        "services": [
            {"namespace": "emojivoto", "name": "emoji-svc", "mode": "gateway", "ports": [8080]},
            {"namespace": "emojivoto", "name": "voting-svc", "mode": "gateway", "ports": [8080]}]}]});
    assert_eq!(opened(dir.path(), &public), expected);
    assert!(!dir.path().join("dist/west/links.json").exists(), "west links to nothing");
    // verify-bundle checks the links file's signature as the runtime does.
    let east = dir.path().join("dist/east").display().to_string();
    let verified = meshc(&["verify-bundle", &east, "--pubkey", &public]);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    let path = dir.path().join("dist/east/links.json");
    let mut env: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let doc = json!({"links": [{"targetCluster": "west", "gateway": {"addresses": ["192.0.2.66"], "port": 4143,
        "identity": "attacker.example"}, "services": []}]});
    env["payload"] = json!(Base64::encode_string(&serde_json::to_vec(&doc).unwrap()));
    std::fs::write(&path, env.to_string()).unwrap();
    let tampered = meshc(&["verify-bundle", &east, "--pubkey", &public]);
    assert_eq!(tampered.status.code(), Some(1), "{}", stderr(&tampered));
    assert!(stderr(&tampered).contains("links.json"), "{}", stderr(&tampered));
}

/// Pod-to-pod: west labels both Services `remote-discovery`, which the
/// Link's `remoteDiscoverySelector` selects: mode `remote-discovery`, whose
/// endpoints come from west's runtime.
#[test]
fn pod_to_pod_links_file_marks_remote_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let (built, public) = build(&example("pod-to-pod"), dir.path());
    assert_eq!(built.status.code(), Some(0), "{}", stderr(&built));
    let doc = opened(dir.path(), &public);
    let modes: Vec<&str> =
        doc["links"][0]["services"].as_array().unwrap().iter().map(|s| s["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["remote-discovery", "remote-discovery"], "{doc}");
    assert_eq!(doc["links"][0]["remote"]["runtime"], "https://10.20.255.1:8443");
}

/// The pod-to-pod example with west's `runtime:` replaced by `runtime`.
fn pod_to_pod_with_runtime(dir: &Path, runtime: &str) -> PathBuf {
    let repo = dir.join("repo");
    mesh_test_support::copy_tree(&example("pod-to-pod"), &repo);
    let settings = std::fs::read_to_string(repo.join("meshc.yaml")).unwrap();
    let start = settings.find("    runtime:\n").expect("west's runtime entry");
    std::fs::write(repo.join("meshc.yaml"), format!("{}{runtime}", &settings[..start])).unwrap();
    repo
}

/// A `runtime:` meshc cannot use is a finding at west's entry; without
/// one, pod-to-pod exports have no endpoints source, so the build leaves
/// them out of east's links file and says why.
#[test]
fn a_bad_or_missing_runtime_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let repo = pod_to_pod_with_runtime(dir.path(), "    runtime:\n      url: http://10.20.255.1:8443\n");
    let out = meshc(&["check", &repo.display().to_string(), "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "multicluster-invalid")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(finding["message"].as_str().unwrap().contains("is not https://HOST:PORT"), "{finding}");
    assert_eq!(finding["file"], "meshc.yaml", "{finding}");

    let dir = tempfile::tempdir().unwrap();
    let repo = pod_to_pod_with_runtime(dir.path(), "");
    let (built, public) = build(&repo, dir.path());
    assert_eq!(built.status.code(), Some(0), "{}", stderr(&built));
    assert!(stderr(&built).contains("emojivoto/emoji-svc (pod-to-pod) left out"), "{}", stderr(&built));
    assert_eq!(opened(dir.path(), &public), json!({"links": []}));
}
