//! The promise, on the wire: for every client class × workload × port ×
//! request of an example, the status a real client gets through real
//! proxies is the one `meshc reach` predicts.

use super::clients::{self, Observed, Req, Tls};
use super::cluster::ApiServer;
use super::coverage::Checks;
use super::mesh::{self, Launch, Mesh};
use mesh_common::identity::pki::Validity;
use mesh_proxy_api::config::Protocol;
use mesh_proxy_api::{ClientTls, PortPolicy};
use meshc::query::classes::Classes;
use meshc::query::evaluate::Verdict;
use meshc::query::places::Place;
use meshc::query::reach::{self, ClientView, VerdictView};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How proxies are fed and reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Config and certificate files; explicit listeners.
    Explicit,
    /// iptables REDIRECT to one transparent listener per proxy.
    Transparent,
    /// Certificates and configs from mesh-runtime in file mode.
    Runtime,
    /// Certificates and configs from mesh-runtime in Kubernetes mode, fed
    /// by `kubectl apply --server-side` of the build into this API server.
    Kubernetes(ApiServer),
}

/// Runs every check of `example`; returns what was checked (how many, which
/// verdicts), panics with every disagreement (both sides printed) otherwise.
pub async fn check_example(example: &str, mode: Mode) -> Checks {
    check_build(&mesh::build(example), example, mode).await
}

/// As [`check_example`], for a build of any policy repository.
pub async fn check_build(build: &mesh::Build, example: &str, mode: Mode) -> Checks {
    let o = &build.outcome;
    let classes = Classes::derive(&o.resolved, &o.configs);
    for class in &classes.classes {
        super::netns::add_address(class.client.addr);
    }
    let launch = Launch {
        build,
        client_ip: classes.addrs.pod,
        discovery: serde_json::json!({ "services": [] }),
        echo_flags: BTreeMap::new(),
        proxy_flags: BTreeMap::new(),
        transparent: mode == Mode::Transparent,
        runtime: match mode {
            Mode::Explicit | Mode::Transparent => None,
            Mode::Runtime => {
                Some(mesh::RuntimeMode { discovery: serde_json::json!({ "services": [] }), cluster: None })
            }
            Mode::Kubernetes(server) => Some(mesh::RuntimeMode {
                discovery: serde_json::json!({ "services": [] }),
                cluster: Some(Arc::new(super::cluster::Cluster::start(server))),
            }),
        },
    };
    let mesh = Mesh::start(&launch);
    let mut tls = TlsCache::default();
    let (mut checks, mut mismatches) = (Checks::default(), Vec::new());
    for w in &mesh.workloads {
        let def = &o.resolved.workloads[w.wi];
        let mut requests = vec![
            Req::get("/"),
            Req::get("/api/x"),
            Req::get("/books.json"),
            Req::grpc("/emojivoto.v1.VotingService/VoteDoughnut"),
        ];
        requests.push(Req { method: "POST", ..Req::get("/") });
        requests.extend(def.probes.iter().map(|p| Req::get(&p.path)));
        for &port in &w.ports {
            let protocol = match w.config.inbound.lookup(port) {
                PortPolicy::Server(s) => Some(s.protocol.clone()),
                PortPolicy::Skipped => None,
            };
            let to = SocketAddr::new(w.ip, port);
            for class in &classes.classes {
                let client = &class.client;
                let Some(tls) = tls.for_client(&mesh, &client.tls, &w.identity) else { continue };
                // The representative where it stands: the one client that sends the traffic.
                let here = [(Place { addr: client.addr, within: Vec::new() }, client.clone())];
                let view = ClientView::of_client(class.label.clone(), class.members[0].kind, &here, Some(class.id));
                let opaque = matches!(protocol, Some(Protocol::Opaque | Protocol::Tls));
                let what =
                    |req: &str| format!("{} → {}/{}:{port} {req}", class.label, w.workload.namespace, w.workload.name);
                if opaque {
                    let predicted = reach::reach(o, view.clone(), w.wi, port, None);
                    let seen = clients::tcp(client.addr, to, tls.as_ref()).await;
                    checks.record(predicted.verdicts[0].verdict, "connection");
                    if let Some(m) = disagreement(&predicted.verdicts[0], &seen, &w.workload.name, false) {
                        mismatches.push(format!("{}: {m}", what("TCP")));
                    }
                    continue;
                }
                for req in &requests {
                    if req.grpc && protocol == Some(Protocol::Http1) {
                        continue; // gRPC needs HTTP/2; an HTTP/1 server never sees it
                    }
                    let predicted = reach::reach(o, view.clone(), w.wi, port, Some(&req.to_api()));
                    let seen =
                        clients::http(client.addr, to, tls.as_ref(), req, &format!("{}:{port}", w.workload.name)).await;
                    let v = &predicted.verdicts[0];
                    checks.record(v.verdict, &v.status.map_or("app".into(), |s| s.to_string()));
                    let app = if Some(port) == w.admin_port { ADMIN } else { w.workload.name.as_str() };
                    if let Some(m) = disagreement(v, &seen, app, req.grpc) {
                        mismatches.push(format!("{}: {m}", what(&format!("{} {}", req.method, req.path))));
                    }
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} checks disagree with meshc reach:\n{}\n{}",
        mismatches.len(),
        checks.total,
        mismatches.join("\n"),
        mesh.dump_logs()
    );
    if let Some(cluster) = &mesh.cluster {
        // The runtime served every proxy under runtime/deploy's RBAC alone.
        cluster.assert_rbac_was_enough();
    }
    println!(
        "{example}: {} workloads, {} client classes; verdicts checked: {:?}",
        mesh.workloads.len(),
        classes.classes.len(),
        checks.tally()
    );
    checks
}

/// What the admin server calls itself; it answers allowed requests to the admin port.
const ADMIN: &str = "mesh-proxy-admin";

/// `None` when what the client saw is what `meshc reach` predicted.
fn disagreement(predicted: &VerdictView, seen: &Observed, app: &str, grpc: bool) -> Option<String> {
    let ok =
        match (predicted.verdict, predicted.status, seen) {
            (Verdict::Allow, _, Observed::Echoed(name)) => name == app,
            // The admin server answers what it has no page for with its own 404.
            (Verdict::Allow, _, Observed::Response { app: Some(name), .. }) if name == ADMIN => app == ADMIN,
            (Verdict::Allow, _, Observed::Response { status: 200, grpc: g, app: Some(name) }) => {
                name == app && (!grpc || *g == Some(0))
            }
            (Verdict::Deny | Verdict::NoRoute, None, Observed::Closed(_)) => true,
            (Verdict::Deny | Verdict::NoRoute, Some(code), Observed::Response { status, grpc: g, app: None }) => {
                if grpc { *status == 200 && *g == Some(code) } else { u32::from(*status) == code }
            }
            _ => false,
        };
    (!ok).then(|| {
        let route = predicted.route.as_ref().map_or(String::new(), |r| format!(" via {} {}", r.kind, r.name));
        format!(
            "meshc reach predicts {:?} (status {:?}){route}; the client saw {seen:?}",
            predicted.verdict, predicted.status
        )
    })
}

/// Client TLS configs by client identity, each from its own certificate.
#[derive(Default)]
pub struct TlsCache {
    configs: HashMap<String, Arc<rustls::ClientConfig>>,
}

impl TlsCache {
    /// `None` for a client kind this test cannot be (TLS without identity);
    /// `Some(None)` for plaintext.
    pub fn for_client(&mut self, mesh: &Mesh, tls: &ClientTls, server_identity: &str) -> Option<Option<Tls>> {
        let id = match tls {
            ClientTls::Plaintext => return Some(None),
            ClientTls::Unidentified => return None,
            ClientTls::Identified(id) => id,
        };
        let config = self
            .configs
            .entry(id.clone())
            .or_insert_with(|| {
                let cert = mesh.pki.issue_name(id, Validity::valid_for(Duration::from_secs(3600))).unwrap();
                clients::client_config(&cert, mesh.pki.anchors_pem())
            })
            .clone();
        Some(Some(Tls { server_identity: server_identity.to_string(), config }))
    }
}
