//! Kubernetes mode against the in-process fake API server: the same
//! `meshc build` objects, trust material in a Secret and ConfigMaps,
//! status conditions written back, keys and issuer rotated by editing
//! their objects.

use crate::support::*;
use base64ct::Encoding;
use fake_apiserver::{FakeApiServer, Gvr, Verb};
use http::StatusCode;
use mesh_proxy_api::envelope::{SigningKey, verifying_key_to_pem};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const NS: &str = "mesh-system";

fn proxyconfigs() -> Gvr {
    Gvr::new("meshc.io", "v1alpha1", "proxyconfigs")
}

fn meshbundles() -> Gvr {
    Gvr::new("meshc.io", "v1alpha1", "meshbundles")
}

fn b64(bytes: &[u8]) -> String {
    base64ct::Base64::encode_string(bytes)
}

/// The objects of a build directory, as JSON.
pub(crate) fn objects(dist: &Path) -> Vec<Value> {
    let mut files = vec![dist.join("bundle.yaml")];
    for ns in std::fs::read_dir(dist.join("configs")).unwrap().flatten() {
        files.extend(std::fs::read_dir(ns.path()).unwrap().flatten().map(|f| f.path()));
    }
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            serde_json::from_str(text.trim_start_matches("---").trim()).unwrap()
        })
        .collect()
}

/// Creates or replaces each object's spec, as `kubectl apply` would.
fn apply(server: &FakeApiServer, objects: &[Value]) {
    let store = server.store();
    for o in objects {
        if store.create_object(o.clone()).is_err() {
            let t = store.type_of(o).unwrap().gvr.clone();
            let (ns, name) = (o["metadata"]["namespace"].as_str(), o["metadata"]["name"].as_str().unwrap());
            store.modify(&t, ns, name, |live| live["spec"] = o["spec"].clone()).unwrap();
        }
    }
}

pub(crate) fn keys_configmap(keys: &[(&str, String)]) -> Value {
    let data: serde_json::Map<String, Value> = keys.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "meshc-trusted-keys", "namespace": NS},
        "data": data})
}

pub(crate) fn issuer_secret(files: &Files) -> Value {
    let read = |f: &str| std::fs::read(files.ca_dir.join(f)).unwrap();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "mesh-identity-issuer", "namespace": NS},
        "data": {"tls.crt": b64(&read("issuer.crt")), "tls.key": b64(&read("issuer.key"))}})
}

struct Cluster {
    server: FakeApiServer,
    files: Files,
    running: mesh_runtime::Running,
}

async fn start() -> Cluster {
    let (server, files) = populated().await;
    let running = replica(&server, "replica-a").await;
    Cluster { server, files, running }
}

/// A runtime replica named `pod` against `server`.
async fn replica(server: &FakeApiServer, pod: &str) -> mesh_runtime::Running {
    let args = ["mesh-runtime", "--kubernetes", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pod-name", pod];
    let settings = <mesh_runtime::Settings as clap::Parser>::try_parse_from(args).unwrap();
    mesh_runtime::kube::start(settings, server.client().unwrap()).await.unwrap()
}

/// A fake API server holding the trust material and a build's objects.
pub async fn populated() -> (FakeApiServer, Files) {
    let files = Files::new();
    let server = FakeApiServer::start().await.unwrap();
    let store = server.store();
    store.create_object(issuer_secret(&files)).unwrap();
    store
        .create_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mesh-identity-trust-roots", "namespace": NS},
            "data": {"ca-bundle.crt": files.pki.anchors_pem()}}))
        .unwrap();
    let pubkey = std::fs::read_to_string(&files.pubkey).unwrap();
    store.create_object(keys_configmap(&[("meshc.pub", pubkey)])).unwrap();
    apply(&server, &objects(&files.dist));
    (server, files)
}

impl Cluster {
    fn status(&self, name: &str) -> Value {
        let o = self.server.store().get(&proxyconfigs(), Some("podinfo"), name).unwrap();
        o["status"].clone()
    }

    fn bundle_condition(&self, t: &str) -> Value {
        let bundle = self.server.store().get(&meshbundles(), None, "meshc").unwrap();
        let conditions = bundle["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conditions.into_iter().find(|c| c["type"] == t).unwrap_or(Value::Null)
    }

    fn condition(&self, name: &str, t: &str) -> Value {
        let status = self.status(name);
        let found = status["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned());
        found.unwrap_or(Value::Null)
    }

    async fn wait_for(&self, what: &str, mut done: impl FnMut(&Cluster) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn served_digest(&self, name: &str) -> String {
        let c = config(name);
        let tls = tls_config(Some(&self.files.identity(&c.identity)), self.files.pki.anchors_pem());
        let r = get(self.running.api_addr, tls, &config_path(&workload_key(&c), None, None)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.digest()
    }

    async fn stop(self) {
        self.running.shutdown.cancel();
        self.running.stopped().await;
    }
}

/// The ProxyConfig object name of Deployment `name`.
pub(crate) fn object_of(dist: &Path, name: &str) -> Value {
    objects(dist).into_iter().find(|o| o["spec"]["workload"]["name"] == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_serves_verified_objects_and_marks_them_ready() {
    let c = start().await;
    let start = Instant::now();
    loop {
        let (code, body) = admin_get(c.running.admin_addr, "/ready").await;
        if code == StatusCode::OK {
            assert!(body.contains("bundle r1"), "{body}");
            break;
        }
        assert!(body.contains("not synced yet"), "{body}");
        assert!(start.elapsed() < Duration::from_secs(10), "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for config in configs() {
        let name = object_of(&c.files.dist, &config.workload.name)["metadata"]["name"].as_str().unwrap().to_owned();
        c.wait_for("Ready=True", |c| c.condition(&name, "Ready")["status"] == "True").await;
        assert_eq!(c.condition(&name, "Stalled")["status"], "False");
        assert_eq!(c.condition(&name, "Ready")["reason"], "Accepted");
        assert_eq!(c.status(&name)["observedGeneration"], 1);
    }
    // The bundle's status comes from its own watch, so possibly a pass later.
    let bundle_ready = |c: &Cluster| {
        let bundle = c.server.store().get(&Gvr::new("meshc.io", "v1alpha1", "meshbundles"), None, "meshc").unwrap();
        bundle["status"]["conditions"][0]["status"] == "True"
    };
    c.wait_for("the MeshBundle's Ready=True", bundle_ready).await;
    let digest = object_of(&c.files.dist, "podinfo-primary")["spec"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(c.served_digest("podinfo-primary").await, digest);
    // Statuses are written once: the runtime's own writes do not wake it again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let patches = c.server.faults().count_for(Verb::Patch, "proxyconfigs");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.server.faults().count_for(Verb::Patch, "proxyconfigs"), patches, "status writes go on and on");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_proxy_config_gets_a_condition_and_the_last_good_stays_served() {
    let c = start().await;
    let good = object_of(&c.files.dist, "podinfo-primary");
    let name = good["metadata"]["name"].as_str().unwrap().to_owned();
    c.wait_for("Ready=True", |c| c.condition(&name, "Ready")["status"] == "True").await;
    let digest = c.served_digest("podinfo-primary").await;

    let mut forged = good.clone();
    let canary = object_of(&c.files.dist, "podinfo-canary");
    forged["spec"]["envelope"]["payload"] = canary["spec"]["envelope"]["payload"].clone();
    apply(&c.server, &[forged]);
    c.wait_for("Ready=False", |c| c.condition(&name, "Ready")["status"] == "False").await;
    let ready = c.condition(&name, "Ready");
    assert_eq!(c.condition(&name, "Stalled")["status"], "True", "{ready}");
    assert_eq!(ready["observedGeneration"], 2);
    assert!(ready["message"].as_str().unwrap().contains("last good config stays served"), "{ready}");
    assert_eq!(c.served_digest("podinfo-primary").await, digest, "the forged config replaced the good one");

    apply(&c.server, &[good]);
    c.wait_for("Ready=True again", |c| c.condition(&name, "Ready")["status"] == "True").await;
    assert_eq!(c.condition(&name, "Ready")["observedGeneration"], 3);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_keys_rotate_through_their_configmap() {
    let c = start().await;
    let name = object_of(&c.files.dist, "frontend")["metadata"]["name"].as_str().unwrap().to_owned();
    c.wait_for("Ready=True", |c| c.condition(&name, "Ready")["status"] == "True").await;
    let old = std::fs::read_to_string(&c.files.pubkey).unwrap();
    let new_key = SigningKey::from_bytes(&[9; 32]);
    let new = verifying_key_to_pem(&new_key.verifying_key()).unwrap();
    let store = c.server.store();
    let cm = Gvr::core("configmaps");

    // Step 1 of a rotation: both keys trusted, nothing changes.
    let both = keys_configmap(&[("old.pub", old.clone()), ("new.pub", new.clone()), ("typo.pub", "x".into())]);
    store.modify(&cm, Some(NS), "meshc-trusted-keys", |live| live["data"] = both["data"].clone()).unwrap();
    // Step 2: the build is re-signed with the new key.
    let dist = c.files.tmp.path().join("dist-new-key");
    write_build(&dist, &configs(), &new_key, "r2");
    apply(&c.server, &objects(&dist));
    let bundle_generation = |c: &Cluster| {
        let gvr = Gvr::new("meshc.io", "v1alpha1", "meshbundles");
        c.server.store().get(&gvr, None, "meshc").unwrap()["status"]["conditions"][0]["observedGeneration"].clone()
    };
    c.wait_for("the re-signed build", |c| {
        c.condition(&name, "Ready")["status"] == "True"
            && c.condition(&name, "Ready")["observedGeneration"] == 2
            && bundle_generation(c) == 2
    })
    .await;
    // Step 3: the old key is dropped; what it alone signed would be refused.
    let only_new = keys_configmap(&[("new.pub", new)]);
    store.modify(&cm, Some(NS), "meshc-trusted-keys", |live| live["data"] = only_new["data"].clone()).unwrap();
    let old_build = object_of(&c.files.dist, "frontend");
    apply(&c.server, &[old_build]);
    c.wait_for("UntrustedKey", |c| c.condition(&name, "Ready")["reason"] == "UntrustedKey").await;
    assert_eq!(c.condition(&name, "Stalled")["status"], "True");
    let resigned = object_of(&dist, "frontend")["spec"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(c.served_digest("frontend").await, resigned, "the new key's config stays served");

    // An empty or deleted key set keeps the last good keys.
    store.modify(&cm, Some(NS), "meshc-trusted-keys", |live| live["data"] = json!({"README": "none"})).unwrap();
    store.delete(&cm, Some(NS), "meshc-trusted-keys", None).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.served_digest("frontend").await, resigned);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_every_watch_has_listed() {
    let files = Files::new();
    let server = FakeApiServer::start().await.unwrap();
    server.store().create_object(issuer_secret(&files)).unwrap();
    server
        .store()
        .create_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mesh-identity-trust-roots", "namespace": NS},
            "data": {"ca-bundle.crt": files.pki.anchors_pem()}}))
        .unwrap();
    let args = ["mesh-runtime", "--kubernetes", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
    let settings = <mesh_runtime::Settings as clap::Parser>::try_parse_from(args).unwrap();
    let running = mesh_runtime::kube::start(settings, server.client().unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, body) = admin_get(running.admin_addr, "/ready").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("trusted keys"), "no keys ConfigMap yet: {body}");
    let pubkey = std::fs::read_to_string(&files.pubkey).unwrap();
    server.store().create_object(keys_configmap(&[("meshc.pub", pubkey)])).unwrap();
    let start = Instant::now();
    while admin_get(running.admin_addr, "/ready").await.0 != StatusCode::OK {
        assert!(start.elapsed() < Duration::from_secs(10), "never ready after the keys arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown.cancel();
    running.stopped().await;
}

/// The issuer certificate in a chain the runtime issued (leaf, then issuer).
fn issuer_of(chain: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let ders = CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(ders.len(), 2, "leaf then issuer");
    ders[1].to_vec()
}

async fn certificate(c: &Cluster, token: &str) -> (StatusCode, Value) {
    let id = "frontend.podinfo.serviceaccount.identity.linkerd.cluster.local";
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(vec![id.to_owned()]).unwrap().serialize_request(&key).unwrap();
    let tls = tls_config(None, c.files.pki.anchors_pem());
    let body = json!({"csr": csr.pem().unwrap(), "token": token});
    let r = post_json(c.running.api_addr, tls, "/v1/certificate", body).await;
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reviewed_and_a_rotated_issuer_signs_from_the_next_request() {
    let mut c = start().await;
    let far = std::time::SystemTime::now() + Duration::from_secs(3600);
    let grant = |sa: &str| fake_apiserver::TokenInfo::new("podinfo", sa, far);
    c.server.tokens().insert("frontend-token", grant("frontend").with_audiences(&["identity.l5d.io"]));
    c.server.tokens().insert("other-audience", grant("frontend").with_audiences(&["vault"]));
    c.server.tokens().insert("revoked", grant("frontend").with_audiences(&["identity.l5d.io"]));
    c.server.tokens().revoke("revoked");
    for refused in ["other-audience", "revoked", "never-issued"] {
        assert_eq!(certificate(&c, refused).await.0, StatusCode::FORBIDDEN, "{refused}");
    }
    let (code, first) = certificate(&c, "frontend-token").await;
    assert_eq!(code, StatusCode::OK, "{first}");
    let old_issuer = issuer_of(first["certificate"].as_str().unwrap());

    // cert-manager renews the issuer under the same anchor: the Secret changes.
    c.files.pki.rotate_issuer(mesh_common::identity::pki::Validity::valid_for(HOUR)).unwrap();
    c.files.pki.write_ca_dir(&c.files.ca_dir).unwrap();
    let secret = issuer_secret(&c.files);
    c.server
        .store()
        .modify(&Gvr::core("secrets"), Some(NS), "mesh-identity-issuer", |live| live["data"] = secret["data"].clone())
        .unwrap();
    let start = Instant::now();
    loop {
        let (code, next) = certificate(&c, "frontend-token").await;
        assert_eq!(code, StatusCode::OK, "{next}");
        if issuer_of(next["certificate"].as_str().unwrap()) != old_issuer {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the rotated issuer never signed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A Secret that does not hold a valid issuer is refused; the last good one signs on.
    c.server
        .store()
        .modify(&Gvr::core("secrets"), Some(NS), "mesh-identity-issuer", |live| {
            live["data"]["tls.key"] = json!(b64(b"not a key"))
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(certificate(&c, "frontend-token").await.0, StatusCode::OK);
    c.stop().await;
}

/// The sequence the runtime recorded in its state ConfigMap, if any.
fn recorded_floor(c: &Cluster) -> Option<u64> {
    let cm = c.server.store().get(&Gvr::core("configmaps"), Some(NS), "mesh-runtime-state").ok()?;
    let floor: Value = serde_json::from_str(cm["data"]["rollback-floor.json"].as_str()?).ok()?;
    floor["sequence"].as_u64()
}

async fn wait_until_ready(running: &mesh_runtime::Running) {
    let start = Instant::now();
    while admin_get(running.admin_addr, "/ready").await.0 != StatusCode::OK {
        assert!(start.elapsed() < Duration::from_secs(10), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_kubernetes_mode_refuses_the_previous_build_with_a_condition_also_after_a_restart() {
    let c = start().await;
    let older = objects(&c.files.dist);
    let newer_dist = c.files.tmp.path().join("dist-newer");
    write_build(&newer_dist, &changed("frontend"), &c.files.key, "r2");
    let newer = objects(&newer_dist);
    let (old_seq, new_seq) = (sequence_of(&c.files.dist), sequence_of(&newer_dist));
    let new_digest = object_of(&newer_dist, "frontend")["spec"]["digest"].as_str().unwrap().to_owned();
    apply(&c.server, &newer);
    c.wait_for("the newer build accepted", |c| {
        c.bundle_condition("Ready")["status"] == "True" && c.bundle_condition("Ready")["observedGeneration"] == 2
    })
    .await;
    assert_eq!(c.served_digest("frontend").await, new_digest);
    c.wait_for("the floor recorded", |c| recorded_floor(c) == Some(new_seq)).await;

    // The previous build re-applied: the bundle says why it is refused.
    apply(&c.server, &older);
    c.wait_for("Rollback", |c| c.bundle_condition("Ready")["reason"] == "Rollback").await;
    let ready = c.bundle_condition("Ready");
    assert_eq!(ready["status"], "False");
    // The first Rollback written already names the generation it judged:
    // the writer reads verdicts and generations under one lock (CI once saw
    // this one reported against generation 2).
    assert_eq!(ready["observedGeneration"], 3);
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains(&format!("sequence {old_seq} is below {new_seq}")), "{message}");
    let stalled = c.bundle_condition("Stalled");
    assert_eq!((&stalled["status"], &stalled["reason"]), (&json!("True"), &json!("Rollback")), "{stalled}");
    assert_eq!(c.served_digest("frontend").await, new_digest, "the newer config stays served");
    assert_eq!(recorded_floor(&c), Some(new_seq));

    // Another replica takes over from a stopped one (a restart and a leader
    // change at once), with the older build still applied: it refuses it
    // from the recorded floor and writes the condition again.
    let Cluster { server, files, running } = c;
    running.shutdown.cancel();
    running.stopped().await;
    let mut cleared = server.store().get(&meshbundles(), None, "meshc").unwrap();
    cleared["status"] = json!({});
    server.store().update(&meshbundles(), None, "meshc", cleared, fake_apiserver::Part::Status).unwrap();
    assert!(server.store().get(&meshbundles(), None, "meshc").unwrap()["status"]["conditions"].is_null());
    let c = Cluster { running: replica(&server, "replica-b").await, server, files };
    wait_until_ready(&c.running).await;
    c.wait_for("Rollback from the new leader", |c| c.bundle_condition("Ready")["reason"] == "Rollback").await;
    let frontend = config("frontend");
    let tls = tls_config(Some(&c.files.identity(&frontend.identity)), c.files.pki.anchors_pem());
    let r = get(c.running.api_addr, tls, &config_path(&workload_key(&frontend), None, None)).await;
    // Nothing is served for it, which a caller is told as 403 (runtime/API.md).
    assert_eq!(r.status, StatusCode::FORBIDDEN, "nothing older than the floor is served");
    // The newer build again is accepted (same sequence, same content).
    apply(&c.server, &newer);
    c.wait_for("the newer build again", |c| c.bundle_condition("Ready")["status"] == "True").await;
    assert_eq!(c.served_digest("frontend").await, new_digest);
    assert_eq!(recorded_floor(&c), Some(new_seq));
    c.stop().await;
}
