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
use ipnet::IpNet;
use mesh_proxy_api::{InboundServer, PortPolicy, Protocol};
use rayon::prelude::*;

/// Workloads computed per parallel batch: bounds memory while streaming.
const CHUNK: usize = 512;

/// Who gets through one port: per route (or connection), the allowed classes.
#[derive(Clone, Debug)]
pub struct PortSets {
    pub workload: usize,
    pub port: u16,
    /// `(route name or "connection", classes allowed wherever a client pod
    /// is)`; one `("*", all)` entry when nothing is enforced (no proxy,
    /// skipped port).
    pub entries: Vec<(String, FixedBitSet)>,
    /// Per entry, the classes allowed at some places a pod may be and not
    /// at others: their verdict depends on the pod CIDR.
    pub depends: Vec<FixedBitSet>,
    /// Per entry, the allowed classes at each place; empty when no class
    /// depends on the place.
    pub at: Vec<Vec<FixedBitSet>>,
    /// Allowed, or depending, on at least one entry.
    pub any: FixedBitSet,
    /// Allowed on every entry.
    pub every: FixedBitSet,
}

impl PortSets {
    /// The routes class `c` is allowed (or may be allowed) on, when it is not allowed on all.
    pub fn routes_of(&self, c: usize) -> Vec<&str> {
        let admits = |i: usize| self.entries[i].1.contains(c) || self.depends[i].contains(c);
        (0..self.entries.len()).filter(|&i| admits(i)).map(|i| self.entries[i].0.as_str()).collect()
    }

    /// Whether class `c`'s verdict on some entry depends on the pod CIDR.
    pub fn depends_on_place(&self, c: usize) -> bool {
        self.depends.iter().any(|d| d.contains(c))
    }

    /// When class `c`'s verdict on entry `i` depends on the pod CIDR, the condition.
    pub fn condition(&self, classes: &Classes, i: usize, c: usize) -> Option<String> {
        if !self.depends.get(i)?.contains(c) {
            return None;
        }
        let allowed: Vec<bool> = self.at[i].iter().map(|set| set.contains(c)).collect();
        Some(classes.condition(&allowed))
    }
}

/// Per entry, the allowed classes at `place`.
fn server_entries(classes: &Classes, s: &InboundServer, skip: &[IpNet], place: usize) -> Vec<(String, FixedBitSet)> {
    let bypass = classes.bypassing(place, skip);
    let with_bypass = |mut set: FixedBitSet| {
        set.union_with(&bypass);
        set
    };
    let connection = || ("connection".to_owned(), with_bypass(classes.permitted(place, &[&s.authorizations])));
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
            (name, with_bypass(classes.permitted(place, &[authzs, &s.authorizations])))
        })
        .collect();
    if matches!(s.protocol, Protocol::Detect { .. }) {
        out.push(connection());
    }
    out
}

pub fn port_sets(o: &Outcome, classes: &Classes, wi: usize, port: u16) -> PortSets {
    let config = o.configs[wi].as_ref();
    let n = classes.len();
    let (entries, depends, at) = match config.map(|c| (c, c.inbound.lookup(port))) {
        None | Some((_, PortPolicy::Skipped)) => {
            (vec![("*".to_owned(), classes.all())], vec![FixedBitSet::with_capacity(n)], vec![Vec::new()])
        }
        Some((c, PortPolicy::Server(s))) => {
            let skip = &c.inbound.skip_subnets;
            let by_place: Vec<_> = (0..classes.places()).map(|k| server_entries(classes, s, skip, k)).collect();
            across_places(by_place, n)
        }
    };
    let mut any = FixedBitSet::with_capacity(n);
    let mut every = classes.all();
    for ((_, set), maybe) in entries.iter().zip(&depends) {
        any.union_with(set);
        any.union_with(maybe);
        every.intersect_with(set);
    }
    if entries.is_empty() {
        every.clear();
    }
    PortSets { workload: wi, port, entries, depends, at, any, every }
}

type Combined = (Vec<(String, FixedBitSet)>, Vec<FixedBitSet>, Vec<Vec<FixedBitSet>>);

/// Per entry: the classes allowed at every place, those allowed at some but
/// not all, and (when there are such) the sets at each place.
fn across_places(mut by_place: Vec<Vec<(String, FixedBitSet)>>, n: usize) -> Combined {
    let rest = by_place.split_off(1.min(by_place.len()));
    let mut entries = by_place.pop().unwrap_or_default();
    let mut depends = Vec::with_capacity(entries.len());
    let mut at = Vec::with_capacity(entries.len());
    for (i, (_, sure)) in entries.iter_mut().enumerate() {
        let mut some = sure.clone();
        let mut sets = vec![sure.clone()];
        for place in &rest {
            let set = &place[i].1;
            sure.intersect_with(set);
            some.union_with(set);
            sets.push(set.clone());
        }
        some.difference_with(sure);
        at.push(if some.is_clear() { Vec::new() } else { sets });
        depends.push(if some.is_clear() { FixedBitSet::with_capacity(n) } else { some });
    }
    (entries, depends, at)
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
