//! Which client → Service edges (`matrix --services`) a change opens and
//! closes (`meshc diff --services`).
//!
//! Each side computes its edges as `matrix --services` does: per Service
//! port and per client group, the first probe that gets in. Groups differ
//! between sides (they follow each side's classes), so edges are compared
//! per client (by label): an edge is opened when the head has it and the
//! base does not, closed the other way; one whose verdict, probe or client
//! route changed is both (closed as it was, opened as it is). Changes are
//! grouped by (Service port, answer), listing the clients.

use super::Sides;
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::svc::matrix::{edges, service_targets};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How a client gets into a Service port: the probe, the verdict and the client route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEdge {
    /// `svc/NS/NAME:PORT`.
    pub service: String,
    pub request: String,
    pub verdict: &'static str,
    pub client_route: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceEdgeChange {
    pub clients: Vec<String>,
    #[serde(flatten)]
    pub edge: ServiceEdge,
}

/// Every (client label, edge) of one side.
fn side_edges(o: &Outcome, classes: &Classes, namespace: Option<&str>) -> BTreeSet<(String, ServiceEdge)> {
    let targets = service_targets(o, namespace);
    let mut out = BTreeSet::new();
    for s in edges(o, classes, &targets) {
        for row in s.edges {
            let edge = ServiceEdge {
                service: s.service.clone(),
                request: row.request,
                verdict: row.verdict.as_str(),
                client_route: row.client_route,
            };
            for client in row.clients {
                out.insert((client, edge.clone()));
            }
        }
    }
    out
}

/// `(opened, closed)` among the Service ports of `namespace` (all when `None`).
pub fn changes(s: &Sides, namespace: Option<&str>) -> (Vec<ServiceEdgeChange>, Vec<ServiceEdgeChange>) {
    let base = side_edges(s.base, &s.base_classes, namespace);
    let head = side_edges(s.head, &s.head_classes, namespace);
    let group = |pairs: BTreeSet<&(String, ServiceEdge)>| {
        let mut by_edge: BTreeMap<&ServiceEdge, Vec<String>> = BTreeMap::new();
        for (client, edge) in pairs {
            by_edge.entry(edge).or_default().push(client.clone());
        }
        by_edge.into_iter().map(|(edge, clients)| ServiceEdgeChange { clients, edge: edge.clone() }).collect::<Vec<_>>()
    };
    (group(head.difference(&base).collect()), group(base.difference(&head).collect()))
}

/// One line: `web (+1 more) → svc/shop/api:80 GET /books partial (HTTPRoute api-split)`.
pub fn line(c: &ServiceEdgeChange) -> String {
    let clients = match c.clients.len() {
        1 => c.clients[0].clone(),
        n => format!("{} (+{} more)", c.clients.first().map_or("", String::as_str), n.saturating_sub(1)),
    };
    let e = &c.edge;
    format!("{clients} → {} {} {} ({})", e.service, e.request, e.verdict, e.client_route)
}
