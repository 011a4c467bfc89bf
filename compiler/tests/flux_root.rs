//! `meshc check clusters/prod` follows Flux `spec.path`s that leave the
//! checked directory, relative to the repository root (`--root`, else the
//! git top level).

use meshc::findings::Code;
use meshc::load::Input;
use meshc::pipeline::{self, Options};
use std::path::Path;

const CLUSTER: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: apps, namespace: flux-system}\nspec:\n  path: ./apps\n  postBuild:\n    substitute: {PORT: \"8080\"}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: gone, namespace: flux-system}\nspec:\n  path: ./nowhere\n";
// With PORT substituted the Service is valid; without, `${PORT}` is not a port.
const APP: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports:\n  - port: ${PORT}\n";

fn repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let write = |p: &str, text: &str| {
        let path = repo.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("clusters/prod/apps.yaml", CLUSTER);
    write("apps/web.yaml", APP);
    repo
}

fn check(dir: &Path, root: Option<&Path>) -> Vec<(Code, String, u32)> {
    let options = Options { root: root.map(Path::to_path_buf), ..Options::default() };
    let o = pipeline::check(&Input::Path(dir.to_path_buf()), &options).unwrap();
    o.findings.iter().map(|f| (f.code, o.sources[f.span.source as usize].name.clone(), f.span.line)).collect()
}

#[test]
fn paths_outside_the_checked_directory_are_followed_from_the_root() {
    let repo = repository();
    let found = check(&repo.path().join("clusters/prod"), Some(repo.path()));
    // ./apps is read (as ../../apps/web.yaml) and substituted: no schema-violation;
    // ./nowhere is missing, at its spec.path (line 13 of apps.yaml).
    assert_eq!(found, [(Code::KustomizationPathMissing, "apps.yaml".to_owned(), 13)]);
}

#[test]
fn the_git_top_level_is_the_default_root() {
    if !mesh_test_support::require_tool("flux_root", "git", &["--version"], "apt-get install git") {
        return;
    }
    let repo = repository();
    let init = std::process::Command::new("git").arg("-C").arg(repo.path()).args(["init", "-q"]).status().unwrap();
    assert!(init.success());
    let found = check(&repo.path().join("clusters/prod"), None);
    assert_eq!(found, [(Code::KustomizationPathMissing, "apps.yaml".to_owned(), 13)]);
}

#[test]
fn without_a_root_outside_paths_are_missing() {
    // The checked directory is its own root (no git repository around a
    // temporary directory): ./apps is not under it.
    let repo = repository();
    let found = check(&repo.path().join("clusters/prod"), Some(&repo.path().join("clusters/prod")));
    let missing: Vec<u32> = found.iter().filter(|f| f.0 == Code::KustomizationPathMissing).map(|f| f.2).collect();
    assert_eq!(missing, [5, 13]);
}
