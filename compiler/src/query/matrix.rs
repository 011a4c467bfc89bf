//! `meshc matrix`: every allowed edge client class → workload:port, for a
//! whole repository. Per (workload, port) the allowed classes of each route
//! are a union of precomputed predicate sets (see `classes`), so the cost
//! is one bitset union per authorization instead of one `authorize` call
//! per class; a property test holds it equal to `who-can-reach`.
//!
//! Ports are produced in chunks computed in parallel and handed to the
//! caller in order, so output can be streamed without holding the matrix.

use super::classes::Classes;
use super::evaluate::route_meta;
use super::proof::route_name;
use super::who::target_ports;
use crate::pipeline::Outcome;
use fixedbitset::FixedBitSet;
use mesh_proxy_api::{InboundServer, PortPolicy, Protocol};
use rayon::prelude::*;

/// Workloads computed per parallel batch: bounds memory while streaming.
const CHUNK: usize = 512;

/// Who gets through one port: per route (or connection), the allowed classes.
#[derive(Clone, Debug)]
pub struct PortSets {
    pub workload: usize,
    pub port: u16,
    /// `(route name or "connection", allowed classes)`; one `("*", all)` entry
    /// when nothing is enforced (no proxy, skipped port).
    pub entries: Vec<(String, FixedBitSet)>,
    /// Allowed on at least one entry.
    pub any: FixedBitSet,
    /// Allowed on every entry.
    pub every: FixedBitSet,
}

impl PortSets {
    /// The routes class `c` is allowed on, when it is not allowed on all.
    pub fn routes_of(&self, c: usize) -> Vec<&str> {
        self.entries.iter().filter(|(_, s)| s.contains(c)).map(|(n, _)| n.as_str()).collect()
    }
}

fn server_entries(classes: &Classes, s: &InboundServer, bypass: &FixedBitSet) -> Vec<(String, FixedBitSet)> {
    let with_bypass = |mut set: FixedBitSet| {
        set.union_with(bypass);
        set
    };
    let connection = || ("connection".to_owned(), with_bypass(classes.permitted(&[&s.authorizations])));
    if !s.protocol.is_http() {
        return vec![connection()];
    }
    let routes: Vec<&[mesh_proxy_api::Authorization]> = match s.protocol {
        Protocol::Grpc => s.grpc_routes.iter().map(|r| r.authorizations.as_slice()).collect(),
        _ => s.http_routes.iter().map(|r| r.authorizations.as_slice()).collect(),
    };
    let mut out: Vec<(String, FixedBitSet)> = routes
        .into_iter()
        .enumerate()
        .map(|(i, authzs)| {
            let name = route_name(route_meta(s, i));
            (name, with_bypass(classes.permitted(&[authzs, &s.authorizations])))
        })
        .collect();
    if matches!(s.protocol, Protocol::Detect { .. }) {
        out.push(connection());
    }
    out
}

pub fn port_sets(o: &Outcome, classes: &Classes, wi: usize, port: u16) -> PortSets {
    let config = o.configs[wi].as_ref();
    let entries = match config.map(|c| (c, c.inbound.lookup(port))) {
        None | Some((_, PortPolicy::Skipped)) => vec![("*".to_owned(), classes.all())],
        Some((c, PortPolicy::Server(s))) => server_entries(classes, s, &classes.bypassing(&c.inbound.skip_subnets)),
    };
    let mut any = FixedBitSet::with_capacity(classes.len());
    let mut every = classes.all();
    for (_, set) in &entries {
        any.union_with(set);
        every.intersect_with(set);
    }
    if entries.is_empty() {
        every.clear();
    }
    PortSets { workload: wi, port, entries, any, every }
}

/// Workloads in scope: all, or those of one namespace.
pub fn workloads_in(o: &Outcome, namespace: Option<&str>) -> Vec<usize> {
    let ws = &o.resolved.workloads;
    (0..ws.len()).filter(|&i| namespace.is_none_or(|ns| ws[i].namespace == ns)).collect()
}

/// Calls `f` for every port of every workload in `scope`, in order; the
/// sets are computed in parallel a chunk at a time.
pub fn for_each_port<E>(
    o: &Outcome,
    classes: &Classes,
    scope: &[usize],
    mut f: impl FnMut(PortSets) -> Result<(), E>,
) -> Result<(), E> {
    for chunk in scope.chunks(CHUNK) {
        let sets: Vec<Vec<PortSets>> = chunk
            .par_iter()
            .map(|&wi| {
                let w = &o.resolved.workloads[wi];
                target_ports(w, o.configs[wi].as_ref()).into_iter().map(|p| port_sets(o, classes, wi, p)).collect()
            })
            .collect();
        for s in sets.into_iter().flatten() {
            f(s)?;
        }
    }
    Ok(())
}
