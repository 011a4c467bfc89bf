//! A mesh on loopback: `meshc build` of an example, one mesh-echo app and
//! one mesh-proxy per meshed workload, each with its own certificate.

use mesh_common::identity::pki::{TestPki, Validity, write_identity_dir};
use mesh_proxy_api::envelope::{SigningKey, verifying_key_to_pem};
use mesh_proxy_api::{ProxyConfig, WorkloadRef};
use meshc::emit::{self, BuildInfo, write};
use meshc::load::Input;
use meshc::pipeline::{self, Options, Outcome};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies-examples").join(name)
}

/// What `meshc build` produced, in a temp dir, with the public key beside it.
pub struct Build {
    pub outcome: Outcome,
    pub dir: tempfile::TempDir,
    pub pubkey: PathBuf,
    /// Each workload's config file under `configs/`.
    pub files: BTreeMap<WorkloadRef, PathBuf>,
    pub key: SigningKey,
}

/// The signed sequence of [`build`]; later builds of a test sign above it.
pub const BUILD_SEQUENCE: u64 = 1;

pub fn build(example_name: &str) -> Build {
    build_dir(&example(example_name))
}

/// `meshc build` of the policy repository at `repo`.
pub fn build_dir(repo: &Path) -> Build {
    let outcome = pipeline::compile(&Input::Path(repo.to_path_buf()), &Options::default()).expect("example compiles");
    let key = SigningKey::from_bytes(&[42; 32]);
    let info = BuildInfo { source_revision: "e2e".into(), sequence: BUILD_SEQUENCE, error_findings: 0 };
    let built = emit::build_outcome(&outcome, &key, &info, &emit::ConfigOut::Keep).expect("example builds");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    write::write_dir(&out, &built).expect("build writes");
    let pubkey = dir.path().join("meshc.pub");
    std::fs::write(&pubkey, verifying_key_to_pem(&key.verifying_key()).unwrap()).unwrap();
    let mut files = BTreeMap::new();
    for (path, text) in &built.files {
        if !path.starts_with(emit::CONFIGS_DIR) {
            continue;
        }
        let json = text.trim_start_matches("---").trim();
        let object: serde_json::Value = serde_json::from_str(json).expect("config objects are JSON");
        let workload: WorkloadRef = serde_json::from_value(object["spec"]["workload"].clone()).unwrap();
        files.insert(workload, out.join(path));
    }
    Build { outcome, dir, pubkey, files, key }
}

/// One running workload: its app and its proxy.
pub struct Workload {
    pub wi: usize,
    pub workload: WorkloadRef,
    pub identity: String,
    /// The pod address clients connect to (the proxy's inbound listeners).
    pub ip: IpAddr,
    pub ports: Vec<u16>,
    pub admin: SocketAddr,
    /// The proxy's own admin port, when the workload's ports include it:
    /// reached through the inbound listener, so policy applies to it as
    /// Linkerd applies it to 4191.
    pub admin_port: Option<u16>,
    pub outbound: SocketAddr,
    pub config: ProxyConfig,
}

pub struct Mesh {
    pub pki: TestPki,
    /// Set in runtime mode; stopped after the proxies.
    pub runtime: Option<RuntimeThread>,
    /// Kubernetes mode's API server; stopped after the runtime.
    pub cluster: Option<std::sync::Arc<super::cluster::Cluster>>,
    pub workloads: Vec<Workload>,
    children: Vec<(String, Child)>,
    pub logs: PathBuf,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where a workload's pod and app live: pods in 10.255.0.0/16, which no
/// example's policy names, apps on a loopback address of their own.
pub fn pod_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 255, (n / 200) as u8, (n % 200 + 1) as u8))
}

/// The app address of the `n`th workload with a config (its outbound listeners bind there).
pub fn app_ip_of(n: usize) -> IpAddr {
    app_ip(n)
}

fn app_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1, (n / 200) as u8, (n % 200 + 1) as u8))
}

pub struct Launch<'a> {
    pub build: &'a Build,
    /// Source address of every workload's outbound connections.
    pub client_ip: IpAddr,
    /// Written as the proxies' discovery file.
    pub discovery: serde_json::Value,
    /// Extra mesh-echo flags per workload name.
    pub echo_flags: BTreeMap<String, Vec<String>>,
    /// Transparent mode: iptables redirects each pod address to its proxy's
    /// one inbound listener, which serves the original destination's port.
    pub transparent: bool,
    /// Proxies get configs, endpoints and certificates from this mesh-runtime
    /// (file mode over the build directory) instead of files.
    pub runtime: Option<RuntimeMode>,
    /// Extra mesh-proxy flags per workload name (e.g. `--outbound-tcp`).
    pub proxy_flags: BTreeMap<String, Vec<String>>,
}

/// Proxies fetch configs, endpoints and certificates from mesh-runtime;
/// `discovery` is what the runtime serves as endpoints.
#[derive(Clone)]
pub struct RuntimeMode {
    pub discovery: serde_json::Value,
    /// Kubernetes mode against this cluster; file mode without.
    pub cluster: Option<std::sync::Arc<super::cluster::Cluster>>,
}

impl RuntimeMode {
    fn start(&self, build: &Build, pki: &TestPki) -> RuntimeThread {
        match &self.cluster {
            None => RuntimeThread::start(runtime_args(build, pki, &self.discovery)),
            Some(cluster) => {
                cluster.populate(build, pki, &self.discovery);
                cluster.apply_dist(&build.dir.path().join("dist"));
                RuntimeThread::start_kube(cluster)
            }
        }
    }
}

pub const RUNTIME_IDENTITY: &str = "mesh-runtime.mesh-system.serviceaccount.identity.linkerd.cluster.local";

impl Mesh {
    pub fn start(l: &Launch) -> Mesh {
        let o = &l.build.outcome;
        let dir = l.build.dir.path();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let discovery = dir.join("endpoints.json");
        std::fs::write(&discovery, serde_json::to_vec_pretty(&l.discovery).unwrap()).unwrap();
        let domain = o.resolved.settings.identity_domain();
        let pki = TestPki::for_domain(domain.clone()).expect("test PKI");
        let runtime = l.runtime.as_ref().map(|rt| rt.start(l.build, &pki));
        let cluster = l.runtime.as_ref().and_then(|rt| rt.cluster.clone());
        let mut mesh = Mesh { pki, runtime, cluster, workloads: Vec::new(), children: Vec::new(), logs };
        super::netns::add_address(l.client_ip);
        for (wi, w) in o.resolved.workloads.iter().enumerate() {
            let Some(config) = o.configs[wi].clone() else { continue };
            let n = mesh.workloads.len();
            let (ip, app) = (pod_ip(n), app_ip(n));
            super::netns::add_address(ip);
            let ports = meshc::query::who::target_ports(w, Some(&config));
            let id_dir = dir.join("identity").join(format!("{}-{}", w.namespace, w.name));
            if l.runtime.is_some() {
                // Only the trust anchors: the proxy asks the runtime for its certificate.
                std::fs::create_dir_all(&id_dir).unwrap();
                std::fs::write(id_dir.join("ca.crt"), mesh.pki.anchors_pem()).unwrap();
            } else {
                let cert =
                    mesh.pki.issue_workload(&w.service_account, &w.namespace, Validity::valid_for(HOUR)).unwrap();
                write_identity_dir(&id_dir, &cert, mesh.pki.anchors_pem()).unwrap();
            }
            let admin_port =
                w.ports.iter().find(|p| p.injected && p.name.as_deref() == Some("linkerd-admin")).map(|p| p.port);
            let admin = SocketAddr::new(app, admin_port.unwrap_or(4191));
            let app_ports: Vec<u16> = ports.iter().copied().filter(|p| Some(*p) != admin_port).collect();
            let extra = l.echo_flags.get(&w.name).cloned().unwrap_or_default();
            mesh.spawn_echo(&w.name, app, &app_ports, &config, &extra);
            let outbound = SocketAddr::new(app, 4140);
            let mut args: Vec<String> = vec!["run".into()];
            let workload = config.workload.clone();
            args.extend(["--workload".into(), format!("{}/{}/{}", workload.kind, workload.namespace, workload.name)]);
            args.extend(["--trust-key".into(), l.build.pubkey.display().to_string()]);
            args.extend(["--identity-dir".into(), id_dir.display().to_string()]);
            args.extend(domain_flags(&domain));
            match &l.runtime {
                None => {
                    args.extend(["--config".into(), l.build.files[&workload].display().to_string()]);
                    let policies = l.build.dir.path().join("dist").join(emit::SERVICE_POLICIES_DIR);
                    args.extend(["--service-policies".into(), policies.display().to_string()]);
                    args.extend(["--discovery".into(), discovery.display().to_string()]);
                }
                Some(rt) => {
                    let _ = rt;
                    args.extend(["--runtime".into(), format!("https://{RUNTIME_API}")]);
                    args.extend(["--runtime-identity".into(), RUNTIME_IDENTITY.into()]);
                    args.extend([
                        "--token-file".into(),
                        token_file(dir, &w.namespace, &w.service_account).display().to_string(),
                    ]);
                    args.extend(["--service-account".into(), w.service_account.clone()]);
                }
            }
            args.extend(["--admin".into(), admin.to_string(), "--outbound".into(), outbound.to_string()]);
            args.extend(["--pod-ip".into(), l.client_ip.to_string(), "--reload-interval".into(), "100ms".into()]);
            if l.transparent {
                let listen = 15000 + n as u16;
                args.extend([
                    "--inbound-transparent".into(),
                    format!("0.0.0.0:{listen}"),
                    "--app-host".into(),
                    app.to_string(),
                ]);
                let (ip, listen) = (ip.to_string(), listen.to_string());
                let rule =
                    ["-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", &ip, "-j", "REDIRECT", "--to-ports", &listen];
                super::netns::iptables(&rule);
            } else {
                for p in &ports {
                    args.extend([
                        "--inbound".into(),
                        format!("{}={}", SocketAddr::new(ip, *p), SocketAddr::new(app, *p)),
                    ]);
                }
            }
            args.extend(l.proxy_flags.get(&w.name).cloned().unwrap_or_default());
            mesh.spawn_logged(&format!("proxy-{}-{}", w.namespace, w.name), &mesh_e2e::binary("mesh-proxy"), &args);
            mesh.workloads.push(Workload {
                wi,
                workload,
                identity: w.identity.clone(),
                ip,
                ports,
                admin,
                admin_port,
                outbound,
                config,
            });
        }
        for w in &mesh.workloads {
            wait_ready(w.admin, &mesh.logs);
        }
        mesh
    }

    fn spawn_echo(&mut self, name: &str, app: IpAddr, ports: &[u16], config: &ProxyConfig, extra: &[String]) {
        let addrs: Vec<SocketAddr> = ports.iter().map(|&p| SocketAddr::new(app, p)).collect();
        let child = mesh_e2e::echo::spawn(mesh_e2e::echo::command(), name, config, &addrs, extra);
        self.children.push((format!("echo-{name}"), child));
    }

    fn spawn_logged(&mut self, name: &str, exe: &std::path::Path, args: &[String]) {
        let log = std::fs::File::create(self.logs.join(format!("{name}.log"))).unwrap();
        let child = Command::new(exe)
            .args(args)
            .env("MESH_PROXY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        self.children.push((name.to_string(), child));
    }

    /// Sends `signal` to the proxy of workload `name`; returns its process.
    pub fn signal_proxy(&mut self, name: &str, signal: i32) -> &mut Child {
        let w = self.workload(name);
        let tag = format!("proxy-{}-{}", w.workload.namespace, w.workload.name);
        let (_, child) = self.children.iter_mut().find(|(t, _)| *t == tag).expect("the proxy was started");
        // SAFETY: kill(2) on a child we started and have not reaped.
        let rc = unsafe { libc::kill(child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill {tag}");
        child
    }

    pub fn workload(&self, name: &str) -> &Workload {
        self.workloads.iter().find(|w| w.workload.name == name).unwrap_or_else(|| panic!("no workload {name}"))
    }

    /// Every proxy's log, for a failure message.
    pub fn dump_logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.logs).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!("--- {} (last lines)\n", entry.path().display()));
            out.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
        }
        out
    }
}

/// The ServiceAccount token file a proxy reads (`token-<ns>-<sa>`).
pub fn token_file(dir: &Path, ns: &str, sa: &str) -> PathBuf {
    dir.join(format!("token-{ns}-{sa}"))
}

/// Writes what mesh-runtime reads in file mode (the CA, a token per
/// ServiceAccount of the example plus an expired one, the endpoints) and
/// returns its command line.
pub fn runtime_args(build: &Build, pki: &TestPki, discovery: &serde_json::Value) -> Vec<String> {
    let dir = build.dir.path();
    let ca = dir.join("ca");
    pki.write_ca_dir(&ca).unwrap();
    let mut tokens = Vec::new();
    let accounts: std::collections::BTreeSet<_> =
        build.outcome.resolved.workloads.iter().map(|w| (&w.namespace, &w.service_account)).collect();
    for (namespace, service_account) in accounts {
        let token = format!("token-{namespace}-{service_account}");
        std::fs::write(token_file(dir, namespace, service_account), &token).unwrap();
        tokens.push(serde_json::json!({"token": token, "namespace": namespace, "serviceAccount": service_account}));
    }
    tokens.push(serde_json::json!({"token": "expired", "namespace": "podinfo", "serviceAccount": "podinfo",
        "expiresAt": "2020-01-01T00:00:00Z"}));
    std::fs::write(dir.join("tokens.json"), serde_json::to_vec(&serde_json::json!({"tokens": tokens})).unwrap())
        .unwrap();
    std::fs::write(dir.join("runtime-endpoints.json"), serde_json::to_vec(discovery).unwrap()).unwrap();
    let p = |name: &str| dir.join(name).display().to_string();
    let flags = [
        ("--dir", p("dist")),
        ("--trust-key", build.pubkey.display().to_string()),
        ("--ca-dir", ca.display().to_string()),
        ("--endpoints", p("runtime-endpoints.json")),
        ("--tokens", p("tokens.json")),
        ("--listen", RUNTIME_API.to_string()),
        ("--admin", "127.0.0.1:9990".to_string()),
        ("--identity", RUNTIME_IDENTITY.to_string()),
    ];
    let flags = flags.into_iter().flat_map(|(k, v)| [k.to_string(), v]);
    let domain = domain_flags(&build.outcome.resolved.settings.identity_domain());
    std::iter::once("mesh-runtime".to_string()).chain(flags).chain(domain).collect()
}

/// The flags that tell mesh-proxy and mesh-runtime the names meshc built
/// identities from.
fn domain_flags(domain: &mesh_proxy_api::IdentityDomain) -> [String; 4] {
    [
        "--control-plane-namespace".into(),
        domain.control_plane_namespace().into(),
        "--trust-domain".into(),
        domain.trust_domain().into(),
    ]
}

pub const RUNTIME_API: &str = "127.0.0.1:8443";

/// mesh-runtime (file mode) on a thread of its own, as a separate process
/// would be: it can be stopped and started again while proxies run.
pub struct RuntimeThread {
    shutdown: Option<tokio_util::sync::CancellationToken>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RuntimeThread {
    /// File mode.
    pub fn start(args: Vec<String>) -> RuntimeThread {
        RuntimeThread::spawn(args, None)
    }

    /// Kubernetes mode against `cluster`.
    pub fn start_kube(cluster: &super::cluster::Cluster) -> RuntimeThread {
        let args = super::cluster::Cluster::runtime_args(RUNTIME_API, RUNTIME_IDENTITY);
        RuntimeThread::spawn(args, Some(cluster.runtime_credentials()))
    }

    fn spawn(args: Vec<String>, api_server: Option<super::cluster::RuntimeCredentials>) -> RuntimeThread {
        let settings = <mesh_runtime::Settings as clap::Parser>::try_parse_from(args).expect("runtime flags");
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let running = match api_server {
                    None => mesh_runtime::start(settings).await,
                    Some(credentials) => {
                        let client = runtime_client(&credentials).await;
                        mesh_runtime::kube::start(settings, client).await
                    }
                };
                let running = running.expect("mesh-runtime starts");
                tx.send(running.shutdown.clone()).unwrap();
                running.stopped().await;
            });
        });
        let shutdown = rx.recv().expect("mesh-runtime started");
        RuntimeThread { shutdown: Some(shutdown), thread: Some(thread) }
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            s.cancel();
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("mesh-runtime thread");
        }
    }
}

/// A client for the runtime: the API server and its CA from the
/// kubeconfig, and the runtime's ServiceAccount token instead of the
/// admin's credentials.
async fn runtime_client(credentials: &super::cluster::RuntimeCredentials) -> kube::Client {
    let path = &credentials.kubeconfig;
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    config.auth_info = kube::config::AuthInfo { token: Some(credentials.token.clone().into()), ..Default::default() };
    kube::Client::try_from(config).expect("kube client")
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `/ready` until the proxy has verified its config.
pub fn wait_ready(admin: SocketAddr, logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(super::clients::blocking_get_status(admin, "/ready"), Ok(200)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("proxy with admin {admin} never became ready; logs in {}", logs.display());
}
