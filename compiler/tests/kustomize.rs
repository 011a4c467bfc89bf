//! kustomize overlays under `meshc check` (`load/render`): Flux paths that
//! hold a kustomization are rendered, what kustomize cannot build is a
//! finding, a renderer that hangs is stopped, and without kustomize the
//! kustomization file is `skipped-file` with the command to run.

use meshc::findings::Code;
use meshc::load::Input;
use meshc::load::render::{Engine, Tools};
use meshc::pipeline::{self, Options};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn check(dir: &Path, root: &Path, render: Tools) -> Vec<(Code, String, u32, String)> {
    let options = Options { root: Some(root.to_path_buf()), render, ..Options::default() };
    let o = pipeline::check(&Input::Path(dir.to_path_buf()), &options).unwrap();
    let name = |f: &meshc::findings::Finding| o.sources[f.span.source as usize].name.clone();
    o.findings.iter().map(|f| (f.code, name(f), f.span.line, f.message.clone())).collect()
}

fn kubectl(test: &str) -> bool {
    mesh_test_support::require_tool(test, "kubectl", &["version", "--client"], "apt-get install kubectl")
}

/// A stand-in renderer: a shell script, so a test controls what it does.
#[cfg(unix)]
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const FLUX: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: apps, namespace: flux-system}\nspec:\n  path: ./apps/prod\n  postBuild:\n    substitute: {APP_PORT: \"8080\"}\n";
const BASE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {app: web}\n  ports:\n  - port: 80\n    targetPort: ${APP_PORT}\n";
const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  port: ${APP_PORT}\n";

/// `meshc check clusters/prod`: the Flux path apps/prod is an overlay of
/// apps/base, outside both the checked directory and the Flux path. Flux
/// builds the overlay and substitutes the output with its own variables, so
/// the base's `${APP_PORT}` takes the value of the Kustomization that
/// applies the overlay, and the Server it selects nothing is reported at the
/// base's file.
#[test]
fn a_flux_path_holding_an_overlay_is_built_and_substituted() {
    if !kubectl("a_flux_path_holding_an_overlay_is_built_and_substituted") {
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    write(r, "clusters/prod/apps.yaml", FLUX);
    write(r, "apps/base/kustomization.yaml", "resources: [service.yaml, server.yaml]\n");
    write(r, "apps/base/service.yaml", BASE);
    write(r, "apps/base/server.yaml", SERVER);
    write(r, "apps/prod/kustomization.yaml", "resources: [../base]\n");
    let found = check(&r.join("clusters/prod"), r, Tools::default());
    let got: Vec<_> = found.iter().map(|(c, n, l, _)| (*c, n.as_str(), *l)).collect();
    // No pod carries app=web: the Server selects nothing (a warning, at its
    // selector in the base). No unresolved-variable: APP_PORT is set by the
    // Flux Kustomization that applies the overlay, not by one for the base's
    // directory (there is none).
    assert_eq!(got, [(Code::ServerSelectsNothing, "../../apps/base/server.yaml", 5)]);
}

/// Without kustomize the kustomization file says what to run, and the files
/// beside it are read as written (today's behaviour, kept).
#[test]
fn without_kustomize_the_file_is_skipped_with_the_command() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    write(r, "kustomization.yaml", "resources: [server.yaml]\n");
    write(r, "server.yaml", &SERVER.replace("${APP_PORT}", "8080"));
    let never = Tools { kustomize: Engine::Never, ..Tools::default() };
    let found = check(r, r, never);
    let got: Vec<_> = found.iter().map(|(c, n, l, _)| (*c, n.as_str(), *l)).collect();
    assert_eq!(got, [(Code::SkippedFile, "kustomization.yaml", 1), (Code::ServerSelectsNothing, "server.yaml", 5)]);
    assert!(found[0].3.contains("kustomize build DIR | meshc check -"), "{}", found[0].3);
}

/// A renderer that never finishes is stopped at the deadline and reported
/// at the kustomization file; the rest of the repository is still checked.
#[cfg(unix)]
#[test]
fn a_hanging_kustomize_is_stopped_and_reported() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    write(r, "app/kustomization.yaml", "resources: [server.yaml]\n");
    write(r, "app/server.yaml", SERVER);
    write(r, "plain/server.yaml", &SERVER.replace("${APP_PORT}", "8080").replace("name: web,", "name: other,"));
    let bin = tempfile::tempdir().unwrap();
    let hang = script(bin.path(), "kustomize", "exec sleep 30");
    let tools = Tools { kustomize: Engine::At(hang), timeout: Duration::from_millis(300), ..Tools::default() };
    let start = Instant::now();
    let found = check(r, r, tools);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    let got: Vec<_> = found.iter().map(|(c, n, l, _)| (*c, n.as_str(), *l)).collect();
    assert_eq!(
        got,
        [(Code::RenderFailed, "app/kustomization.yaml", 1), (Code::ServerSelectsNothing, "plain/server.yaml", 5)]
    );
    assert!(found[0].3.contains("did not finish within 0.3 s"), "{}", found[0].3);
}

/// A thousand Flux Kustomizations, each applying an overlay directory (built
/// by a stand-in kustomize that prints one ConfigMap), with cycles and
/// missing paths among them: the check completes and reports each once.
#[cfg(unix)]
#[test]
fn a_thousand_kustomizations_with_cycles_and_missing_paths_complete() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    let k = |name: &str, path: &str| {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: {name}, namespace: flux-system}}\nspec: {{path: {path}}}\n---\n"
        )
    };
    let mut cluster = String::new();
    for i in 0..1000 {
        match i % 10 {
            // Missing: nothing at that path.
            0 => cluster.push_str(&k(&format!("gone-{i}"), &format!("./nowhere/{i}"))),
            _ => {
                cluster.push_str(&k(&format!("app-{i}"), &format!("./apps/{i}")));
                write(r, &format!("apps/{i}/kustomization.yaml"), "resources: []\n");
            }
        }
    }
    write(r, "clusters/prod/apps.yaml", &cluster);
    // loop/a applies loop/b, which applies loop/a.
    write(r, "loop/a/k.yaml", &k("loop-a", "./loop/b"));
    write(r, "loop/b/k.yaml", &k("loop-b", "./loop/a"));
    write(r, "clusters/prod/loop.yaml", &k("loop", "./loop"));
    let bin = tempfile::tempdir().unwrap();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: \"$$\"}\n";
    let stand_in = script(bin.path(), "kustomize", &format!("printf '{}'", cm.replace('\n', "\\n")));
    let tools = Tools { kustomize: Engine::At(stand_in), timeout: Duration::from_secs(20), ..Tools::default() };
    let found = check(&r.join("clusters/prod"), r, tools);
    let count = |code: Code| found.iter().filter(|f| f.0 == code).count();
    assert_eq!(count(Code::KustomizationPathMissing), 100);
    assert_eq!(count(Code::KustomizationCycle), 1);
    assert_eq!(count(Code::RenderFailed), 0);
}
