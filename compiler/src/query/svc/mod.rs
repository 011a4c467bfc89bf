//! Services as targets (`svc/NAMESPACE/NAME:PORT`): what a client sees when
//! it calls a Service. The client's proxy decides first, with the outbound
//! decision functions of `mesh-proxy-api` (route, 404, 500, backends and
//! their weights, timeouts, retries); then the inbound verdict at every
//! workload behind each backend, exactly as the two proxies would.

pub mod backends;
pub mod client_route;
pub mod matrix;
pub mod own_pod;
pub mod probes;
pub mod render;
pub mod target;
pub mod who;

use crate::pipeline::Outcome;
use crate::query::evaluate::Verdict;
use crate::query::proof::{Prover, Step};
use crate::query::reach::ClientView;
use backends::{Asker, BackendVerdict};
use client_route::{ClientRoute, Routed};
use mesh_proxy_api::HttpRequest;
use serde::Serialize;
use target::ServiceTarget;

/// The answer for the whole call: `partial` when the backends that take
/// traffic do not all answer alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overall {
    Allow,
    Deny,
    NoRoute,
    Partial,
    Depends,
}

impl Overall {
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Allow => "allow",
            Overall::Deny => "deny",
            Overall::NoRoute => "no-route",
            Overall::Partial => "partial",
            Overall::Depends => "depends",
        }
    }

    fn of(v: Verdict) -> Self {
        match v {
            Verdict::Allow => Overall::Allow,
            Verdict::Deny => Overall::Deny,
            Verdict::NoRoute => Overall::NoRoute,
            Verdict::Depends => Overall::Depends,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    /// Whether the Service declares the port (TCP).
    pub declared: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReach {
    pub client: ClientView,
    pub service: ServiceView,
    pub client_route: ClientRoute,
    pub backends: Vec<BackendVerdict>,
    pub verdict: Overall,
    /// The status the client's own proxy answers with (404, 500), if it does.
    pub status: Option<u32>,
    /// The service, the client and the client route, with file:line.
    pub proof: Vec<Step>,
}

/// What `client` sees when it sends `req` to Service port `t`, or, with
/// `sni`, when it opens a TLS connection whose ClientHello names `sni`.
pub fn reach(o: &Outcome, client: ClientView, t: &ServiceTarget, req: &HttpRequest, sni: Option<&str>) -> ServiceReach {
    let sender = client_route::sender(o, &client);
    let routed = if t.declared.is_none() {
        client_route::undeclared(t)
    } else if client.kind == crate::query::clients::ClientKind::External && !client_route::exposed(o, t) {
        client_route::not_exposed(t)
    } else if !sender.proxy {
        client_route::unproxied(t)
    } else {
        match client_route::service_view(o, &client, sender.namespace.as_deref(), t) {
            Some(svc) => client_route::route(&svc, t, req, sni, &o.resolved.settings.cluster_domain),
            None => client_route::undeclared(t),
        }
    };
    let grpc = sni.is_none() && req.header_values("content-type").any(|v| v.starts_with("application/grpc"));
    let ask = Asker { client: &client, proxy: sender.proxy, grpc };
    let Routed { route, backends } = routed;
    // A TLS connection, or one a TCPRoute/TLSRoute carries, reaches the
    // backends as a connection: only their authorization decides.
    let request = (sni.is_none() && !route.connection).then_some(req);
    let judged = backends::judge(o, &ask, &backends, request);
    let status = route.status.and_then(|s| ask.local(s));
    let verdict = verdict_of(&route, &judged);
    let p = Prover::new(o);
    let proof = vec![
        service_step(&p, t),
        crate::query::reach::client_step(&p, &client),
        route_step(&p, t, &sender, &route, &backends),
    ];
    ServiceReach {
        service: ServiceView {
            namespace: t.namespace.clone(),
            name: t.name.clone(),
            port: t.port,
            declared: t.declared.is_some(),
        },
        client,
        client_route: route,
        backends: judged,
        verdict,
        status,
        proof,
    }
}

/// What becomes of a Service reach's backends before its verdict stands,
/// given the request they were judged with (`None`: a connection); `true`
/// when it changed any. In a multicluster repository a backend that is a
/// mirror is followed across clusters (`multicluster::service_backends::follow`);
/// in one cluster the backends stay as judged ([`STAY`]).
pub type Follow<'f> = &'f dyn Fn(&mut ServiceReach, Option<&HttpRequest>) -> bool;

fn stay(_: &mut ServiceReach, _: Option<&HttpRequest>) -> bool {
    false
}

/// Backends stay as [`reach`] judged them: a repository of one cluster.
pub const STAY: Follow<'static> = &stay;

/// [`reach`], then `follow` on its backends; with whether `follow` changed
/// any. `reach`, `who-can-reach`, `matrix --services` and MeshTest flows on
/// a `svc/` target all call this, so they follow a backend alike.
pub fn reach_following(
    o: &Outcome,
    client: ClientView,
    t: &ServiceTarget,
    req: &HttpRequest,
    sni: Option<&str>,
    follow: Follow,
) -> (ServiceReach, bool) {
    let mut r = reach(o, client, t, req, sni);
    // As `reach` judged the backends: a TLS connection, or one a TCPRoute/TLSRoute carries, as a connection.
    let judged_with = (sni.is_none() && !r.client_route.connection).then_some(req);
    let followed = follow(&mut r, judged_with);
    (r, followed)
}

/// The client's proxy decides first (404, 500, a refused port); then the
/// backends that take traffic (weight above 0) decide together.
pub fn verdict_of(route: &ClientRoute, judged: &[BackendVerdict]) -> Overall {
    match (route.kind, route.status) {
        ("undeclared-port" | "not-exposed", _) => return Overall::Deny,
        ("no-route", _) | (_, Some(404)) => return Overall::NoRoute,
        (_, Some(_)) => return Overall::Deny,
        _ => {}
    }
    let live: Vec<Verdict> = judged.iter().filter(|b| b.weight > 0).map(|b| b.verdict).collect();
    let Some(&first) = live.first() else { return Overall::Deny };
    if live.iter().all(|v| *v == first) {
        return Overall::of(first);
    }
    if live.contains(&Verdict::Allow) {
        Overall::Partial
    } else if live.contains(&Verdict::Depends) {
        Overall::Depends
    } else {
        Overall::Deny
    }
}

fn service_step(p: &Prover, t: &ServiceTarget) -> Step {
    let ports = target::service_ports(p.outcome, t.resource);
    match t.declared.and_then(|i| ports.get(i).map(|sp| (i, sp))) {
        Some((i, sp)) => {
            let name = sp.name.as_deref().map_or_else(String::new, |n| format!(" ({n})"));
            let target = match &sp.target_port {
                Some(crate::model::meta::IntOrString::Int(n)) => n.to_string(),
                Some(crate::model::meta::IntOrString::Str(s)) => s.clone(),
                None => sp.port.to_string(),
            };
            let detail = format!("Service {}/{} port {}{name} → targetPort {target}", t.namespace, t.name, t.port);
            let index = i.to_string();
            p.at("service", t.resource, &["spec", "ports", &index], detail)
        }
        None => {
            let detail = format!("Service {}/{} declares no TCP port {}", t.namespace, t.name, t.port);
            p.at("service", t.resource, &["spec", "ports"], detail)
        }
    }
}

/// The client route, cited at the route or profile it comes from.
fn route_step(
    p: &Prover,
    t: &ServiceTarget,
    sender: &client_route::Sender,
    r: &ClientRoute,
    backends: &[(client_route::BackendRef, u32)],
) -> Step {
    let mut detail = r.detail.clone();
    if backends.len() > 1 || r.origin.is_some() {
        let split: Vec<String> = backends.iter().map(|(b, w)| format!("{} weight {w}", b.label())).collect();
        detail.push_str(&format!(": to {}", split.join(", ")));
    }
    let shaping = render::shaping(r);
    if !shaping.is_empty() {
        detail.push_str(&format!("; {shaping}"));
    }
    let Some(origin) = &r.origin else { return Step::plain("client route", detail) };
    let index = &p.outcome.resolved.index;
    let found = if origin.meta.kind == "serviceprofile" {
        let ns = origin.namespace.as_deref().unwrap_or_default();
        // dstOverrides linkerd-smi wrote: cited at the TrafficSplit when git holds no such profile.
        let split =
            p.outcome.outbound.find(&t.namespace, &t.name).and_then(|si| p.outcome.outbound.traffic_split(si, ns));
        if let Some(ts) = split {
            let ts = &p.outcome.resolved.resources[ts];
            detail.push_str(&format!(" (dstOverrides written by linkerd-smi from TrafficSplit {ns}/{})", ts.name()));
        }
        index.get(crate::resolve::index::Kind::ServiceProfile, ns, &origin.meta.name).or(split)
    } else {
        // A producer route lives with the Service, a consumer route with the client.
        std::iter::once(t.namespace.as_str())
            .chain(sender.namespace.as_deref())
            .find_map(|ns| p.locate(ns, &origin.meta))
    };
    let rule = r.rule.map(|n| n.to_string());
    let path: Vec<&str> = rule.as_deref().map_or_else(Vec::new, |n| vec!["spec", "rules", n]);
    match found {
        Some(i) => p.at("client route", i, &path, detail),
        None => Step::plain("client route", detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ServiceTarget {
        ServiceTarget { namespace: "shop".into(), name: "api".into(), port: 80, resource: 0, declared: Some(0) }
    }

    fn backend(weight: u32, verdict: Verdict) -> BackendVerdict {
        BackendVerdict {
            service: "shop/api:80".into(),
            weight,
            workload: None,
            pods: None,
            workload_index: None,
            verdict,
            condition: None,
            status: None,
            proof: Vec::new(),
        }
    }

    #[test]
    fn backends_decide_together_and_weight_zero_takes_no_traffic() {
        let route = client_route::unproxied(&target()).route;
        let allow = backend(90, Verdict::Allow);
        let deny = backend(10, Verdict::Deny);
        assert_eq!(verdict_of(&route, &[allow.clone(), deny.clone()]), Overall::Partial);
        assert_eq!(verdict_of(&route, &[allow.clone(), backend(0, Verdict::Deny)]), Overall::Allow);
        assert_eq!(verdict_of(&route, &[deny.clone(), backend(5, Verdict::Depends)]), Overall::Depends);
        assert_eq!(verdict_of(&route, &[deny.clone(), backend(5, Verdict::NoRoute)]), Overall::Deny);
        // Nothing that takes traffic: nothing answers.
        assert_eq!(verdict_of(&route, &[]), Overall::Deny);
    }

    #[test]
    fn the_client_proxy_answers_before_any_backend() {
        let mut route = client_route::unproxied(&target()).route;
        let allow = [backend(1, Verdict::Allow)];
        route.status = Some(404);
        assert_eq!(verdict_of(&route, &allow), Overall::NoRoute);
        route.status = Some(500);
        assert_eq!(verdict_of(&route, &allow), Overall::Deny);
        let undeclared = client_route::undeclared(&target()).route;
        assert_eq!(verdict_of(&undeclared, &allow), Overall::Deny);
    }
}
