//! The real `meshc` binary: exit codes, formats, stdin, suppression.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn meshc(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meshc runs");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn examples(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples").join(name).display().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect()
}

const DANGLING: &str = "apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  targetRef: {kind: Namespace, name: shop}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-idenity}
";

#[test]
fn clean_example_exits_zero() {
    let out = meshc(&["check", &examples("emojivoto-grpc"), "--fail-on", "info"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 errors, 0 warnings, 0 infos"), "{text}");
}

#[test]
fn errors_exit_one_and_json_has_the_documented_shape() {
    let out = meshc(&["check", &examples("common-mistakes"), "--format", "json"], None);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["version"], 1);
    let first = &report["findings"][0];
    for key in ["code", "severity", "message", "resource", "file", "line"] {
        assert!(first.get(key).is_some(), "finding lacks {key}: {first}");
    }
    assert!(!first["file"].as_str().unwrap().starts_with('/'), "file is relative to the path given");
    let summary = &report["summary"];
    assert_eq!(
        summary["errors"].as_u64().unwrap() as usize,
        codes(&report).len()
            - summary["warnings"].as_u64().unwrap() as usize
            - summary["infos"].as_u64().unwrap() as usize
    );
    assert!(summary["workloads"].as_u64().unwrap() >= 2);
}

#[test]
fn stdin_is_read_with_dash() {
    let out = meshc(&["check", "-", "--format", "json"], Some(DANGLING));
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    // The namespace has no Server, so the Namespace target is inert as well (line 5).
    assert_eq!(codes(&report), ["inert-policy", "unresolved-reference"]);
    let f = &report["findings"][1];
    assert_eq!((f["file"].as_str(), f["line"].as_u64()), (Some("<stdin>"), Some(7)));
}

#[test]
fn fail_on_and_ignore_and_annotation_suppress() {
    // A Server that selects no pod: one warning, nothing else.
    let warn_only = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: 8080}
";
    assert_eq!(meshc(&["check", "-"], Some(warn_only)).status.code(), Some(0), "warnings pass by default");
    assert_eq!(meshc(&["check", "-", "--fail-on", "warning"], Some(warn_only)).status.code(), Some(1));
    let ignored = meshc(&["check", "-", "--fail-on", "info", "--ignore", "server-selects-nothing"], Some(warn_only));
    assert_eq!(ignored.status.code(), Some(0), "{}", String::from_utf8_lossy(&ignored.stdout));
    let annotated = warn_only
        .replace("namespace: shop}", "namespace: shop, annotations: {meshc.io/ignore: 'server-selects-nothing'}}");
    assert_eq!(meshc(&["check", "-", "--fail-on", "info"], Some(&annotated)).status.code(), Some(0));
}

#[test]
fn human_output_shows_the_yaml_line_and_hint() {
    let out = meshc(&["check", "-"], Some(DANGLING));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unresolved-reference"), "{text}");
    assert!(text.contains("name: web-idenity"), "snippet of the offending line: {text}");
    assert!(text.contains("1 error, 1 warning,"), "{text}");
}

#[test]
fn usage_and_input_errors_exit_two() {
    assert_eq!(meshc(&["check", "/definitely/not/here"], None).status.code(), Some(2));
    assert_eq!(meshc(&["check", ".", "--ignore", "no-such-code"], None).status.code(), Some(2));
    assert_eq!(meshc(&["check", ".", "--format", "xml"], None).status.code(), Some(2));
    assert_eq!(meshc(&["frobnicate"], None).status.code(), Some(2));
    let empty = tempfile::tempdir().unwrap();
    let out = meshc(&["check", &empty.path().display().to_string()], None);
    assert_eq!(out.status.code(), Some(2), "a path with no manifests is a usage error, not a clean pass");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifests"));
}

#[test]
fn explain_prints_catalogue_entries() {
    let out = meshc(&["explain", "probe-denied"], None);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("probe-denied (error)") && text.contains("meshc.io/ignore: probe-denied"), "{text}");
    let list = String::from_utf8_lossy(&meshc(&["explain"], None).stdout).into_owned();
    assert!(list.lines().count() >= 20 && list.contains("route-unauthorized"));
    assert_eq!(meshc(&["explain", "nope"], None).status.code(), Some(2));
}

#[test]
fn output_is_deterministic() {
    let a = meshc(&["check", &examples("common-mistakes"), "--format", "json"], None);
    let b = meshc(&["check", &examples("common-mistakes"), "--format", "json"], None);
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn a_single_file_and_settings_flags_work() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /ready, port: http}}
",
    )
    .unwrap();
    let path = file.display().to_string();
    assert_eq!(meshc(&["check", &path, "--fail-on", "info"], None).status.code(), Some(0));
    // Under `deny`, the probe route still authorizes kubelet (probe networks): still clean.
    assert_eq!(
        meshc(&["check", &path, "--default-inbound-policy", "deny", "--fail-on", "info"], None).status.code(),
        Some(0)
    );
    // With no probe networks, probes under `deny` are refused.
    let out =
        meshc(&["check", &path, "--default-inbound-policy", "deny", "--probe-networks", "", "--format", "json"], None);
    assert_eq!(
        codes(&json(&out)).iter().filter(|c| *c == "probe-denied").count(),
        3,
        "app probe + proxy /live and /ready"
    );
}

#[test]
fn show_config_prints_what_the_proxy_enforces() {
    let repo = examples("booksapp-rest");
    let out = meshc(&["show-config", &repo, "deploy/booksapp/authors"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    // booksapp's namespace default is deny; port 7001 is Server authors-service with its routes.
    assert!(text.contains("port 7001\n  server server/authors-service  protocol HTTP/1"), "{text}");
    assert!(text.contains("any other port\n  server default:deny"), "{text}");
    assert!(text.contains("route httproute.policy.linkerd.io/authors-write"), "{text}");

    let json = meshc(&["show-config", &repo, "booksapp/authors", "--format", "json"], None);
    let config: mesh_proxy_api::ProxyConfig = serde_json::from_slice(&json.stdout).expect("the JSON is a ProxyConfig");
    assert_eq!(config.identity, "authors.booksapp.serviceaccount.identity.linkerd.cluster.local");
    let port = config.inbound.ports.iter().find(|p| p.port == 7001).expect("port 7001 has a Server");
    assert_eq!(port.server.meta.name, "authors-service");

    let missing = meshc(&["show-config", &repo, "sts/booksapp/authors"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("Deployment/booksapp/authors"), "suggests what exists");
}

/// TCPRoute and TLSRoute splits appear per Service port with their shares
/// (tests/golden/outbound-tcp-tls-routes: db 80/20 by TCPRoute, api by SNI).
#[test]
fn show_config_prints_tcp_and_tls_routes() {
    let repo = format!("{}/../tests/golden/outbound-tcp-tls-routes/input", env!("CARGO_MANIFEST_DIR"));
    let out = meshc(&["show-config", &repo, "deploy/shop/web"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("port 5432 opaque: every connection routed by its TCPRoute"), "{text}");
    assert!(text.contains("every connection → shop/db:5432 80%, shop/db-v2:5432 20%"), "{text}");
    assert!(text.contains("port 443 detect: TLS connections routed by SNI"), "{text}");
    assert!(text.contains("SNI api.example.com → shop/api:443 75%, shop/api-v2:443 25%"), "{text}");
    assert!(text.contains("SNI *.example.com → shop/api:443 100%"), "{text}");
}

#[test]
fn ci_formats_point_at_repository_paths() {
    let repo = examples("common-mistakes");
    let gh = meshc(&["check", &repo, "--format", "github"], None);
    assert_eq!(gh.status.code(), Some(1));
    let text = String::from_utf8_lossy(&gh.stdout);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("::error file="), "{first}");
    assert!(first.contains("common-mistakes/frontend.yaml,line=55,col=15,title=probe-denied::"), "{first}");
    assert_eq!(text.lines().count(), 10, "one annotation per finding (9 mistakes, probe-denied twice): {text}");

    let sarif = meshc(&["check", &repo, "--format", "sarif"], None);
    let log: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    let uri = results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap();
    assert!(uri.ends_with("common-mistakes/frontend.yaml"), "{uri}");
    let rules: Vec<&str> = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"probe-denied") && rules.contains(&"server-selects-nothing"), "{rules:?}");
}

#[test]
fn query_commands_reject_bad_references_with_usage_errors() {
    let books = examples("booksapp-rest");
    let cases: &[(&[&str], &str)] = &[
        (
            &["reach", &books, "--from", "deploy/booksapp/nope", "--to", "deploy/booksapp/authors:service"],
            "no workload",
        ),
        (&["reach", &books, "--from", "kubelet", "--to", "deploy/booksapp/authors:grpc"], "no port named `grpc`"),
        (&["reach", &books, "--from", "ip:10.0.0.300", "--to", "deploy/booksapp/authors:7001"], "not an IP address"),
        (
            &["reach", &books, "--from", "kubelet", "--to", "deploy/booksapp/authors:7001", "--path", "x"],
            "must start with /",
        ),
        (&["who-can-reach", &books, "sts/booksapp/authors"], "no workload"),
        (&["matrix", &books, "--namespace", "nowhere"], "namespace nowhere has no workloads"),
    ];
    for (args, message) in cases {
        let out = meshc(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn reach_json_has_the_documented_shape() {
    let books = examples("booksapp-rest");
    let args = [
        "reach",
        &books,
        "--from",
        "deploy/booksapp/webapp",
        "--to",
        "deploy/booksapp/authors:service",
        "--method",
        "DELETE",
        "--path",
        "/authors/1.json",
        "--format",
        "json",
    ];
    let out = meshc(&args, None);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["version"], 1);
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["status"], serde_json::Value::Null);
    assert_eq!(v["target"]["port"], 7001);
    assert_eq!(v["route"]["name"], "authors-write");
    assert_eq!(v["authorization"]["name"], "authors-write-webapp");
    let steps: Vec<&str> = v["proof"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["target", "client", "server", "route", "authorization", "authentication"]);
    assert!(
        v["proof"].as_array().unwrap().iter().filter(|s| s["step"] != "client").all(|s| s["line"].as_u64() > Some(0))
    );
}

#[test]
fn every_command_ends_quietly_when_its_reader_has_gone() {
    // `meshc reach … | head`: the reader stopped before meshc wrote. The read
    // end is closed before meshc starts, so every write meets EPIPE; before,
    // println! panicked ("failed printing to stdout") with exit 101.
    let books = examples("booksapp-rest");
    let runs: [&[&str]; 4] = [
        &["reach", &books, "--from", "deploy/booksapp/webapp", "--to", "deploy/booksapp/authors:service"],
        &["show-config", &books, "deploy/booksapp/authors"],
        &["explain"],
        &["who-can-reach", &books, "deploy/booksapp/authors:service"],
    ];
    for args in runs {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_meshc")).args(args).stdout(writer).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn matrix_json_streams_a_closed_pipe_quietly() {
    // `meshc matrix … | head` must not report an error when the reader stops.
    let books = examples("booksapp-rest");
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(["matrix", &books, "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meshc runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
