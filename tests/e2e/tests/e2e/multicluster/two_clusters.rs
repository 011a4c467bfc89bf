//! Two clusters on one loopback: east's pods in 10.10.0.0/16, west's in
//! 10.20.0.0/16 (the podNetworks the example's meshc.yaml gives them),
//! each cluster with its own mesh-runtime (file mode over its own signed
//! build) and one trust anchor for both. East's runtime serves west's
//! exported Services (`--links`: the links.json meshc signs into east's
//! build, from the Link, what west exports and meshc.yaml's `runtime:` of
//! west, whose runtime gives west's endpoints); west runs the gateway's
//! proxy (`--gateway`) on the Link's gateway address.

use super::super::mesh::{self, RuntimeThread};
use mesh_common::identity::pki::TestPki;
use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::envelope::{SigningKey, verifying_key_to_pem};
use meshc::emit::{self, BuildInfo, write};
use meshc::load::Input;
use meshc::model::Spec;
use meshc::model::meta::IntOrString;
use meshc::multicluster::ClusterOutcome;
use meshc::multicluster::links_file;
use meshc::pipeline::{self, Options, Outcome};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const RUNTIME_IDENTITY: &str = mesh::RUNTIME_IDENTITY;
const GATEWAY_NAMESPACE: &str = "linkerd-multicluster";

/// A running meshed workload of either cluster.
pub struct Pod {
    pub cluster: String,
    pub name: String,
    /// Its proxy's `--outbound` HTTP listener (the app's way out).
    pub outbound: SocketAddr,
    /// Its proxy's `--outbound-tcp` listeners, one per opaque mirror port
    /// of its cluster: (`mirror.namespace`, port) → listener.
    pub opaque: Vec<((String, u16), SocketAddr)>,
    /// Its pod address (its endpoints' address).
    pub ip: IpAddr,
    pub app: IpAddr,
}

pub struct TwoClusters {
    pub outcome: Outcome,
    /// The clusters' one trust anchor and issuer, for a client of either runtime.
    pub pki: TestPki,
    pub pods: Vec<Pod>,
    /// West's gateway, where the Link says it is.
    pub gateway: SocketAddr,
    pub logs: PathBuf,
    children: Vec<Child>,
    _runtimes: Vec<RuntimeThread>,
    _dir: tempfile::TempDir,
}

impl Drop for TwoClusters {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The cluster's number in addresses: east 10, west 20 (their podNetworks).
fn octet(cluster: &str) -> u8 {
    if cluster == "east" { 10 } else { 20 }
}

pub fn runtime_addr(cluster: &str) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, octet(cluster), 255, 1))
}

/// Copies `policies-examples/emojivoto-multicluster/<mode>` into `dir`,
/// adds west's gateway (the chart's objects) and west's opaque `relay-svc`
/// (exported as the mode exports), and applies `edit` to the copy.
pub fn repository(mode: &str, dir: &Path, edit: impl FnOnce(&Path)) -> PathBuf {
    let from = mesh::example("emojivoto-multicluster").join(mode);
    let repo = dir.join("repo");
    mesh_test_support::copy_tree(&from, &repo);
    std::fs::copy(e2e_repo("multicluster-gateway/linkerd-gateway.yaml"), repo.join("west/linkerd-gateway.yaml"))
        .unwrap();
    let relay = std::fs::read_to_string(e2e_repo("multicluster-opaque/relay.yaml")).unwrap();
    let export = if mode == "gateway" { "\"true\"" } else { "remote-discovery" };
    std::fs::write(repo.join("west/relay.yaml"), relay.replace("EXPORT_LABEL", export)).unwrap();
    edit(&repo);
    repo
}

/// A file of the end-to-end tests' own repositories (`tests/e2e/repos/`).
pub fn e2e_repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("repos").join(path)
}

/// Compiles `repo` as `meshc check` does, then starts both clusters.
pub fn start(dir: tempfile::TempDir, repo: &Path) -> TwoClusters {
    let mut outcome = pipeline::compile(&Input::Path(repo.to_path_buf()), &Options::default()).expect("compiles");
    let m = outcome.multicluster.as_deref_mut().expect("a multicluster repository");
    for c in &mut m.clusters {
        meshc::lower::outbound::complete(&mut c.outcome);
    }
    let m = outcome.multicluster.as_deref().expect("a multicluster repository");
    let domain = m.clusters[0].outcome.resolved.settings.identity_domain();
    let pki = TestPki::for_domain(domain.clone()).expect("test PKI");
    let key = SigningKey::from_bytes(&[42; 32]);
    let pubkey = dir.path().join("meshc.pub");
    std::fs::write(&pubkey, verifying_key_to_pem(&key.verifying_key()).unwrap()).unwrap();
    let ca = dir.path().join("ca");
    pki.write_ca_dir(&ca).unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let gateway = gateway_address(m);
    super::super::netns::add_address(gateway.ip());
    let mut runtimes = Vec::new();
    let mut started = Started { children: Vec::new(), pods: Vec::new(), logs: logs.clone() };
    let mut placed = Vec::new();
    // West (the target) first: east's runtime then finds west's runtime
    // listening at its first poll.
    for c in m.clusters.iter().rev() {
        let cdir = dir.path().join(&c.name);
        std::fs::create_dir_all(&cdir).unwrap();
        let info = BuildInfo { source_revision: "e2e".into(), sequence: 1, error_findings: 0 };
        let mut built = emit::build_outcome(&c.outcome, &key, &info, &emit::ConfigOut::Keep).expect("builds");
        // The links file `meshc build` signs into the cluster's build, as the runtime reads it there.
        let links = signed_links(m, c, &key);
        if let Some(text) = &links {
            built.files.push((links_file::FILE_NAME.to_owned(), text.clone()));
        }
        write::write_dir(&cdir.join("dist"), &built).unwrap();
        let links = links.map(|_| cdir.join("dist").join(links_file::FILE_NAME));
        let pods = place_pods(c);
        std::fs::write(cdir.join("endpoints.json"), endpoints(c, &pods).to_string()).unwrap();
        super::super::netns::add_address(runtime_addr(&c.name));
        let args = runtime_args(c, &cdir, &pubkey, &ca, links.as_deref(), &domain);
        runtimes.push(RuntimeThread::start(args));
        placed.push((c, cdir, pods));
    }
    for (c, cdir, pods) in placed {
        let opaque = opaque_mirror_ports(m, c);
        for (wi, ip) in pods {
            started.spawn(c, wi, ip, &cdir, &pki, &pubkey, &domain, (gateway, &opaque));
        }
    }
    for p in &started.pods {
        mesh::wait_ready(SocketAddr::new(p.app, 4191), &logs);
    }
    let Started { children, pods, .. } = started;
    TwoClusters { outcome, pki, pods, gateway, logs, children, _runtimes: runtimes, _dir: dir }
}

/// The Link's `gatewayAddress` and `gatewayPort` (the only Link here).
fn gateway_address(m: &meshc::multicluster::Clusters) -> SocketAddr {
    let spec = &m.links.links[0].spec;
    let ip: IpAddr = spec.gateway_address.as_deref().and_then(|a| a.parse().ok()).expect("the Link's gatewayAddress");
    let port: u16 = spec.gateway_port.as_deref().and_then(|p| p.parse().ok()).expect("the Link's gatewayPort");
    SocketAddr::new(ip, port)
}

/// Every meshed workload of the cluster and its pod address.
fn place_pods(c: &ClusterOutcome) -> Vec<(usize, IpAddr)> {
    let o = &c.outcome;
    (0..o.resolved.workloads.len())
        .filter(|wi| o.configs[*wi].is_some())
        .enumerate()
        .map(|(n, wi)| (wi, IpAddr::V4(Ipv4Addr::new(10, octet(&c.name), 0, n as u8 + 1))))
        .collect()
}

/// The cluster's own Services and the pods behind them (mirrors have none here).
fn endpoints(c: &ClusterOutcome, pods: &[(usize, IpAddr)]) -> serde_json::Value {
    let o = &c.outcome;
    let mut services = Vec::new();
    for r in &o.resolved.resources {
        let Spec::Service(spec) = &r.spec else { continue };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else { continue };
        let ns = r.id.namespace.clone().unwrap_or_default();
        let mut ports = Vec::new();
        for sp in &spec.ports {
            let mut eps = Vec::new();
            for (wi, ip) in pods {
                let w = &o.resolved.workloads[*wi];
                if w.namespace != ns || !selector.iter().all(|(k, v)| w.labels.get(k) == Some(v)) {
                    continue;
                }
                let pod_port = match sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port)) {
                    IntOrString::Int(n) => u16::try_from(n).ok(),
                    IntOrString::Str(n) => {
                        w.ports.iter().find(|p| p.name.as_deref() == Some(n.as_str())).map(|p| p.port)
                    }
                };
                if let Some(p) = pod_port {
                    eps.push(serde_json::json!({"addr": SocketAddr::new(*ip, p).to_string(), "identity": w.identity}));
                }
            }
            ports.push(serde_json::json!({"port": sp.port, "endpoints": eps}));
        }
        services.push(serde_json::json!({"namespace": ns, "name": r.id.name, "ports": ports}));
    }
    serde_json::json!({ "services": services })
}

/// The cluster's links file as `meshc build` signs it: east's names west's
/// gateway (the Link) and west's runtime (meshc.yaml's `runtime:` of west,
/// which must be the runtime this test starts for west).
fn signed_links(m: &meshc::multicluster::Clusters, c: &ClusterOutcome, key: &SigningKey) -> Option<String> {
    let ci = m.find(&c.name).expect("a cluster of the repository");
    let (text, notes) = links_file::signed(m, ci, key).expect("signs")?;
    assert!(notes.is_empty(), "meshc leaves out of {}'s links file: {notes:?}", c.name);
    let west = m.find("west").expect("cluster west");
    let url = format!("https://{}", SocketAddr::new(runtime_addr("west"), 8443));
    let expected = links_file::Remote::Runtime { url, identity: RUNTIME_IDENTITY.to_owned() };
    assert_eq!(m.clusters[west].runtime.as_ref(), Some(&expected), "meshc.yaml's runtime: of west");
    Some(text)
}

/// The source cluster's mirror ports that its proxies carry as opaque TCP
/// (meshc's own reading of the mirror's protocol), as (`mirror.namespace`,
/// port): each pod's proxy gets an `--outbound-tcp` listener on that port.
fn opaque_mirror_ports(m: &meshc::multicluster::Clusters, source: &ClusterOutcome) -> Vec<(String, u16)> {
    let o = &source.outcome;
    let mut out = Vec::new();
    for e in m.links.exports.iter().filter(|e| m.clusters[m.links.links[e.link].source_cluster].name == source.name) {
        let Some(ri) = o.resolved.index.get(meshc::resolve::index::Kind::Service, &e.namespace, &e.mirror) else {
            continue;
        };
        let r = &o.resolved.resources[ri];
        let Spec::Service(spec) = &r.spec else { continue };
        for p in spec.ports.iter().filter_map(|p| u16::try_from(p.port).ok()) {
            let protocol = meshc::lower::outbound::port_protocol(r, spec, &o.resolved.settings, p);
            if protocol == Some(mesh_proxy_api::outbound::OutboundProtocol::Opaque) {
                out.push((format!("{}.{}", e.mirror, e.namespace), p));
            }
        }
    }
    out
}

fn runtime_args(
    c: &ClusterOutcome,
    cdir: &Path,
    pubkey: &Path,
    ca: &Path,
    links: Option<&Path>,
    domain: &mesh_proxy_api::IdentityDomain,
) -> Vec<String> {
    let accounts: std::collections::BTreeSet<_> =
        c.outcome.resolved.workloads.iter().map(|w| (&w.namespace, &w.service_account)).collect();
    let mut tokens = Vec::new();
    for (namespace, account) in accounts {
        let token = format!("token-{namespace}-{account}");
        std::fs::write(cdir.join(&token), &token).unwrap();
        tokens.push(serde_json::json!({"token": token, "namespace": namespace, "serviceAccount": account}));
    }
    std::fs::write(cdir.join("tokens.json"), serde_json::json!({ "tokens": tokens }).to_string()).unwrap();
    let at = runtime_addr(&c.name);
    let p = |name: &str| cdir.join(name).display().to_string();
    let mut args: Vec<String> = vec!["mesh-runtime".into()];
    let flags = [
        ("--dir", p("dist")),
        ("--trust-key", pubkey.display().to_string()),
        ("--ca-dir", ca.display().to_string()),
        ("--endpoints", p("endpoints.json")),
        ("--tokens", p("tokens.json")),
        ("--listen", SocketAddr::new(at, 8443).to_string()),
        ("--admin", SocketAddr::new(at, 9990).to_string()),
        ("--identity", RUNTIME_IDENTITY.to_string()),
        ("--control-plane-namespace", domain.control_plane_namespace().to_string()),
        ("--trust-domain", domain.trust_domain().to_string()),
    ];
    args.extend(flags.into_iter().flat_map(|(k, v)| [k.to_string(), v]));
    if let Some(l) = links {
        args.extend(["--links".to_string(), l.display().to_string()]);
    }
    args
}

struct Started {
    children: Vec<Child>,
    pods: Vec<Pod>,
    logs: PathBuf,
}

impl Started {
    /// Starts workload `wi`'s app and proxy; west's gateway gets `--gateway` instead of an app.
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &mut self,
        c: &ClusterOutcome,
        wi: usize,
        ip: IpAddr,
        cdir: &Path,
        pki: &TestPki,
        pubkey: &Path,
        domain: &mesh_proxy_api::IdentityDomain,
        (gateway, opaque_mirrors): (SocketAddr, &[(String, u16)]),
    ) {
        let w = &c.outcome.resolved.workloads[wi];
        let config = c.outcome.configs[wi].clone().expect("a meshed workload");
        let IpAddr::V4(v4) = ip else { unreachable!() };
        let app = IpAddr::V4(Ipv4Addr::new(127, v4.octets()[1], 0, v4.octets()[3]));
        super::super::netns::add_address(ip);
        let id_dir = cdir.join("identity").join(format!("{}-{}", w.namespace, w.name));
        std::fs::create_dir_all(&id_dir).unwrap();
        std::fs::write(id_dir.join("ca.crt"), pki.anchors_pem()).unwrap();
        let is_gateway = w.namespace == GATEWAY_NAMESPACE && w.service_account == "linkerd-gateway";
        let ports = meshc::query::who::target_ports(w, Some(&config));
        let admin = SocketAddr::new(app, 4191);
        let app_ports: Vec<u16> = ports.iter().copied().filter(|p| *p != 4191 && *p != 4143).collect();
        if !is_gateway {
            self.spawn_echo(&w.name, app, &app_ports, &config);
        }
        let outbound = SocketAddr::new(app, 4140);
        let runtime = format!("https://{}", SocketAddr::new(runtime_addr(&c.name), 8443));
        let mut args: Vec<String> = vec!["run".into()];
        let wl = &config.workload;
        let flags = [
            ("--workload", format!("{}/{}/{}", wl.kind, wl.namespace, wl.name)),
            ("--trust-key", pubkey.display().to_string()),
            ("--identity-dir", id_dir.display().to_string()),
            ("--control-plane-namespace", domain.control_plane_namespace().to_string()),
            ("--trust-domain", domain.trust_domain().to_string()),
            ("--runtime", runtime),
            ("--runtime-identity", RUNTIME_IDENTITY.to_string()),
            ("--token-file", cdir.join(format!("token-{}-{}", w.namespace, w.service_account)).display().to_string()),
            ("--service-account", w.service_account.clone()),
            ("--admin", admin.to_string()),
            ("--outbound", outbound.to_string()),
            ("--pod-ip", ip.to_string()),
            ("--reload-interval", "100ms".to_string()),
        ];
        args.extend(flags.into_iter().flat_map(|(k, v)| [k.to_string(), v]));
        let mut opaque = Vec::new();
        if is_gateway {
            args.extend(["--gateway".into(), gateway.to_string(), "--gateway-cluster".into(), c.name.clone()]);
        } else {
            for p in &app_ports {
                args.extend(["--inbound".into(), format!("{}={}", SocketAddr::new(ip, *p), SocketAddr::new(app, *p))]);
            }
            for (mirror, port) in opaque_mirrors {
                let listen = SocketAddr::new(app, *port);
                args.extend(["--outbound-tcp".into(), format!("{listen}={mirror}:{port}")]);
                opaque.push(((mirror.clone(), *port), listen));
            }
        }
        let log = std::fs::File::create(self.logs.join(format!("proxy-{}-{}.log", c.name, w.name))).unwrap();
        let child = Command::new(mesh_e2e::binary("mesh-proxy"))
            .args(&args)
            .env("MESH_PROXY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mesh-proxy starts");
        self.children.push(child);
        self.pods.push(Pod { cluster: c.name.clone(), name: w.name.clone(), outbound, opaque, ip, app });
    }

    fn spawn_echo(&mut self, name: &str, app: IpAddr, ports: &[u16], config: &ProxyConfig) {
        let addrs: Vec<SocketAddr> = ports.iter().map(|&p| SocketAddr::new(app, p)).collect();
        let child = mesh_e2e::echo::spawn(mesh_e2e::echo::command(), name, config, &addrs, &[]);
        self.children.push(child);
    }
}

impl TwoClusters {
    pub fn pod(&self, cluster: &str, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.cluster == cluster && p.name == name)
            .unwrap_or_else(|| panic!("no {cluster}/{name}"))
    }

    /// The proxies' logs, for a failure message.
    pub fn dump_logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.logs).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {}\n", entry.path().display()));
            out.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
        }
        out
    }
}

/// `GET path` of `cluster`'s runtime API, as a proxy of that cluster asks
/// (mTLS with a certificate of the shared trust anchor): the JSON answer.
pub async fn runtime_get(clusters: &TwoClusters, cluster: &str, path: &str) -> Result<serde_json::Value, String> {
    use http_body_util::BodyExt;
    let name = clusters.pki.domain().service_account("emojivoto", "e2e");
    let validity = mesh_common::identity::pki::Validity::valid_for(std::time::Duration::from_secs(3600));
    let cert = clusters.pki.issue_name(&name, validity)?;
    let mut config = (*super::super::clients::client_config(&cert, clusters.pki.anchors_pem())).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(SocketAddr::new(runtime_addr(cluster), 8443))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let server = rustls_pki_types::ServerName::try_from(RUNTIME_IDENTITY.to_owned()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(server, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "runtime")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let rsp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let body = rsp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))
}
