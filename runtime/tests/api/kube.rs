//! Kubernetes mode against the in-process fake API server and, in the
//! `..._real_apiserver_...` tests, a real kube-apiserver of each test's own
//! (the runtime watches cluster-wide ProxyConfigs and the one MeshBundle, which
//! tests sharing a server would see of each other): the same `meshc build`
//! objects, trust material in a Secret and ConfigMaps, status conditions
//! written back, keys rotated by editing their objects. Only a real server
//! checks the runtime's status patches against the CRDs' structural schema and
//! status subresource, and serves its watches with real resourceVersions.

use crate::kube_objects::{Objects, kubectl_present, prepare};
use crate::servers::Server;
use crate::support::*;
use base64ct::Encoding;
use fake_apiserver::Verb;
use http::StatusCode;
use mesh_proxy_api::envelope::{SigningKey, verifying_key_to_pem};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const NS: &str = "mesh-system";
/// How long a change may take to show: generous, for a real API server on a
/// loaded 2-core machine (the fake answers in milliseconds).
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) fn b64(bytes: &[u8]) -> String {
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

fn trust_roots(files: &Files) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mesh-identity-trust-roots", "namespace": NS},
        "data": {"ca-bundle.crt": files.pki.anchors_pem()}})
}

pub(crate) struct Cluster {
    pub server: Server,
    pub objects: Objects,
    pub files: Files,
    pub running: mesh_runtime::Running,
}

/// The server a test named `test` runs on: the fake, or a real one of its
/// own; `None` after the loud skip when `go` or kubectl is missing outside CI.
pub(crate) async fn server(test: &str, real: bool) -> Option<Server> {
    if !real {
        return Some(Server::fake().await);
    }
    if !kubectl_present(test) {
        return None;
    }
    // Building and starting the harness blocks: off the runtime's workers.
    let test = test.to_owned();
    tokio::task::spawn_blocking(move || Server::own_real(&test)).await.expect("the harness starts")
}

pub(crate) async fn start(server: Server) -> Cluster {
    let files = populate(&server).await;
    let running = replica(&server, "replica-a").await;
    Cluster { objects: Objects::of(&server).await, server, files, running }
}

/// A runtime replica named `pod` against `server`.
pub(crate) async fn replica(server: &Server, pod: &str) -> mesh_runtime::Running {
    let args = ["mesh-runtime", "--kubernetes", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pod-name", pod];
    let settings = <mesh_runtime::Settings as clap::Parser>::try_parse_from(args).unwrap();
    mesh_runtime::kube::start(settings, server.client().await).await.unwrap()
}

/// The trust material and the objects of a build, created in `server`.
pub(crate) async fn populate(server: &Server) -> Files {
    prepare(server, &[NS, "podinfo"]).await;
    let files = Files::new();
    let api = Objects::of(server).await;
    api.create(&issuer_secret(&files)).await;
    api.create(&trust_roots(&files)).await;
    let pubkey = std::fs::read_to_string(&files.pubkey).unwrap();
    api.create(&keys_configmap(&[("meshc.pub", pubkey)])).await;
    api.apply(&objects(&files.dist)).await;
    files
}

/// What the runtime has written back, read in one go.
pub(crate) struct Snapshot {
    configs: Vec<Value>,
    bundle: Value,
    state: Option<Value>,
}

impl Snapshot {
    pub(crate) fn status(&self, name: &str) -> Value {
        let config = self.configs.iter().find(|c| c["metadata"]["name"] == name);
        config.map(|c| c["status"].clone()).unwrap_or(Value::Null)
    }

    pub(crate) fn condition(&self, name: &str, t: &str) -> Value {
        let status = self.status(name);
        let found = status["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned());
        found.unwrap_or(Value::Null)
    }

    pub(crate) fn bundle_condition(&self, t: &str) -> Value {
        let conditions = self.bundle["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conditions.into_iter().find(|c| c["type"] == t).unwrap_or(Value::Null)
    }

    /// The sequence the runtime recorded in its state ConfigMap, if any.
    pub(crate) fn recorded_floor(&self) -> Option<u64> {
        let text = self.state.as_ref()?["data"]["rollback-floor.json"].as_str()?.to_owned();
        let floor: Value = serde_json::from_str(&text).ok()?;
        floor["sequence"].as_u64()
    }

    /// Every ProxyConfig's and the MeshBundle's resourceVersion.
    fn versions(&self) -> Vec<Value> {
        let all = self.configs.iter().chain(std::iter::once(&self.bundle));
        all.map(|o| o["metadata"]["resourceVersion"].clone()).collect()
    }
}

impl Cluster {
    pub(crate) async fn snapshot(&self) -> Snapshot {
        Snapshot {
            configs: self.objects.list("ProxyConfig", Some("podinfo")).await,
            bundle: self.objects.get("MeshBundle", None, "meshc").await.unwrap_or(Value::Null),
            state: self.objects.get("ConfigMap", Some(NS), "mesh-runtime-state").await,
        }
    }

    /// Waits until `done` holds of what the runtime wrote; returns that.
    pub(crate) async fn wait_for(&self, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let start = Instant::now();
        loop {
            let now = self.snapshot().await;
            if done(&now) {
                return now;
            }
            assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn served_digest(&self, name: &str) -> String {
        let c = config(name);
        let tls = tls_config(Some(&self.files.identity(&c.identity)), self.files.pki.anchors_pem());
        let r = get(self.running.api_addr, tls, &config_path(&workload_key(&c), None, None)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.digest()
    }

    pub(crate) async fn stop(self) {
        self.running.shutdown.cancel();
        self.running.stopped().await;
    }
}

/// The ProxyConfig object name of Deployment `name`.
pub(crate) fn object_of(dist: &Path, name: &str) -> Value {
    objects(dist).into_iter().find(|o| o["spec"]["workload"]["name"] == name).unwrap()
}

pub(crate) async fn wait_until_ready(running: &mesh_runtime::Running) -> String {
    let start = Instant::now();
    loop {
        let (code, body) = admin_get(running.admin_addr, "/ready").await;
        if code == StatusCode::OK {
            return body;
        }
        assert!(body.contains("not synced yet"), "{body}");
        assert!(start.elapsed() < WAIT, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serves_verified_objects_and_marks_them_ready(server: Server) {
    let c = start(server).await;
    let body = wait_until_ready(&c.running).await;
    assert!(body.contains("bundle r1"), "{body}");
    for config in configs() {
        let name = object_of(&c.files.dist, &config.workload.name)["metadata"]["name"].as_str().unwrap().to_owned();
        let now = c.wait_for("Ready=True", |s| s.condition(&name, "Ready")["status"] == "True").await;
        assert_eq!(now.condition(&name, "Stalled")["status"], "False");
        assert_eq!(now.condition(&name, "Ready")["reason"], "Accepted");
        assert_eq!(now.status(&name)["observedGeneration"], 1);
    }
    // The bundle's status comes from its own watch, so possibly a pass later.
    c.wait_for("the MeshBundle's Ready=True", |s| s.bundle_condition("Ready")["status"] == "True").await;
    let digest = object_of(&c.files.dist, "podinfo-primary")["spec"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(c.served_digest("podinfo-primary").await, digest);
    // Statuses are written once: the runtime's own writes do not wake it
    // again. No object moves on; the fake also counts the patches, which
    // catches a write that changes nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let versions = c.snapshot().await.versions();
    let patches = c.server.fake_server().map(|f| f.faults().count_for(Verb::Patch, "proxyconfigs"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.snapshot().await.versions(), versions, "status writes go on and on");
    let patches_now = c.server.fake_server().map(|f| f.faults().count_for(Verb::Patch, "proxyconfigs"));
    assert_eq!(patches_now, patches, "status writes go on and on");
    c.stop().await;
}

async fn tampered_config_gets_a_condition(server: Server) {
    let c = start(server).await;
    let good = object_of(&c.files.dist, "podinfo-primary");
    let name = good["metadata"]["name"].as_str().unwrap().to_owned();
    c.wait_for("Ready=True", |s| s.condition(&name, "Ready")["status"] == "True").await;
    let digest = c.served_digest("podinfo-primary").await;

    let mut forged = good.clone();
    let canary = object_of(&c.files.dist, "podinfo-canary");
    forged["spec"]["envelope"]["payload"] = canary["spec"]["envelope"]["payload"].clone();
    c.objects.apply(&[forged]).await;
    let now = c.wait_for("Ready=False", |s| s.condition(&name, "Ready")["status"] == "False").await;
    let ready = now.condition(&name, "Ready");
    assert_eq!(now.condition(&name, "Stalled")["status"], "True", "{ready}");
    assert_eq!(ready["observedGeneration"], 2);
    assert!(ready["message"].as_str().unwrap().contains("last good config stays served"), "{ready}");
    assert_eq!(c.served_digest("podinfo-primary").await, digest, "the forged config replaced the good one");

    c.objects.apply(&[good]).await;
    let now = c.wait_for("Ready=True again", |s| s.condition(&name, "Ready")["status"] == "True").await;
    assert_eq!(now.condition(&name, "Ready")["observedGeneration"], 3);
    c.stop().await;
}

async fn set_keys(c: &Cluster, data: Value) {
    c.objects.replace("ConfigMap", Some(NS), "meshc-trusted-keys", |live| live["data"] = data.clone()).await;
}

async fn keys_rotate_through_their_configmap(server: Server) {
    let c = start(server).await;
    let name = object_of(&c.files.dist, "frontend")["metadata"]["name"].as_str().unwrap().to_owned();
    c.wait_for("Ready=True", |s| s.condition(&name, "Ready")["status"] == "True").await;
    let old = std::fs::read_to_string(&c.files.pubkey).unwrap();
    let new_key = SigningKey::from_bytes(&[9; 32]);
    let new = verifying_key_to_pem(&new_key.verifying_key()).unwrap();

    // Step 1 of a rotation: both keys trusted, nothing changes.
    let both = keys_configmap(&[("old.pub", old.clone()), ("new.pub", new.clone()), ("typo.pub", "x".into())]);
    set_keys(&c, both["data"].clone()).await;
    // Step 2: the build is re-signed with the new key.
    let dist = c.files.tmp.path().join("dist-new-key");
    write_build(&dist, &configs(), &new_key, "r2");
    c.objects.apply(&objects(&dist)).await;
    c.wait_for("the re-signed build", |s| {
        s.condition(&name, "Ready")["status"] == "True"
            && s.condition(&name, "Ready")["observedGeneration"] == 2
            && s.bundle_condition("Ready")["observedGeneration"] == 2
    })
    .await;
    // Step 3: the old key is dropped; what it alone signed would be refused.
    set_keys(&c, keys_configmap(&[("new.pub", new)])["data"].clone()).await;
    c.objects.apply(&[object_of(&c.files.dist, "frontend")]).await;
    let now = c.wait_for("UntrustedKey", |s| s.condition(&name, "Ready")["reason"] == "UntrustedKey").await;
    assert_eq!(now.condition(&name, "Stalled")["status"], "True");
    let resigned = object_of(&dist, "frontend")["spec"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(c.served_digest("frontend").await, resigned, "the new key's config stays served");

    // An empty or deleted key set keeps the last good keys.
    set_keys(&c, json!({"README": "none"})).await;
    c.objects.delete("ConfigMap", Some(NS), "meshc-trusted-keys").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.served_digest("frontend").await, resigned);
    c.stop().await;
}

async fn not_ready_until_every_watch_has_listed_on(server: Server) {
    prepare(&server, &[NS, "podinfo"]).await;
    let files = Files::new();
    let api = Objects::of(&server).await;
    api.create(&issuer_secret(&files)).await;
    api.create(&trust_roots(&files)).await;
    let args = ["mesh-runtime", "--kubernetes", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
    let settings = <mesh_runtime::Settings as clap::Parser>::try_parse_from(args).unwrap();
    let running = mesh_runtime::kube::start(settings, server.client().await).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, body) = admin_get(running.admin_addr, "/ready").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("trusted keys"), "no keys ConfigMap yet: {body}");
    let pubkey = std::fs::read_to_string(&files.pubkey).unwrap();
    api.create(&keys_configmap(&[("meshc.pub", pubkey)])).await;
    wait_until_ready(&running).await;
    running.shutdown.cancel();
    running.stopped().await;
}

/// One test body, two tests: on the fake and on a real API server of its own.
macro_rules! on_both_servers {
    ($body:ident: $fake:ident, $real:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $fake() {
            $body(server(stringify!($fake), false).await.expect("the fake starts")).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $real() {
            let Some(server) = server(stringify!($real), true).await else { return };
            $body(server).await;
        }
    };
}
pub(crate) use on_both_servers;

on_both_servers!(serves_verified_objects_and_marks_them_ready:
    kubernetes_mode_serves_verified_objects_and_marks_them_ready,
    kubernetes_mode_serves_verified_objects_and_marks_them_ready_real_apiserver);
on_both_servers!(tampered_config_gets_a_condition:
    a_tampered_proxy_config_gets_a_condition_and_the_last_good_stays_served,
    a_tampered_proxy_config_gets_a_condition_real_apiserver);
on_both_servers!(keys_rotate_through_their_configmap:
    trusted_keys_rotate_through_their_configmap,
    trusted_keys_rotate_through_their_configmap_real_apiserver);
on_both_servers!(not_ready_until_every_watch_has_listed_on:
    not_ready_until_every_watch_has_listed,
    not_ready_until_every_watch_has_listed_real_apiserver);
