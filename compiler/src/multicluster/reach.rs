//! `meshc reach` across clusters: a client of one cluster calling a
//! workload of another through a mirrored Service. Each hop is proved on
//! its own: the client's proxy (the mirror exists, which Link made it), the
//! gateway in gateway mode (its own inbound policy), and the target's
//! inbound policy with the identity that really arrives there.

use super::identity;
use super::link::Mode;
use super::{ClusterOutcome, Clusters};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::clients::ClientKind;
use crate::query::evaluate::Verdict;
use crate::query::proof::Step;
use crate::query::reach::{self, ClientView, Reach};
use crate::resolve::index::Kind;
use mesh_proxy_api::{Client, HttpRequest};

/// One hop of a call across clusters and what it decides.
pub struct Hop {
    pub hop: &'static str,
    pub cluster: String,
    /// `None` on the target hop, whose verdicts are in `CrossReach::target`.
    pub verdict: Option<Verdict>,
    pub proof: Vec<Step>,
}

/// A call across clusters through one mirrored Service to one workload port.
pub struct CrossReach {
    pub client: String,
    /// `CLUSTER/svc/NS/MIRROR:PORT` the client calls.
    pub via: String,
    pub mode: &'static str,
    pub hops: Vec<Hop>,
    /// The target's verdicts, with the identity that arrives; `None` when an earlier hop stops the call.
    pub target: Option<(String, Reach)>,
}

impl CrossReach {
    /// The call's verdict: the first hop that does not let it through, else
    /// the target's (with a request, its one verdict; without, `allow` on
    /// every route, `partial` on some, `depends` when none for sure).
    pub fn verdict(&self, with_request: bool) -> &'static str {
        if let Some(v) = self.hops.iter().filter_map(|h| h.verdict).find(|v| *v != Verdict::Allow) {
            return v.as_str();
        }
        let Some((_, r)) = &self.target else { return "deny" };
        if with_request {
            return r.verdicts.first().map_or("deny", |v| v.verdict.as_str());
        }
        let count = |want: Verdict| r.verdicts.iter().filter(|x| x.verdict == want).count();
        match (count(Verdict::Allow), count(Verdict::Depends)) {
            (0, 0) => "deny",
            (0, _) => "depends",
            (n, _) if n == r.verdicts.len() => "allow",
            _ => "partial",
        }
    }
}

/// A mirror (or export) of a source cluster that reaches `(namespace, service)` in a target cluster.
pub struct Path<'l> {
    pub source: usize,
    pub target: usize,
    pub mode: Mode,
    pub namespace: &'l str,
    pub service: &'l str,
    pub mirror: &'l str,
    pub link: &'l super::link::Link,
    /// The two clusters' trust anchors are known and share none.
    pub untrusted: bool,
    /// The target cluster's gateway.
    pub gateway: &'l identity::Gateway,
    /// Why the gateway cannot be reached as the Link says (its values), if so.
    pub gateway_problem: Option<&'l str>,
}

/// Every export from `source` to `target` whose Service selects workload `wi` on `port`.
pub fn paths_to_workload(m: &Clusters, source: usize, target: usize, wi: usize, port: u16) -> Vec<Path<'_>> {
    let o = &m.clusters[target].outcome;
    m.links
        .exports
        .iter()
        .filter(|e| e.target_cluster == target && m.links.links[e.link].source_cluster == source)
        .filter(|e| identity::backing_ports(o, &e.namespace, &e.name).contains(&(wi, port)))
        .map(|e| path_of(m, e))
        .collect()
}

/// The export behind Service `namespace/name` of cluster `source`, if it is a mirror.
pub fn path_of_mirror<'m>(m: &'m Clusters, source: usize, namespace: &str, name: &str) -> Option<Path<'m>> {
    m.links
        .exports
        .iter()
        .find(|e| m.links.links[e.link].source_cluster == source && e.namespace == namespace && e.mirror == name)
        .map(|e| path_of(m, e))
}

/// The path of one export.
pub fn path_of<'m>(m: &'m Clusters, e: &'m super::mirror::Export) -> Path<'m> {
    let link = &m.links.links[e.link];
    Path {
        source: link.source_cluster,
        target: e.target_cluster,
        mode: e.mode,
        namespace: &e.namespace,
        service: &e.name,
        mirror: &e.mirror,
        link,
        untrusted: m.links.untrusted.get(e.link).copied().unwrap_or(false),
        gateway: &m.links.gateways[e.target_cluster],
        gateway_problem: m.links.gateway_problems.get(e.link).and_then(Option::as_deref),
    }
}

/// The workloads and pod ports behind Service port `port` of the path's target Service.
pub fn backends(m: &Clusters, p: &Path, port: u16) -> Vec<(usize, u16)> {
    let o = &m.clusters[p.target].outcome;
    let Some(ri) = o.resolved.index.get(Kind::Service, p.namespace, p.service) else { return Vec::new() };
    let crate::model::Spec::Service(spec) = &o.resolved.resources[ri].spec else { return Vec::new() };
    let Some(sp) = spec.ports.iter().find(|sp| sp.port == i64::from(port)) else { return Vec::new() };
    let target_port = sp.target_port.clone();
    identity::backing_ports(o, p.namespace, p.service)
        .into_iter()
        .filter(|(wi, pod_port)| {
            let w = &o.resolved.workloads[*wi];
            match &target_port {
                None => *pod_port == port,
                Some(crate::model::meta::IntOrString::Int(n)) => i64::from(*pod_port) == *n,
                Some(crate::model::meta::IntOrString::Str(name)) => {
                    w.ports.iter().any(|np| np.name.as_deref() == Some(name.as_str()) && np.port == *pod_port)
                }
            }
        })
        .collect()
}

/// The call of `client` (of the path's source cluster) through `p` to
/// workload `wi` port `pod_port` of the target cluster.
pub fn cross(
    m: &Clusters,
    client: &ClientView,
    p: &Path,
    port: u16,
    backend: (usize, u16),
    req: Option<&HttpRequest>,
) -> CrossReach {
    cross_from(m, client, p, port, backend, req, None)
}

/// [`cross`] when the mirror is a backend that another Service's route
/// (`picked_by`, in words) chose: the client's proxy sends the call
/// straight to the mirror's endpoints, and routes parented on the mirror do
/// not apply (a backend is a concrete destination: linkerd2-proxy routes
/// only on the Service the app called).
pub fn cross_as_backend(
    m: &Clusters,
    client: &ClientView,
    p: &Path,
    port: u16,
    backend: (usize, u16),
    req: Option<&HttpRequest>,
    picked_by: String,
) -> CrossReach {
    cross_from(m, client, p, port, backend, req, Some(picked_by))
}

fn cross_from(
    m: &Clusters,
    client: &ClientView,
    p: &Path,
    port: u16,
    (wi, pod_port): (usize, u16),
    req: Option<&HttpRequest>,
    picked_by: Option<String>,
) -> CrossReach {
    let (src, tgt) = (&m.clusters[p.source], &m.clusters[p.target]);
    let via = format!("{}/svc/{}/{}:{port}", src.name, p.namespace, p.mirror);
    let (first, routed_away) = client_hop(src, tgt, client, p, port, req, picked_by);
    let mut hops = vec![first];
    // No gateway answers as the Link says (its cluster's values): nothing crosses either.
    let no_gateway = p.mode == Mode::Gateway && p.gateway_problem.is_some();
    if routed_away || no_gateway {
        // The client's proxy stops the call (or sends it elsewhere): nothing crosses.
        let mode = p.mode.as_str();
        return CrossReach { client: format!("{}/{}", src.name, client.spec), via, mode, hops, target: None };
    }
    let arriving = match p.mode {
        Mode::Gateway => {
            let (hop, id) = gateway_hop(tgt, client, p, opaque_at_client(src, p, port));
            hops.push(hop);
            id.map(|id| Client::identified(first_pod(&tgt.outcome), id))
        }
        // The remote pod's address and identity (or plaintext) arrive as they left.
        Mode::PodToPod => Some(client.client.clone()),
    };
    let target = arriving.map(|c| {
        let spec = match c.tls.identity() {
            Some(id) if p.mode == Mode::Gateway => format!("{}'s gateway as {id}", tgt.name),
            Some(id) => format!("{} as {id}", client.spec),
            None => format!("{} in plaintext", client.spec),
        };
        let kind = if c.tls.identity().is_some() { ClientKind::Identity } else { ClientKind::Cidr };
        let view = ClientView::of_client(spec.clone(), kind, &[(lone(&c), c.clone())], None);
        (spec, reach::reach(&tgt.outcome, view, wi, pod_port, req))
    });
    let mode = p.mode.as_str();
    CrossReach { client: format!("{}/{}", src.name, client.spec), via, mode, hops, target }
}

fn link_step(src: &ClusterOutcome, p: &Path, detail: String) -> Step {
    let file = src.outcome.sources.get(p.link.span.source as usize).map(|s| s.name.clone());
    Step { step: "link", resource: None, file, line: Some(p.link.span.line), detail }
}

/// The client's proxy: the Link, the client route on the mirror (unless
/// another route picked the mirror as its backend: `picked_by`), the
/// connection across; `true` when the client's proxy stops the call or
/// routes it away from the mirror (nothing crosses).
fn client_hop(
    src: &ClusterOutcome,
    tgt: &ClusterOutcome,
    client: &ClientView,
    p: &Path,
    port: u16,
    req: Option<&HttpRequest>,
    picked_by: Option<String>,
) -> (Hop, bool) {
    let mut proof = vec![Step::plain("client", client.detail.clone())];
    proof.push(link_step(
        src,
        p,
        format!(
            "Link {}/{} mirrors {}'s Service {}/{} into {} as {}/{} ({} mode); the client calls it on port {port}",
            p.link.namespace,
            p.link.name,
            tgt.name,
            p.namespace,
            p.service,
            src.name,
            p.namespace,
            p.mirror,
            p.mode.as_str()
        ),
    ));
    let hop = |verdict, proof| Hop { hop: "client proxy", cluster: src.name.clone(), verdict: Some(verdict), proof };
    if let Some(detail) = picked_by {
        proof.push(Step::plain("client route", detail));
    } else if let Some(routed) = super::client_route::route(&src.outcome, client, p, port, req) {
        proof.push(routed.step);
        if let Some((verdict, detail)) = routed.stop {
            proof.push(Step::plain("client proxy", detail));
            return (hop(verdict, proof), true);
        }
        if let Some(others) = routed.elsewhere {
            let detail = format!("the rest of the call stays in {}: {others}", src.name);
            proof.push(Step::plain("client route", detail));
        }
    }
    let (verdict, detail) = connection(src, tgt, client, p);
    proof.push(Step::plain("client proxy", detail));
    (hop(verdict, proof), false)
}

/// Whether the client's proxy connects across: an identity, trusted anchors.
fn connection(src: &ClusterOutcome, tgt: &ClusterOutcome, client: &ClientView, p: &Path) -> (Verdict, String) {
    let meshed = client.client.tls.identity().is_some();
    match p.mode {
        _ if meshed && p.untrusted => (
            Verdict::Deny,
            format!(
                "clusters {} and {} share no trust anchor (trust-anchors-differ): the mTLS handshake fails",
                src.name, tgt.name
            ),
        ),
        Mode::Gateway if p.gateway_problem.is_some() => {
            (Verdict::Deny, p.gateway_problem.unwrap_or_default().to_owned())
        }
        Mode::Gateway if !meshed => (
            Verdict::Deny,
            format!(
                "without a proxy the client connects in plaintext to the gateway's port, which requires an mTLS \
                 identity (config.linkerd.io/proxy-require-identity-inbound-ports: {}): refused",
                p.gateway.port
            ),
        ),
        Mode::Gateway => (
            Verdict::Allow,
            format!(
                "the client's proxy opens mTLS to the gateway {}:{} and verifies its identity {}",
                p.link.spec.gateway_address.as_deref().unwrap_or("?"),
                p.link.spec.gateway_port.as_deref().unwrap_or("?"),
                p.link.spec.gateway_identity.as_deref().unwrap_or("?")
            ),
        ),
        Mode::PodToPod => (
            Verdict::Allow,
            "the client's proxy connects straight to the remote pods (their addresses come from the target \
             cluster's endpoints), with its own identity"
                .to_owned(),
        ),
    }
}

/// Whether the client's proxy treats `port` of the mirror as opaque (its
/// outbound protocol: the mirror's `config.linkerd.io/opaque-ports`, copied
/// from the target Service, or the default opaque ports). Linkerd's client
/// then sends a transport header without a protocol, and the gateway
/// authorizes the connection as TCP (`gateway/src/opaq.rs`, `authorize_tcp`),
/// not each request (`gateway/src/http.rs`, `authorize_http`).
fn opaque_at_client(src: &ClusterOutcome, p: &Path, port: u16) -> bool {
    let o = &src.outcome;
    let Some(ri) = o.resolved.index.get(Kind::Service, p.namespace, p.mirror) else { return false };
    let r = &o.resolved.resources[ri];
    let crate::model::Spec::Service(spec) = &r.spec else { return false };
    let protocol = crate::lower::outbound::port_protocol(r, spec, &o.resolved.settings, port);
    protocol == Some(mesh_proxy_api::outbound::OutboundProtocol::Opaque)
}

/// The gateway's own inbound policy (for an opaque connection, its
/// Server's authorizations only), then the identity it forwards with.
fn gateway_hop(tgt: &ClusterOutcome, client: &ClientView, p: &Path, opaque: bool) -> (Hop, Option<String>) {
    let gw = p.gateway.arriving(p.link);
    let hop = |verdict, detail: String| Hop {
        hop: "gateway",
        cluster: tgt.name.clone(),
        verdict: Some(verdict),
        proof: vec![Step::plain("gateway", detail)],
    };
    let Some(id) = client.client.tls.identity() else {
        return (hop(Verdict::Deny, "the gateway refuses connections without a client identity".to_owned()), None);
    };
    if let Some((r, wi)) = gateway_in_repository(tgt, client, p.gateway) {
        let (allowed, mut proof) = if opaque {
            gateway_tcp(tgt, wi, p.gateway.port, client, &r, id)
        } else {
            let allowed = r.verdicts.iter().any(|v| matches!(v.verdict, Verdict::Allow | Verdict::Depends));
            (allowed, r.verdicts.first().map(|v| v.proof.clone()).unwrap_or_default())
        };
        if allowed {
            proof.push(Step::plain("gateway", format!("the gateway forwards with its own identity {gw}")));
        }
        let verdict = if allowed { Verdict::Allow } else { Verdict::Deny };
        let h = Hop { hop: "gateway", cluster: tgt.name.clone(), verdict: Some(verdict), proof };
        return (h, allowed.then_some(gw));
    }
    let detail = format!(
        "the gateway ({} in {}, not in the repository: the multicluster chart's policy assumed, \
         AuthorizationPolicy linkerd-gateway on its Server, requiring any mesh identity from any network, for \
         HTTP and opaque connections alike) admits {id}, then forwards with its own identity {gw}",
        p.gateway.service_account, p.gateway.namespace
    );
    (hop(Verdict::Allow, detail), Some(gw))
}

/// An opaque connection at the gateway: `decide_tcp` on its port's Server
/// (the Server's authorizations; routes and their authorizations do not
/// apply to a connection), as the gateway proxy decides it. The proof keeps
/// the reach's first steps (the gateway, the client, its Server).
fn gateway_tcp(
    tgt: &ClusterOutcome,
    wi: usize,
    port: u16,
    client: &ClientView,
    r: &Reach,
    id: &str,
) -> (bool, Vec<Step>) {
    let mut proof: Vec<Step> =
        r.verdicts.first().map(|v| v.proof.iter().take(3).cloned().collect()).unwrap_or_default();
    let config = tgt.outcome.configs.get(wi).and_then(Option::as_ref);
    let decided = config.map(|c| match c.inbound.lookup(port) {
        mesh_proxy_api::PortPolicy::Server(server) => match mesh_proxy_api::decide_tcp(server, &client.client) {
            mesh_proxy_api::TcpVerdict::Allowed { authz } => {
                (true, format!("{} admits {id}", authz.authorization.meta.name))
            }
            mesh_proxy_api::TcpVerdict::Closed => (false, format!("no authorization of the Server admits {id}")),
        },
        _ => (false, "the port is not served".to_owned()),
    });
    let (allowed, why) = decided.unwrap_or((false, "the gateway has no config".to_owned()));
    let detail = format!(
        "the mirror's port is opaque at the client: the gateway authorizes the connection with its Server's own \
         authorizations, not its routes (Linkerd's authorize_tcp): {why}{}",
        if allowed { "" } else { "; the connection is closed" }
    );
    proof.push(Step::plain("gateway", detail));
    (allowed, proof)
}

/// When the target cluster's manifests hold the gateway, its verdict on
/// its port (`gateway.port`, 4143 by default), and its workload.
fn gateway_in_repository(tgt: &ClusterOutcome, client: &ClientView, gw: &identity::Gateway) -> Option<(Reach, usize)> {
    let o = &tgt.outcome;
    let wi = o
        .resolved
        .workloads
        .iter()
        .position(|w| w.namespace == gw.namespace && w.service_account == gw.service_account)?;
    let view = ClientView::of_client(
        client.spec.clone(),
        ClientKind::Identity,
        &[(lone(&client.client), client.client.clone())],
        None,
    );
    Some((reach::reach(o, view, wi, gw.port, None), wi))
}

/// A client arriving from another cluster is at one address, which no network of this cluster's policies places.
fn lone(c: &Client) -> crate::query::places::Place {
    crate::query::places::Place { addr: c.addr, within: Vec::new() }
}

fn first_pod(o: &Outcome) -> std::net::IpAddr {
    Classes::derive(&o.resolved, &o.configs).addrs.pod
}
