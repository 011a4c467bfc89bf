//! A cluster for mesh-runtime's Kubernetes mode: the in-process fake API
//! server on a thread of its own (it outlives runtime restarts), the
//! objects a cluster would hold, and `kubectl` to apply `meshc build`'s
//! output as Flux or a person would.
//!
//! What it creates from a build and its discovery JSON:
//! - in `mesh-system`: the issuer Secret, the trust roots ConfigMap and the
//!   trusted keys ConfigMap (mesh-runtime's defaults);
//! - per discovery Service: a Service, an EndpointSlice, and a Pod per
//!   endpoint (meshed, with the ServiceAccount its identity names);
//! - a token per ServiceAccount of the example (audience identity.l5d.io),
//!   the same strings the file-mode test writes, plus an expired one;
//! - the MeshBundle and ProxyConfigs, with `kubectl apply`.
//!
//! The runtime presents its ServiceAccount's token, and the fake enforces
//! `runtime/deploy/rbac.yaml` on it: the least-privilege RBAC is enough.

use super::mesh::{Build, token_file};
use fake_apiserver::{FakeApiServer, Faults, Gvr, Store, TokenInfo, Tokens};
use mesh_common::identity::pki::TestPki;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

pub const NAMESPACE: &str = "mesh-system";
pub const AUDIENCE: &str = "identity.l5d.io";
/// The ServiceAccount token the runtime itself presents.
pub const RUNTIME_TOKEN: &str = "token-mesh-system-mesh-runtime";

pub struct Cluster {
    pub url: String,
    pub store: Store,
    pub tokens: Tokens,
    faults: Faults,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn b64(s: &str) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(s.as_bytes())
}

/// The RBAC objects of `runtime/deploy/`: the runtime's requests are
/// authorized by exactly what the deployment grants it.
fn deploy_rbac() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime/deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = meshc::load::yaml::parse_documents(&text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    docs.iter().map(|d| d.to_json()).filter(|v| !v.is_null()).collect()
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let server = FakeApiServer::start().await.expect("fake API server");
                server.authorizer().load(&deploy_rbac()).expect("runtime/deploy/rbac.yaml loads");
                tx.send((server.url(), server.store().clone(), server.tokens().clone(), server.faults().clone()))
                    .unwrap();
                let _ = stopped.await;
                drop(server);
            });
        });
        let (url, store, tokens, faults) = rx.recv().expect("fake API server started");
        let kubeconfig = dir.path().join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    \
             user: fake\n    namespace: default\ncurrent-context: fake\n"
        );
        std::fs::write(&kubeconfig, text).unwrap();
        Cluster { url, store, tokens, faults, kubeconfig, _dir: dir, stop: Some(stop), thread: Some(thread) }
    }

    /// Everything but the build's objects: trust material, workloads and tokens.
    pub fn populate(&self, build: &Build, pki: &TestPki, discovery: &Value) {
        let ca = build.dir.path().join("kube-ca");
        pki.write_ca_dir(&ca).unwrap();
        let read = |f: &str| std::fs::read_to_string(ca.join(f)).unwrap();
        self.create(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "mesh-identity-issuer", "namespace": NAMESPACE},
            "data": {"tls.crt": b64(&read("issuer.crt")), "tls.key": b64(&read("issuer.key"))}}));
        self.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mesh-identity-trust-roots", "namespace": NAMESPACE},
            "data": {"ca-bundle.crt": pki.anchors_pem()}}));
        let pubkey = std::fs::read_to_string(&build.pubkey).unwrap();
        self.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "meshc-trusted-keys", "namespace": NAMESPACE},
            "data": {"meshc.pub": pubkey}}));
        for svc in discovery["services"].as_array().into_iter().flatten() {
            self.create_service(svc);
        }
        let far = SystemTime::now() + Duration::from_secs(24 * 3600);
        let accounts: std::collections::BTreeSet<_> =
            build.outcome.resolved.workloads.iter().map(|w| (&w.namespace, &w.service_account)).collect();
        for (ns, sa) in accounts {
            let token = format!("token-{ns}-{sa}");
            std::fs::write(token_file(build.dir.path(), ns, sa), &token).unwrap();
            self.tokens.insert(&token, TokenInfo::new(ns, sa, far).with_audiences(&[AUDIENCE]));
        }
        let past = SystemTime::now() - Duration::from_secs(60);
        self.tokens.insert("expired", TokenInfo::new("podinfo", "podinfo", past).with_audiences(&[AUDIENCE]));
        self.tokens.insert(RUNTIME_TOKEN, TokenInfo::new(NAMESPACE, "mesh-runtime", far));
    }

    fn create(&self, object: Value) {
        self.store.create_object(object).expect("object created");
    }

    /// A Service with one port, its EndpointSlice, and a meshed Pod per
    /// endpoint with the ServiceAccount its identity names.
    fn create_service(&self, svc: &Value) {
        let (ns, name) = (svc["namespace"].as_str().unwrap(), svc["name"].as_str().unwrap());
        let port = &svc["ports"][0];
        let number = port["port"].as_u64().unwrap();
        let mut endpoints = Vec::new();
        let mut target = 0;
        for ep in port["endpoints"].as_array().into_iter().flatten() {
            let addr: SocketAddr = ep["addr"].as_str().unwrap().parse().unwrap();
            target = addr.port();
            let pod = format!("pod-{}", addr.ip().to_string().replace('.', "-"));
            let sa = ep["identity"].as_str().and_then(|id| id.split('.').next()).unwrap_or("default");
            let mut labels = json!({"app": name});
            if ep["identity"].is_string() {
                labels["linkerd.io/control-plane-ns"] = json!("linkerd");
            }
            let pod_object = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": ns, "labels": labels},
                "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "mesh-echo"}]},
                "status": {"podIP": addr.ip().to_string()}});
            // Several Services select one pod: create it once.
            let _ = self.store.create_object(pod_object);
            endpoints.push(json!({"addresses": [addr.ip().to_string()], "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}}));
        }
        self.create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": number, "targetPort": target}]}}));
        self.create(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-1"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": target, "protocol": "TCP"}]}));
    }

    /// `kubectl apply` of the build directory's MeshBundle and ProxyConfigs
    /// (the CRDs are built into the fake); returns how long kubectl took.
    pub fn apply_dist(&self, dist: &Path) -> Duration {
        let bundle = dist.join("bundle.yaml");
        let configs = dist.join("configs");
        self.kubectl(&["apply", "-f", &bundle.display().to_string(), "-R", "-f", &configs.display().to_string()])
    }

    pub fn apply_file(&self, file: &Path) -> Duration {
        self.kubectl(&["apply", "-f", &file.display().to_string()])
    }

    fn kubectl(&self, args: &[&str]) -> Duration {
        let start = Instant::now();
        let cache = self.kubeconfig.with_file_name("kube-cache");
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .expect("kubectl runs (.ci/run installs it)");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        start.elapsed()
    }

    /// No request was refused by the API server (401 or 403): the
    /// runtime needed nothing beyond what runtime/deploy's RBAC grants. The
    /// count of status patches shows the runtime's token was in play.
    pub fn assert_rbac_was_enough(&self) {
        let log = self.faults.log();
        let refused: Vec<_> = log.iter().filter(|l| l.status == 401 || l.status == 403).collect();
        assert!(refused.is_empty(), "requests refused under runtime/deploy's RBAC: {refused:#?}");
        let patches = log.iter().filter(|l| l.uri.contains("/status")).count();
        assert!(patches > 0, "the runtime wrote no status");
        println!("{} API requests, {patches} status writes, none refused under runtime/deploy's RBAC", log.len());
    }

    /// A ProxyConfig's status as the API server holds it.
    pub fn config_status(&self, namespace: &str, name: &str) -> Value {
        let gvr = Gvr::new("meshc.io", "v1alpha1", "proxyconfigs");
        self.store.get(&gvr, Some(namespace), name).map(|o| o["status"].clone()).unwrap_or(Value::Null)
    }

    /// mesh-runtime's command line in Kubernetes mode (the client comes
    /// from [`Cluster::url`], not from these flags).
    pub fn runtime_args(api: &str, identity: &str) -> Vec<String> {
        [
            "mesh-runtime",
            "--kubernetes",
            "--namespace",
            NAMESPACE,
            "--pod-name",
            "mesh-runtime-e2e-0",
            "--listen",
            api,
            "--admin",
            "127.0.0.1:9990",
            "--identity",
            identity,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}
