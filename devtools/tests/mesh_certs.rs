//! `mesh-certs` through the real binary; the result loads as an identity.

use mesh_common::identity::Identity;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

fn certs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh-certs")).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn init_then_issue_makes_loadable_identities() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    ok(certs(&["init", "--dir", path(&ca), "--trust-domain", "example.org"]));
    for file in ["ca.crt", "ca.key", "issuer.crt", "issuer.key"] {
        assert!(ca.join(file).is_file(), "{file} missing");
    }

    let web = tmp.path().join("web");
    let said = ok(certs(&[
        "issue",
        "--ca-dir",
        path(&ca),
        "--sa",
        "web",
        "--namespace",
        "emojivoto",
        "--out",
        path(&web),
        "--valid-for",
        "2h",
    ]));
    assert!(said.contains("web.emojivoto.serviceaccount.identity.linkerd.example.org"), "{said}");
    let identity = Identity::load(&web).unwrap();
    assert_eq!(identity.name(), "web.emojivoto.serviceaccount.identity.linkerd.example.org");
    let left = identity.expires_at().duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(7000) && left <= Duration::from_secs(7200), "{left:?}");
    // The anchor written next to the workload is the CA's.
    assert_eq!(std::fs::read(web.join("ca.crt")).unwrap(), std::fs::read(ca.join("ca.crt")).unwrap());

    // A second workload from the same CA on disk.
    let vote = tmp.path().join("vote");
    ok(certs(&["issue", "--ca-dir", path(&ca), "--sa", "voting", "--namespace", "emojivoto", "--out", path(&vote)]));
    let vote = Identity::load(&vote).unwrap();
    assert_eq!(vote.name(), "voting.emojivoto.serviceaccount.identity.linkerd.example.org");
    let left = vote.expires_at().duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(86_000), "default lifetime is a day: {left:?}");
}

#[test]
fn init_refuses_to_overwrite_and_issue_reports_a_missing_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    ok(certs(&["init", "--dir", path(&ca)]));
    let key = std::fs::read(ca.join("ca.key")).unwrap();
    let again = certs(&["init", "--dir", path(&ca)]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(ca.join("ca.key")).unwrap(), key, "the CA key was replaced");
    ok(certs(&["init", "--dir", path(&ca), "--force"]));
    assert_ne!(std::fs::read(ca.join("ca.key")).unwrap(), key);

    let missing = tmp.path().join("nope");
    let out = certs(&["issue", "--ca-dir", path(&missing), "--sa", "a", "--namespace", "b", "--out", path(tmp.path())]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope/ca.crt"), "{stderr}");

    let out = certs(&[
        "issue",
        "--ca-dir",
        path(&ca),
        "--sa",
        "a",
        "--namespace",
        "b",
        "--out",
        path(tmp.path()),
        "--valid-for",
        "0h",
    ]);
    assert!(!out.status.success());
}
