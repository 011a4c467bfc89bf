//! A port's matrix edges, one per client class, and its rows: the edges
//! that say the same thing but for the client, grouped.
//!
//! An edge depends on the class only through which of the port's sets hold
//! it (each entry's allowed and depending sets, and where a verdict depends
//! on the pod CIDR, the allowed set at each place). So the rows are built
//! by splitting the port's classes by those sets, a bitset intersection
//! and difference per part and set, and deciding one edge per part: the
//! cost follows the distinct (port, fact) pairs, not classes x ports (a
//! 10,000-workload repository has 100 million edges and 40,000 rows).

use crate::query::classes::Classes;
use crate::query::matrix::PortSets;
use fixedbitset::FixedBitSet;

/// One allowed edge; `client: None` is every class.
pub struct Edge<'p> {
    pub client: Option<usize>,
    /// Not allowed on every route: `routes` lists those it may use.
    pub partial: bool,
    pub routes: Vec<&'p str>,
    /// Where a route allows the class only if its pods are in the right
    /// part of the pod CIDR: the condition.
    pub condition: Option<String>,
    /// `allow` (every route), `partial` (some routes for sure), or
    /// `depends` (no route for sure, some depending on the pod CIDR).
    pub verdict: &'static str,
}

impl Edge<'_> {
    /// The `*` edge: every class gets in everywhere.
    fn everyone() -> Self {
        Edge { client: None, partial: false, routes: Vec::new(), condition: None, verdict: "allow" }
    }

    /// Whether two edges say the same thing but for the client.
    fn alike(&self, other: &Edge) -> bool {
        self.verdict == other.verdict && self.routes == other.routes && self.condition == other.condition
    }
}

/// Whether every class gets through the port on every route.
fn everyone_allowed(ps: &PortSets, classes: &Classes) -> bool {
    !classes.is_empty() && ps.every.count_ones(..) == classes.len()
}

/// The edges of one port: one `*` edge when every class gets in
/// everywhere, else one per class allowed (or maybe allowed) somewhere.
/// The pod's own localhost traffic, which every proxy allows, is not an edge.
pub fn edges<'p>(ps: &'p PortSets, classes: &Classes) -> Vec<Edge<'p>> {
    if everyone_allowed(ps, classes) {
        return vec![Edge::everyone()];
    }
    let local = classes.localhost();
    ps.any.ones().filter(|&c| !local.contains(c)).map(|c| edge_of(ps, classes, c)).collect()
}

/// Class `c`'s edge into the port, `c` being allowed somewhere.
fn edge_of<'p>(ps: &'p PortSets, classes: &Classes, c: usize) -> Edge<'p> {
    let routes = ps.routes_of(c);
    let partial = routes.len() < ps.entries.len();
    let sure = ps.entries.iter().any(|(_, set)| set.contains(c));
    let verdict = match (ps.every.contains(c), sure) {
        (true, _) => "allow",
        (false, true) => "partial",
        (false, false) => "depends",
    };
    let condition = edge_condition(ps, classes, c);
    let routes = if partial || condition.is_some() && verdict == "partial" { routes } else { Vec::new() };
    Edge { client: Some(c), partial, routes, condition, verdict }
}

/// The condition of class `c` on the port: alone when every route it may
/// use depends alike, else each prefixed with its route (the others are
/// allowed for sure).
fn edge_condition(ps: &PortSets, classes: &Classes, c: usize) -> Option<String> {
    if !ps.depends_on_place(c) {
        return None;
    }
    let mut found: Vec<(&str, String)> = Vec::new();
    for (i, (name, _)) in ps.entries.iter().enumerate() {
        if let Some(cond) = ps.condition(classes, i, c) {
            found.push((name, cond));
        }
    }
    let first = found.first().map(|(_, c)| c.clone())?;
    if found.len() == ps.routes_of(c).len() && found.iter().all(|(_, c)| *c == first) {
        return Some(first);
    }
    Some(found.iter().map(|(n, c)| format!("{n}: {c}")).collect::<Vec<_>>().join("; "))
}

/// A port's edges that say the same thing but for the client: `clients`
/// holds their classes, `edge` is the first (lowest) class's edge;
/// `clients: None` is the `*` edge.
pub struct Row<'p> {
    pub clients: Option<FixedBitSet>,
    pub edge: Edge<'p>,
}

/// [`edges`] grouped by (verdict, routes, condition): the rows of one port,
/// in the order of their lowest class, each with its classes. The same
/// rows as grouping the edges one class at a time, without deciding an
/// edge per class (a property test in `reach_properties` holds them equal).
pub fn rows<'p>(ps: &'p PortSets, classes: &Classes) -> Vec<Row<'p>> {
    if everyone_allowed(ps, classes) {
        return vec![Row { clients: None, edge: Edge::everyone() }];
    }
    let mut out: Vec<Row<'p>> = Vec::new();
    for (first, part) in alike_parts(ps, classes) {
        let edge = edge_of(ps, classes, first);
        match out.iter_mut().find(|r| r.edge.alike(&edge)) {
            Some(Row { clients: Some(clients), .. }) => clients.union_with(&part),
            _ => out.push(Row { clients: Some(part), edge }),
        }
    }
    out
}

/// The classes [`edges`] lists, split into parts whose classes every set
/// of the port holds alike, each with its lowest class, lowest first.
fn alike_parts(ps: &PortSets, classes: &Classes) -> Vec<(usize, FixedBitSet)> {
    let mut start = ps.any.clone();
    start.difference_with(classes.localhost());
    let mut parts = vec![start];
    for set in deciding_sets(ps) {
        parts = parts.into_iter().flat_map(|part| split(part, set)).collect();
    }
    let mut out: Vec<(usize, FixedBitSet)> =
        parts.into_iter().filter_map(|part| Some((part.ones().next()?, part))).collect();
    out.sort_unstable_by_key(|(first, _)| *first);
    out
}

/// The sets an edge's fields are decided by: per entry the classes allowed
/// for sure and those depending on the place, and where some depend, the
/// allowed classes at each place (their condition).
fn deciding_sets(ps: &PortSets) -> impl Iterator<Item = &FixedBitSet> {
    ps.entries.iter().zip(&ps.depends).zip(&ps.at).flat_map(|(((_, sure), depends), at)| {
        let places: &[FixedBitSet] = if depends.is_clear() { &[] } else { at };
        [sure, depends].into_iter().chain(places)
    })
}

/// `part` split into its classes in `set` and those not, the empty side left out.
fn split(mut part: FixedBitSet, set: &FixedBitSet) -> Vec<FixedBitSet> {
    let mut inside = part.clone();
    inside.intersect_with(set);
    if inside.is_clear() {
        return vec![part];
    }
    part.difference_with(set);
    if part.is_clear() { vec![inside] } else { vec![inside, part] }
}
