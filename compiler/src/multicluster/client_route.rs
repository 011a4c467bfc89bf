//! The client's proxy on a call to a mirrored Service: the routes parented
//! on the mirror (HTTPRoute, GRPCRoute, ServiceProfile of
//! `<svc>-<cluster>`) apply there exactly as on any Service of the source
//! cluster, because the mirror is a Service of that cluster to the client's
//! proxy (Linkerd's policy controller serves its outbound policy like any
//! other). The route decides first: a 404 or 500 of the client's proxy,
//! or backends that keep the call in the source cluster, stop the crossing.

use super::reach::Path;
use crate::pipeline::Outcome;
use crate::query::evaluate::Verdict;
use crate::query::proof::Step;
use crate::query::reach::ClientView;
use crate::query::svc::{self, ServiceReach};
use mesh_proxy_api::HttpRequest;

/// What the client's proxy does with the call to the mirror's port.
pub struct Routed {
    /// The client route, cited at the route it comes from.
    pub step: Step,
    /// `Some` when the client's proxy stops the call here, or sends none of
    /// it through the mirror: the hop's verdict and why.
    pub stop: Option<(Verdict, String)>,
    /// The share of the call that stays in the source cluster (other backends), in words.
    pub elsewhere: Option<String>,
}

/// The client route of `client` calling the mirror of `p` on `port`; `None`
/// when the client has no proxy (nothing routes it) or the mirror is unknown.
pub fn route(src: &Outcome, client: &ClientView, p: &Path, port: u16, req: Option<&HttpRequest>) -> Option<Routed> {
    let t = svc::target::parse(src, &format!("svc/{}/{}:{port}", p.namespace, p.mirror)).ok()?;
    let get = HttpRequest::new("GET", "/");
    let r = svc::reach(src, client.clone(), &t, req.unwrap_or(&get), None);
    if r.client_route.kind == "no-proxy" {
        return None;
    }
    let step = r.proof.get(2).cloned().unwrap_or_else(|| Step::plain("client route", r.client_route.detail.clone()));
    Some(Routed { stop: stop(&r, p, port), elsewhere: elsewhere(&r, p, port), step })
}

fn mirror_label(p: &Path, port: u16) -> String {
    format!("{}/{}:{port}", p.namespace, p.mirror)
}

/// The client's proxy answers itself, or routes nothing through the mirror.
fn stop(r: &ServiceReach, p: &Path, port: u16) -> Option<(Verdict, String)> {
    let route = &r.client_route;
    match (route.kind, route.status) {
        ("no-route", _) | (_, Some(404)) => {
            return Some((
                Verdict::NoRoute,
                "the client's proxy answers 404: no route rule of the mirror matches".into(),
            ));
        }
        ("undeclared-port", _) => {
            return Some((Verdict::Deny, format!("the mirror declares no port {port}: the connection is refused")));
        }
        (_, Some(s)) => return Some((Verdict::Deny, format!("the client's proxy answers {s} itself"))),
        _ => {}
    }
    let mirror = mirror_label(p, port);
    let live: Vec<&svc::backends::BackendVerdict> = r.backends.iter().filter(|b| b.weight > 0).collect();
    if live.iter().any(|b| b.service == mirror) {
        return None;
    }
    let to: Vec<String> = live.iter().map(|b| format!("{} weight {}", b.service, b.weight)).collect();
    let detail = format!(
        "the client route sends the call to {}, not through the mirror (verdict there: {}): this path carries none \
         of it",
        if to.is_empty() { "no backend".to_owned() } else { to.join(", ") },
        r.verdict.as_str()
    );
    // Not crossing: no traffic takes this path (the call's verdict is the local one, in the detail).
    Some((Verdict::NoRoute, detail))
}

/// Backends other than the mirror that share the call, with their verdicts.
fn elsewhere(r: &ServiceReach, p: &Path, port: u16) -> Option<String> {
    let mirror = mirror_label(p, port);
    let others: Vec<String> = r
        .backends
        .iter()
        .filter(|b| b.weight > 0 && b.service != mirror)
        .map(|b| {
            let at = b.workload.as_deref().map_or_else(String::new, |w| format!(" at {w}"));
            format!("{} weight {}{at}: {}", b.service, b.weight, b.verdict.as_str())
        })
        .collect();
    (!others.is_empty()).then(|| others.join("; "))
}
