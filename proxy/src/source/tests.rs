//! The loader against real files: every kind of bad config is refused and
//! counted under its reason while the last good one stays in force.

use super::*;
use crate::state::{self, ConfigRx};
use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::envelope::{self, Envelope, SigningKey, sign};
use meshc::emit::objects::{Object, ObjectMeta, ProxyConfigSpec, document};

use std::time::Instant;

const WORKLOAD: &str = "Deployment/shop/web";
const POLL: Duration = Duration::from_millis(10);

fn config(name: &str, policy: &str) -> ProxyConfig {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "meshc.io/v1alpha1",
        "workload": {"kind": "Deployment", "namespace": "shop", "name": name},
        "identity": format!("{name}.shop.serviceaccount.identity.linkerd.cluster.local"),
        "inbound": {"ports": [], "defaultServer": {
            "meta": {"kind": "default", "name": policy}, "protocol": {"kind": "opaque"}, "authorizations": []}}
    }))
    .expect("test config decodes")
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The object file `meshc build` writes for `config`, signed by `key`.
fn object_file(config: &ProxyConfig, key: &SigningKey) -> String {
    let envelope = sign(config, key);
    object_with(config, envelope::payload_digest(&envelope).unwrap(), envelope)
}

fn object_with(config: &ProxyConfig, digest: String, envelope: Envelope) -> String {
    let object = Object {
        api_version: "meshc.io/v1alpha1".into(),
        kind: "ProxyConfig".into(),
        metadata: ObjectMeta { name: "web".into(), namespace: Some("shop".into()), ..Default::default() },
        spec: ProxyConfigSpec {
            workload: config.workload.clone(),
            identity: config.identity.clone(),
            digest,
            envelope,
        },
    };
    document(&object)
}

struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    rx: ConfigRx,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn start(trusted: &[&SigningKey]) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yaml");
        let (tx, rx) = state::channel();
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let verifier =
            Verifier { trusted: trusted.iter().map(|k| k.verifying_key()).collect(), workload: WORKLOAD.into() };
        let task = tokio::spawn(watch_file(path.clone(), None, POLL, verifier, tx, metrics.clone(), shutdown.clone()));
        Harness { _dir: dir, path, rx, metrics, shutdown, task }
    }

    /// Replaces the file atomically, as meshc does.
    fn write(&self, text: &str) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    async fn published(&mut self) -> Arc<Loaded> {
        tokio::time::timeout(Duration::from_secs(5), self.rx.changed()).await.expect("a config is published").unwrap();
        state::current(&self.rx).expect("published config is Some")
    }

    fn rejected(&self, reason: &str) -> u64 {
        let prefix = format!("mesh_proxy_config_rejected_total{{reason=\"{reason}\"}} ");
        let text = self.metrics.encode();
        text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |n| n.parse().unwrap())
    }

    /// Waits for `reason`'s counter to reach `n`, then checks that the
    /// config in force is still generation `keep`.
    async fn refused(&self, reason: &str, n: u64, keep: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.rejected(reason) < n {
            assert!(Instant::now() < deadline, "no `{reason}` rejection:\n{}", self.metrics.encode());
            tokio::time::sleep(POLL).await;
        }
        assert_eq!(self.rejected(reason), n);
        assert!(!self.rx.has_changed().unwrap(), "a refused config was published");
        assert_eq!(state::current(&self.rx).map(|c| c.generation), Some(keep));
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn bad_configs_keep_the_last_good_one_and_are_counted_by_reason() {
    let signer = key(1);
    let mut h = Harness::start(&[&signer]);
    let first = config("web", "deny");
    h.write(&object_file(&first, &signer));
    let loaded = h.published().await;
    assert_eq!((loaded.generation, &loaded.config), (1, &first));
    assert_eq!(loaded.key_id, envelope::key_id(&signer.verifying_key()));
    assert_eq!(loaded.digest, envelope::payload_digest(&sign(&first, &signer)).unwrap());
    assert!(h.metrics.encode().contains("mesh_proxy_config_generation 1\n"));

    // Tampered: the payload says all-unauthenticated, the signature is over deny.
    let mut tampered = sign(&first, &signer);
    let other = sign(&config("web", "all-unauthenticated"), &signer);
    tampered.payload = other.payload.clone();
    h.write(&object_with(&first, envelope::payload_digest(&tampered).unwrap(), tampered));
    h.refused("signature", 1, 1).await;

    h.write(&object_file(&config("web", "all-unauthenticated"), &key(2)));
    h.refused("untrusted-key", 1, 1).await;

    h.write(&object_file(&config("api", "all-unauthenticated"), &signer));
    h.refused("workload", 1, 1).await;

    h.write(&object_with(&first, "sha256:00".into(), sign(&config("web", "cluster-authenticated"), &signer)));
    h.refused("digest", 1, 1).await;

    h.write("{\"kind\": \"ProxyConfig\", \"spec\": 3");
    h.refused("parse", 1, 1).await;

    std::fs::remove_file(&h.path).unwrap();
    h.refused("io", 1, 1).await;

    let second = config("web", "all-authenticated");
    h.write(&object_file(&second, &signer));
    let loaded = h.published().await;
    assert_eq!((loaded.generation, &loaded.config), (2, &second));
    assert!(h.metrics.encode().contains("mesh_proxy_config_generation 2\n"));
    // Each bad state was counted once although it was polled many times.
    for reason in ["signature", "untrusted-key", "workload", "digest", "parse", "io"] {
        assert_eq!(h.rejected(reason), 1, "{reason}");
    }
    h.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), &mut h.task).await.expect("loader stops on shutdown").unwrap();
}

#[tokio::test]
async fn a_bare_envelope_loads_and_the_same_config_is_not_republished() {
    let signer = key(3);
    let mut h = Harness::start(&[&key(9), &signer]);
    let c = config("web", "deny");
    let envelope = serde_json::to_string(&sign(&c, &signer)).unwrap();
    h.write(&envelope);
    let loaded = h.published().await;
    assert_eq!(loaded.generation, 1);
    assert_eq!(loaded.key_id, envelope::key_id(&signer.verifying_key()));
    // Same config, now as an object file: new bytes, same digest.
    h.write(&object_file(&c, &signer));
    tokio::time::sleep(POLL * 10).await;
    assert!(!h.rx.has_changed().unwrap(), "an unchanged config was republished");
    assert!(!h.metrics.encode().contains("mesh_proxy_config_rejected_total"));
}

#[test]
fn documents_parse_with_or_without_the_marker() {
    let signer = key(4);
    let v = Verifier { trusted: vec![signer.verifying_key()], workload: WORKLOAD.into() };
    let text = object_file(&config("web", "deny"), &signer);
    assert!(text.starts_with("---\n"));
    assert!(v.open(text.as_bytes()).is_ok());
    assert!(v.open(text.trim_start_matches("---\n").as_bytes()).is_ok());
    let e = v.open(b"---\n{\"kind\": \"Secret\", \"spec\": {\"envelope\": {}}}").unwrap_err();
    assert_eq!(e.reason(), "parse");
    let e = v.open(&[0xff, 0xfe]).unwrap_err();
    assert_eq!(e.reason(), "parse");
}

#[test]
fn a_malformed_workload_setting_refuses_everything() {
    let signer = key(5);
    let v = Verifier { trusted: vec![signer.verifying_key()], workload: "web".into() };
    let e = v.open(object_file(&config("web", "deny"), &signer).as_bytes()).unwrap_err();
    assert_eq!(e.reason(), "workload");
    assert!(e.to_string().contains("Kind/namespace/name"), "{e}");
}

#[tokio::test]
async fn rollback_an_older_config_is_refused_and_the_newer_one_stays() {
    let signer = key(6);
    let mut h = Harness::start(&[&signer]);
    // The older build let everyone in; the newer one closed that.
    let old = ProxyConfig { sequence: 100, ..config("web", "all-unauthenticated") };
    let new = ProxyConfig { sequence: 200, ..config("web", "deny") };
    let (old_file, new_file) = (object_file(&old, &signer), object_file(&new, &signer));
    h.write(&old_file);
    assert_eq!(h.published().await.config, old);
    h.write(&new_file);
    let loaded = h.published().await;
    assert_eq!((loaded.generation, &loaded.config), (2, &new));

    // The previous build put back in place: refused, the newer one stays.
    h.write(&old_file);
    h.refused("rollback", 1, 2).await;
    assert_eq!(state::current(&h.rx).unwrap().config, new);
    // The same sequence with other content is refused too.
    h.write(&object_file(&ProxyConfig { sequence: 200, ..config("web", "all-authenticated") }, &signer));
    h.refused("rollback", 2, 2).await;
    // The newer build again is the config in force: nothing happens.
    h.write(&new_file);
    tokio::time::sleep(POLL * 10).await;
    assert!(!h.rx.has_changed().unwrap());
    assert_eq!(h.rejected("rollback"), 2);
    // A later build loads.
    let later = ProxyConfig { sequence: 300, ..config("web", "all-authenticated") };
    h.write(&object_file(&later, &signer));
    let loaded = h.published().await;
    assert_eq!((loaded.generation, &loaded.config), (3, &later));

    // The refusal names both sequences.
    let (tx, _rx) = state::channel();
    let v = Verifier { trusted: vec![signer.verifying_key()], workload: WORKLOAD.into() };
    load(new_file.as_bytes(), &v, &tx, &h.metrics).unwrap();
    let e = load(old_file.as_bytes(), &v, &tx, &h.metrics).unwrap_err();
    assert_eq!(e.reason(), "rollback");
    assert!(e.to_string().contains("sequence 100 is below 200"), "{e}");
}
