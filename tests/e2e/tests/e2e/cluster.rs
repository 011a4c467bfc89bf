//! A cluster for mesh-runtime's Kubernetes mode, on either API server: the
//! in-process fake (on a thread of its own, so it outlives runtime
//! restarts) or a real kube-apiserver (`mesh_test_support::apiserver`, a
//! process of the test's own). Both are driven the same way, through
//! `kubectl` and the API, so one test body runs on both.
//!
//! What it creates from a build and its discovery JSON (cluster_objects.rs):
//! - `runtime/deploy/`'s RBAC, and on the real server the whole of
//!   `runtime/deploy/` applied server-side (Namespace, CRDs, ServiceAccount,
//!   RBAC; the Deployment is stored but never runs: no controllers);
//! - in `mesh-system`: the issuer Secret, the trust roots ConfigMap and the
//!   trusted keys ConfigMap (mesh-runtime's defaults);
//! - per discovery Service: a Service, an EndpointSlice, and a Pod per
//!   endpoint (meshed, with the ServiceAccount its identity names);
//! - a token per ServiceAccount of the example (audience identity.l5d.io):
//!   registered with the fake, or issued by the real server (TokenRequest,
//!   signed with its service-account key, checked by TokenReview);
//! - the MeshBundle and ProxyConfigs, with `kubectl apply --server-side`.
//!
//! The runtime presents its own ServiceAccount's token (on the real server
//! one from TokenRequest), so every request it makes is authorized by
//! `runtime/deploy/rbac.yaml` alone: by the fake's evaluator, or by the real
//! RBAC authorizer.

use super::mesh::{Build, token_file};
use fake_apiserver::{FakeApiServer, Faults, Store, TokenInfo, Tokens};
use mesh_common::identity::pki::TestPki;
use mesh_test_support::apiserver::RealApiServer;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

pub const NAMESPACE: &str = "mesh-system";
pub const AUDIENCE: &str = "identity.l5d.io";
/// The ServiceAccount the runtime runs as (runtime/deploy/serviceaccount.yaml).
pub const RUNTIME_SERVICE_ACCOUNT: &str = "mesh-runtime";
/// How long an issued token lives: longer than any test.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Which API server a Kubernetes-mode test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiServer {
    /// fake-apiserver, in this process.
    Fake,
    /// kube-apiserver with etcd (tests/apiserver-harness), a process of the test's own.
    Real,
}

pub struct Cluster {
    server: Server,
    /// The admin's kubeconfig (the fake's has no credentials: it lets
    /// requests without a token through as an admin).
    kubeconfig: PathBuf,
    /// The token the runtime presents: its ServiceAccount's.
    runtime_token: String,
    _dir: tempfile::TempDir,
}

enum Server {
    Fake(FakeThread),
    /// Held for its lifetime: dropping it stops the harness.
    Real {
        _harness: RealApiServer,
    },
}

/// What the runtime needs to reach the API server as its ServiceAccount.
#[derive(Clone)]
pub struct RuntimeCredentials {
    /// Server address and CA (the admin's credentials in it are not used).
    pub kubeconfig: PathBuf,
    pub token: String,
}

impl Cluster {
    /// A cluster on `server`. On the real server this applies
    /// `runtime/deploy/` and waits for its CRDs; the harness binary must be
    /// built already ([`prebuild`]): inside the test's network namespace
    /// there is no network for `go`.
    pub fn start(server: ApiServer) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        match server {
            ApiServer::Fake => {
                let fake = FakeThread::start();
                let kubeconfig = dir.path().join("kubeconfig");
                std::fs::write(&kubeconfig, fake_kubeconfig(&fake.url)).unwrap();
                let mut cluster =
                    Cluster { server: Server::Fake(fake), kubeconfig, runtime_token: String::new(), _dir: dir };
                cluster.runtime_token = cluster.issue_token(NAMESPACE, RUNTIME_SERVICE_ACCOUNT, None);
                cluster
            }
            ApiServer::Real => {
                let real = RealApiServer::start("e2e Kubernetes mode on the real API server")
                    .expect("the harness was built before the test entered its network namespace");
                let kubeconfig = real.kubeconfig().to_path_buf();
                let mut cluster = Cluster {
                    server: Server::Real { _harness: real },
                    kubeconfig,
                    runtime_token: String::new(),
                    _dir: dir,
                };
                cluster.deploy_runtime();
                // The API server's own audience: the runtime authenticates to it.
                cluster.runtime_token = cluster.issue_token(NAMESPACE, RUNTIME_SERVICE_ACCOUNT, None);
                cluster
            }
        }
    }

    /// `kubectl apply --server-side -k runtime/deploy/`, as a user installs
    /// the runtime, and waits until its CRDs are Established.
    fn deploy_runtime(&self) {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime/deploy");
        self.kubectl(&["apply", "--server-side", "-k", &deploy.display().to_string()], None);
        let crds = ["crd/proxyconfigs.meshc.io", "crd/servicepolicies.meshc.io", "crd/meshbundles.meshc.io"];
        let mut wait = vec!["wait", "--for=condition=Established", "--timeout=120s"];
        wait.extend(crds);
        self.kubectl(&wait, None);
    }

    pub fn runtime_credentials(&self) -> RuntimeCredentials {
        RuntimeCredentials { kubeconfig: self.kubeconfig.clone(), token: self.runtime_token.clone() }
    }

    /// Everything but the build's objects: trust material, namespaces,
    /// ServiceAccounts, workloads, and a token file per ServiceAccount.
    pub fn populate(&self, build: &Build, pki: &TestPki, discovery: &Value) {
        let objects = super::cluster_objects::objects(build, pki, discovery);
        self.create_all(&objects);
        for (ns, sa) in super::cluster_objects::service_accounts(build) {
            let token = self.issue_token(&ns, &sa, Some(AUDIENCE));
            std::fs::write(token_file(build.dir.path(), &ns, &sa), &token).unwrap();
        }
        if let Server::Fake(fake) = &self.server {
            // Only the fake issues a token that is already expired (the real
            // server's shortest lifetime is 10 minutes).
            let past = SystemTime::now() - Duration::from_secs(60);
            fake.tokens.insert("expired", TokenInfo::new("podinfo", "podinfo", past).with_audiences(&[AUDIENCE]));
        }
    }

    /// Creates `objects` in order (namespaces first): one by one in the
    /// fake's store, one server-side apply on the real server.
    fn create_all(&self, objects: &[Value]) {
        match &self.server {
            Server::Fake(fake) => {
                for o in objects {
                    fake.store.create_object(o.clone()).unwrap_or_else(|e| panic!("create {}: {e:?}", o["metadata"]));
                }
            }
            Server::Real { .. } => {
                let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
                self.kubectl(&["apply", "--server-side", "-f", "-"], Some(&list.to_string()));
            }
        }
    }

    /// A live token of `ns/sa` for `audience` (`None`: the API server's
    /// own): registered with the fake, or issued by the real server through
    /// TokenRequest (`kubectl create token`).
    pub fn issue_token(&self, ns: &str, sa: &str, audience: Option<&str>) -> String {
        match &self.server {
            Server::Fake(fake) => {
                let token = format!("token-{ns}-{sa}");
                let info = TokenInfo::new(ns, sa, SystemTime::now() + TOKEN_LIFETIME);
                fake.tokens.insert(&token, info.with_audiences(&audience.into_iter().collect::<Vec<_>>()));
                token
            }
            Server::Real { .. } => {
                let duration = format!("{}s", TOKEN_LIFETIME.as_secs());
                let mut args = vec!["create", "token", sa, "--namespace", ns, "--duration", &duration];
                if let Some(audience) = audience {
                    args.extend(["--audience", audience]);
                }
                self.kubectl(&args, None).trim().to_owned()
            }
        }
    }

    /// Whether [`Cluster::populate`] registered the token `expired`: only
    /// the fake can hold one.
    pub fn issues_expired_tokens(&self) -> bool {
        matches!(self.server, Server::Fake(_))
    }

    /// A token of `podinfo/podinfo` for our audience that no longer
    /// authenticates: revoked on the fake; on the real server, bound to a
    /// Secret that is then deleted (a bound token dies with its object).
    pub fn revoked_token(&self) -> String {
        match &self.server {
            Server::Fake(fake) => {
                let far = SystemTime::now() + TOKEN_LIFETIME;
                fake.tokens.insert("revoked", TokenInfo::new("podinfo", "podinfo", far).with_audiences(&[AUDIENCE]));
                assert!(fake.tokens.revoke("revoked"));
                "revoked".into()
            }
            Server::Real { .. } => {
                let ns = ["--namespace", "podinfo"];
                self.kubectl(&[&["create", "secret", "generic", "token-binding"][..], &ns].concat(), None);
                let bound = ["--bound-object-kind", "Secret", "--bound-object-name", "token-binding"];
                let args = [&["create", "token", "podinfo", "--audience", AUDIENCE][..], &bound, &ns].concat();
                let token = self.kubectl(&args, None).trim().to_owned();
                self.kubectl(&[&["delete", "secret", "token-binding"][..], &ns].concat(), None);
                token
            }
        }
    }

    /// `kubectl apply --server-side` of the build directory's MeshBundle,
    /// ProxyConfigs and ServicePolicies, as Flux and Argo CD apply; returns
    /// how long kubectl took.
    pub fn apply_dist(&self, dist: &Path) -> Duration {
        let (bundle, configs) = (dist.join("bundle.yaml"), dist.join("configs"));
        let (bundle, configs) = (bundle.display().to_string(), configs.display().to_string());
        let policies = dist.join("servicepolicies");
        // kubectl refuses a directory without objects: a build that shares
        // no policy leaves none there.
        let any_policy = std::fs::read_dir(&policies)
            .into_iter()
            .flatten()
            .flatten()
            .any(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten().next().is_some());
        let policies = policies.display().to_string();
        let mut args = vec!["apply", "--server-side", "-f", &bundle, "-R", "-f", &configs];
        if any_policy {
            args.extend(["-f", &policies]);
        }
        let start = Instant::now();
        self.kubectl(&args, None);
        start.elapsed()
    }

    pub fn apply_file(&self, file: &Path) -> Duration {
        let start = Instant::now();
        self.kubectl(&["apply", "--server-side", "-f", &file.display().to_string()], None);
        start.elapsed()
    }

    /// Runs kubectl as the admin; its standard output.
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        let cache = self._dir.path().join("kube-cache");
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs (.ci/run installs it)");
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("kubectl reads its input");
        }
        let out = child.wait_with_output().expect("kubectl finishes");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "kubectl {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    /// The runtime needed nothing beyond what runtime/deploy's RBAC grants.
    /// On the fake: no request was refused (401 or 403), and status writes
    /// show the runtime's token was in play. On the real server, where the
    /// runtime's token is its ServiceAccount's and only the RBAC authorizer
    /// decides: every ProxyConfig carries the Ready condition the runtime
    /// wrote (a refused watch or status patch leaves it without).
    pub fn assert_rbac_was_enough(&self) {
        match &self.server {
            Server::Fake(fake) => {
                let log = fake.faults.log();
                let refused: Vec<_> = log.iter().filter(|l| l.status == 401 || l.status == 403).collect();
                assert!(refused.is_empty(), "requests refused under runtime/deploy's RBAC: {refused:#?}");
                let patches = log.iter().filter(|l| l.uri.contains("/status")).count();
                assert!(patches > 0, "the runtime wrote no status");
                println!(
                    "{} API requests, {patches} status writes, none refused under runtime/deploy's RBAC",
                    log.len()
                );
            }
            Server::Real { .. } => {
                let list: Value =
                    serde_json::from_str(&self.kubectl(&["get", "proxyconfigs", "-A", "-o", "json"], None))
                        .expect("kubectl prints JSON");
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let unmarked: Vec<_> =
                    items.iter().filter(|o| ready_condition(&o["status"]).is_none()).map(|o| &o["metadata"]).collect();
                assert!(!items.is_empty() && unmarked.is_empty(), "no Ready condition written on {unmarked:#?}");
                println!(
                    "all {} ProxyConfigs carry the runtime's Ready condition, written under its ServiceAccount's RBAC",
                    items.len()
                );
            }
        }
    }

    /// A ProxyConfig's status as the API server holds it.
    pub fn config_status(&self, namespace: &str, name: &str) -> Value {
        let text = self.kubectl(&["get", "proxyconfig", name, "--namespace", namespace, "-o", "json"], None);
        serde_json::from_str::<Value>(&text).map(|o| o["status"].clone()).unwrap_or(Value::Null)
    }

    /// mesh-runtime's command line in Kubernetes mode (the client comes
    /// from [`Cluster::runtime_credentials`], not from these flags).
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

/// The `Ready` condition of a status, if the runtime wrote one.
pub fn ready_condition(status: &Value) -> Option<&Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")
}

/// Builds the real server's harness before a test enters its network
/// namespace (where `go` has no network); false after the loud skip when
/// `go` or kubectl is missing outside CI.
pub fn prebuild(test: &str, server: ApiServer) -> bool {
    if !mesh_test_support::require_tool(test, "kubectl", &["version", "--client"], "apt-get install -y kubectl") {
        return false;
    }
    server == ApiServer::Fake || mesh_test_support::apiserver::harness_binary(test).is_some()
}

fn fake_kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    \
         user: fake\n    namespace: default\ncurrent-context: fake\n"
    )
}

/// The fake API server on a thread of its own, enforcing
/// `runtime/deploy/rbac.yaml` with its own evaluator.
struct FakeThread {
    url: String,
    store: Store,
    tokens: Tokens,
    faults: Faults,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeThread {
    fn start() -> FakeThread {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let server = FakeApiServer::start().await.expect("fake API server");
                let rbac = super::cluster_objects::deploy_rbac();
                server.authorizer().load(&rbac).expect("runtime/deploy/rbac.yaml loads");
                tx.send((server.url(), server.store().clone(), server.tokens().clone(), server.faults().clone()))
                    .unwrap();
                let _ = stopped.await;
                drop(server);
            });
        });
        let (url, store, tokens, faults) = rx.recv().expect("fake API server started");
        FakeThread { url, store, tokens, faults, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for FakeThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
