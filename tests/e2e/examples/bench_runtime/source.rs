//! Where the runtime reads the build from: a directory (file mode), the
//! in-process fake API server or a real kube-apiserver (Kubernetes mode, the
//! binary reaching it through a kubeconfig). All hold the same trust material.

use crate::process::Runtime;
use crate::source_real::Real;
use crate::workloads::{NAMESPACE, Signed};
use base64ct::Encoding;
use fake_apiserver::{FakeApiServer, Options};
use mesh_common::identity::pki::TestPki;
use mesh_proxy_api::envelope::{SigningKey, verifying_key_to_pem};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const SYSTEM_NS: &str = "mesh-system";
pub const RUNTIME_ID: &str = "mesh-runtime.mesh-system.serviceaccount.identity.linkerd.cluster.local";
const AUDIENCE: &str = "identity.l5d.io";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    File,
    Kube,
    /// Kubernetes mode against a real kube-apiserver (latency and memory;
    /// the certificate figure's tokens are the fake's).
    KubeReal,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::File => "file",
            Mode::Kube => "kubernetes",
            Mode::KubeReal => "kubernetes, real API server",
        }
    }
}

/// What every runtime of a run shares: the mesh's PKI and the signing key.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub pki: TestPki,
    pub key: SigningKey,
    pub pubkey: PathBuf,
    pub ca_dir: PathBuf,
    pub bin: PathBuf,
}

impl Env {
    pub fn new(bin: PathBuf) -> Result<Env, String> {
        let tmp = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let key = SigningKey::from_bytes(&[7; 32]);
        let pubkey = tmp.path().join("meshc.pub");
        let pem = verifying_key_to_pem(&key.verifying_key()).map_err(|e| e.to_string())?;
        std::fs::write(&pubkey, pem).map_err(|e| e.to_string())?;
        let pki = TestPki::new(crate::workloads::TRUST_DOMAIN)?;
        let ca_dir = tmp.path().join("ca");
        pki.write_ca_dir(&ca_dir)?;
        Ok(Env { tmp, pki, key, pubkey, ca_dir, bin })
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

pub enum Source {
    Dir { dist: PathBuf, tokens: PathBuf },
    Fake { server: FakeApiServer, kubeconfig: PathBuf },
    Real(Box<Real>),
}

/// Token `i` grants workload `i`'s ServiceAccount.
pub fn token(i: usize) -> String {
    format!("bench-token-{i}")
}

impl Source {
    /// An empty source named `name` (a directory under the run's temporary
    /// one), with tokens for workloads `0..tokens`.
    pub async fn new(env: &Env, mode: Mode, name: &str, tokens: usize) -> Result<Source, String> {
        let dir = env.tmp.path().join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match mode {
            Mode::File => {
                let list: Vec<Value> = (0..tokens)
                    .map(|i| json!({"token": token(i), "namespace": NAMESPACE, "serviceAccount": format!("w{i}")}))
                    .collect();
                let path = dir.join("tokens.json");
                std::fs::write(&path, json!({"tokens": list}).to_string()).map_err(|e| e.to_string())?;
                Ok(Source::Dir { dist: dir.join("dist"), tokens: path })
            }
            Mode::Kube => {
                // Every round's changes must stay replayable, or a slow
                // watcher would relist instead of catching up.
                let options = Options { history_limit: 1_000_000, ..Options::default() };
                let server = FakeApiServer::start_with(options).await.map_err(|e| format!("fake API server: {e}"))?;
                install_trust(&server, env)?;
                let expires = SystemTime::now() + Duration::from_secs(24 * 3600);
                for i in 0..tokens {
                    let info = fake_apiserver::TokenInfo::new(NAMESPACE, &format!("w{i}"), expires);
                    server.tokens().insert(&token(i), info.with_audiences(&[AUDIENCE]));
                }
                let kubeconfig = dir.join("kubeconfig");
                server.kubeconfig(&kubeconfig).map_err(|e| e.to_string())?;
                Ok(Source::Fake { server, kubeconfig })
            }
            Mode::KubeReal if tokens > 0 => {
                Err("the certificate figure has no real-server mode: its tokens are registered with the fake".into())
            }
            Mode::KubeReal => {
                let real = Real::start(SYSTEM_NS).await?;
                for object in trust_objects(env)? {
                    real.create(&object).await?;
                }
                Ok(Source::Real(Box::new(real)))
            }
        }
    }

    /// Puts a build where the runtime reads it: `meshc build --out` for a
    /// directory, create-or-replace-spec of each object (as `kubectl
    /// apply` would, straight into the fake's store) for the fake, a
    /// server-side apply of each object for a real API server.
    pub async fn apply(&self, signed: &Signed) -> Result<(), String> {
        match self {
            Source::Real(real) => real.apply(signed).await,
            Source::Dir { dist, .. } => meshc::emit::write::write_dir(dist, &signed.built),
            Source::Fake { server, .. } => {
                let store = server.store();
                for o in &signed.objects {
                    if store.create_object(o.clone()).is_ok() {
                        continue;
                    }
                    let gvr = store.type_of(o).map_err(|e| e.to_string())?.gvr.clone();
                    let ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
                    let name = o.pointer("/metadata/name").and_then(Value::as_str).ok_or("an object without a name")?;
                    store.modify(&gvr, ns, name, |live| live["spec"] = o["spec"].clone()).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    /// Starts the runtime binary over this source.
    pub fn spawn(&self, env: &Env, log: &Path) -> Result<Runtime, String> {
        self.spawn_with(env, log, &[])
    }

    /// Creates a cluster-scoped or namespaced object where the runtime's
    /// Kubernetes mode reads it; a directory has no such objects.
    pub async fn create(&self, object: &Value) -> Result<(), String> {
        match self {
            Source::Dir { .. } => Ok(()),
            Source::Fake { server, .. } => {
                server.store().create_object(object.clone()).map(|_| ()).map_err(|e| e.to_string())
            }
            Source::Real(real) => real.create(object).await,
        }
    }

    /// [`Source::spawn`] with `extra` flags after the mode's own.
    pub fn spawn_with(&self, env: &Env, log: &Path, extra: &[OsString]) -> Result<Runtime, String> {
        let os = |s: &str| OsString::from(s);
        let with = |args: &[OsString]| [args, extra].concat();
        match self {
            Source::Dir { dist, tokens } => {
                let args = [
                    os("--dir"),
                    dist.into(),
                    os("--trust-key"),
                    env.pubkey.clone().into(),
                    os("--ca-dir"),
                    env.ca_dir.clone().into(),
                    os("--tokens"),
                    tokens.into(),
                ];
                Runtime::spawn(&env.bin, &with(&args), &[], log)
            }
            Source::Fake { kubeconfig, .. } => {
                let args = [os("--kubernetes"), os("--namespace"), os(SYSTEM_NS)];
                Runtime::spawn(&env.bin, &with(&args), &[("KUBECONFIG", kubeconfig)], log)
            }
            Source::Real(real) => {
                let args = [os("--kubernetes"), os("--namespace"), os(SYSTEM_NS)];
                Runtime::spawn(&env.bin, &with(&args), &[("KUBECONFIG", real.server.kubeconfig())], log)
            }
        }
    }
}

fn install_trust(server: &FakeApiServer, env: &Env) -> Result<(), String> {
    for o in trust_objects(env)? {
        server.store().create_object(o).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The issuer Secret, the trust roots and the trusted keys, under the
/// default names the runtime's flags use.
fn trust_objects(env: &Env) -> Result<[Value; 3], String> {
    let b64 = |bytes: Vec<u8>| base64ct::Base64::encode_string(&bytes);
    let pubkey = String::from_utf8_lossy(&env.read(&env.pubkey)?).into_owned();
    let objects = [
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "mesh-identity-issuer", "namespace": SYSTEM_NS},
            "data": {"tls.crt": b64(env.read(&env.ca_dir.join("issuer.crt"))?),
                     "tls.key": b64(env.read(&env.ca_dir.join("issuer.key"))?)}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mesh-identity-trust-roots", "namespace": SYSTEM_NS},
            "data": {"ca-bundle.crt": env.pki.anchors_pem()}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "meshc-trusted-keys", "namespace": SYSTEM_NS},
            "data": {"meshc.pub": pubkey}}),
    ];
    Ok(objects)
}
