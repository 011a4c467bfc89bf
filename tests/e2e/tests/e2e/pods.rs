//! The pod end-to-end: every meshed workload of an example in a pod of its
//! own (a network namespace, see `topology`), where `mesh-proxy init`
//! installs the pod's iptables rules and `mesh-proxy run` (as the proxy's
//! uid) gets its certificate, config and endpoints from mesh-runtime (file
//! mode, on the node). The apps know nothing of the proxies: each pod's app
//! (this test, connecting from inside the pod) speaks plain HTTP to Service
//! cluster IPs; its proxy finds the Service behind the address with the
//! runtime's by-cluster-ip lookup, applies the client side (routes, 404s,
//! backends) and opens mTLS to the server pod, whose rules send the
//! connection to its proxy's inbound port. Every status is compared with
//! `meshc reach --from <workload> --to svc/NS/NAME:PORT`.

mod topology;

use super::clients::{self, Observed, Req};
use super::mesh::{self, Build, RuntimeThread};
use mesh_common::identity::pki::TestPki;
use mesh_proxy_api::PortPolicy;
use mesh_proxy_api::config::Protocol;
use meshc::model::Spec;
use meshc::model::meta::IntOrString;
use meshc::query::classes::Classes;
use meshc::query::reach;
use meshc::query::svc::backends::Pods;
use meshc::query::svc::{self, Overall, ServiceReach};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Child;
use topology::PodNet;

/// The uid `mesh-proxy run` runs as, and `mesh-proxy init`'s default
/// `--proxy-uid` (Linkerd's 2102).
const PROXY_UID: u32 = 2102;
const ADMIN_PORT: u16 = 4191;

/// A pod: its network, its workload, and what runs in it.
struct Pod {
    net: PodNet,
    wi: usize,
    name: String,
}

/// A Service port with its cluster address.
struct ServicePort {
    target: String,
    cluster: SocketAddr,
    host: String,
    /// Some pod behind it serves the port as HTTP/1 only: gRPC (HTTP/2) is
    /// not sent there, as in the inbound checks.
    http1: bool,
}

/// Everything running; processes are stopped before the pods' namespaces go.
pub struct Cluster {
    pub build: Build,
    pods: Vec<Pod>,
    services: Vec<ServicePort>,
    children: Vec<Child>,
    _runtime: RuntimeThread,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Lays out the node and the pods of `example` and starts everything.
pub fn start(example: &str) -> Cluster {
    let build = mesh::build(example);
    let o = &build.outcome;
    let classes = Classes::derive(&o.resolved, &o.configs);
    // Pods where meshc places pods (its pod network), so that the verdicts
    // meshc gives "a pod of this workload" are the ones these pods get.
    let [a, b, c, _] = topology::v4(classes.addrs.pod).octets();
    let gateway = Ipv4Addr::new(a, b, c, 1);
    let meshed: Vec<usize> = (0..o.resolved.workloads.len()).filter(|wi| o.configs[*wi].is_some()).collect();
    assert!(meshed.len() < 100, "{example}: more pods than one /24 holds here");
    topology::node_up();
    let pods: Vec<Pod> = meshed
        .iter()
        .enumerate()
        .map(|(n, &wi)| Pod {
            net: PodNet::create(n, Ipv4Addr::new(a, b, c, 100 + n as u8), gateway),
            wi,
            name: o.resolved.workloads[wi].name.clone(),
        })
        .collect();
    let (services, discovery) = services(&build, &pods);

    let pki = TestPki::for_domain(o.resolved.settings.identity_domain()).expect("test PKI");
    let runtime_api = SocketAddr::new(IpAddr::V4(gateway), 8443);
    let mut args = mesh::runtime_args(&build, &pki, &discovery);
    let listen = args.iter().position(|a| a == "--listen").expect("runtime args name --listen") + 1;
    args[listen] = runtime_api.to_string();
    let runtime = RuntimeThread::start(args);

    let logs = build.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for pod in &pods {
        let id_dir = identity_dir(&build, pod);
        std::fs::create_dir_all(&id_dir).unwrap();
        std::fs::write(id_dir.join("ca.crt"), pki.anchors_pem()).unwrap();
    }
    // The proxies run as their own uid and read (and write) their files.
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{PROXY_UID}:{PROXY_UID}")])
        .arg(build.dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "chown of the build directory");

    let mut children = Vec::new();
    for pod in &pods {
        init_rules(pod);
        children.extend(spawn_app(&build, pod));
        let log = std::fs::File::create(logs.join(format!("proxy-{}.log", pod.name))).unwrap();
        let args = proxy_args(&build, pod, runtime_api);
        children.push(pod.net.spawn_as(PROXY_UID, &mesh_e2e::binary("mesh-proxy"), &args, log));
    }
    for pod in &pods {
        mesh::wait_ready(SocketAddr::new(IpAddr::V4(pod.net.ip), ADMIN_PORT), &logs);
    }
    Cluster { build, pods, services, children, _runtime: runtime }
}

fn identity_dir(build: &Build, pod: &Pod) -> std::path::PathBuf {
    let w = &build.outcome.resolved.workloads[pod.wi];
    build.dir.path().join("identity").join(format!("{}-{}", w.namespace, w.name))
}

/// `mesh-proxy init` in the pod, with the defaults `meshc inject` writes.
fn init_rules(pod: &Pod) {
    let out =
        pod.net.command(&mesh_e2e::binary("mesh-proxy")).args(["init", "--iptables-mode", "nft"]).output().unwrap();
    assert!(out.status.success(), "mesh-proxy init in {}: {}", pod.name, String::from_utf8_lossy(&out.stderr));
}

/// mesh-echo answering on every port of the workload, on all addresses;
/// none for a workload that only calls others (it declares no port).
fn spawn_app(build: &Build, pod: &Pod) -> Option<Child> {
    let o = &build.outcome;
    let (w, config) = (&o.resolved.workloads[pod.wi], o.configs[pod.wi].as_ref().expect("meshed"));
    let ports: Vec<u16> =
        meshc::query::who::target_ports(w, Some(config)).into_iter().filter(|p| *p != ADMIN_PORT).collect();
    if ports.is_empty() {
        return None;
    }
    let addrs: Vec<SocketAddr> = ports.iter().map(|&p| SocketAddr::from((Ipv4Addr::UNSPECIFIED, p))).collect();
    let command = pod.net.command(&mesh_e2e::binary("mesh-echo"));
    let child = mesh_e2e::echo::spawn(command, &pod.name, config, &addrs, &[]);
    Some(child)
}

/// `mesh-proxy run` as a sidecar: transparent listeners only, everything
/// from the runtime.
fn proxy_args(build: &Build, pod: &Pod, runtime_api: SocketAddr) -> Vec<String> {
    let o = &build.outcome;
    let (w, config) = (&o.resolved.workloads[pod.wi], o.configs[pod.wi].as_ref().expect("meshed"));
    let workload = &config.workload;
    let domain = o.resolved.settings.identity_domain();
    let dir = build.dir.path();
    let flags: Vec<(&str, String)> = vec![
        ("--workload", format!("{}/{}/{}", workload.kind, workload.namespace, workload.name)),
        ("--trust-key", build.pubkey.display().to_string()),
        ("--identity-dir", identity_dir(build, pod).display().to_string()),
        ("--control-plane-namespace", domain.control_plane_namespace().to_string()),
        ("--trust-domain", domain.trust_domain().to_string()),
        ("--runtime", format!("https://{runtime_api}")),
        ("--runtime-identity", mesh::RUNTIME_IDENTITY.to_string()),
        ("--token-file", mesh::token_file(dir, &w.namespace, &w.service_account).display().to_string()),
        ("--service-account", w.service_account.clone()),
        ("--admin", format!("0.0.0.0:{ADMIN_PORT}")),
        ("--inbound-transparent", "0.0.0.0:4143".into()),
        ("--outbound-transparent", "127.0.0.1:4140".into()),
        ("--app-host", "127.0.0.1".into()),
        ("--pod-ip", pod.net.ip.to_string()),
    ];
    std::iter::once("run".to_string()).chain(flags.into_iter().flat_map(|(k, v)| [k.to_string(), v])).collect()
}

/// Every Service with a selector gets a cluster IP (10.96.0.0/24 here) and,
/// per TCP port, the pods it selects as endpoints (by the target port, a
/// named one resolved in each pod as the EndpointSlice controller does);
/// the node DNATs a port with one endpoint. Returns the ports and the
/// endpoints document mesh-runtime serves.
fn services(build: &Build, pods: &[Pod]) -> (Vec<ServicePort>, serde_json::Value) {
    let o = &build.outcome;
    let (mut ports_out, mut docs) = (Vec::new(), Vec::new());
    for r in &o.resolved.resources {
        let Spec::Service(spec) = &r.spec else { continue };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else { continue };
        let Some(name) = r.meta.name.clone() else { continue };
        let ns = r.meta.namespace.clone().unwrap_or_else(|| "default".into());
        let cluster_ip = Ipv4Addr::new(10, 96, 0, 10 + docs.len() as u8);
        let mut port_docs = Vec::new();
        for sp in spec.ports.iter().filter(|p| p.protocol.as_deref().is_none_or(|x| x.eq_ignore_ascii_case("TCP"))) {
            let Ok(port) = u16::try_from(sp.port) else { continue };
            let target = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
            let (mut endpoints, mut http1) = (Vec::new(), false);
            for pod in pods {
                let w = &o.resolved.workloads[pod.wi];
                if w.namespace != ns || !selector.iter().all(|(k, v)| w.labels.get(k) == Some(v)) {
                    continue;
                }
                let pod_port = match &target {
                    IntOrString::Int(n) => u16::try_from(*n).ok(),
                    IntOrString::Str(p) => w.ports.iter().find(|x| x.name.as_deref() == Some(p)).map(|x| x.port),
                };
                if let Some(pod_port) = pod_port {
                    endpoints.push((SocketAddr::new(IpAddr::V4(pod.net.ip), pod_port), w.identity.clone()));
                    let config = o.configs[pod.wi].as_ref().expect("meshed");
                    http1 |= matches!(config.inbound.lookup(pod_port), PortPolicy::Server(s) if s.protocol == Protocol::Http1);
                }
            }
            let cluster = SocketAddr::new(IpAddr::V4(cluster_ip), port);
            if let [(only, _)] = endpoints.as_slice() {
                topology::dnat(cluster, *only);
            }
            let eps: Vec<_> = endpoints
                .iter()
                .map(|(addr, id)| serde_json::json!({"addr": addr.to_string(), "identity": id}))
                .collect();
            port_docs.push(serde_json::json!({"port": port, "endpoints": eps}));
            ports_out.push(ServicePort {
                target: format!("svc/{ns}/{name}:{port}"),
                cluster,
                host: format!("{name}:{port}"),
                http1,
            });
        }
        docs.push(
            serde_json::json!({"namespace": ns, "name": name, "clusterIP": cluster_ip.to_string(), "ports": port_docs}),
        );
    }
    (ports_out, serde_json::json!({ "services": docs }))
}

/// The requests every app of booksapp sends to every Service port.
pub fn booksapp_requests() -> Vec<Req> {
    vec![
        Req::get("/"),
        Req::get("/ping"),
        Req::get("/books.json"),
        Req::get("/authors.json"),
        Req { method: "POST", ..Req::get("/books.json") },
        Req { method: "DELETE", ..Req::get("/authors/1.json") },
    ]
}

/// The requests every app of emojivoto sends: the web UI's pages and API,
/// and gRPC calls of both services.
pub fn emojivoto_requests() -> Vec<Req> {
    vec![
        Req::get("/"),
        Req::get("/api/list"),
        Req::get("/api/vote?choice=:doughnut:"),
        Req::grpc("/emojivoto.v1.EmojiService/ListAll"),
        Req::grpc("/emojivoto.v1.VotingService/VoteDoughnut"),
        Req::grpc("/emojivoto.v1.VotingService/Results"),
    ]
}

/// Each pod's app calls each Service port with each request; every status
/// must be the one `meshc reach` gives. Returns the count per verdict.
pub async fn check(c: &Cluster, requests: &[Req]) -> BTreeMap<String, usize> {
    let o = &c.build.outcome;
    let classes = Classes::derive(&o.resolved, &o.configs);
    let (mut tally, mut mismatches) = (BTreeMap::new(), Vec::new());
    for pod in &c.pods {
        let from = reach::workload_label(o, pod.wi);
        let client = reach::parse_client(o, &classes, &from).expect("a workload is a client");
        for sp in &c.services {
            let target = svc::target::parse(o, &sp.target).expect("the Service is in the repository");
            for req in requests.iter().filter(|r| !(r.grpc && sp.http1)) {
                let predicted = one_pod_each(svc::reach(o, client.clone(), &target, &req.to_api(), None));
                let seen = send(&pod.net, sp, req).await;
                *tally.entry(predicted.verdict.as_str().to_string()).or_insert(0) += 1;
                if predicted.backends.iter().any(|b| b.pods == Some(Pods::Own)) {
                    *tally.entry("own pod".to_string()).or_insert(0) += 1;
                }
                if let Some(m) = disagreement(&predicted, &seen, req.grpc) {
                    let what = format!("{from} → {} ({}) {} {}", sp.target, sp.cluster, req.method, req.path);
                    mismatches.push(format!("{what}: {m}"));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} requests disagree with meshc reach:\n{}\n{}",
        mismatches.len(),
        mismatches.join("\n"),
        logs(c.build.dir.path())
    );
    tally
}

/// `meshc reach`'s answer for this topology, where every workload runs one
/// pod: the entries for the other pods of the client's own workload (the
/// examples declare 2 replicas) stand for pods that do not run here, so they
/// are dropped and the verdict taken again over the rest. A call to the
/// client's own Service then reaches its own pod only, which answers
/// without inbound policy (`svc::own_pod`), as Linkerd's proxy does.
fn one_pod_each(mut p: ServiceReach) -> ServiceReach {
    if p.backends.iter().any(|b| b.pods == Some(Pods::Others)) {
        p.backends.retain(|b| b.pods != Some(Pods::Others));
        p.verdict = svc::verdict_of(&p.client_route, &p.backends);
    }
    p
}

/// One request from inside `pod` to the Service's cluster address.
async fn send(pod: &PodNet, sp: &ServicePort, req: &Req) -> Observed {
    let stream = match pod.connect(sp.cluster) {
        Ok(s) => s,
        Err(e) => return Observed::Closed(format!("connect: {e}")),
    };
    let io = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => return Observed::Closed(format!("tokio: {e}")),
    };
    let exchange = clients::exchange(io, req, &sp.host);
    match tokio::time::timeout(std::time::Duration::from_secs(10), exchange).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Observed::Closed(e),
        Err(_) => Observed::Closed("timed out".into()),
    }
}

/// `None` when the app saw what `meshc reach` predicts: for `allow`, a 200
/// (grpc-status 0 for gRPC) from one of the workloads behind the Service; for `deny` and
/// `no-route`, the status the client's proxy or the server's proxy answers
/// with (or a closed connection when none does). `partial` and `depends`
/// name no single answer and are only counted.
fn disagreement(p: &ServiceReach, seen: &Observed, grpc: bool) -> Option<String> {
    let live: Vec<_> = p.backends.iter().filter(|b| b.weight > 0).collect();
    let ok = match p.verdict {
        Overall::Allow => match seen {
            Observed::Response { status: 200, app: Some(app), grpc: g } => {
                live.iter().any(|b| b.workload.as_deref().is_some_and(|w| workload_name(w) == app))
                    && (!grpc || *g == Some(0))
            }
            _ => false,
        },
        Overall::Deny | Overall::NoRoute => {
            // For gRPC the predicted status is the grpc-status (HTTP 200).
            let status = p.status.or_else(|| live.first().and_then(|b| b.status));
            match (status, seen) {
                (Some(code), Observed::Response { status, app: None, grpc: g }) if grpc => {
                    *status == 200 && *g == Some(code)
                }
                (Some(code), Observed::Response { status, app: None, .. }) => u32::from(*status) == code,
                (None, Observed::Closed(_)) => true,
                _ => false,
            }
        }
        Overall::Partial | Overall::Depends => true,
    };
    (!ok).then(|| {
        let backends: Vec<String> = live
            .iter()
            .map(|b| format!("{} {:?} {:?}", b.workload.as_deref().unwrap_or(&b.service), b.verdict, b.status))
            .collect();
        format!(
            "meshc reach predicts {} (client proxy status {:?}; backends: {}); the app saw {seen:?}",
            p.verdict.as_str(),
            p.status,
            backends.join(", ")
        )
    })
}

/// `Deployment/booksapp/books:7002` → `books`, the app's `x-echo-name`.
fn workload_name(label: &str) -> &str {
    let without_port = label.rsplit_once(':').map_or(label, |(w, _)| w);
    without_port.rsplit('/').next().unwrap_or(without_port)
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir.join("logs")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        out.push_str(&format!("--- {}\n", entry.path().display()));
        out.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
    }
    out
}
