//! The real kubectl against the fake, with the objects `meshc build` makes:
//! keeps the fake honest about what a client that is not kube-rs expects.

mod common;

use common::*;
use fake_apiserver::{FakeApiServer, Gvr};
use mesh_proxy_api::envelope::SigningKey;
use meshc::emit::{self, BuildInfo, write};
use meshc::load::Input;
use meshc::pipeline::{self, Options};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

/// kubectl on PATH. Outside CI a machine without it skips these tests with a
/// note; in CI (`CI` set, as `.ci/run` runs) its absence is a failure, so
/// the fake is never left unchecked against the real client.
/// kubectl keeps the fake API server honest; see mesh_test_support for the
/// policy when it is missing.
fn kubectl_binary(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.is_file());
    found.or_else(|| {
        mesh_test_support::missing(test, "kubectl is not on PATH", "apt-get install -y kubectl");
        None
    })
}

/// kubectl pointed at one fake server, with its own discovery cache.
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn new(bin: PathBuf, server: &FakeApiServer, dir: &Path) -> Self {
        let kubeconfig = dir.join("kubeconfig");
        server.kubeconfig(&kubeconfig).unwrap();
        Kubectl { bin, kubeconfig, cache: dir.join("kube-cache") }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).arg("--cache-dir").arg(&self.cache).args(args);
        cmd
    }

    /// Runs kubectl (off the async runtime, which serves the fake) and
    /// fails the test on a non-zero exit.
    async fn run(&self, args: &[&str]) -> String {
        let mut cmd = self.command(args);
        let out: Output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "kubectl {args:?} failed:\n{stdout}\n{stderr}");
        stdout.into_owned()
    }
}

/// `meshc build` of an example into `dir/dist`; the number of ProxyConfigs.
fn meshc_build(dir: &Path) -> usize {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies-examples/booksapp-rest");
    let outcome = pipeline::compile(&Input::Path(example), &Options::default()).expect("example compiles");
    let key = SigningKey::from_bytes(&[7; 32]);
    let info = BuildInfo { source_revision: "kubectl-test".into(), sequence: 1, error_findings: 0 };
    let built = emit::build(&outcome.configs, &key, &info).expect("example builds");
    write::write_dir(&dir.join("dist"), &built).expect("build writes");
    built.files.iter().filter(|(p, _)| p.starts_with(emit::CONFIGS_DIR)).count()
}

fn pc_gvr() -> Gvr {
    Gvr::new("meshc.io", "v1alpha1", "proxyconfigs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_watch_delete() {
    let Some(bin) = kubectl_binary("kubectl_apply_get_watch_delete") else { return };
    let server = server().await;
    let tmp = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(bin, &server, tmp.path());
    let configs = meshc_build(tmp.path());
    assert!(configs >= 3, "booksapp has several meshed workloads");
    let dist = tmp.path().join("dist");
    let (bundle, config_dir) = (dist.join("bundle.yaml"), dist.join("configs"));
    let (bundle, config_dir) = (bundle.to_str().unwrap(), config_dir.to_str().unwrap());

    // Client-side apply: creates, then finds nothing to change.
    let out = kubectl.run(&["apply", "-f", bundle, "-R", "-f", config_dir]).await;
    assert_eq!(out.matches(" created").count(), configs + 1, "{out}");
    let out = kubectl.run(&["apply", "-f", bundle, "-R", "-f", config_dir]).await;
    assert_eq!(out.matches(" unchanged").count(), configs + 1, "{out}");

    // What kubectl reads back is what meshc wrote.
    let listed: Value = serde_json::from_str(&kubectl.run(&["get", "proxyconfigs", "-A", "-o", "json"]).await).unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), configs);
    let first = &items[0];
    let (ns, name) = (first["metadata"]["namespace"].as_str().unwrap(), first["metadata"]["name"].as_str().unwrap());
    let file = std::fs::read_to_string(Path::new(config_dir).join(ns).join(format!("{name}.yaml"))).unwrap();
    let written: Value = serde_json::from_str(file.trim_start_matches("---").trim()).unwrap();
    assert_eq!(first["spec"], written["spec"]);
    assert!(first["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
    let table = kubectl.run(&["get", "meshbundles"]).await;
    assert!(table.contains("NAME") && table.contains("meshc"), "{table}");

    // Watch: kubectl sees a change made after it started watching.
    let mut watch = kubectl
        .command(&[
            "get",
            "proxyconfigs",
            "-n",
            ns,
            "--watch",
            "--output-watch-events",
            "-o",
            "jsonpath={.type} {.object.metadata.name} {.object.spec.digest}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tmp.path().join("watch.stderr")).unwrap())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let stderr_file = tmp.path().join("watch.stderr");
    let next_line = || {
        lines.recv_timeout(WAIT).unwrap_or_else(|_| {
            let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
            panic!("kubectl --watch printed nothing in time; stderr:\n{stderr}")
        })
    };
    let initial = next_line();
    assert!(initial.starts_with("ADDED "), "{initial}");
    let digest = written["spec"]["digest"].as_str().unwrap();
    server.store().modify(&pc_gvr(), Some(ns), name, |o| o["spec"]["digest"] = json!("sha256:tampered")).unwrap();
    let change = (0..configs + 1).map(|_| next_line()).find(|l| l.starts_with("MODIFIED")).expect("a MODIFIED line");
    assert_eq!(change, format!("MODIFIED {name} sha256:tampered"));

    // Server-side apply of the same files takes the change back.
    let out = kubectl.run(&["apply", "--server-side", "-f", bundle, "-R", "-f", config_dir]).await;
    assert_eq!(out.matches("serverside-applied").count(), configs + 1, "{out}");
    let back = (0..configs + 1).map(|_| next_line()).find(|l| l.starts_with("MODIFIED")).expect("a MODIFIED line");
    assert_eq!(back, format!("MODIFIED {name} {digest}"));

    // Delete, seen by the watch and gone from the store.
    let out = kubectl.run(&["delete", "proxyconfig", "-n", ns, name]).await;
    assert!(out.contains("deleted"), "{out}");
    let gone = (0..configs + 1).map(|_| next_line()).find(|l| l.starts_with("DELETED")).expect("a DELETED line");
    assert_eq!(gone, format!("DELETED {name} {digest}"));
    assert!(server.store().get(&pc_gvr(), Some(ns), name).is_err());
    let _ = watch.kill();
    let _ = watch.wait();
    let listed: Value = serde_json::from_str(&kubectl.run(&["get", "proxyconfigs", "-A", "-o", "json"]).await).unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), configs - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_builtin_kinds_and_patches() {
    let Some(bin) = kubectl_binary("kubectl_builtin_kinds_and_patches") else { return };
    let server = server().await;
    let tmp = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(bin, &server, tmp.path());
    let cm_file = tmp.path().join("cm.yaml");
    let cm = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keys\n  namespace: mesh-system\ndata:\n{data}")
    };
    std::fs::write(&cm_file, cm("  a: \"1\"\n  b: \"2\"\n")).unwrap();
    let path = cm_file.to_str().unwrap();
    kubectl.run(&["apply", "-f", path]).await;
    // Client-side apply of a built-in kind sends a strategic merge patch;
    // a key dropped from the file is removed.
    std::fs::write(&cm_file, cm("  a: \"3\"\n")).unwrap();
    let out = kubectl.run(&["apply", "-f", path]).await;
    assert!(out.contains("configured"), "{out}");
    let data = &server.store().get(&Gvr::core("configmaps"), Some("mesh-system"), "keys").unwrap()["data"];
    assert_eq!(*data, json!({"a": "3"}));

    kubectl
        .run(&[
            "patch",
            "configmap",
            "keys",
            "-n",
            "mesh-system",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/data/c","value":"4"}]"#,
        ])
        .await;
    kubectl
        .run(&["patch", "configmap", "keys", "-n", "mesh-system", "--type=merge", "-p", r#"{"data":{"a":null}}"#])
        .await;
    let got: Value =
        serde_json::from_str(&kubectl.run(&["get", "cm", "keys", "-n", "mesh-system", "-o", "json"]).await).unwrap();
    assert_eq!(got["data"], json!({"c": "4"}));

    // Imperative `kubectl create namespace …` sends protobuf, which the
    // fake refuses (415); objects from files go as JSON.
    let sa_file = tmp.path().join("sa.yaml");
    std::fs::write(&sa_file, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: booksapp\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: webapp\n  namespace: booksapp\n").unwrap();
    kubectl.run(&["create", "-f", sa_file.to_str().unwrap()]).await;
    kubectl.run(&["label", "sa", "webapp", "-n", "booksapp", "tier=front"]).await;
    let names = kubectl.run(&["get", "sa", "-A", "-l", "tier=front", "-o", "name"]).await;
    assert_eq!(names.trim(), "serviceaccount/webapp");
    let out = kubectl.run(&["delete", "sa", "webapp", "-n", "booksapp"]).await;
    assert!(out.contains("deleted"), "{out}");
    let mut missing = kubectl.command(&["get", "sa", "webapp", "-n", "booksapp"]);
    let out = tokio::task::spawn_blocking(move || missing.output()).await.unwrap().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"), "{}", String::from_utf8_lossy(&out.stderr));
}
