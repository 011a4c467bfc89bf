//! A build carries exactly what analysis used: build, verify (library),
//! decode the payloads, and compare with `pipeline::compile`'s configs.
//! Also: no single-byte change to a built config file verifies.

use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::envelope::{self, SigningKey};
use mesh_proxy_api::service_policy::effective_outbound;
use meshc::emit::{self, BuildInfo, verify, write};
use meshc::load::Input;
use meshc::pipeline::{self, Options};
use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples").join(name)
}

fn analysed(path: &Path) -> Vec<ProxyConfig> {
    let options = Options { tests: Some(Vec::new()), ..Options::default() };
    let outcome = pipeline::compile(&Input::Path(path.to_path_buf()), &options).expect("example loads");
    let mut configs: Vec<ProxyConfig> = outcome.configs.into_iter().flatten().collect();
    configs.sort_by(|a, b| a.workload.cmp(&b.workload));
    configs
}

fn example_configs(name: &str) -> Vec<Option<ProxyConfig>> {
    pipeline::compile(&Input::Path(example(name)), &Options::default()).unwrap().configs
}

/// The sequence these builds sign.
const SEQUENCE: u64 = 7;

/// `configs` built with the key from `seed`, at revision `r`.
fn build_with(configs: &[Option<ProxyConfig>], seed: u8) -> Result<(emit::Built, SigningKey), emit::EmitError> {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let info = BuildInfo { source_revision: "r".into(), sequence: SEQUENCE, error_findings: 0 };
    Ok((emit::build(configs, &key, &info)?, key))
}

/// What `meshc build` signs for example `name` (configs and shared
/// ServicePolicies), with the key from `seed`.
fn build_example(name: &str, seed: u8) -> (emit::Built, SigningKey) {
    let outcome = pipeline::check(&Input::Path(example(name)), &Options::default()).expect("example loads");
    let key = SigningKey::from_bytes(&[seed; 32]);
    let info = BuildInfo { source_revision: "r".into(), sequence: SEQUENCE, error_findings: 0 };
    (emit::build_outcome(&outcome, &key, &info, &emit::ConfigOut::Keep).expect("example builds"), key)
}

#[test]
fn built_configs_are_exactly_the_analysed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(["keygen", "--out", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let public =
        envelope::verifying_key_from_pem(&std::fs::read_to_string(tmp.path().join("meshc.pub")).unwrap()).unwrap();
    for name in ["booksapp-rest", "emojivoto-grpc", "common-mistakes", "podinfo-canary"] {
        let dist = tmp.path().join(name);
        let out = Command::new(env!("CARGO_BIN_EXE_meshc"))
            .arg("build")
            .arg(example(name))
            .args(["--allow-errors", "--sequence", &SEQUENCE.to_string(), "--key"])
            .arg(tmp.path().join("meshc.key"))
            .arg("--out")
            .arg(&dist)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let verified = verify::verify_path(&dist, &[public]).unwrap().unwrap_or_else(|p| panic!("{name}: {p:?}"));
        let mut signed = verified.configs;
        signed.sort_by(|a, b| a.workload.cmp(&b.workload));
        // What each proxy enforces: its config composed with the verified
        // ServicePolicies of its namespace, as mesh-proxy composes them.
        let shared = &verified.service_policies;
        for c in &mut signed {
            assert!(c.outbound.service_policies.is_some() || shared.is_empty(), "{name}: each config names its set");
            c.outbound = effective_outbound(&c.outbound, shared, &c.workload.namespace);
        }
        let want = analysed(&example(name));
        assert!(!want.is_empty(), "{name} has meshed workloads");
        // Signing adds the build's sequence and nothing else.
        let want: Vec<_> = want.into_iter().map(|c| ProxyConfig { sequence: SEQUENCE, ..c }).collect();
        assert_eq!(signed, want, "{name}: the enforced configs are the analysed ones");
    }
}

/// Every byte of a config file matters except insignificant whitespace
/// between JSON tokens: changing it to any other byte fails verification.
#[test]
fn every_single_byte_change_to_a_config_file_fails() {
    let (built, key) = build_example("booksapp-rest", 9);
    let tmp = tempfile::tempdir().unwrap();
    write::write_dir(tmp.path(), &built).unwrap();
    // The CRDs are not verified; without them each round parses far less.
    std::fs::remove_file(tmp.path().join(emit::CRDS_FILE)).unwrap();
    let trusted = [key.verifying_key()];
    assert!(verify::verify_path(tmp.path(), &trusted).unwrap().is_ok());
    // The shortest config keeps the run short; every byte of it is tried.
    let (rel, text) =
        built.files.iter().filter(|(p, _)| p.starts_with("configs/")).min_by_key(|(_, t)| t.len()).unwrap();
    let path = tmp.path().join(rel);
    let mut checked = 0;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if b == b' ' || b == b'\n' {
            continue;
        }
        let mut bad = text.as_bytes().to_vec();
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let result = verify::verify_path(tmp.path(), &trusted).unwrap();
        assert!(result.is_err(), "byte {i} ({:?} → {:?}) of {rel} changed unnoticed", b as char, bad[i] as char);
        checked += 1;
    }
    assert!(checked > 500, "checked {checked} bytes");
}

#[path = "support/bless.rs"]
mod bless;

/// The emitted objects for booksapp with a fixed key and revision, so that
/// a change of format shows as a reviewed diff (`MESHC_BLESS=1` rewrites).
/// The CRDs are checked separately (tests/schemas.rs).
#[test]
fn emitted_objects_match_the_golden() {
    // booksapp: Services without outbound policy, so no ServicePolicy;
    // podinfo-canary: its Service's routes, shared (tests/golden/emit/README.md).
    for name in ["booksapp-rest", "podinfo-canary"] {
        let (built, _) = build_example(name, 7);
        let text: String = built.files.iter().filter(|(p, _)| p != emit::CRDS_FILE).map(|(_, t)| t.as_str()).collect();
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/golden/emit/{name}.yaml"));
        if let Err(e) = bless::bless_or_compare(&golden, &text) {
            panic!("{e}\n(review, then `MESHC_BLESS=1 cargo test -p meshc --test build_roundtrip`)");
        }
    }
}

/// Output depends on the configs, not on the order analysis produced them in.
#[test]
fn build_output_does_not_depend_on_input_order() {
    let configs = example_configs("emojivoto-grpc");
    let mut reversed = configs.clone();
    reversed.reverse();
    assert_eq!(build_with(&configs, 5).unwrap().0, build_with(&reversed, 5).unwrap().0);
}

/// A namespace that is no Kubernetes name (and could be a path like `..`)
/// is an error, not a file outside the output directory.
#[test]
fn invalid_namespace_is_an_error() {
    let mut configs = example_configs("booksapp-rest");
    let first = configs.iter_mut().flatten().next().unwrap();
    first.workload.namespace = "..".into();
    let err = build_with(&configs, 5).unwrap_err();
    assert!(err.to_string().contains("namespace `..` is not a valid Kubernetes namespace name"), "{err}");
}

/// The issue's round trip: `build` → verify → the payload decoded by
/// mesh-proxy-api, whose `decide` (what the proxy runs per request) gives
/// every verdict `meshc reach` gives, for every client class × workload ×
/// port and a set of requests (each example's probe paths included).
#[test]
fn verified_payloads_decide_as_reach_predicts() {
    use mesh_proxy_api::{HttpRequest, HttpVerdict, PortPolicy, TcpVerdict, Verdict as ApiVerdict};
    use meshc::query::classes::Classes;
    use meshc::query::evaluate::Verdict;
    use meshc::query::places::Place;
    use meshc::query::reach::{self, ClientView};
    use meshc::query::who;
    use std::collections::BTreeMap;

    let mut checks = 0;
    for name in ["booksapp-rest", "emojivoto-grpc", "common-mistakes", "podinfo-canary"] {
        let o = pipeline::compile(&Input::Path(example(name)), &Options::default()).unwrap();
        let (built, key) = build_example(name, 3);
        let tmp = tempfile::tempdir().unwrap();
        write::write_dir(tmp.path(), &built).unwrap();
        let verified = verify::verify_path(tmp.path(), &[key.verifying_key()]).unwrap().expect("the build verifies");
        let decoded: BTreeMap<_, _> = verified.configs.into_iter().map(|c| (c.workload.clone(), c)).collect();
        let classes = Classes::derive(&o.resolved, &o.configs);
        for (wi, w) in o.resolved.workloads.iter().enumerate() {
            let Some(config) = o.configs[wi].as_ref().map(|c| &decoded[&c.workload]) else { continue };
            let mut requests: Vec<HttpRequest> = ["/", "/api/x", "/books.json"].map(HttpRequest::get).to_vec();
            requests.push(HttpRequest::post("/"));
            requests.push(
                HttpRequest::post("/emojivoto.v1.VotingService/VoteDoughnut")
                    .with_header("content-type", "application/grpc"),
            );
            requests.extend(w.probes.iter().map(|p| HttpRequest::get(&p.path)));
            for port in who::target_ports(w, Some(config)) {
                for class in &classes.classes {
                    let client = &class.client;
                    // The representative where it stands: one client, as the proxy sees it.
                    let here = [(Place { addr: client.addr, within: Vec::new() }, client.clone())];
                    let view = ClientView::of_client(class.label.clone(), class.members[0].kind, &here, Some(class.id));
                    for req in &requests {
                        let proxy = match config.inbound.lookup(port) {
                            PortPolicy::Skipped => Verdict::Allow,
                            _ if config.inbound.skips_source(client.addr) => Verdict::Allow,
                            PortPolicy::Server(s) => match mesh_proxy_api::decide(s, client, req) {
                                ApiVerdict::Http(HttpVerdict::Allowed { .. })
                                | ApiVerdict::Tcp(TcpVerdict::Allowed { .. }) => Verdict::Allow,
                                ApiVerdict::Http(HttpVerdict::Unauthorized { .. })
                                | ApiVerdict::Tcp(TcpVerdict::Closed) => Verdict::Deny,
                                ApiVerdict::Http(HttpVerdict::NoRoute) => Verdict::NoRoute,
                            },
                        };
                        let predicted = reach::reach(&o, view.clone(), wi, port, Some(req));
                        assert_eq!(
                            predicted.verdicts[0].verdict, proxy,
                            "{name}: {} → {}/{}:{port} {req:?}",
                            class.label, w.namespace, w.name
                        );
                        checks += 1;
                    }
                }
            }
        }
    }
    assert!(checks > 500, "only {checks} checks");
}

/// Issue 23's build memory: every config of a large repository lists the
/// Services its workload may reach, so all of them together grow with
/// workloads x Services (21 GB for 10,000 workloads). `build_each` with a
/// writer must make each config once, hand its file over at once and keep
/// no config text, and still write exactly the in-memory build's bytes.
#[test]
fn a_written_build_makes_each_config_once_and_keeps_none() {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let configs: Vec<ProxyConfig> = example_configs("emojivoto-grpc").into_iter().flatten().collect();
    let key = SigningKey::from_bytes(&[4; 32]);
    let info = BuildInfo { source_revision: "r".into(), sequence: SEQUENCE, error_findings: 0 };
    let kept = emit::build(&configs.iter().cloned().map(Some).collect::<Vec<_>>(), &key, &info).unwrap();

    let made: Vec<AtomicUsize> = configs.iter().map(|_| AtomicUsize::new(0)).collect();
    let files: Mutex<BTreeMap<String, String>> = Mutex::default();
    let write = |rel: &str, text: &str| {
        let again = files.lock().unwrap().insert(rel.to_owned(), text.to_owned());
        if again.is_some() { Err(format!("{rel} written twice")) } else { Ok(()) }
    };
    let refs: Vec<_> = configs.iter().map(|c| &c.workload).collect();
    let config_of = |i: usize| {
        made[i].fetch_add(1, Ordering::Relaxed);
        configs[i].clone()
    };
    let streamed = emit::build_each(&refs, config_of, &[], &key, &info, &emit::ConfigOut::Write(&write)).unwrap();

    assert!(made.iter().all(|n| n.load(Ordering::Relaxed) == 1), "each config is made exactly once");
    let held: Vec<&str> = streamed.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(held, [emit::CRDS_FILE, emit::BUNDLE_FILE], "no config text is kept");
    let want: Vec<(String, String)> = kept.files[2..].to_vec();
    let written: Vec<(String, String)> =
        streamed.written.iter().map(|p| (p.clone(), files.lock().unwrap()[p].clone())).collect();
    assert_eq!(written.len(), configs.len());
    assert_eq!(written, want, "the same files, in the same order, as the in-memory build");
    assert_eq!(streamed.files, kept.files[..2].to_vec(), "the same CRDs and bundle");
    assert_eq!((&streamed.kustomization, &streamed.bundle_digest), (&kept.kustomization, &kept.bundle_digest));
}
