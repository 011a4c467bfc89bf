//! `meshc check DIR` runs on untrusted pull requests next to secrets: it must
//! never read a file outside DIR through a symlink, and never quote a file
//! that holds no Kubernetes object, in any output format.

use std::path::Path;
use std::process::Command;

const FORMATS: &[&str] = &["human", "json", "github", "sarif"];

fn check(dir: &Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(["check", &dir.display().to_string(), "--format", format])
        .env("NO_COLOR", "1")
        .output()
        .expect("meshc runs");
    assert!(out.status.code().is_some_and(|c| c <= 1), "{format}: {}", String::from_utf8_lossy(&out.stderr));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `elsewhere/` holds a key and a YAML file with a password; `repo/` links to
/// both (file links, one of them its meshc.yaml, and a directory link) and
/// has a values-like file.
fn layout(root: &Path) -> std::path::PathBuf {
    let (outside, repo) = (root.join("elsewhere"), root.join("repo"));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(outside.join("key.pem"), "-----BEGIN PRIVATE KEY-----\nSECRET1PEMBODY\n-----END PRIVATE KEY-----\n")
        .unwrap();
    std::fs::write(outside.join("creds.yaml"), "password: SECRET2PASSWORD\n").unwrap();
    std::fs::write(repo.join("svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n")
        .unwrap();
    std::fs::write(repo.join("config.yaml"), "token: SECRET3INROOT\nreplicas: 2\n").unwrap();
    std::os::unix::fs::symlink(outside.join("key.pem"), repo.join("key.yaml")).unwrap();
    std::os::unix::fs::symlink("../elsewhere", repo.join("linked")).unwrap();
    std::os::unix::fs::symlink(outside.join("creds.yaml"), repo.join("meshc.yaml")).unwrap();
    repo
}

#[test]
fn links_out_of_the_root_are_named_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let repo = layout(dir.path());
    for format in FORMATS {
        let out = check(&repo, format);
        for secret in ["SECRET1PEMBODY", "PRIVATE KEY", "SECRET2PASSWORD"] {
            assert!(!out.contains(secret), "--format {format} prints `{secret}`:\n{out}");
        }
    }
    let report: serde_json::Value = serde_json::from_str(&check(&repo, "json")).unwrap();
    let escaping: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "symlink-outside-root")
        .map(|f| (f["file"].as_str().unwrap(), f["message"].as_str().unwrap()))
        .collect();
    let files: Vec<&str> = escaping.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, ["key.yaml", "linked", "meshc.yaml"], "{report:#}");
    for (_, message) in &escaping {
        assert!(!message.contains("elsewhere") && !message.contains("key.pem"), "names the target: {message}");
    }
}

#[test]
fn a_file_without_objects_is_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let repo = layout(dir.path());
    for format in FORMATS {
        let out = check(&repo, format);
        assert!(!out.contains("SECRET3INROOT"), "--format {format} quotes config.yaml:\n{out}");
        assert!(out.contains("config.yaml"), "--format {format} does not name config.yaml:\n{out}");
    }
}
