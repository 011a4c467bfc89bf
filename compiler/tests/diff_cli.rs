//! `meshc diff` through the real binary: sides, formats, exit codes, errors.

#[path = "support/gitrepo.rs"]
mod gitrepo;

use gitrepo::{golden, make_repo};
use std::path::Path;
use std::process::{Command, Output};

fn meshc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshc")).args(args).current_dir(dir).env("NO_COLOR", "1").output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn json_has_the_documented_shape_and_names_the_cause() {
    let repo = make_repo(&golden().join("server-renamed-dangling"));
    let out = meshc(repo.path(), &["diff", "HEAD~1", "HEAD", "k8s", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["opened"].as_array().unwrap().len(), 0);
    let closed = &v["closed"][0];
    assert_eq!(closed["target"]["workload"], "Deployment/shop/api");
    assert_eq!(closed["target"]["port"], 8080);
    assert_eq!(closed["cause"]["side"], "head");
    assert_eq!(closed["cause"]["step"], "likely-cause");
    assert_eq!(closed["cause"]["file"], "policy.yaml");
    assert!(closed["client"]["members"].as_array().unwrap().iter().any(|m| m == "Deployment/shop/web"));
    assert_eq!(v["findings"]["introduced"][0]["code"], "unresolved-reference");
    assert_eq!(v["configs_changed"][0]["workload"], "Deployment/shop/api");
    assert!(v["broken_traffic"].as_array().unwrap().is_empty());
}

#[test]
fn exit_code_follows_fail_on() {
    let repo = make_repo(&golden().join("route-added"));
    let run = |extra: &[&str]| {
        let mut args = vec!["diff", "HEAD~1", "HEAD", "k8s"];
        args.extend_from_slice(extra);
        meshc(repo.path(), &args).status.code()
    };
    assert_eq!(run(&[]), Some(0), "without --exit-code the diff never fails");
    assert_eq!(run(&["--exit-code"]), Some(1), "an edge opened");
    assert_eq!(run(&["--exit-code", "--fail-on", "closed"]), Some(0));
    assert_eq!(run(&["--exit-code", "--fail-on", "closed,opened"]), Some(1));
    assert_eq!(run(&["--exit-code", "--fail-on", "finding"]), Some(0));
}

#[test]
fn worktree_and_directories_are_sides_too() {
    let repo = make_repo(&golden().join("route-added"));
    let k8s = repo.path().join("k8s");
    // A dirty worktree: the head commit's new route is removed again, uncommitted.
    std::fs::copy(golden().join("route-added/base/policy.yaml"), k8s.join("policy.yaml")).unwrap();
    let out = meshc(repo.path(), &["diff", "HEAD", "WORKTREE", "k8s"]);
    assert!(stdout(&out).starts_with("0 edges opened, 1 closed"), "{}", stdout(&out));
    let a = repo.path().join("a");
    gitrepo::copy_dir(&golden().join("_app"), &a);
    let out = meshc(repo.path(), &["diff", "a", "k8s"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("HTTPRoute api-read"), "{}", stdout(&out));
}

#[test]
fn markdown_is_a_bounded_pr_comment_and_sarif_lists_introduced_findings() {
    let repo = make_repo(&golden().join("namespace-deny-annotation"));
    let md = stdout(&meshc(repo.path(), &["diff", "HEAD~1", "HEAD", "k8s", "--format", "markdown"]));
    assert!(md.starts_with("<!-- meshc-diff -->"));
    assert!(md.contains("<details>") && md.contains(":red_circle: closed"));
    assert!(md.len() < 60 * 1024);
    let repo = make_repo(&golden().join("server-renamed-dangling"));
    let sarif = stdout(&meshc(repo.path(), &["diff", "HEAD~1", "HEAD", "k8s", "--format", "sarif"]));
    let v: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "unresolved-reference");
    let uri = &results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"];
    assert_eq!(uri, "k8s/policy.yaml");
}

#[test]
fn bad_input_is_a_usage_error() {
    let repo = make_repo(&golden().join("route-added"));
    for (args, message) in [
        (&["diff", "nope", "HEAD", "k8s"][..], "`nope` is not a revision"),
        (&["diff", "HEAD~1", "HEAD", "k8s", "--head-set", "colour=blue"][..], "`colour` is not a setting"),
        (&["diff", "HEAD~1", "HEAD", "missing"][..], "not a directory"),
        (&["diff", "HEAD~1", "HEAD", "k8s", "--traffic", "k8s/policy.yaml"][..], "expected a JSON array"),
    ] {
        let out = meshc(repo.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn linkerd_viz_edges_are_accepted_as_traffic() {
    let repo = make_repo(&golden().join("server-renamed-dangling"));
    let viz = r#"[{"src":"web","src_namespace":"shop","dst":"api","dst_namespace":"shop","client_id":"web.shop.serviceaccount.identity.linkerd.cluster.local","server_id":"api.shop.serviceaccount.identity.linkerd.cluster.local","no_tls_reason":""},
                 {"src":"prometheus","src_namespace":"monitoring","dst":"web","dst_namespace":"shop","client_id":"","server_id":"","no_tls_reason":""}]"#;
    std::fs::write(repo.path().join("edges.json"), viz).unwrap();
    let out = meshc(repo.path(), &["diff", "HEAD~1", "HEAD", "k8s", "--traffic", "edges.json", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let broken = v["broken_traffic"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0]["flow"]["from"], "shop/web");
    assert_eq!(broken[0]["flow"]["to"], "shop/api");
    let code = meshc(
        repo.path(),
        &["diff", "HEAD~1", "HEAD", "k8s", "--traffic", "edges.json", "--exit-code", "--fail-on", "broken-traffic"],
    );
    assert_eq!(code.status.code(), Some(1));
}

/// Rows that cannot be read are counted, reported with their reason and
/// fail `--fail-on broken-traffic`: a bad traffic file must not pass. Rows
/// naming a workload the base does not have are counted, and do not fail.
#[test]
fn unreadable_traffic_rows_are_reported_and_fail_the_job() {
    let repo = make_repo(&golden().join("route-added"));
    let rows = r#"[
        {"from": "ip:not-an-address", "to": "deploy/shop/api:http"},
        {"from": "deploy/shop/web", "to": "deploy/shop/api:no-such-port"},
        {"from": "shop/gone", "to": "shop/api"},
        {"from": "deploy/shop/web", "to": "deploy/shop/api:http", "method": "GET", "path": "/"}
    ]"#;
    std::fs::write(repo.path().join("flows.json"), rows).unwrap();
    let args = ["diff", "HEAD~1", "HEAD", "k8s", "--traffic", "flows.json"];
    let out = meshc(repo.path(), &[&args[..], &["--format", "json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let unchecked = v["unchecked_traffic"].as_array().expect("unchecked_traffic");
    let rows: Vec<u64> = unchecked.iter().map(|u| u["row"].as_u64().unwrap()).collect();
    assert_eq!(rows, [1, 2], "{unchecked:?}");
    assert!(unchecked[0]["reason"].as_str().unwrap().contains("not an IP address"), "{unchecked:?}");
    assert_eq!(v["traffic_not_in_base"], 1);

    let human = stdout(&meshc(repo.path(), &args));
    assert!(human.contains("2 observed flows could not be checked"), "{human}");
    let failed = meshc(repo.path(), &[&args[..], &["--exit-code", "--fail-on", "broken-traffic"]].concat());
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
}
