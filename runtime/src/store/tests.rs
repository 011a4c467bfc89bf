use super::*;
use mesh_proxy_api::envelope::SigningKey;
use mesh_proxy_api::{AccessLogFormat, ProxyConfig};
use meshc::emit::{self, BuildInfo};
use std::sync::OnceLock;

/// Each build signs a higher sequence than the one before, as successive
/// commits would.
fn next_sequence() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn configs() -> &'static Vec<Option<ProxyConfig>> {
    static CONFIGS: OnceLock<Vec<Option<ProxyConfig>>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/podinfo-canary");
        let input = meshc::load::Input::Path(dir);
        meshc::pipeline::compile(&input, &meshc::pipeline::Options::default()).expect("example compiles").configs
    })
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// One build's objects, as the store receives them.
struct Build {
    bundle: Bytes,
    configs: BTreeMap<ObjectKey, Bytes>,
}

fn build_of(configs: &[Option<ProxyConfig>], signer: &SigningKey) -> Build {
    build_at(configs, signer, next_sequence())
}

fn build_at(configs: &[Option<ProxyConfig>], signer: &SigningKey, sequence: u64) -> Build {
    let info = BuildInfo { source_revision: "test".into(), sequence, error_findings: 0 };
    let built = emit::build(configs, signer, &info).unwrap();
    let mut out = Build { bundle: Bytes::new(), configs: BTreeMap::new() };
    for (path, text) in built.files {
        if path == emit::BUNDLE_FILE {
            out.bundle = Bytes::from(text);
        } else if let Some(rest) = path.strip_prefix("configs/") {
            let (ns, file) = rest.split_once('/').unwrap();
            let name = file.strip_suffix(".yaml").unwrap();
            out.configs.insert(ObjectKey { namespace: ns.into(), name: name.into() }, Bytes::from(text));
        }
    }
    out
}

fn build(signer: &SigningKey) -> Build {
    build_of(configs(), signer)
}

/// The example with one workload's config changed (so its digest changes).
fn changed_build(signer: &SigningKey) -> (Build, String) {
    let (cs, workload) = changed_configs();
    (build_of(&cs, signer), workload)
}

/// The example's configs with the first one changed, and its workload.
fn changed_configs() -> (Vec<Option<ProxyConfig>>, String) {
    let mut cs = configs().clone();
    let c = cs.iter_mut().flatten().next().unwrap();
    c.access_log = Some(AccessLogFormat::Json);
    let workload = check::workload_key(&c.workload);
    (cs, workload)
}

fn load(store: &mut Store, b: &Build) -> Vec<Change> {
    let mut changes = store.set_bundle(b.bundle.clone());
    for (k, bytes) in &b.configs {
        changes.extend(store.set_config(k.clone(), bytes.clone()));
    }
    changes
}

fn object_of(b: &Build, workload: &str) -> ObjectKey {
    let store = loaded(b);
    store.get(workload).unwrap().object.clone()
}

fn loaded(b: &Build) -> Store {
    let mut store = Store::new(vec![key(1).verifying_key()]);
    load(&mut store, b);
    store
}

fn rejected(store: &Store, k: &ObjectKey) -> &'static str {
    match store.status(&Subject::Config(k.clone())) {
        Some(Status::Rejected(r)) => r.reason,
        other => panic!("{k} is {other:?}"),
    }
}

fn digests(store: &Store) -> BTreeMap<String, String> {
    store.served().iter().map(|(w, s)| (w.clone(), s.digest.clone())).collect()
}

#[test]
fn a_build_is_served_per_workload_with_its_signed_identity() {
    let b = build(&key(1));
    let mut store = Store::new(vec![key(1).verifying_key()]);
    let changes = load(&mut store, &b);
    let expected: Vec<&ProxyConfig> = configs().iter().flatten().collect();
    assert_eq!(store.served().len(), expected.len());
    assert!(expected.len() >= 2, "the example has several meshed workloads");
    for c in expected {
        let s = store.get(&check::workload_key(&c.workload)).unwrap();
        assert_eq!(s.identity, c.identity);
        assert!(s.digest.starts_with("sha256:"));
        assert_eq!(s.body.first(), Some(&b'{'), "the `---` marker is not served");
        assert_eq!(s.key_id, mesh_proxy_api::envelope::key_id(&key(1).verifying_key()));
    }
    assert!(changes.iter().any(|c| c.subject == Subject::Bundle && matches!(c.status, Status::Accepted { .. })));
    for k in b.configs.keys() {
        assert!(matches!(store.status(&Subject::Config(k.clone())), Some(Status::Accepted { .. })));
    }
    assert!(load(&mut store, &b).is_empty(), "the same objects again change nothing");
}

#[test]
fn configs_wait_for_a_bundle_that_lists_them() {
    let b = build(&key(1));
    let mut store = Store::new(vec![key(1).verifying_key()]);
    for (k, bytes) in &b.configs {
        store.set_config(k.clone(), bytes.clone());
        assert_eq!(rejected(&store, k), "no-bundle");
    }
    assert!(store.served().is_empty());
    let changes = store.set_bundle(b.bundle.clone());
    assert_eq!(store.served().len(), b.configs.len());
    assert_eq!(changes.len(), b.configs.len() + 1, "bundle and every config became accepted");
}

#[test]
fn a_tampered_config_is_refused_and_the_last_good_one_stays() {
    let b = build(&key(1));
    let mut store = loaded(&b);
    let before = digests(&store);
    let (k, bytes) = b.configs.iter().next().unwrap();
    let text = std::str::from_utf8(bytes).unwrap();
    // Another payload under the same signature.
    let payload_at = text.find("\"payload\": \"").unwrap() + 12;
    let mut tampered = text.to_owned().into_bytes();
    tampered[payload_at + 5] = if tampered[payload_at + 5] == b'A' { b'B' } else { b'A' };
    let changes = store.set_config(k.clone(), Bytes::from(tampered));
    assert_eq!(rejected(&store, k), "signature");
    assert_eq!(changes.len(), 1);
    assert_eq!(digests(&store), before);
    // The clear digest edited to something else.
    let digest = store.served().values().find(|s| &s.object == k).unwrap().digest.clone();
    let edited = text.replace(&digest, &format!("sha256:{}", "0".repeat(64)));
    store.set_config(k.clone(), Bytes::from(edited));
    assert_eq!(rejected(&store, k), "digest");
    assert_eq!(digests(&store), before);
    store.set_config(k.clone(), Bytes::from_static(b"---\n{not json"));
    assert_eq!(rejected(&store, k), "parse");
    assert_eq!(digests(&store), before);
    store.set_config(k.clone(), bytes.clone());
    assert!(matches!(store.status(&Subject::Config(k.clone())), Some(Status::Accepted { .. })));
}

#[test]
fn a_config_signed_by_an_untrusted_key_is_refused() {
    let good = build(&key(1));
    let evil = build(&key(2));
    let mut store = loaded(&good);
    let before = digests(&store);
    let (k, bytes) = evil.configs.iter().next().unwrap();
    store.set_config(k.clone(), bytes.clone());
    assert_eq!(rejected(&store, k), "untrusted-key");
    store.set_bundle(evil.bundle.clone());
    assert!(matches!(store.status(&Subject::Bundle), Some(Status::Rejected(r)) if r.reason == "untrusted-key"));
    assert_eq!(digests(&store), before);
}

#[test]
fn a_config_moved_to_another_object_or_namespace_is_refused() {
    let b = build(&key(1));
    let mut store = loaded(&b);
    let (k, bytes) = b.configs.iter().next().unwrap();
    let renamed = ObjectKey { namespace: k.namespace.clone(), name: "other".into() };
    store.set_config(renamed.clone(), bytes.clone());
    assert_eq!(rejected(&store, &renamed), "metadata");
    let moved = ObjectKey { namespace: "elsewhere".into(), name: k.name.clone() };
    store.set_config(moved.clone(), bytes.clone());
    assert_eq!(rejected(&store, &moved), "metadata");
}

#[test]
fn the_bundle_decides_which_configs_are_served() {
    let full = build(&key(1));
    let (first, rest) = configs()
        .iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .split_first()
        .map(|(f, r)| (f.clone(), r.to_vec()))
        .unwrap();
    let dropped_workload = check::workload_key(&first.workload);
    let smaller = build_of(&rest.into_iter().map(Some).collect::<Vec<_>>(), &key(1));
    let mut store = loaded(&full);
    let dropped = object_of(&full, &dropped_workload);
    // A new signed bundle without the workload: it is no longer served, and
    // its object, still present, is refused as not listed.
    store.set_bundle(smaller.bundle.clone());
    assert!(store.get(&dropped_workload).is_none());
    assert_eq!(rejected(&store, &dropped), "not-in-bundle");
    assert_eq!(store.served().len(), smaller.configs.len());
    // A config added beside the bundle (here, the old one put back) is refused too.
    store.remove_config(&dropped);
    store.set_config(dropped.clone(), full.configs[&dropped].clone());
    assert_eq!(rejected(&store, &dropped), "not-in-bundle");
    assert!(store.get(&dropped_workload).is_none());
}

#[test]
fn a_new_config_waits_for_the_bundle_that_signs_its_digest() {
    let old = build(&key(1));
    let (new, workload) = changed_build(&key(1));
    let mut store = loaded(&old);
    let old_digest = store.get(&workload).unwrap().digest.clone();
    let k = store.get(&workload).unwrap().object.clone();
    store.set_config(k.clone(), new.configs[&k].clone());
    assert_eq!(rejected(&store, &k), "bundle-mismatch");
    assert_eq!(store.get(&workload).unwrap().digest, old_digest, "the last good config stays");
    store.set_bundle(new.bundle.clone());
    let new_digest = store.get(&workload).unwrap().digest.clone();
    assert_ne!(new_digest, old_digest);
    assert_eq!(store.status(&Subject::Config(k)), Some(&Status::Accepted { digest: new_digest }));
    assert_eq!(store.served().len(), new.configs.len());
}

#[test]
fn a_listed_object_that_disappears_keeps_its_last_good_config() {
    let b = build(&key(1));
    let mut store = loaded(&b);
    let before = digests(&store);
    let k = b.configs.keys().next().unwrap().clone();
    let changes = store.remove_config(&k);
    assert_eq!(changes.len(), 1);
    assert_eq!(rejected(&store, &k), "missing");
    assert_eq!(digests(&store), before);
}

#[test]
fn a_tampered_bundle_is_refused_and_the_last_good_one_stays() {
    let b = build(&key(1));
    let (new, workload) = changed_build(&key(1));
    let mut store = loaded(&b);
    let k = store.get(&workload).unwrap().object.clone();
    let old_digest = store.get(&workload).unwrap().digest.clone();
    let new_digest = check::config(&k, &new.configs[&k], &[key(1).verifying_key()]).unwrap().digest;
    // Point the old bundle's clear entry at the new digest without re-signing.
    let text = std::str::from_utf8(&b.bundle).unwrap().replace(&old_digest, &new_digest);
    store.set_bundle(Bytes::from(text));
    assert!(matches!(store.status(&Subject::Bundle), Some(Status::Rejected(r)) if r.reason == "metadata"));
    store.set_config(k.clone(), new.configs[&k].clone());
    assert_eq!(rejected(&store, &k), "bundle-mismatch");
    assert_eq!(store.get(&workload).unwrap().digest, old_digest);
}

#[test]
fn key_rotation_keeps_what_still_verifies_and_drops_what_only_a_removed_key_signed() {
    let old = build(&key(1));
    let new = build(&key(2));
    let mut store = loaded(&old);
    let n = store.served().len();
    store.set_trusted(vec![key(1).verifying_key(), key(2).verifying_key()]);
    assert_eq!(store.served().len(), n, "adding a key changes nothing");
    load(&mut store, &new);
    assert!(store.served().values().all(|s| s.key_id == mesh_proxy_api::envelope::key_id(&key(2).verifying_key())));
    store.set_trusted(vec![key(2).verifying_key()]);
    assert_eq!(store.served().len(), n, "the old key's removal drops nothing the new key signed");
    store.set_trusted(vec![key(3).verifying_key()]);
    assert!(store.served().is_empty(), "nothing verifies with only an unknown key");
    assert!(store.bundle().is_none());
}

#[test]
fn content_seen_again_leaves_the_revision_so_nothing_is_republished() {
    let b = build(&key(1));
    let mut store = Store::new(vec![key(1).verifying_key()]);
    load(&mut store, &b);
    let revision = store.revision();
    // What a status write looks like once the watch brings it back.
    let (k, bytes) = b.configs.iter().next().unwrap();
    assert!(store.set_config(k.clone(), bytes.clone()).is_empty());
    assert!(store.set_bundle(b.bundle.clone()).is_empty());
    assert_eq!(store.revision(), revision);
    let (next, _) = changed_build(&key(1));
    store.update(Update { bundle: Some(next.bundle.clone()), ..Update::default() });
    assert_ne!(store.revision(), revision);
}

fn bundle_rejected(store: &Store) -> Rejection {
    match store.status(&Subject::Bundle) {
        Some(Status::Rejected(r)) => r.clone(),
        other => panic!("the bundle is {other:?}"),
    }
}

#[test]
fn rollback_the_previous_build_put_back_is_refused_and_the_newer_stays_served() {
    let (old_seq, new_seq) = (next_sequence(), next_sequence());
    let older = build_at(configs(), &key(1), old_seq);
    let (changed_cs, changed) = changed_configs();
    let newer = build_at(&changed_cs, &key(1), new_seq);
    let mut store = loaded(&older);
    load(&mut store, &newer);
    let served = digests(&store);
    let floor = store.floor().cloned().expect("a floor once a bundle is accepted");
    assert_eq!(floor.digest, store.bundle().unwrap().digest);

    load(&mut store, &older);
    let r = bundle_rejected(&store);
    assert_eq!(r.reason, "rollback");
    assert_eq!(floor.sequence, new_seq);
    assert!(r.message.contains(&format!("sequence {old_seq} is below {new_seq}")), "{}", r.message);
    assert_eq!(digests(&store), served, "the newer build stays served");
    assert_eq!(store.floor(), Some(&floor));
    // The older build's changed config no longer matches the bundle in force.
    assert_eq!(rejected(&store, &object_of(&older, &changed)), "bundle-mismatch");
    // A key rotation re-checks everything and still refuses it.
    store.set_trusted(vec![key(1).verifying_key(), key(2).verifying_key()]);
    assert_eq!(bundle_rejected(&store).reason, "rollback");
    assert_eq!(digests(&store), served);
}

#[test]
fn rollback_floor_from_durable_state_refuses_an_older_build_after_a_restart() {
    let older = build(&key(1));
    let (newer, _) = changed_build(&key(1));
    let floor = loaded(&newer).floor().cloned().unwrap();

    // A restart: a new store with the recorded floor meets the older build.
    let mut store = Store::new(vec![key(1).verifying_key()]);
    store.raise_floor(floor.clone());
    load(&mut store, &older);
    assert_eq!(bundle_rejected(&store).reason, "rollback");
    assert!(store.served().is_empty(), "nothing older than the floor is served");
    // The same build as the floor is accepted again (a restart, a re-apply).
    load(&mut store, &newer);
    assert!(matches!(store.status(&Subject::Bundle), Some(Status::Accepted { .. })));
    assert_eq!(digests(&store), digests(&loaded(&newer)));
    // A lower floor never lowers it.
    store.raise_floor(Floor { sequence: 1, digest: "sha256:00".into() });
    assert_eq!(store.floor(), Some(&floor));
}

#[test]
fn rollback_same_sequence_with_other_content_is_refused() {
    let sequence = next_sequence();
    let first = build_at(configs(), &key(1), sequence);
    let other = build_at(&changed_configs().0, &key(1), sequence);
    let mut store = loaded(&first);
    let served = digests(&store);
    load(&mut store, &other);
    let r = bundle_rejected(&store);
    assert_eq!(r.reason, "rollback");
    assert!(r.message.contains("already accepted with other content"), "{}", r.message);
    assert_eq!(digests(&store), served);
}
