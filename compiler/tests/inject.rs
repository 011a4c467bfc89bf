//! `meshc inject` agrees with `meshc check`: checking the injected manifests
//! gives the same findings, workloads, configs and MeshTest verdicts as
//! checking the annotated ones, over the examples and generated
//! repositories; and injecting twice changes nothing.

#[path = "../benches/synth/mod.rs"]
#[allow(dead_code)]
mod synth;

use meshc::inject::documents::{Namespaces, Options, inject_text};
use meshc::load::Input;
use meshc::pipeline::{self, Outcome};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples")
}

/// Every file under `dir`, relative, sorted (hidden directories skipped).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let name = rel.join(entry.file_name());
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type().unwrap().is_dir() { stack.push(name) } else { out.push(name) }
        }
    }
    out.sort();
    out
}

fn is_manifest(p: &Path) -> bool {
    let name = p.to_string_lossy();
    (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")) && !name.ends_with("meshc.yaml")
}

fn check(dir: &Path) -> Outcome {
    pipeline::check(&Input::Path(dir.to_path_buf()), &pipeline::Options::default()).unwrap()
}

/// `meshc inject` on every manifest of `src`, written to the same names
/// under `dst`; other files copied. Returns how many documents changed.
fn inject_tree(src: &Path, dst: &Path) -> usize {
    let outcome = check(src);
    let (options, mut namespaces): (Options, Namespaces) =
        Options::from_settings(&outcome.resolved.settings, BTreeMap::new());
    let all = files(src);
    let texts: Vec<(PathBuf, String)> =
        all.iter().map(|p| (p.clone(), std::fs::read_to_string(src.join(p)).unwrap_or_default())).collect();
    for (p, text) in &texts {
        if is_manifest(p) {
            namespaces.collect(text);
        }
    }
    let mut changed = 0;
    for (p, text) in &texts {
        let out = if is_manifest(p) {
            let (out, _) = inject_text(text, &namespaces, &options);
            changed += usize::from(&out != text);
            out
        } else {
            text.clone()
        };
        std::fs::create_dir_all(dst.join(p).parent().unwrap()).unwrap();
        std::fs::write(dst.join(p), out).unwrap();
    }
    changed
}

fn copy_tree(src: &Path, dst: &Path) {
    for p in files(src) {
        std::fs::create_dir_all(dst.join(&p).parent().unwrap()).unwrap();
        std::fs::copy(src.join(&p), dst.join(&p)).unwrap();
    }
}

/// What `meshc check` concludes, without file positions (injection moves
/// lines): in a multicluster repository, each cluster's workloads too.
fn conclusions(o: &Outcome) -> Vec<String> {
    let mut out: Vec<String> = o
        .findings
        .iter()
        .map(|f| format!("finding {} {:?} {} {:?}", f.code, f.severity, f.message, f.resource))
        .collect();
    workload_conclusions(o, "", &mut out);
    for c in o.multicluster.iter().flat_map(|m| &m.clusters) {
        workload_conclusions(&c.outcome, &format!("{}/", c.name), &mut out);
    }
    out.extend(o.tests.iter().map(|t| format!("test {} {} {} {}", t.test, t.name, t.passed, t.message)));
    out.sort();
    out
}

fn workload_conclusions(o: &Outcome, cluster: &str, out: &mut Vec<String>) {
    for (w, config) in o.resolved.workloads.iter().zip(&o.configs) {
        let ports: Vec<_> = w.ports.iter().filter(|p| !p.injected).map(|p| (&p.name, p.port)).collect();
        out.push(format!(
            "workload {cluster}{}/{}/{} meshed={:?} identity={} labels={:?} ports={ports:?}",
            w.kind, w.namespace, w.name, w.meshed, w.identity, w.labels
        ));
        out.push(format!("config {cluster}{}/{}: {}", w.namespace, w.name, serde_json::to_string(config).unwrap()));
    }
}

/// The examples' repository roots: an example directory, or, when it only
/// groups repositories (emojivoto-multicluster's two modes), each of its
/// subdirectories that holds a `meshc.yaml`.
fn example_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let nested: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("meshc.yaml").is_file())
            .collect();
        if dir.join("meshc.yaml").is_file() || nested.is_empty() {
            roots.push(dir);
        } else {
            roots.extend(nested);
        }
    }
    roots.sort();
    roots
}

fn assert_agrees(src: &Path) {
    // Both sides are checked from a copy, so paths that reach out of the
    // directory (an Argo CD Application's) resolve, or not, alike.
    let (annotated, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_tree(src, annotated.path());
    let changed = inject_tree(src, dst.path());
    let (before, after) = (conclusions(&check(annotated.path())), conclusions(&check(dst.path())));
    let only_before: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
    let only_after: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(
        only_before.is_empty() && only_after.is_empty(),
        "{}: check of the injected tree differs\n-- only before:\n{only_before:#?}\n-- only after:\n{only_after:#?}",
        src.display()
    );
    assert!(changed > 0 || before.iter().all(|l| !l.contains("meshed=Ok")), "{}: nothing was injected", src.display());
    // Injecting the injected tree changes nothing, byte for byte.
    let again = tempfile::tempdir().unwrap();
    assert_eq!(inject_tree(dst.path(), again.path()), 0, "{}: a second injection changed files", src.display());
}

#[test]
fn check_of_injected_examples_agrees_with_check_of_annotated_examples() {
    let roots = example_roots();
    assert!(roots.iter().any(|r| r.ends_with("emojivoto-multicluster/gateway")), "{roots:?}");
    for dir in roots {
        assert_agrees(&dir);
    }
}

#[test]
fn check_of_injected_generated_repositories_agrees() {
    for shape in [synth::Shape::Apps, synth::Shape::Wide] {
        let repo = tempfile::tempdir().unwrap();
        synth::generate(repo.path(), &synth::Config::shaped(shape, 100)).unwrap();
        assert_agrees(repo.path());
    }
}

/// The binary on stdin: a List's items are meshed, a refused template is
/// written back with its reason on stderr, flags override the template's
/// annotation and are written onto it.
#[test]
fn meshc_inject_reads_stdin_lists_and_flags() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let input = r#"# kept as it is
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: shop}
data: {a: "1"}
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: shop}
    spec:
      template:
        metadata:
          annotations: {linkerd.io/inject: enabled, config.linkerd.io/proxy-log-level: warn}
        spec:
          containers: [{name: web, image: web}]
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: agent, namespace: shop}
    spec:
      template:
        metadata:
          annotations: {linkerd.io/inject: enabled}
        spec:
          hostNetwork: true
          containers: [{name: agent, image: agent}]
"#;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(["inject", "-", "--proxy-log-level", "debug"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    // The first document is not a pod template: byte for byte, comment included.
    assert!(
        stdout.starts_with("# kept as it is\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n"),
        "{stdout}"
    );
    let docs = meshc::load::yaml::parse_documents(&stdout).unwrap();
    let list = docs[1].to_json();
    let web = &list["items"][0]["spec"]["template"];
    let names: Vec<&str> =
        web["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mesh-proxy", "web"], "awaited: the proxy first");
    assert_eq!(web["spec"]["initContainers"][0]["name"], "mesh-proxy-init");
    // The flag wins over the annotation, in the container and on the template.
    assert_eq!(web["metadata"]["annotations"]["config.linkerd.io/proxy-log-level"], "debug");
    let env = web["spec"]["containers"][0]["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e["name"] == "MESH_PROXY_LOG" && e["value"] == "debug"), "{env:?}");
    // Every address of the pod (both of a dual-stack pod's) is its own, as
    // Linkerd's injector gives `LINKERD2_PROXY_INBOUND_IPS` from `status.podIPs`.
    let pod_ips = env.iter().find(|e| e["name"] == "MESH_POD_IPS").expect("MESH_POD_IPS is set");
    assert_eq!(pod_ips["valueFrom"]["fieldRef"]["fieldPath"], "status.podIPs", "{env:?}");
    let args = web["spec"]["containers"][0]["args"].as_array().unwrap();
    let at = args.iter().position(|a| a == "--pod-ip").expect("--pod-ip is passed");
    assert_eq!(args[at + 1], "$(MESH_POD_IPS)", "{args:?}");
    let agent = &list["items"][1]["spec"]["template"];
    assert_eq!(agent["spec"]["containers"].as_array().unwrap().len(), 1, "the refused template is unchanged");
    assert!(stderr.contains("DaemonSet/shop/agent: cannot be injected: it uses hostNetwork"), "{stderr}");
}
