//! `meshc reach`: one client, one workload port, one request or every
//! route, each verdict with its proof.

use super::cause::likely_causes;
use super::classes::Classes;
use super::clients::{ClientKind, workload_client};
use super::evaluate::{Decision, Gate, Unit, Verdict, route_meta};
use super::places::{self, Place};
use super::proof::{Prover, ResourceRef, Step};
use super::workload_ref;
use crate::pipeline::Outcome;
use mesh_proxy_api::{Client, HttpRequest, Meta};
use serde::Serialize;
use std::net::IpAddr;

/// A client as the user named it, resolved to what the proxy sees.
#[derive(Clone, Debug, Serialize)]
pub struct ClientView {
    pub spec: String,
    pub kind: ClientKind,
    pub address: IpAddr,
    /// The mTLS identity presented, or none (plaintext).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The class whose members behave the same, if a member of the repository does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<usize>,
    pub detail: String,
    #[serde(skip)]
    pub client: Client,
    /// The client at each place a pod may be (`places`); one entry, the
    /// client itself, when it is no pod or policies tell no places apart.
    #[serde(skip)]
    pub at: Vec<(Place, Client)>,
    #[serde(skip)]
    pub workload: Option<usize>,
    /// The client is one pod of `workload` (a workload reference), not a
    /// class of clients: a Service endpoint of that workload may be the
    /// client's own pod (`svc::own_pod`).
    #[serde(skip)]
    pub one_pod: bool,
}

impl ClientView {
    /// A client known only by what the proxy sees (a class representative,
    /// one side's member in a diff), described by that.
    pub fn of_client(spec: String, kind: ClientKind, at: &[(Place, Client)], class: Option<usize>) -> Self {
        let client =
            at.first().map(|(_, c)| c.clone()).unwrap_or_else(|| Client::plaintext(IpAddr::from([0, 0, 0, 0])));
        let detail = match client.tls.identity() {
            Some(id) => format!("mTLS identity {id} from {}", client.addr),
            None => format!("plaintext from {}", client.addr),
        };
        ClientView {
            spec,
            kind,
            address: client.addr,
            identity: client.tls.identity().map(str::to_owned),
            class,
            detail,
            client,
            at: at.to_vec(),
            workload: None,
            one_pod: false,
        }
    }
}

/// `c` (of `kind`) at every place of `classes`, paired with the place.
pub fn placed(classes: &Classes, kind: ClientKind, c: &Client) -> Vec<(Place, Client)> {
    classes.addrs.places.iter().cloned().zip(classes.addrs.at_places(kind, c)).collect()
}

pub fn parse_client(o: &Outcome, classes: &Classes, spec: &str) -> Result<ClientView, String> {
    let a = &classes.addrs;
    let view = |kind, client: Client, detail: String, workload: Option<usize>| ClientView {
        spec: spec.to_owned(),
        kind,
        address: client.addr,
        identity: client.tls.identity().map(str::to_owned),
        class: classes.class_of(kind, &client),
        detail,
        at: placed(classes, kind, &client),
        client,
        workload,
        one_pod: workload.is_some(),
    };
    let in_cluster = |ip: &IpAddr| o.resolved.settings.cluster_networks.iter().any(|n| n.contains(ip));
    if let Some(rest) = spec.strip_prefix("sa:") {
        let (ns, name) = rest.split_once('/').ok_or_else(|| format!("`{spec}`: expected sa:NAMESPACE/NAME"))?;
        let id = o.resolved.settings.identity(ns, name);
        let detail = format!("a meshed pod running as ServiceAccount {ns}/{name}: mTLS identity {id}, from {}", a.pod);
        return Ok(view(ClientKind::Identity, Client::identified(a.pod, id), detail, None));
    }
    if let Some(rest) = spec.strip_prefix("unmeshed") {
        let ns = rest.strip_prefix(':').unwrap_or("any namespace");
        let detail = format!("a pod without a proxy in {ns}: plaintext from {}", a.pod);
        return Ok(view(ClientKind::Unmeshed, Client::plaintext(a.pod), detail, None));
    }
    if let Some(rest) = spec.strip_prefix("ip:") {
        let ip: IpAddr = rest.parse().map_err(|_| format!("`{spec}`: `{rest}` is not an IP address"))?;
        let place = if in_cluster(&ip) {
            "inside the cluster networks: an unmeshed pod or a node; a meshed pod is named by its identity (sa:NS/NAME)"
        } else {
            "outside the cluster networks"
        };
        let detail = format!("plaintext (unmeshed) client at {ip}, {place}");
        return Ok(view(ClientKind::Cidr, Client::plaintext(ip), detail, None));
    }
    match spec {
        "kubelet" => {
            let detail = format!("the kubelet probing from {} (plaintext)", a.kubelet);
            return Ok(view(ClientKind::Kubelet, Client::plaintext(a.kubelet), detail, None));
        }
        "localhost" => {
            let ip = IpAddr::from([127, 0, 0, 1]);
            return Ok(view(ClientKind::Localhost, Client::plaintext(ip), "the pod itself, 127.0.0.1".into(), None));
        }
        "external" => {
            let ip = a.external.ok_or("the cluster networks cover every address: there is no external client")?;
            let detail = format!("a client outside the cluster networks at {ip} (plaintext)");
            return Ok(view(ClientKind::External, Client::plaintext(ip), detail, None));
        }
        _ => {}
    }
    if spec.contains('.') && !spec.contains('/') {
        let detail = format!("a meshed client presenting mTLS identity {spec}, from {}", a.pod);
        return Ok(view(ClientKind::Identity, Client::identified(a.pod, spec), detail, None));
    }
    let wi = workload_ref::find(&o.resolved, spec).map_err(|e| {
        format!("{e}\n  clients are KIND/NAMESPACE/NAME, NAMESPACE/NAME, an identity, sa:NS/NAME, unmeshed:NS, kubelet, external, localhost or ip:ADDRESS")
    })?;
    let w = &o.resolved.workloads[wi];
    let client = workload_client(w, a);
    let detail = match &w.meshed {
        Ok(()) => {
            format!("{} {}/{}: meshed, mTLS identity {}, from {}", w.kind, w.namespace, w.name, w.identity, a.pod)
        }
        Err(why) => format!("{} {}/{}: not meshed ({why}), plaintext from {}", w.kind, w.namespace, w.name, a.pod),
    };
    Ok(view(ClientKind::Workload, client, detail, Some(wi)))
}

/// `WORKLOAD[:PORT]`: the workload, and the port by number or container port name.
pub fn parse_target(o: &Outcome, spec: &str) -> Result<(usize, Option<u16>), String> {
    let (workload, port) = match spec.rsplit_once(':') {
        Some((w, p)) => (w, Some(p)),
        None => (spec, None),
    };
    let wi = workload_ref::find(&o.resolved, workload)?;
    let Some(port) = port else { return Ok((wi, None)) };
    if let Ok(n) = port.parse::<u16>() {
        return Ok((wi, Some(n)));
    }
    let w = &o.resolved.workloads[wi];
    let by_name = w.ports.iter().find(|p| p.name.as_deref() == Some(port)).map(|p| p.port);
    by_name.map(|p| (wi, Some(p))).ok_or_else(|| {
        let names: Vec<String> =
            w.ports.iter().filter_map(|p| p.name.as_ref().map(|n| format!("{n} ({})", p.port))).collect();
        format!("{workload} has no port named `{port}`; its named ports: {}", names.join(", "))
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetView {
    pub workload: String,
    pub port: u16,
}

#[derive(Clone, Debug, Serialize)]
pub struct RouteView {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
}

/// One verdict with its proof.
#[derive(Clone, Debug, Serialize)]
pub struct VerdictView {
    pub verdict: Verdict,
    /// With `depends`: when the client is allowed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// HTTP status, or grpc-status for gRPC; absent when the application
    /// answers (allowed) or the connection is closed.
    pub status: Option<u32>,
    pub unit: Unit,
    pub route: Option<RouteView>,
    pub authorization: Option<ResourceRef>,
    pub proof: Vec<Step>,
}

impl VerdictView {
    /// What the verdict is about, named as `meshc matrix` names a port's
    /// entries: `HTTPRoute x`, `default:x`, `connection`, or `*` (no policy).
    pub fn entry_name(&self) -> String {
        match (&self.route, self.unit) {
            (Some(r), _) if r.kind == "default" => format!("default:{}", r.name),
            (Some(r), _) => format!("{} {}", r.kind, r.name),
            (None, Unit::Connection) => "connection".to_owned(),
            (None, _) => "*".to_owned(),
        }
    }

    /// The proof on one line, the links a reader acts on (Server or
    /// default policy, route, authorizations, likely causes) with file:line.
    /// When allowed, only the authorization that allowed is shown.
    pub fn summary(&self) -> String {
        let allowed = self.verdict == Verdict::Allow;
        self.proof
            .iter()
            .filter(|s| matches!(s.step, "server" | "port" | "route" | "authorization" | "likely-cause"))
            .filter(|s| !allowed || s.step != "authorization" || s.detail.contains(" allows"))
            .map(|s| match (&s.file, s.line) {
                (Some(file), Some(line)) => format!("{} ({file}:{line})", s.detail),
                _ => s.detail.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A request from the parts a user gives: GET and `/` unless said; `None`
/// when no part is given (then a verdict is per route).
pub fn request_of<'h>(
    method: Option<&str>,
    path: Option<&str>,
    host: Option<&str>,
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
) -> Option<HttpRequest> {
    let mut headers = headers.into_iter().peekable();
    if method.is_none() && path.is_none() && host.is_none() && headers.peek().is_none() {
        return None;
    }
    let mut req = HttpRequest::new(method.unwrap_or("GET"), path.unwrap_or("/"));
    req.host = host.map(str::to_owned);
    for (name, value) in headers {
        req = req.with_header(name, value);
    }
    Some(req)
}

/// A flow's verdict, as tests and observed traffic state flows: for the
/// request, else "allowed on some route"; without a port, on any target
/// port. With the proof that decided it (the first port's when denied).
pub fn flow_verdict(
    o: &Outcome,
    client: &ClientView,
    wi: usize,
    port: Option<u16>,
    req: Option<&HttpRequest>,
) -> (Verdict, Option<Reach>) {
    let ports =
        port.map_or_else(|| super::who::target_ports(&o.resolved.workloads[wi], o.configs[wi].as_ref()), |p| vec![p]);
    let (mut first, mut depends): (Option<Reach>, Option<Reach>) = (None, None);
    for port in ports {
        let r = reach(o, client.clone(), wi, port, req);
        if r.verdicts.iter().any(|v| v.verdict == Verdict::Allow) {
            return (Verdict::Allow, Some(r));
        }
        if depends.is_none() && r.verdicts.iter().any(|v| v.verdict == Verdict::Depends) {
            depends = Some(r);
            continue;
        }
        first.get_or_insert(r);
    }
    // Allowed on no port for sure: allowed on one only if the pod is in the right place.
    if depends.is_some() {
        return (Verdict::Depends, depends);
    }
    let v = first.as_ref().and_then(|r| r.verdicts.first()).map_or(Verdict::Deny, |v| v.verdict);
    (v, first)
}

#[derive(Clone, Debug, Serialize)]
pub struct Reach {
    pub client: ClientView,
    pub target: TargetView,
    pub server: Option<ResourceRef>,
    /// The HTTPLocalRateLimitPolicy limit this client meets first at the Server.
    #[serde(rename = "rateLimit", skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<super::ratelimit::RateLimitView>,
    pub verdicts: Vec<VerdictView>,
}

fn meta_ref(ns: &str, m: &Meta) -> ResourceRef {
    let kind = match m.kind.as_str() {
        "default" => "default",
        "server" => "Server",
        "authorizationpolicy" => "AuthorizationPolicy",
        "serverauthorization" => "ServerAuthorization",
        "grpcroute" => "GRPCRoute",
        _ => "HTTPRoute",
    };
    let namespace = (kind != "default").then(|| ns.to_owned());
    ResourceRef { kind: kind.to_owned(), namespace, name: m.name.clone() }
}

pub fn workload_label(o: &Outcome, wi: usize) -> String {
    let w = &o.resolved.workloads[wi];
    format!("{}/{}/{}", w.kind, w.namespace, w.name)
}

/// Every verdict of `client` on `wi:port`: one for `req`, else one per
/// route. A pod client is asked about at every place it may be; where the
/// places disagree, the verdict is `depends`, with the condition.
pub fn reach(o: &Outcome, client: ClientView, wi: usize, port: u16, req: Option<&HttpRequest>) -> Reach {
    let p = Prover::new(o);
    let ns = &o.resolved.workloads[wi].namespace;
    let spots = places::spots(o.configs[wi].as_ref(), port, &client, req);
    let shape = spots.shape();
    let (gate, decisions) = (spots.gates[shape], &spots.decisions[shape]);
    let server = match gate {
        Gate::Server(s) => Some(meta_ref(ns, &s.meta)),
        _ => None,
    };
    let grpc_request = req.map(|r| r.header_values("content-type").any(|v| v.starts_with("application/grpc")));
    let mut head = vec![p.target(wi)];
    head.push(client_step(&p, &client));
    head.push(p.gate(wi, port, &gate));
    let verdicts = (0..decisions.len())
        .map(|i| {
            let (verdict, condition) = spots.verdict(i);
            let (gate, d) = spots.evidence(i);
            let mut proof = head.clone();
            proof.extend(decision_steps(&p, wi, gate, d, req));
            proof.extend(condition.as_ref().map(|c| spots.condition_step(i, c)));
            let status = if verdict == Verdict::Depends { None } else { d.status(grpc_request) };
            VerdictView {
                verdict,
                condition,
                status,
                unit: d.unit,
                route: route_view(gate, d),
                authorization: d.authorization().map(|m| meta_ref(ns, m)),
                proof,
            }
        })
        .collect();
    let rate_limit = match gate {
        Gate::Server(s) => {
            s.rate_limit.as_ref().and_then(|l| super::ratelimit::applying(l, client.identity.as_deref()))
        }
        _ => None,
    };
    Reach { target: TargetView { workload: workload_label(o, wi), port }, client, server, rate_limit, verdicts }
}

pub(crate) fn client_step(p: &Prover, c: &ClientView) -> Step {
    let class = c.class.map_or_else(
        || " No member of the repository behaves like it.".to_owned(),
        |id| format!(" It behaves as client class {id}."),
    );
    let detail = format!("{}.{class}", c.detail);
    match c.workload {
        Some(wi) => p.at("client", p.outcome.resolved.workloads[wi].resource, &[], detail),
        None => Step::plain("client", detail),
    }
}

fn route_view(gate: Gate, d: &Decision) -> Option<RouteView> {
    let (Gate::Server(s), Some((ri, rule))) = (gate, d.route) else { return None };
    let m = route_meta(s, ri);
    let kind = match m.kind.as_str() {
        "default" => "default",
        "grpcroute" => "GRPCRoute",
        _ => "HTTPRoute",
    };
    Some(RouteView { kind: kind.to_owned(), name: m.name.clone(), rule })
}

fn decision_steps(p: &Prover, wi: usize, gate: Gate, d: &Decision, req: Option<&HttpRequest>) -> Vec<Step> {
    let Gate::Server(s) = gate else { return Vec::new() };
    let mut out: Vec<Step> = p.route(wi, s, d, req).into_iter().collect();
    out.extend(p.authorizations(wi, d));
    if d.verdict != Verdict::Allow {
        let route = d.route.map(|(ri, _)| route_meta(s, ri));
        let ns = &p.outcome.resolved.workloads[wi].namespace;
        out.extend(likely_causes(p, ns, s, route));
    }
    out
}
