//! The server's side of a call to a Service: each backend the client's
//! proxy may pick, the workloads behind it (the Service's selector), and the
//! inbound verdict each gives the client on the Service's target port —
//! `meshc reach` on that workload port, with its proof. When the client is
//! a pod of a workload behind the backend, its own pod answers without
//! inbound policy (`own_pod`).

use super::client_route::BackendRef;
use super::target::service_ports;
use crate::model::Spec;
use crate::model::meta::IntOrString;
use crate::pipeline::Outcome;
use crate::query::evaluate::Verdict;
use crate::query::proof::Step;
use crate::query::reach::{self, ClientView, workload_label};
use crate::resolve::index::Kind;
use mesh_proxy_api::HttpRequest;
use serde::Serialize;

/// One workload behind one backend (or the backend alone when no workload
/// can answer), with the verdict the request gets there.
#[derive(Clone, Debug, Serialize)]
pub struct BackendVerdict {
    /// `NS/NAME:PORT`, or why the backend is unusable.
    pub service: String,
    pub weight: u32,
    /// `KIND/NS/NAME:PORT`: the workload and its target port.
    pub workload: Option<String>,
    /// Set when the workload is the client's own: `own` for the client's own
    /// pod (plaintext to the app, no inbound policy), `others` for the
    /// workload's other pods (inbound policy as for any endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<Pods>,
    /// The workload's index, for grouping clients (`who`).
    #[serde(skip)]
    pub workload_index: Option<usize>,
    pub verdict: Verdict,
    /// With `depends`: what the answer turns on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// HTTP status (grpc-status for gRPC) when a proxy answers; absent when
    /// the application answers or the connection is refused.
    pub status: Option<u32>,
    pub proof: Vec<Step>,
}

/// Which pods of the client's own workload an entry stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pods {
    /// The client's own pod.
    Own,
    /// The workload's other pods.
    Others,
}

impl Pods {
    pub fn label(self) -> &'static str {
        match self {
            Pods::Own => "the client's own pod",
            Pods::Others => "its other pods",
        }
    }
}

/// Who answers when nothing behind a backend can: the client's proxy.
pub struct Asker<'a> {
    pub client: &'a ClientView,
    pub proxy: bool,
    pub grpc: bool,
}

impl Asker<'_> {
    /// The workload whose endpoints include the client's own pod: the
    /// client's, when it is one pod of a workload and its proxy routes the
    /// call (without a proxy, kube-proxy sends the connection back through
    /// the pod's inbound side).
    fn own_workload(&self) -> Option<usize> {
        self.client.workload.filter(|_| self.client.one_pod && self.proxy)
    }

    /// The status the client's proxy answers with for an HTTP status, in
    /// gRPC form for gRPC calls (linkerd2-proxy `errors::respond`).
    pub fn local(&self, http: u16) -> Option<u32> {
        if !self.grpc {
            return Some(u32::from(http));
        }
        Some(match http {
            404 => 5, // NOT_FOUND
            504 => 4, // DEADLINE_EXCEEDED
            // The policy controller writes a failure injector with code 500
            // on gRPC routes too; as a gRPC code it is UNKNOWN.
            _ => 2,
        })
    }
}

/// The verdicts behind every backend of the chosen rule, for `req`, or for
/// a connection (`None`: TLS, or opaque TCP) on which only authorization decides.
pub fn judge(
    o: &Outcome,
    ask: &Asker,
    backends: &[(BackendRef, u32)],
    req: Option<&HttpRequest>,
) -> Vec<BackendVerdict> {
    backends.iter().flat_map(|(b, w)| judge_one(o, ask, b, *w, req)).collect()
}

fn alone(b: &BackendRef, weight: u32, verdict: Verdict, status: Option<u32>, why: String) -> BackendVerdict {
    let condition = (verdict == Verdict::Depends).then(|| why.clone());
    BackendVerdict {
        service: b.label(),
        weight,
        workload: None,
        pods: None,
        workload_index: None,
        verdict,
        condition,
        status,
        proof: vec![Step::plain("backend", why)],
    }
}

fn judge_one(o: &Outcome, ask: &Asker, b: &BackendRef, weight: u32, req: Option<&HttpRequest>) -> Vec<BackendVerdict> {
    let (namespace, name, port) = match b {
        BackendRef::Service { namespace, name, port } => (namespace, name, *port),
        BackendRef::Invalid { reason } => {
            let why = format!("the backend is invalid ({reason}): the client's proxy fails the request with 500");
            return vec![alone(b, weight, Verdict::Deny, ask.local(500), why)];
        }
        BackendRef::Elsewhere { authority } => {
            let why =
                format!("dstOverride {authority} is not a Service of this cluster: git does not say where it leads");
            return vec![alone(b, weight, Verdict::Depends, None, why)];
        }
    };
    let no_endpoints = |why: String| {
        // With no endpoint the proxy fails fast with 504 (linkerd2-proxy
        // `ServerRescue`: FailFastError → gateway timeout); without a proxy
        // kube-proxy refuses the connection.
        let status = if ask.proxy { ask.local(504) } else { None };
        vec![alone(b, weight, Verdict::Deny, status, why)]
    };
    let Some(ri) = o.resolved.index.get(Kind::Service, namespace, name) else {
        return no_endpoints(format!("no Service {namespace}/{name} in the repository: nothing answers"));
    };
    let Spec::Service(spec) = &o.resolved.resources[ri].spec else { return Vec::new() };
    let Some(sp) = service_ports(o, ri).iter().find(|p| p.port == i64::from(port)) else {
        let why = format!("Service {namespace}/{name} declares no port {port}: the connection is refused");
        return vec![alone(b, weight, Verdict::Deny, None, why)];
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        let why = format!(
            "Service {namespace}/{name} has no selector: its endpoints are written outside git, so who answers is not known"
        );
        return vec![alone(b, weight, Verdict::Depends, None, why)];
    };
    let target = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
    let mut out = Vec::new();
    for (wi, w) in o.resolved.workloads.iter().enumerate() {
        if w.namespace != *namespace || !selector.iter().all(|(k, v)| w.labels.get(k) == Some(v)) {
            continue;
        }
        // A named targetPort the pod does not declare leaves it out of the
        // endpoints for this port, as the EndpointSlice controller does.
        let Some(pod_port) = (match &target {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::Str(port_name) => {
                w.ports.iter().find(|p| p.name.as_deref() == Some(port_name)).map(|p| p.port)
            }
        }) else {
            continue;
        };
        let r = reach::reach(o, ask.client.clone(), wi, pod_port, req);
        let v = match req {
            Some(_) => r.verdicts.into_iter().next(),
            None => connection_verdict(r.verdicts),
        };
        let workload = format!("{}:{pod_port}", workload_label(o, wi));
        let entry = match v {
            Some(v) => BackendVerdict {
                service: b.label(),
                weight,
                workload: Some(workload),
                pods: None,
                workload_index: Some(wi),
                verdict: v.verdict,
                condition: v.condition,
                status: v.status,
                proof: v.proof,
            },
            None => http_only(b, weight, workload, wi),
        };
        if ask.own_workload() == Some(wi) {
            out.extend(super::own_pod::entries(o, wi, entry));
        } else {
            out.push(entry);
        }
    }
    if out.is_empty() {
        return no_endpoints(format!(
            "no workload in the repository is an endpoint of Service {namespace}/{name} port {port} (selector and targetPort)"
        ));
    }
    out
}

/// The verdict a connection gets: the connection-level decision (an opaque
/// or TLS Server, or non-HTTP traffic on a detect port), or the bypass of a
/// workload without a proxy. `None` when the Server declares HTTP.
pub fn connection_verdict(verdicts: Vec<reach::VerdictView>) -> Option<reach::VerdictView> {
    use crate::query::evaluate::Unit;
    verdicts.into_iter().find(|v| matches!(v.unit, Unit::Connection | Unit::Bypass))
}

/// A Server that declares HTTP (or gRPC) reads the connection as HTTP
/// without detection (Linkerd's inbound skips protocol detection for a
/// declared protocol); TLS or raw TCP bytes fail to parse and the
/// connection is closed.
fn http_only(b: &BackendRef, weight: u32, workload: String, wi: usize) -> BackendVerdict {
    let why = format!(
        "the Server on {workload} declares an HTTP protocol: the inbound proxy reads the connection as HTTP without detection, and a TLS or opaque connection fails to parse and is closed"
    );
    BackendVerdict { workload: Some(workload), workload_index: Some(wi), ..alone(b, weight, Verdict::Deny, None, why) }
}
