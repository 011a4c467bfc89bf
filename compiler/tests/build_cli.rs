//! `meshc keygen`, `meshc build` and `meshc verify-bundle` through the real
//! binary: determinism, refusal on errors, and tampering of every kind.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn meshc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshc")).args(args).env("NO_COLOR", "1").output().expect("meshc runs")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples").join(name).display().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary directory with a key pair `meshc.key` / `meshc.pub`.
fn keys(name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = meshc(&["keygen", "--out", s(dir.path()), "--name", name]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (k, p) = (dir.path().join(format!("{name}.key")), dir.path().join(format!("{name}.pub")));
    (dir, k, p)
}

fn build(example_name: &str, key: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build", &example(example_name)].into_iter().map(str::to_owned).collect::<Vec<_>>();
    args.extend(["--key", s(key), "--out", s(out), "--revision", "r1"].map(str::to_owned));
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    meshc(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn verify(path: &Path, pubkey: &Path) -> Output {
    meshc(&["verify-bundle", s(path), "--pubkey", s(pubkey)])
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn read_doc(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(text.strip_prefix("---\n").unwrap()).unwrap()
}

fn write_doc(path: &Path, v: &Value) {
    std::fs::write(path, format!("---\n{}\n", serde_json::to_string_pretty(v).unwrap())).unwrap();
}

#[test]
fn keygen_writes_a_private_and_a_public_key_and_refuses_to_overwrite() {
    let (dir, key, public) = keys("ci");
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key_text}");
    let pub_text = std::fs::read_to_string(&public).unwrap();
    let id = pub_text.lines().find_map(|l| l.strip_prefix("# keyid: ")).expect("key id line");
    assert_eq!(id.len(), 16);
    assert!(pub_text.contains("-----BEGIN PUBLIC KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = meshc(&["keygen", "--out", s(dir.path()), "--name", "ci"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("exists (pass --force to overwrite)"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_text, "refused keygen left the key alone");
    let forced = meshc(&["keygen", "--out", s(dir.path()), "--name", "ci", "--force"]);
    assert_eq!(forced.status.code(), Some(0));
    assert_ne!(std::fs::read_to_string(&key).unwrap(), key_text, "a fresh random key");
}

#[test]
fn build_is_byte_deterministic_and_stdout_is_the_files_in_order() {
    let (_k, key, public) = keys("meshc");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&a, &b] {
        let out = build("booksapp-rest", &key, dir, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(tree(&a), tree(&b));
    let stream = meshc(&["build", &example("booksapp-rest"), "--key", s(&key), "--stdout", "--revision", "r1"]);
    assert_eq!(stream.status.code(), Some(0), "{}", stderr(&stream));
    let kustomization: Value = serde_json::from_slice(&std::fs::read(a.join("kustomization.yaml")).unwrap()).unwrap();
    let resources: Vec<&str> =
        kustomization["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(resources[..2], ["crds.yaml", "bundle.yaml"]);
    assert_eq!(resources.len(), 2 + 4, "four booksapp workloads");
    let concatenated: Vec<u8> = resources.iter().flat_map(|r| std::fs::read(a.join(r)).unwrap()).collect();
    assert_eq!(String::from_utf8(stream.stdout).unwrap(), String::from_utf8(concatenated).unwrap());
    let ok = verify(&a, &public);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let line = String::from_utf8(ok.stdout).unwrap();
    assert!(line.contains("4 ProxyConfig(s) verified") && line.contains("revision r1"), "{line}");
}

#[test]
fn build_refuses_error_findings_unless_allowed_and_then_says_so() {
    let (_k, key, public) = keys("meshc");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("dist");
    let refused = build("common-mistakes", &key, &out_dir, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(err.contains("error finding(s): refusing to sign") && err.contains("meshc check"), "{err}");
    assert!(!out_dir.exists(), "nothing written");
    let allowed = build("common-mistakes", &key, &out_dir, &["--allow-errors"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    let bundle = read_doc(&out_dir.join("bundle.yaml"));
    assert_eq!(bundle["spec"]["allowErrors"], true);
    assert!(bundle["spec"]["errorFindings"].as_u64().unwrap() > 0);
    assert!(bundle["metadata"]["annotations"]["meshc.io/allow-errors"].as_str().unwrap().contains("error finding"));
    let ok = verify(&out_dir, &public);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(String::from_utf8(ok.stdout).unwrap().contains("built with"));
    // The stamp cannot be taken off a config: it must match the signed bundle.
    let config = std::fs::read_dir(out_dir.join("configs/shop")).unwrap().flatten().next().unwrap().path();
    edit(&config, |v| {
        v["metadata"].as_object_mut().unwrap().remove("annotations");
    });
    let out = verify(&out_dir, &public);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("annotation meshc.io/allow-errors does not match"), "{}", stderr(&out));
}

#[test]
fn build_usage_errors_exit_two() {
    let (_k, key, _) = keys("meshc");
    let tmp = tempfile::tempdir().unwrap();
    let both = meshc(&["build", &example("booksapp-rest"), "--key", s(&key), "--stdout", "--out", s(tmp.path())]);
    assert_eq!(both.status.code(), Some(2));
    let bad_key = build("booksapp-rest", &tmp.path().join("missing.key"), &tmp.path().join("d"), &[]);
    assert_eq!(bad_key.status.code(), Some(2));
    assert!(stderr(&bad_key).contains("missing.key"));
    let foreign = tmp.path().join("repo");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("README.md"), "mine").unwrap();
    let refused = build("booksapp-rest", &key, &foreign, &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("did not create"), "{}", stderr(&refused));
    assert_eq!(std::fs::read_to_string(foreign.join("README.md")).unwrap(), "mine");
}

#[test]
fn rebuild_removes_stale_configs_it_wrote_and_nothing_else() {
    let (_k, key, public) = keys("meshc");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    copy_dir(Path::new(&example("booksapp-rest")), &src);
    let dist = tmp.path().join("dist");
    let build_src = || {
        let out = meshc(&["build", s(&src), "--key", s(&key), "--out", s(&dist), "--revision", "r"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    build_src();
    std::fs::write(dist.join("configs/booksapp/notes.txt"), "kept").unwrap();
    // The traffic workload is deleted from the repository (and the MeshTest
    // flows that start from it, which would otherwise fail the check).
    std::fs::remove_file(src.join("traffic.yaml")).unwrap();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".meshtest.yaml") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    build_src();
    assert!(!dist.join("configs/booksapp/deployment-traffic.yaml").exists(), "stale config removed");
    assert!(dist.join("configs/booksapp/deployment-books.yaml").exists());
    assert_eq!(std::fs::read_to_string(dist.join("configs/booksapp/notes.txt")).unwrap(), "kept");
    let ok = verify(&dist, &public);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(String::from_utf8(ok.stdout).unwrap().contains("3 ProxyConfig(s)"));
}

use mesh_test_support::copy_tree as copy_dir;

/// A fresh build of booksapp and its public key; each tampering case works
/// on a copy.
struct Fixture {
    _tmp: tempfile::TempDir,
    _keys: tempfile::TempDir,
    dist: PathBuf,
    public: PathBuf,
    other_key: PathBuf,
}

fn fixture() -> Fixture {
    fixture_of("booksapp-rest")
}

/// A build of `example_name` with the fixture's keys.
fn fixture_of(example_name: &str) -> Fixture {
    let (keys_dir, key, public) = keys("meshc");
    let out = meshc(&["keygen", "--out", s(keys_dir.path()), "--name", "other"]);
    assert_eq!(out.status.code(), Some(0));
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    let out = build(example_name, &key, &dist, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    Fixture { other_key: keys_dir.path().join("other.key"), _tmp: tmp, _keys: keys_dir, dist, public }
}

const BOOKS: &str = "configs/booksapp/deployment-books.yaml";

/// Copies the build, applies `tamper`, and returns verify-bundle's stderr
/// after checking that it failed with exit 1.
fn tampered(f: &Fixture, tamper: impl FnOnce(&Path)) -> String {
    let copy = f._tmp.path().join(format!("copy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(&f.dist, &copy);
    tamper(&copy);
    let out = verify(&copy, &f.public);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "tampering went unnoticed: {}", String::from_utf8_lossy(&out.stdout));
    std::fs::remove_dir_all(&copy).unwrap();
    err
}

fn edit(path: &Path, change: impl FnOnce(&mut Value)) {
    let mut v = read_doc(path);
    change(&mut v);
    write_doc(path, &v);
}

/// Flips the lowest bit of byte `i` of a base64 field's decoded bytes.
fn flip_base64(v: &mut Value, i: usize) {
    use base64ct::{Base64, Encoding};
    let mut bytes = Base64::decode_vec(v.as_str().unwrap()).unwrap();
    bytes[i] ^= 1;
    *v = Value::String(Base64::encode_string(&bytes));
}

const BOOKS_PLACE: &str = "ProxyConfig booksapp/deployment-books (configs/booksapp/deployment-books.yaml)";

type Change = dyn Fn(&mut Value);

#[test]
fn tampering_with_a_config_fails_naming_it() {
    let f = fixture();
    let cases: Vec<(&str, Box<Change>, &str)> = vec![
        ("payload byte", Box::new(|v| flip_base64(&mut v["spec"]["envelope"]["payload"], 40)), "does not verify"),
        (
            "signature byte",
            Box::new(|v| flip_base64(&mut v["spec"]["envelope"]["signatures"][0]["sig"], 5)),
            "does not verify",
        ),
        (
            "digest",
            Box::new(|v| v["spec"]["digest"] = Value::from(format!("sha256:{}", "0".repeat(64)))),
            "spec.digest",
        ),
        ("workload", Box::new(|v| v["spec"]["workload"]["name"] = Value::from("authors")), "spec.workload"),
        ("namespace", Box::new(|v| v["metadata"]["namespace"] = Value::from("default")), "metadata.namespace"),
        ("label", Box::new(|v| v["metadata"]["labels"]["meshc.io/workload-name"] = Value::from("x")), "label"),
        ("extra field", Box::new(|v| v["spec"]["extra"] = Value::from(1)), "malformed"),
    ];
    for (what, change, expect) in cases {
        let err = tampered(&f, |d| edit(&d.join(BOOKS), change));
        let place = if what == "namespace" { "ProxyConfig default/deployment-books" } else { BOOKS_PLACE };
        assert!(err.contains(place) && err.contains(expect), "{what}: {err}");
    }
}

#[test]
fn swapping_envelopes_between_configs_fails() {
    let f = fixture();
    let err = tampered(&f, |d| {
        let authors = read_doc(&d.join("configs/booksapp/deployment-authors.yaml"));
        edit(&d.join(BOOKS), |v| {
            v["spec"]["envelope"] = authors["spec"]["envelope"].clone();
            v["spec"]["digest"] = authors["spec"]["digest"].clone();
        });
    });
    assert!(err.contains(BOOKS_PLACE) && err.contains("spec.workload"), "{err}");
}

#[test]
fn a_missing_or_foreign_config_fails() {
    let f = fixture();
    let err = tampered(&f, |d| std::fs::remove_file(d.join(BOOKS)).unwrap());
    assert!(
        err.contains("ProxyConfig booksapp/deployment-books: listed in the signed MeshBundle but missing"),
        "{err}"
    );
    // A config signed by another key, under a name of its own.
    let other = f._tmp.path().join("other");
    let out = build("booksapp-rest", &f.other_key, &other, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = tampered(&f, |d| {
        let evil = d.join("configs/booksapp/evil.yaml");
        std::fs::copy(other.join(BOOKS), &evil).unwrap();
        edit(&evil, |v| v["metadata"]["name"] = Value::from("deployment-evil"));
    });
    let place = "ProxyConfig booksapp/deployment-evil (configs/booksapp/evil.yaml)";
    assert!(err.contains(&format!("{place}: envelope: signed by untrusted key")), "{err}");
    assert!(err.contains(&format!("{place}: not listed in the signed MeshBundle")), "{err}");
}

#[test]
fn tampering_with_the_bundle_fails_naming_it() {
    let f = fixture();
    let bundle_place = "MeshBundle meshc (bundle.yaml)";
    let digest_edit = |d: &Path| {
        edit(&d.join("bundle.yaml"), |v| v["spec"]["configs"][1]["digest"] = v["spec"]["configs"][0]["digest"].clone())
    };
    let err = tampered(&f, digest_edit);
    assert!(err.contains(&format!("{bundle_place}: spec differs from the signed manifest")), "{err}");
    // Dropping a config from both the directory and the bundle's list.
    let err = tampered(&f, |d| {
        std::fs::remove_file(d.join(BOOKS)).unwrap();
        edit(&d.join("bundle.yaml"), |v| {
            v["spec"]["configs"].as_array_mut().unwrap().retain(|e| e["name"] != "deployment-books");
        });
    });
    assert!(err.contains(bundle_place), "{err}");
    let err = tampered(&f, |d| edit(&d.join("bundle.yaml"), |v| flip_base64(&mut v["spec"]["envelope"]["payload"], 3)));
    assert!(err.contains(&format!("{bundle_place}: envelope:")), "{err}");
    let err = tampered(&f, |d| std::fs::remove_file(d.join("bundle.yaml")).unwrap());
    assert!(err.contains("no MeshBundle found"), "{err}");
}

#[test]
fn wrong_public_key_fails_and_bad_input_is_a_usage_error() {
    let f = fixture();
    let (_dir, _, other_pub) = keys("third");
    let out = verify(&f.dist, &other_pub);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("signed by untrusted key"), "{}", stderr(&out));
    let missing = verify(&f.dist.join("nope"), &f.public);
    assert_eq!(missing.status.code(), Some(2));
    let not_a_key = verify(&f.dist, &f.dist.join("bundle.yaml"));
    assert_eq!(not_a_key.status.code(), Some(2));
    assert!(stderr(&not_a_key).contains("not an ed25519 SPKI PEM public key"), "{}", stderr(&not_a_key));
    // Broken YAML is a verification failure that names the file.
    let err = tampered(&f, |d| std::fs::write(d.join(BOOKS), "---\n{ \"kind\": ").unwrap());
    assert!(err.contains(BOOKS) && err.contains("not valid YAML"), "{err}");
}

/// kustomize (inside kubectl) reads the output directory, and its rendering,
/// reformatted as block YAML, still verifies: formatting is not signed.
#[test]
fn kustomize_renders_the_directory_and_the_result_verifies() {
    let test = "kustomize_renders_the_directory_and_the_result_verifies";
    if !mesh_test_support::require_tool(test, "kubectl", &["version", "--client"], "apt-get install -y kubectl") {
        return;
    }
    let f = fixture();
    let out = Command::new("kubectl").arg("kustomize").arg(&f.dist).output().unwrap();
    assert!(out.status.success(), "kubectl kustomize: {}", stderr(&out));
    let rendered = String::from_utf8(out.stdout).unwrap();
    assert_eq!(rendered.matches("\nkind: ProxyConfig\n").count(), 4, "{rendered}");
    let file = f._tmp.path().join("rendered.yaml");
    std::fs::write(&file, rendered).unwrap();
    let ok = verify(&file, &f.public);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}

/// The key files load in openssl, comment line and all, and the key id is
/// what proxy/api/README.md says: SHA-256 of the raw public key, 16 hex.
#[test]
fn keygen_files_load_in_openssl_and_the_key_id_is_as_documented() {
    let test = "keygen_files_load_in_openssl_and_the_key_id_is_as_documented";
    if !mesh_test_support::require_tool(test, "openssl", &["version"], "apt-get install -y openssl") {
        return;
    }
    let (_dir, key, public) = keys("meshc");
    let der = Command::new("openssl").args(["pkey", "-pubin", "-outform", "DER", "-in", s(&public)]).output().unwrap();
    assert!(der.status.success(), "{}", stderr(&der));
    let raw = &der.stdout[der.stdout.len() - 32..];
    let id = &mesh_proxy_api::envelope::digest(raw)["sha256:".len()..][..16];
    let text = std::fs::read_to_string(&public).unwrap();
    assert!(text.contains(&format!("# keyid: {id}\n")), "{text}");
    let derived = Command::new("openssl").args(["pkey", "-pubout", "-in", s(&key)]).output().unwrap();
    assert!(derived.status.success(), "{}", stderr(&derived));
    assert!(text.ends_with(&String::from_utf8(derived.stdout).unwrap()));
}

#[allow(dead_code)]
#[path = "support/gitrepo.rs"]
mod gitrepo;
use gitrepo::git;

/// Without --revision, the bundle records git HEAD, `-dirty` while PATH has
/// uncommitted changes, and `unknown` outside a repository.
#[test]
fn revision_comes_from_git() {
    let (_k, key, _) = keys("meshc");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    copy_dir(Path::new(&example("booksapp-rest")), &repo.join("k8s"));
    let revision = |dir: &Path| {
        let out = meshc(&["build", s(dir), "--key", s(&key), "--stdout"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.lines().find(|l| l.contains("\"sourceRevision\": \"")).unwrap().to_owned();
        line.split('"').nth(3).unwrap().to_owned()
    };
    assert_eq!(revision(&repo.join("k8s")), "unknown");
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "policy"]);
    let head = git(&repo, &["rev-parse", "HEAD"]).trim().to_owned();
    assert_eq!(revision(&repo.join("k8s")), head);
    std::fs::write(repo.join("notes.txt"), "outside PATH").unwrap();
    assert_eq!(revision(&repo.join("k8s")), head, "changes outside PATH do not count");
    std::fs::write(repo.join("k8s/extra.yaml"), "# nothing\n").unwrap();
    assert_eq!(revision(&repo.join("k8s")), format!("{head}-dirty"));
}

/// The sequence signed into a build directory's bundle.
fn sequence_in(dir: &Path) -> u64 {
    read_doc(&dir.join("bundle.yaml"))["spec"]["sequence"].as_u64().expect("a signed sequence")
}

#[test]
fn rollback_build_refuses_a_sequence_not_above_the_one_in_out_unless_allowed() {
    let (_k, key, public) = keys("meshc");
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    let first = build("booksapp-rest", &key, &dist, &["--sequence", "10"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(stderr(&first).contains("sequence 10"), "{}", stderr(&first));
    let before = tree(&dist);

    let older = build("booksapp-rest", &key, &dist, &["--sequence", "9"]);
    assert_eq!(older.status.code(), Some(2));
    let err = stderr(&older);
    assert!(err.contains("sequence 9 is below 10") && err.contains("--allow-rollback"), "{err}");
    assert_eq!(tree(&dist), before, "a refused build writes nothing");

    // The same build again (same sequence, same signed content) is fine.
    let again = build("booksapp-rest", &key, &dist, &["--sequence", "10"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(tree(&dist), before);
    // The same sequence with other content (here another policy) is not.
    let other = build("emojivoto-grpc", &key, &dist, &["--sequence", "10"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(stderr(&other).contains("sequence 10 was already accepted with other content"), "{}", stderr(&other));
    assert_eq!(tree(&dist), before);

    let allowed = build("booksapp-rest", &key, &dist, &["--sequence", "9", "--allow-rollback"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    assert_eq!(sequence_in(&dist), 9);
    let config = read_doc(&dist.join(BOOKS));
    let payload = config["spec"]["envelope"]["payload"].as_str().unwrap();
    let signed: Value = serde_json::from_slice(&base64_decode(payload)).unwrap();
    assert_eq!(signed["sequence"], 9, "each config signs the build's sequence too");
    let ok = verify(&dist, &public);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(String::from_utf8(ok.stdout).unwrap().contains("sequence 9"), "verify-bundle reports the sequence");

    let zero = build("booksapp-rest", &key, &tmp.path().join("zero"), &["--sequence", "0"]);
    assert_eq!(zero.status.code(), Some(2), "sequence 0 means none: refused");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64ct::Encoding;
    base64ct::Base64::decode_vec(text).unwrap()
}

/// Without --sequence: the clean commit's committer time, so that checking
/// out an older commit and building it into the same --out is refused;
/// outside a clean tree, the clock, above what --out holds.
#[test]
fn rollback_default_sequence_follows_commits_and_refuses_an_older_checkout() {
    let (_k, key, _) = keys("meshc");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let dist = tmp.path().join("dist");
    copy_dir(Path::new(&example("booksapp-rest")), &repo.join("k8s"));
    let k8s = repo.join("k8s");
    let build_repo = |extra: &[&str]| {
        let mut args = vec!["build", s(&k8s), "--key", s(&key), "--out", s(&dist)];
        args.extend(extra);
        meshc(&args)
    };
    let commit_at = |when: &str, message: &str| {
        let out = Command::new("git")
            .args(["-c", "user.name=meshc", "-c", "user.email=meshc@example.com", "-c", "commit.gpgsign=false"])
            .args(["commit", "-q", "-a", "-m", message])
            .env("GIT_COMMITTER_DATE", when)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    commit_at("@1700000000 +0000", "first");
    let first = git(&repo, &["rev-parse", "HEAD"]).trim().to_owned();
    let out = build_repo(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sequence_in(&dist), 1_700_000_000);

    std::fs::write(repo.join("k8s/extra.yaml"), "# nothing\n").unwrap();
    git(&repo, &["add", "-A"]);
    commit_at("@1700000100 +0000", "second");
    let out = build_repo(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sequence_in(&dist), 1_700_000_100);

    git(&repo, &["checkout", "-q", &first]);
    let older = build_repo(&[]);
    assert_eq!(older.status.code(), Some(2));
    assert!(stderr(&older).contains("sequence 1700000000 is below 1700000100"), "{}", stderr(&older));
    assert_eq!(sequence_in(&dist), 1_700_000_100);

    // A dirty tree is not a commit: the clock's time, which is later.
    std::fs::write(repo.join("k8s/extra.yaml"), "# changed\n").unwrap();
    let dirty = build_repo(&[]);
    assert_eq!(dirty.status.code(), Some(0), "{}", stderr(&dirty));
    assert!(stderr(&dirty).contains("not a clean git work tree"), "{}", stderr(&dirty));
    assert!(sequence_in(&dist) > 1_700_000_100);
}

/// The first ServicePolicy file of a build, relative to its directory.
fn first_service_policy(dist: &Path) -> String {
    let found = tree(dist).into_iter().map(|(p, _)| p).find(|p| p.starts_with("servicepolicies/"));
    found.expect("podinfo's Service has routes: the build shares its policy")
}

#[test]
fn tampering_with_a_service_policy_fails_naming_it() {
    let f = fixture_of("podinfo-canary");
    let rel = first_service_policy(&f.dist);
    let err = tampered(&f, |d| std::fs::remove_file(d.join(&rel)).unwrap());
    assert!(err.contains("listed in the signed MeshBundle but missing"), "{err}");
    let err = tampered(&f, |d| edit(&d.join(&rel), |v| flip_base64(&mut v["spec"]["envelope"]["payload"], 30)));
    assert!(err.contains(&format!("({rel}): envelope:")), "{err}");
    let err = tampered(&f, |d| edit(&d.join(&rel), |v| v["spec"]["service"] = Value::from("other")));
    assert!(err.contains(&format!("({rel}): namespace and spec.service are not the signed Service")), "{err}");
    // A copy renamed in its metadata: the name must be the one its signed
    // Service and audience give.
    let err = tampered(&f, |d| {
        let copy = d.join(&rel).with_file_name("copy.yaml");
        std::fs::copy(d.join(&rel), &copy).unwrap();
        edit(&copy, |v| v["metadata"]["name"] = Value::from("copy"));
    });
    assert!(err.contains("metadata.name is not"), "{err}");
    // A verbatim copy in another file: the same signed policy twice.
    let err = tampered(&f, |d| {
        std::fs::copy(d.join(&rel), d.join(&rel).with_file_name("copy.yaml")).unwrap();
    });
    assert!(err.contains("duplicate of"), "{err}");
}
