//! Multicluster repositories through the real binary: the book's chapter 12
//! examples (both modes) check clean and their MeshTest intent passes;
//! `reach` across clusters proves each hop; references need a cluster.

use std::path::Path;
use std::process::{Command, Output};

fn meshc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshc")).args(args).env("NO_COLOR", "1").output().expect("meshc runs")
}

fn example(mode: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies-examples/emojivoto-multicluster")
        .join(mode)
        .display()
        .to_string()
}

fn golden(case: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden").join(case).join("input").display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn chapter_12_examples_check_clean_and_their_intent_passes() {
    for mode in ["gateway", "pod-to-pod"] {
        let out = meshc(&["check", &example(mode), "--fail-on", "info"]);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", stdout(&out));
        let text = stdout(&out);
        // Both clusters' workloads are counted: web and vote-bot in east, emoji and voting in west.
        assert!(text.contains("0 errors, 0 warnings, 0 infos"), "{mode}: {text}");
        assert!(text.contains("4 workloads"), "{mode}: {text}");
        let out = meshc(&["test", &example(mode)]);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", stdout(&out));
        assert!(stdout(&out).contains("6 passed, 0 failed, 0 errors"), "{mode}: {}", stdout(&out));
    }
}

/// vote-bot is refused pod-to-pod (its own identity arrives) but let through
/// the gateway (the gateway's identity arrives): the difference between the modes.
#[test]
fn reach_across_clusters_follows_the_mode() {
    let args = |mode: &str| {
        vec![
            "reach".to_owned(),
            example(mode),
            "--from".to_owned(),
            "east/deploy/emojivoto/vote-bot".to_owned(),
            "--to".to_owned(),
            "west/deploy/emojivoto/voting:grpc".to_owned(),
            "--format".to_owned(),
            "json".to_owned(),
        ]
    };
    let run = |mode: &str| {
        let a = args(mode);
        json(&meshc(&a.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let gateway = run("gateway");
    let path = &gateway["paths"][0];
    assert_eq!(path["via"], "east/svc/emojivoto/voting-svc-west:8080");
    assert_eq!(path["mode"], "gateway");
    let hops: Vec<&str> = path["hops"].as_array().unwrap().iter().map(|h| h["hop"].as_str().unwrap()).collect();
    assert_eq!(hops, ["client proxy", "gateway"]);
    assert_eq!(
        path["target"]["arrives"],
        "west's gateway as linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
    );
    assert_eq!(path["verdict"], "allow");
    // The Link is cited with its file and line.
    let link = &path["hops"][0]["proof"][1];
    assert_eq!((link["file"].as_str(), link["line"].as_u64()), (Some("east/link.yaml"), Some(4)));

    let p2p = run("pod-to-pod");
    let path = &p2p["paths"][0];
    assert_eq!(path["mode"], "pod-to-pod");
    assert_eq!(path["hops"].as_array().unwrap().len(), 1, "no gateway hop");
    assert_eq!(path["verdict"], "deny");
}

/// The golden case's emoji policy admits web, not the gateway: web's call
/// through the gateway is denied at the target, with the identity that arrived.
#[test]
fn reach_through_the_gateway_is_denied_when_the_target_admits_only_the_client() {
    let out = meshc(&[
        "reach",
        &golden("multicluster-identity"),
        "--from",
        "east/deploy/emojivoto/web",
        "--to",
        "east/svc/emojivoto/emoji-svc-west:8080",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    // Anchors differ in that case, so the first hop already fails.
    assert!(text.contains("(gateway mode): deny"), "{text}");
    assert!(text.contains("share no trust anchor"), "{text}");
}

#[test]
fn references_need_a_cluster_prefix() {
    let out = meshc(&[
        "reach",
        &example("gateway"),
        "--from",
        "deploy/emojivoto/web",
        "--to",
        "west/deploy/emojivoto/emoji:grpc",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prefix the reference with one of east, west"));
    // Within one cluster the usual query runs on it.
    let out = meshc(&[
        "reach",
        &example("gateway"),
        "--from",
        "west/deploy/emojivoto/voting",
        "--to",
        "west/deploy/emojivoto/emoji:grpc",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("deny"), "{}", stdout(&out));
}

/// `meshc build` of a multicluster repository: one build per cluster in
/// `OUT/<cluster>/`, each verifying as a build of its own; the source
/// cluster's web carries its outbound policy (routes to mirrors would be in
/// it), the target's workloads theirs. `--stdout` needs `--cluster`.
#[test]
fn build_writes_one_verified_build_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let keygen = meshc(&["keygen", "--out", &d, "--name", "mc"]);
    assert_eq!(keygen.status.code(), Some(0), "{}", String::from_utf8_lossy(&keygen.stderr));
    let (key, public) = (format!("{d}/mc.key"), format!("{d}/mc.pub"));
    let out = format!("{d}/dist");
    let built =
        meshc(&["build", &example("gateway"), "--key", &key, "--out", &out, "--revision", "r1", "--sequence", "7"]);
    assert_eq!(built.status.code(), Some(0), "{}", String::from_utf8_lossy(&built.stderr));
    for (cluster, workload) in [("east", "web"), ("west", "emoji")] {
        let root = Path::new(&out).join(cluster);
        assert!(root.join("bundle.yaml").is_file(), "{cluster}: no bundle");
        let configs = std::fs::read_dir(root.join("configs/emojivoto")).unwrap().count();
        assert_eq!(configs, 2, "{cluster}: its two workloads' configs");
        let verified = meshc(&["verify-bundle", &root.display().to_string(), "--pubkey", &public]);
        assert_eq!(verified.status.code(), Some(0), "{cluster}: {}", String::from_utf8_lossy(&verified.stderr));
        let names: Vec<String> = std::fs::read_dir(root.join("configs/emojivoto"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.contains(workload)), "{cluster}: {names:?}");
    }
    // A stream is one bundle: one cluster at a time.
    let stream = meshc(&["build", &example("gateway"), "--key", &key, "--stdout", "--revision", "r1"]);
    assert_eq!(stream.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&stream.stderr).contains("--cluster"));
    let west =
        meshc(&["build", &example("gateway"), "--key", &key, "--stdout", "--cluster", "west", "--revision", "r1"]);
    assert_eq!(west.status.code(), Some(0), "{}", String::from_utf8_lossy(&west.stderr));
    assert!(stdout(&west).contains("\"kind\": \"MeshBundle\""), "{}", stdout(&west));
    assert!(stdout(&west).contains("deployment-emoji"), "west's emoji is in west's build");
    assert!(!stdout(&west).contains("deployment-web"), "east's web is not in west's build");
}

/// The cluster prefix selects show-config's cluster.
#[test]
fn show_config_takes_a_cluster_prefix() {
    let out = meshc(&["show-config", &example("pod-to-pod"), "west/deploy/emojivoto/voting"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = meshc(&["show-config", &example("pod-to-pod"), "deploy/emojivoto/voting"]);
    assert_eq!(out.status.code(), Some(2));
}

// The diff tests' git, with its fixed identity; the rest of the module is theirs.
#[allow(dead_code)]
#[path = "support/gitrepo.rs"]
mod gitrepo;
use gitrepo::git;

/// A pull-request pipeline diffs git revisions: a multicluster repository's
/// are compared as its directories are. The head is the query case
/// `mc-diff-unexport`'s (voting's export label removed, which closes web's
/// and vote-bot's calls to voting through the gateway), committed over the
/// gateway example; the result must be the directories' diff, byte for byte.
#[test]
fn git_revisions_of_a_multicluster_repository_diff_as_its_directories_do() {
    let base = example("gateway");
    let head = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/queries/mc-diff-unexport/head");
    let repo = tempfile::tempdir().unwrap();
    mesh_test_support::copy_tree(Path::new(&base), repo.path());
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    for entry in std::fs::read_dir(repo.path()).unwrap().flatten() {
        if entry.file_name() != ".git" {
            let path = entry.path();
            if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }.unwrap();
        }
    }
    mesh_test_support::copy_tree(&head, repo.path());
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "head: voting no longer exported"]);

    let by_dirs = meshc(&["diff", &base, &head.display().to_string(), "--format", "json"]);
    let by_git = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(["diff", "HEAD~1", "HEAD", "--format", "json"])
        .current_dir(repo.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("meshc runs");
    assert!(by_git.status.success(), "{}", String::from_utf8_lossy(&by_git.stderr));
    assert_eq!(stdout(&by_git), stdout(&by_dirs));
    let closed = json(&by_git)["closed"].as_array().cloned().unwrap_or_default();
    assert!(!closed.is_empty(), "the calls to voting close: {}", stdout(&by_git));
}

/// Linkerd's gateway authorizes an HTTP request with its Server's routes
/// (`authorize_http`) but an opaque connection with the Server's own
/// authorizations (`authorize_tcp`, linkerd2-proxy `gateway/src/opaq.rs`):
/// the golden case's gateway admits only on an HTTPRoute, so HTTP to
/// emoji crosses and opaque TCP to relay (its port marked opaque, copied to
/// the mirror) is refused at the gateway.
#[test]
fn an_opaque_call_is_authorized_at_the_gateway_as_a_connection() {
    let run = |to: &str| {
        let case = golden("multicluster-gateway-opaque");
        json(&meshc(&["reach", &case, "--from", "east/deploy/emojivoto/web", "--to", to, "--format", "json"]))
    };
    let http = run("east/svc/emojivoto/emoji-svc-west:8080");
    assert_eq!(http["paths"][0]["verdict"], "allow", "{http}");
    let tcp = run("east/svc/emojivoto/relay-svc-west:7000");
    let path = &tcp["paths"][0];
    assert_eq!(path["verdict"], "deny", "{tcp}");
    let gateway = &path["hops"][1];
    assert_eq!((gateway["hop"].as_str(), gateway["verdict"].as_str()), (Some("gateway"), Some("deny")), "{tcp}");
    assert!(gateway["proof"].to_string().contains("authorize_tcp"), "{gateway}");
    assert!(path["target"].is_null(), "nothing reaches relay: {path}");
}
