//! ServicePolicies in the store: served under the rules of configs.

use super::*;
use mesh_proxy_api::envelope::SigningKey;
use meshc::emit::{self, BuildInfo, ConfigOut};

/// podinfo-canary's build as `meshc build` makes it: its canary's routes
/// are a shared ServicePolicy.
fn build(signer: &SigningKey, sequence: u64) -> Update {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/podinfo-canary");
    let outcome = meshc::pipeline::check(&meshc::load::Input::Path(dir), &Default::default()).expect("compiles");
    let info = BuildInfo { source_revision: "test".into(), sequence, error_findings: 0 };
    update_of(emit::build_outcome(&outcome, signer, &info, &ConfigOut::Keep).unwrap())
}

/// The store update that takes in every object of `built`.
fn update_of(built: emit::Built) -> Update {
    let mut update = Update::default();
    for (path, text) in built.files {
        let key = |rest: &str| {
            let (ns, file) = rest.split_once('/').unwrap();
            ObjectKey { namespace: ns.into(), name: file.strip_suffix(".yaml").unwrap().into() }
        };
        if path == emit::BUNDLE_FILE {
            update.bundle = Some(Bytes::from(text));
        } else if let Some(rest) = path.strip_prefix("configs/") {
            update.configs.push((key(rest), Bytes::from(text)));
        } else if let Some(rest) = path.strip_prefix("servicepolicies/") {
            update.policies.push((key(rest), Bytes::from(text)));
        }
    }
    update
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

#[test]
fn listed_service_policies_are_served_and_a_bad_one_keeps_the_last_good() {
    let b = build(&key(1), 10);
    let listed: Vec<ObjectKey> = b.policies.iter().map(|(k, _)| k.clone()).collect();
    assert!(!listed.is_empty(), "the canary's routes are shared");
    let mut store = Store::new(vec![key(1).verifying_key()]);
    store.update(b.clone());
    assert_eq!(store.served_policies().keys().cloned().collect::<Vec<_>>(), listed);
    for k in &listed {
        assert!(matches!(store.status(&Subject::Policy(k.clone())), Some(Status::Accepted { .. })), "{k}");
    }
    // Another key's signature over the same object: refused, the good one stays.
    let other = build(&key(2), 10);
    let (k, bytes) = other.policies[0].clone();
    let before = store.served_policies()[&k].digest.clone();
    store.update(Update { policies: vec![(k.clone(), bytes)], ..Update::default() });
    assert!(
        matches!(store.status(&Subject::Policy(k.clone())), Some(Status::Rejected(r)) if r.reason == "untrusted-key")
    );
    assert_eq!(store.served_policies()[&k].digest, before, "the last good ServicePolicy stays served");
    // A good object under a name its signed Service and audience do not
    // give is refused for its metadata, and never served.
    let stray = ObjectKey { namespace: k.namespace.clone(), name: "stray".into() };
    let (_, good) = b.policies[0].clone();
    store.update(Update { policies: vec![(stray.clone(), good)], ..Update::default() });
    assert!(
        matches!(store.status(&Subject::Policy(stray.clone())), Some(Status::Rejected(r)) if r.reason == "metadata")
    );
    assert!(!store.served_policies().contains_key(&stray));
}

#[test]
fn a_removed_service_policy_is_missing_and_a_bundle_without_it_drops_it() {
    let b = build(&key(1), 11);
    let mut store = Store::new(vec![key(1).verifying_key()]);
    store.update(b.clone());
    let (k, _) = b.policies[0].clone();
    store.update(Update { removed_policies: vec![k.clone()], ..Update::default() });
    assert!(matches!(store.status(&Subject::Policy(k.clone())), Some(Status::Rejected(r)) if r.reason == "missing"));
    assert!(store.served_policies().contains_key(&k), "listed: its last good content stays");
    let mut bare = Update::default();
    let configs: Vec<Option<mesh_proxy_api::ProxyConfig>> = Vec::new();
    let info = BuildInfo { source_revision: "test".into(), sequence: 12, error_findings: 0 };
    let built = emit::build(&configs, &key(1), &info).unwrap();
    bare.bundle = built.files.into_iter().find(|(p, _)| p == emit::BUNDLE_FILE).map(|(_, t)| Bytes::from(t));
    store.update(bare);
    assert!(store.served_policies().is_empty(), "no longer listed: no longer served");
    // Put back as it was, good and signed, it is still not in the bundle in force.
    store.update(Update { policies: vec![b.policies[0].clone()], ..Update::default() });
    assert!(
        matches!(store.status(&Subject::Policy(k.clone())), Some(Status::Rejected(r)) if r.reason == "not-in-bundle")
    );
    assert!(store.served_policies().is_empty(), "an object the bundle does not list is never served");
}

/// A build that shares no ServicePolicy after one that did, its MeshBundle
/// merged over the live one, as an apply that merges leaves it (server-side
/// apply keeps a field that another field manager set, and the fake API
/// server keeps every field): the list the new object leaves out would
/// survive from the old one, so the clear spec would not be the signed one
/// and the runtime would keep the old build in force. The object states
/// its empty list, which replaces the old one.
#[test]
fn a_bundle_without_shared_policies_applied_by_a_merge_over_one_with_them_goes_in_force() {
    let with = build(&key(1), 20);
    assert!(!with.policies.is_empty(), "the canary's routes are shared");
    let mut store = Store::new(vec![key(1).verifying_key()]);
    store.update(with.clone());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/podinfo-canary");
    let outcome = meshc::pipeline::compile(&meshc::load::Input::Path(dir), &Default::default()).expect("compiles");
    let info = BuildInfo { source_revision: "test".into(), sequence: 21, error_findings: 0 };
    let mut without = update_of(emit::build(&outcome.configs, &key(1), &info).unwrap());
    assert!(without.policies.is_empty(), "configs that stand alone share nothing");
    let object = |b: &Option<Bytes>| -> serde_json::Value {
        serde_json::from_slice(&check::json_body(b.as_ref().expect("a bundle"))).unwrap()
    };
    let mut live = object(&with.bundle);
    json_patch::merge(&mut live, &object(&without.bundle));
    without.bundle = Some(Bytes::from(serde_json::to_vec(&live).unwrap()));
    let configs: Vec<ObjectKey> = without.configs.iter().map(|(k, _)| k.clone()).collect();
    store.update(without);
    assert!(
        matches!(store.status(&Subject::Bundle), Some(Status::Accepted { .. })),
        "{:?}",
        store.status(&Subject::Bundle)
    );
    assert_eq!(store.bundle().map(|b| b.sequence), Some(21));
    for k in configs {
        assert!(matches!(store.status(&Subject::Config(k.clone())), Some(Status::Accepted { .. })), "{k}");
    }
    assert!(store.served_policies().is_empty(), "the new build lists none");
}
