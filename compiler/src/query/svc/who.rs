//! `who-can-reach svc/...` and `matrix --services`: every client of the
//! repository calling a Service port. Client classes group clients the
//! inbound side cannot tell apart; the outbound side also turns on the
//! client's namespace (consumer routes, ServiceProfiles) and on whether it
//! has a proxy, so a class is split by those before the call is evaluated
//! once per group. A member whose own workload is behind a backend calls
//! its own pod there (`own_pod`), so it gets a row of its own. A call that
//! crosses to another cluster (a backend that is a mirror, followed by the
//! caller's [`Follow`]) is evaluated per member: across clusters the
//! target's policy, or the gateway's, sees each member's own identity,
//! which the class (made of this cluster's policies) does not tell apart.

use super::probes::Probe;
use super::target::ServiceTarget;
use super::{Follow, Overall, STAY, ServiceReach};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::clients::ClientKind;
use crate::query::reach::{ClientView, placed};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Clients that see a Service alike: one class, one namespace, proxied or
/// not (except for a Service in front of a member's own workload: `rows`).
pub struct Group {
    pub class: usize,
    pub members: Vec<String>,
    /// The first member, as `reach --from` would resolve it, but standing
    /// for the whole group (not one pod).
    pub client: ClientView,
    /// The meshed workload members: workload index → position in `members`.
    pub workloads: HashMap<usize, usize>,
    /// Each member's position in its class's `members`, in `members` order.
    pub member_index: Vec<usize>,
}

/// The groups of every class, in class order then first-member order;
/// `localhost` is left out.
pub fn groups(o: &Outcome, classes: &Classes) -> Vec<Group> {
    let mut out = Vec::new();
    for class in &classes.classes {
        // External clients reach only NodePort and LoadBalancer Services.
        let mut by_key: BTreeMap<(Option<String>, bool, bool), usize> = BTreeMap::new();
        // The pod itself reaches its own ports, never through a Service.
        for (mi, m) in class.members.iter().enumerate().filter(|(_, m)| m.kind != ClientKind::Localhost) {
            let proxied = m.workload.map_or(m.kind == ClientKind::Identity, |wi| o.resolved.workloads[wi].is_meshed());
            let key = (m.namespace.clone(), proxied, m.kind == ClientKind::External);
            let g = match by_key.get(&key) {
                Some(&g) => g,
                None => {
                    let mut client = ClientView::of_client(
                        m.label.clone(),
                        m.kind,
                        &placed(classes, m.kind, &m.client),
                        Some(class.id),
                    );
                    client.workload = m.workload;
                    by_key.insert(key, out.len());
                    out.push(Group {
                        class: class.id,
                        members: Vec::new(),
                        client,
                        workloads: HashMap::new(),
                        member_index: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let group: &mut Group = &mut out[g];
            if let Some(wi) = m.workload.filter(|_| proxied) {
                group.workloads.insert(wi, group.members.len());
            }
            group.members.push(m.label.clone());
            group.member_index.push(mi);
        }
    }
    out
}

/// One group's answer.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub class: usize,
    pub clients: Vec<String>,
    /// The request sent (`GET /`, or one a route rule selects, or a TLS
    /// connection with an SNI a TLSRoute names: `probes`).
    pub request: String,
    pub verdict: Overall,
    /// The client route's kind and name (`HTTPRoute api-split`, `default`, `no-proxy`).
    pub client_route: String,
    /// The client proxy's own answer (404, 500), if it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// Per backend workload, its verdict (`shop/api:80 → Deployment/shop/api:8080 allow`).
    pub backends: Vec<String>,
}

pub fn row(g: &Group, probe: &Probe, r: &ServiceReach) -> Row {
    let route = &r.client_route;
    let client_route = match &route.name {
        Some(name) => format!("{} {name}", route.kind),
        None => route.kind.to_owned(),
    };
    let backends = r
        .backends
        .iter()
        .map(|b| {
            let at = super::render::backend_at(b);
            let status = b.status.map_or_else(String::new, |s| format!(" ({s})"));
            format!("{} weight {}{at} {}{status}", b.service, b.weight, b.verdict.as_str())
        })
        .collect();
    let request = probe.label();
    Row {
        class: g.class,
        clients: g.members.clone(),
        request,
        verdict: r.verdict,
        client_route,
        status: r.status,
        backends,
    }
}

/// What a group sends: `GET /`, one request per route rule it sees, one
/// TLS connection per SNI a TLSRoute names.
pub fn requests(o: &Outcome, g: &Group, t: &ServiceTarget) -> Vec<Probe> {
    let sender = super::client_route::sender(o, &g.client);
    super::probes::probes(o, t, sender.namespace.as_deref())
}

/// Every group's answer for each request it sends to `t` (`requests`).
pub fn who_can_reach(o: &Outcome, classes: &Classes, t: &ServiceTarget) -> Vec<Row> {
    who_can_reach_following(o, classes, t, STAY)
}

/// [`who_can_reach`], each call's backends followed by `follow`.
pub fn who_can_reach_following(o: &Outcome, classes: &Classes, t: &ServiceTarget, follow: Follow) -> Vec<Row> {
    let mut out = Vec::new();
    for g in &groups(o, classes) {
        for probe in requests(o, g, t) {
            out.extend(rows(o, classes, g, t, &probe, follow));
        }
    }
    out
}

/// `g`'s call to `t` with `probe`, as one row for the group, except that a
/// meshed member whose own workload is behind a backend gets a row of its
/// own: there one endpoint is its own pod, which answers without inbound
/// policy (`own_pod`); and a call that `follow` takes across clusters is
/// answered per member ([`per_member`]).
pub fn rows(o: &Outcome, classes: &Classes, g: &Group, t: &ServiceTarget, probe: &Probe, follow: Follow) -> Vec<Row> {
    let (group, crossed) = call(o, g, t, probe, follow);
    if crossed && g.members.len() > 1 {
        return per_member(o, classes, g, t, probe, follow);
    }
    let mut own: Vec<(usize, usize)> = group
        .backends
        .iter()
        .filter_map(|b| b.workload_index)
        .filter_map(|wi| g.workloads.get(&wi).map(|&m| (m, wi)))
        .collect();
    if own.is_empty() {
        return vec![row(g, probe, &group)];
    }
    own.sort_unstable();
    own.dedup();
    let rest: Vec<String> = g
        .members
        .iter()
        .enumerate()
        .filter(|(m, _)| !own.iter().any(|(i, _)| i == m))
        .map(|(_, l)| l.clone())
        .collect();
    let mut out = Vec::new();
    if !rest.is_empty() {
        out.push(Row { clients: rest, ..row(g, probe, &group) });
    }
    for (m, wi) in own {
        let mut client = g.client.clone();
        client.spec = g.members[m].clone();
        client.workload = Some(wi);
        client.one_pod = true;
        let (r, _) = super::reach_following(o, client, t, &probe.request(), probe.sni(), follow);
        out.push(Row { clients: vec![g.members[m].clone()], ..row(g, probe, &r) });
    }
    out
}

/// `g`'s call to `t` with `probe`, for the group as a whole, and whether
/// `follow` took part of it across clusters.
pub fn call(o: &Outcome, g: &Group, t: &ServiceTarget, probe: &Probe, follow: Follow) -> (ServiceReach, bool) {
    super::reach_following(o, g.client.clone(), t, &probe.request(), probe.sni(), follow)
}

/// Each member of `g` calling `t` on its own (the pods across the link see
/// its identity), members that get the same answer in one row.
fn per_member(o: &Outcome, classes: &Classes, g: &Group, t: &ServiceTarget, probe: &Probe, follow: Follow) -> Vec<Row> {
    let Some(class) = classes.classes.get(g.class) else { return Vec::new() };
    let mut out: Vec<Row> = Vec::new();
    for (pos, &mi) in g.member_index.iter().enumerate() {
        let Some(m) = class.members.get(mi) else { continue };
        let mut client =
            ClientView::of_client(m.label.clone(), m.kind, &placed(classes, m.kind, &m.client), Some(g.class));
        client.workload = m.workload;
        // A meshed member calls its own pod when its workload is behind a backend (`own_pod`).
        client.one_pod = m.workload.is_some_and(|wi| g.workloads.get(&wi) == Some(&pos));
        let (r, _) = super::reach_following(o, client, t, &probe.request(), probe.sni(), follow);
        let answer = Row { clients: vec![m.label.clone()], ..row(g, probe, &r) };
        match out.iter_mut().find(|r| same_answer(r, &answer)) {
            Some(r) => r.clients.push(m.label.clone()),
            None => out.push(answer),
        }
    }
    out
}

/// Two rows of one group and request that say the same but for their clients.
fn same_answer(a: &Row, b: &Row) -> bool {
    (a.verdict, &a.client_route, a.status, &a.backends) == (b.verdict, &b.client_route, b.status, &b.backends)
}

/// `who-can-reach svc/...` in words: per group and request, the verdict.
pub fn text(t: &ServiceTarget, rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{} — who can reach it, per client class and namespace", t.label());
    for r in rows {
        let status = r.status.map_or_else(String::new, |s| format!(" ({s}, from the client's proxy)"));
        let _ = writeln!(out, "\nclass [{}] {}", r.class, r.clients.join(", "));
        let _ = writeln!(out, "  {}: {}{status}", r.request, r.verdict.as_str());
        let _ = writeln!(out, "  client route: {}", r.client_route);
        for b in &r.backends {
            let _ = writeln!(out, "  backend {b}");
        }
    }
    out
}
