//! `matrix --services`: client → Service edges. Per Service port (declared,
//! TCP) and per client group (`who::groups`), the requests of `probes` as
//! the client's proxy routes them and the backends answer; an edge where
//! one gets in (`allow`, `partial`, or `depends`), shown with that request.

use super::target::{ServiceTarget, service_ports};
use super::who::{Group, Row, groups, requests, rows};
use super::{Follow, Overall, STAY};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::resolve::index::Kind;
use serde::Serialize;
use std::collections::HashSet;

#[derive(Clone, Debug, Serialize)]
pub struct ServiceEdges {
    /// `svc/NS/NAME:PORT`.
    pub service: String,
    /// The client groups that get through, with how.
    pub edges: Vec<Row>,
}

/// Every Service port in `namespace` (all when `None`), sorted by namespace, name, port.
pub fn service_targets(o: &Outcome, namespace: Option<&str>) -> Vec<ServiceTarget> {
    let mut out = Vec::new();
    for &ri in o.resolved.index.all(Kind::Service) {
        let res = &o.resolved.resources[ri];
        if namespace.is_some_and(|ns| ns != res.namespace()) {
            continue;
        }
        for (i, p) in service_ports(o, ri).iter().enumerate() {
            let tcp = p.protocol.as_deref().is_none_or(|x| x.eq_ignore_ascii_case("TCP"));
            let Ok(port) = u16::try_from(p.port) else { continue };
            if tcp {
                let (namespace, name) = (res.namespace().to_owned(), res.name().to_owned());
                out.push(ServiceTarget { namespace, name, port, resource: ri, declared: Some(i) });
            }
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name, a.port).cmp(&(&b.namespace, &b.name, b.port)));
    out
}

/// The edges into every Service port of `targets`.
pub fn edges(o: &Outcome, classes: &Classes, targets: &[ServiceTarget]) -> Vec<ServiceEdges> {
    edges_following(o, classes, targets, STAY)
}

/// [`edges`], each call's backends followed by `follow` (a mirror across clusters).
pub fn edges_following(o: &Outcome, classes: &Classes, targets: &[ServiceTarget], follow: Follow) -> Vec<ServiceEdges> {
    let groups = groups(o, classes);
    targets
        .iter()
        .map(|t| ServiceEdges {
            service: t.label(),
            edges: groups.iter().flat_map(|g| group_edges(o, classes, g, t, follow)).collect(),
        })
        .collect()
}

/// The edges of `g`'s members into `t`: per member, the first request that
/// gets in. Usually one row for the whole group; members calling their own
/// pod may get in with other requests than the rest.
fn group_edges(o: &Outcome, classes: &Classes, g: &Group, t: &ServiceTarget, follow: Follow) -> Vec<Row> {
    let gets_in = |r: &Row| matches!(r.verdict, Overall::Allow | Overall::Partial | Overall::Depends);
    let (mut out, mut covered) = (Vec::new(), HashSet::new());
    for probe in requests(o, g, t) {
        for mut r in rows(o, classes, g, t, &probe, follow).into_iter().filter(gets_in) {
            if !covered.is_empty() {
                r.clients.retain(|c| !covered.contains(c));
            }
            if r.clients.len() == g.members.len() {
                return vec![r];
            }
            if !r.clients.is_empty() {
                covered.extend(r.clients.iter().cloned());
                out.push(r);
            }
        }
        if covered.len() == g.members.len() {
            break;
        }
    }
    out
}

/// One line per edge: `CLIENTS → svc/NS/NAME:PORT  REQUEST  VERDICT  CLIENT ROUTE`.
pub fn table(all: &[ServiceEdges]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for s in all {
        if s.edges.is_empty() {
            let _ = writeln!(out, "{}  nobody", s.service);
        }
        for e in &s.edges {
            let _ = writeln!(
                out,
                "[{}] {} → {}  {}  {}  {}",
                e.class,
                e.clients.join(", "),
                s.service,
                e.request,
                e.verdict.as_str(),
                e.client_route
            );
        }
    }
    out
}
