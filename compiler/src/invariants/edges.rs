//! `edges.all(e, P)` without evaluating P on every edge.
//!
//! A large repository has millions of class-level edges, and the interpreter
//! takes microseconds per predicate. Edges are walked in list order, and P
//! is evaluated only on an edge that differs from every edge before it in
//! something P reads:
//!
//! - within one route of one target, classes that agree on every client
//!   field P's text selects ([`Uses`]) get the same answer, so only the
//!   first of each such group is looked at;
//! - that one is looked up in a decision tree of the values P read on the
//!   edges evaluated so far ([`Trie`]), by reading the edge's values
//!   natively; only a path never seen evaluates P, on a [`Tracked`] edge
//!   that records its reads.
//!
//! CEL is pure, so an edge equal to an evaluated one on everything P read
//! gets its answer; the first edge that fails is still found, as edges are
//! visited in order. When P uses `e` itself (passes it to a function,
//! compares it), every edge is evaluated.

use super::deps::Uses;
use super::driver::{Counterexample, Cx, Failure, Quantifier, counterexample, decides};
use super::fields::{self, Item};
use super::tables::{PortEdges, Tables};
use super::tracked::{Read, Side, Tracked, What, fields_of};
use super::trie::{FxMap, FxSet, Trie};
use super::values::{Record, render};
use std::collections::HashMap;
use std::sync::Arc;

/// How the edges of one side (client or target) are told apart.
enum Key {
    /// P reads nothing of this side.
    Same,
    /// P reads this side whole: each class or target is its own group.
    Each,
    /// P reads these fields.
    Fields(Vec<String>),
}

impl Key {
    fn of(uses: Option<&Uses>) -> Key {
        match uses {
            None => Key::Same,
            Some(u) if u.whole => Key::Each,
            Some(u) => Key::Fields(u.fields.keys().cloned().collect()),
        }
    }

    /// A group id for each class (`side` client) or target.
    fn groups(&self, t: &Tables, side: Side) -> Vec<u32> {
        let n = if side == Side::Client { t.classes.len() } else { t.targets().list.len() };
        match self {
            Key::Same => vec![0; n],
            Key::Each => (0..n as u32).collect(),
            Key::Fields(fs) => {
                let slots: Vec<&[u32]> = fs.iter().filter_map(|f| field_slot(side, f)).map(|i| ids(t, i)).collect();
                let mut groups: HashMap<Vec<u32>, u32> = HashMap::new();
                (0..n)
                    .map(|i| {
                        let key: Vec<u32> = slots.iter().map(|s| s[i]).collect();
                        let next = groups.len() as u32;
                        *groups.entry(key).or_insert(next)
                    })
                    .collect()
            }
        }
    }
}

/// The cache slot of a client or target field in [`Tables::field_ids`].
fn field_slot(side: Side, f: &str) -> Option<usize> {
    let i = fields_of(side).iter().position(|x| *x == f)?;
    match side {
        Side::Client => Some(i),
        Side::Target => Some(fields::CLASS_FIELDS.len() + i),
        Side::Edge => None,
    }
}

/// Each class's (target's) value of the field in `slot`, interned.
fn ids<'t>(t: &'t Tables, slot: usize) -> &'t [u32] {
    t.field_ids(slot, || {
        let (n, side, f) = match slot.checked_sub(fields::CLASS_FIELDS.len()) {
            None => (t.classes.len(), Side::Client, slot),
            Some(f) => (t.targets().list.len(), Side::Target, f),
        };
        let field = fields_of(side)[f];
        let mut interned: HashMap<String, u32> = HashMap::new();
        (0..n as u32)
            .map(|i| {
                let item = if side == Side::Client { Item::Class(i) } else { target_item(t, i) };
                let key = field_key(t, item, field);
                let next = interned.len() as u32;
                *interned.entry(key).or_insert(next)
            })
            .collect()
    })
}

/// The value of `f` on `item`, written out; an absent field is `?`, which
/// no written value is.
fn field_key(t: &Tables, item: Item, f: &str) -> String {
    let value = if item.has(t, f) { fields::field(t, item, f).map(|v| render(v.as_ref(), usize::MAX)) } else { None };
    value.unwrap_or_else(|| "?".to_owned())
}

/// What P said on an edge.
#[derive(Clone)]
enum Answer {
    /// The edge does not decide the quantifier: look further.
    Continues,
    Decides,
    Error(Failure),
}

fn edge_field(name: &str) -> What {
    let i = fields::EDGE_FIELDS.iter().position(|f| *f == name).unwrap_or(0);
    What::Field(i as u8)
}

/// The edge being looked at.
struct At {
    class: u32,
    target: u32,
    entry: u32,
}

/// An edge's values for the tree's reads, as small integers.
struct Values<'t> {
    t: &'t Tables<'t>,
    routes: HashMap<&'t str, u64>,
    /// The current route's id in `routes`, once asked for.
    route: Option<u64>,
    /// For the current target: on how many routes each class is allowed.
    counts: Vec<u16>,
    entries: usize,
}

impl<'t> Values<'t> {
    fn new(t: &'t Tables<'t>) -> Self {
        Values { t, routes: HashMap::new(), route: None, counts: vec![0; t.classes.len()], entries: 0 }
    }

    /// Prepares `partial` for a target's edges (and undoes it with `add = false`).
    fn count(&mut self, edges: &PortEdges, add: bool) {
        for (_, classes) in &edges.entries {
            for &c in classes.iter() {
                self.counts[c as usize] = if add { self.counts[c as usize] + 1 } else { 0 };
            }
        }
        self.entries = if add { edges.entries.len() } else { 0 };
    }

    fn value(&mut self, read: Read, at: &At) -> u64 {
        let t = self.t;
        match read {
            (Side::Client, What::Field(f)) => u64::from(ids(t, usize::from(f))[at.class as usize]),
            (Side::Target, What::Field(f)) => {
                u64::from(ids(t, fields::CLASS_FIELDS.len() + usize::from(f))[at.target as usize])
            }
            (Side::Edge, What::Field(f)) => match fields_of(Side::Edge)[f as usize] {
                "route" => *self.route.get_or_insert_with(|| {
                    let name = t.edges_of(at.target).entries[at.entry as usize].0.as_str();
                    let next = self.routes.len() as u64;
                    *self.routes.entry(name).or_insert(next)
                }),
                "partial" if self.entries > 0 => {
                    let n = usize::from(self.counts[at.class as usize]);
                    u64::from(n < self.entries)
                }
                "partial" => u64::from(t.edges_of(at.target).partial(at.class)),
                _ => 0,
            },
            (Side::Client, What::Id) => u64::from(at.class),
            (Side::Target, What::Id) => u64::from(at.target),
            // Never memoized (see `Walk::answer`): each edge is its own.
            (Side::Edge, What::Id) => 0,
            (Side::Client, What::Keys) => u64::from(Item::Class(at.class).has(t, "labels")),
            (_, What::Keys) => 0,
        }
    }
}

fn target_item(t: &Tables, id: u32) -> Item {
    let r = t.targets().list[id as usize];
    Item::Target { workload: r.workload, port: r.port }
}

struct Walk<'a, 'c, 'p, 'v> {
    q: &'a Quantifier<'a>,
    cx: &'a Cx<'c, 'p, 'v>,
    /// Every edge on its own: P uses `e` itself.
    each: bool,
    partial: bool,
    route: bool,
    /// Each class's group: classes P's text cannot tell apart.
    clients: Vec<u32>,
    /// Each target's group, likewise.
    targets: Vec<u32>,
    /// Per class list (by allocation), the first class of each group in it.
    firsts: FxMap<usize, Arc<[u32]>>,
    /// Routes already walked, as (target group, route, class list): an equal
    /// one has the same answers.
    done: FxSet<(u32, u64, usize)>,
    /// Per group (and `partial` bit): the route it was last looked at on.
    seen: Vec<u32>,
    stamp: u32,
    trie: Trie<Answer>,
    values: Values<'v>,
    pending: Option<Failure>,
}

/// The first edge that decides `q` (see [`Quantifier::decides`]).
pub fn search(q: &Quantifier, cx: &Cx) -> Result<Option<Counterexample>, Failure> {
    let uses = Uses::of(q.pred, q.var);
    let t = cx.t;
    t.all_edges();
    let clients = Key::of(uses.field("client")).groups(t, Side::Client);
    let n_groups = clients.iter().max().map_or(0, |m| *m as usize + 1);
    let mut w = Walk {
        q,
        cx,
        each: uses.whole,
        partial: uses.field("partial").is_some(),
        route: uses.field("route").is_some(),
        clients,
        targets: Key::of(uses.field("target")).groups(t, Side::Target),
        firsts: FxMap::default(),
        done: FxSet::default(),
        seen: vec![0; 2 * n_groups],
        stamp: 0,
        trie: Trie::new(),
        values: Values::new(t),
        pending: None,
    };
    for target in 0..t.targets().list.len() as u32 {
        if let Some(found) = w.target(target) {
            return Ok(Some(found));
        }
    }
    w.pending.map_or(Ok(None), Err)
}

impl Walk<'_, '_, '_, '_> {
    /// Walks the edges of one target, up to one that decides.
    fn target(&mut self, target: u32) -> Option<Counterexample> {
        let edges = self.cx.t.edges_of(target);
        // Where every route admits the same classes, no edge is partial.
        let uniform = edges.entries.windows(2).all(|w| Arc::ptr_eq(&w[0].1, &w[1].1));
        if self.each || (self.partial && !uniform) {
            return self.every_edge(target, edges);
        }
        for (entry, (_, classes)) in edges.entries.iter().enumerate() {
            self.values.route = None;
            let at = |class| At { class, target, entry: entry as u32 };
            let route = if self.route { self.values.value((Side::Edge, edge_field("route")), &at(0)) } else { 0 };
            let list = Arc::as_ptr(classes) as *const u32 as usize;
            if !self.done.insert((self.targets[target as usize], route, list)) {
                continue;
            }
            for &class in self.firsts_of(classes).iter() {
                if let Some(found) = self.look(&at(class)) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The first class of each group in `classes`, in order.
    fn firsts_of(&mut self, classes: &Arc<[u32]>) -> Arc<[u32]> {
        let key = Arc::as_ptr(classes) as *const u32 as usize;
        if let Some(f) = self.firsts.get(&key) {
            return Arc::clone(f);
        }
        self.stamp += 1;
        let mut firsts = Vec::new();
        for &class in classes.iter() {
            let group = 2 * self.clients[class as usize] as usize;
            if self.seen[group] != self.stamp {
                self.seen[group] = self.stamp;
                firsts.push(class);
            }
        }
        let firsts: Arc<[u32]> = firsts.into();
        self.firsts.insert(key, Arc::clone(&firsts));
        firsts
    }

    /// Every edge of the target, with its `partial` bit, or each evaluated
    /// when P uses `e` itself.
    fn every_edge(&mut self, target: u32, edges: &PortEdges) -> Option<Counterexample> {
        if self.partial {
            self.values.count(edges, true);
        }
        let found = self.every_entry(target, edges);
        if self.partial {
            self.values.count(edges, false);
        }
        found
    }

    fn every_entry(&mut self, target: u32, edges: &PortEdges) -> Option<Counterexample> {
        for (entry, (_, classes)) in edges.entries.iter().enumerate() {
            self.stamp += 1;
            self.values.route = None;
            for &class in classes.iter() {
                let mut group = 2 * self.clients[class as usize] as usize;
                if self.partial && usize::from(self.values.counts[class as usize]) < edges.entries.len() {
                    group += 1;
                }
                if !self.each {
                    if self.seen[group] == self.stamp {
                        continue;
                    }
                    self.seen[group] = self.stamp;
                }
                let at = At { class, target, entry: entry as u32 };
                if let Some(found) = self.look(&at) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The counterexample, when this edge decides.
    fn look(&mut self, at: &At) -> Option<Counterexample> {
        match self.answer(at) {
            Answer::Continues => None,
            Answer::Decides => {
                let t: &Tables = self.cx.t;
                let record = Record { t, item: Item::Edge { class: at.class, target: at.target, entry: at.entry } };
                Some(counterexample(self.q, self.cx, &record))
            }
            Answer::Error(e) => {
                self.pending.get_or_insert(e);
                None
            }
        }
    }

    fn answer(&mut self, at: &At) -> Answer {
        let edge = Item::Edge { class: at.class, target: at.target, entry: at.entry };
        let t: &Tables = self.cx.t;
        if self.each {
            return evaluate(self.q, self.cx, Box::new(Record { t, item: edge }));
        }
        let values = &mut self.values;
        let miss = match self.trie.walk(|r| values.value(r, at)) {
            Ok(answer) => return answer,
            Err(miss) => miss,
        };
        let log = self.cx.log;
        log.clear();
        let answer =
            evaluate(self.q, self.cx, Box::new(Tracked { rec: Record { t, item: edge }, side: Side::Edge, log }));
        let reads = log.distinct();
        // An edge compared as a whole has no equal: nothing to share.
        if !reads.contains(&(Side::Edge, What::Id)) {
            self.trie.insert(miss, &reads, answer.clone(), |r| values.value(r, at));
        }
        answer
    }
}

fn evaluate<'v>(q: &Quantifier, cx: &Cx<'_, '_, 'v>, edge: Box<dyn cel::common::value::Val + 'v>) -> Answer {
    match decides(q, cx, edge) {
        Ok(false) => Answer::Continues,
        Ok(true) => Answer::Decides,
        Err(e) => Answer::Error(e),
    }
}
