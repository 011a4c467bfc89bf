//! What invariants range over, computed once per repository and only when
//! an expression first needs it: the targets (workload ports) and, per
//! target, which client classes each route admits.
//!
//! Allowed classes are kept as sorted class-id lists rather than bitsets, and
//! equal lists are shared: the 10,000-workload benchmark has 35 million
//! class-route edges on 35,000 routes, but only 19,000 distinct lists
//! holding 100,000 ids, since most routes admit "everyone", "this
//! namespace" or "these two clients". Shared lists are also what lets the
//! edge walk (`edges.rs`) look at a list once per invariant.

use super::trie::FxSet;
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::matrix::port_sets;
use crate::query::who::target_ports;
use crate::resolve::index::{Kind, kind_of};
use std::sync::{Arc, Mutex, OnceLock};

/// A workload port meshc answers for (see [`target_ports`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetRef {
    pub workload: u32,
    pub port: u16,
}

/// Who gets through one port: per route (or connection, or `*` when nothing
/// is enforced), the allowed classes in ascending order, localhost aside. Equal lists are
/// one allocation (see [`Tables::intern`]).
#[derive(Debug, Default)]
pub struct PortEdges {
    pub entries: Vec<(String, Arc<[u32]>)>,
}

impl PortEdges {
    pub fn admits(&self, class: u32) -> bool {
        self.entries.iter().any(|(_, cs)| cs.binary_search(&class).is_ok())
    }

    /// Admitted on some route of the port but not on all of them.
    pub fn partial(&self, class: u32) -> bool {
        let n = self.entries.iter().filter(|(_, cs)| cs.binary_search(&class).is_ok()).count();
        n > 0 && n < self.entries.len()
    }

    /// Classes admitted on at least one route, ascending.
    pub fn any(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.entries.iter().flat_map(|(_, cs)| cs.iter().copied()).collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

pub struct Targets {
    pub list: Vec<TargetRef>,
    /// Per workload, its targets' range in `list`.
    pub by_workload: Vec<(u32, u32)>,
}

/// Resources by the list they appear in.
#[derive(Default)]
pub struct ResourceLists {
    pub servers: Vec<u32>,
    pub routes: Vec<u32>,
    pub policies: Vec<u32>,
}

/// One egress edge (`query::matrix_egress`): a client class, the client
/// namespace it holds for, and a fact of that namespace's egress policy.
pub struct EgressEdge {
    pub class: u32,
    pub namespace: String,
    pub outcome: Arc<crate::query::matrix_egress::EgressOutcome>,
}

/// Which edges a verdict that depends on the pod CIDR counts as: an
/// invariant is evaluated without them, and, if it met any, again with
/// them; where the two answers differ, the answer depends on the pod CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// Only edges allowed wherever a client pod is.
    Definite,
    /// Also edges allowed only in some part of the pod CIDR.
    Possible,
}

pub struct Tables<'o> {
    pub o: &'o Outcome,
    pub classes: &'o Classes<'o>,
    pub world: World,
    /// Whether some value read so far depends on the pod CIDR.
    depends_seen: std::sync::atomic::AtomicBool,
    targets: OnceLock<Targets>,
    sets: OnceLock<Vec<OnceLock<PortEdges>>>,
    resources: OnceLock<ResourceLists>,
    egress: OnceLock<Vec<EgressEdge>>,
    /// Per class field, then per target field: each item's value, interned
    /// (see `edges.rs`); shared by every invariant.
    field_ids: Vec<OnceLock<Vec<u32>>>,
    lists: Mutex<FxSet<Arc<[u32]>>>,
    localhost: OnceLock<Vec<usize>>,
}

impl<'o> Tables<'o> {
    pub fn new(o: &'o Outcome, classes: &'o Classes<'o>, world: World) -> Self {
        let n_fields = super::fields::CLASS_FIELDS.len() + super::fields::TARGET_FIELDS.len();
        Tables {
            o,
            classes,
            world,
            depends_seen: std::sync::atomic::AtomicBool::new(false),
            targets: OnceLock::new(),
            sets: OnceLock::new(),
            resources: OnceLock::new(),
            egress: OnceLock::new(),
            field_ids: (0..n_fields).map(|_| OnceLock::new()).collect(),
            lists: Mutex::default(),
            localhost: OnceLock::new(),
        }
    }

    pub fn targets(&self) -> &Targets {
        self.targets.get_or_init(|| {
            let mut list = Vec::new();
            let mut by_workload = Vec::with_capacity(self.o.resolved.workloads.len());
            for (wi, w) in self.o.resolved.workloads.iter().enumerate() {
                let start = list.len() as u32;
                let ports = target_ports(w, self.o.configs[wi].as_ref());
                list.extend(ports.into_iter().map(|port| TargetRef { workload: wi as u32, port }));
                by_workload.push((start, list.len() as u32));
            }
            Targets { list, by_workload }
        })
    }

    /// The id of `wi:port` in [`Tables::targets`], if it is one.
    pub fn target_id(&self, wi: usize, port: u16) -> Option<u32> {
        let t = self.targets();
        let (start, end) = *t.by_workload.get(wi)?;
        (start..end).find(|&i| t.list[i as usize].port == port)
    }

    fn slots(&self) -> &[OnceLock<PortEdges>] {
        self.sets.get_or_init(|| (0..self.targets().list.len()).map(|_| OnceLock::new()).collect())
    }

    /// The allowed classes of target `id`, computed on first use.
    pub fn edges_of(&self, id: u32) -> &PortEdges {
        let t = self.targets().list[id as usize];
        self.slots()[id as usize].get_or_init(|| self.compute(t.workload as usize, t.port))
    }

    /// Every target's allowed classes, computed in parallel where missing:
    /// iterating all edges needs all of them. On threads of its own, not
    /// rayon's: a caller may be checking invariants on every rayon worker,
    /// each blocked on its evaluation thread, which would then wait forever
    /// for a worker.
    pub fn all_edges(&self) -> &[OnceLock<PortEdges>] {
        let slots = self.slots();
        if slots.iter().all(|s| s.get().is_some()) {
            return slots;
        }
        let list = &self.targets().list;
        let fill = |slots: &[OnceLock<PortEdges>], targets: &[TargetRef]| {
            for (slot, t) in slots.iter().zip(targets) {
                slot.get_or_init(|| self.compute(t.workload as usize, t.port));
            }
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let chunk = list.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (slots, targets) in slots.chunks(chunk).zip(list.chunks(chunk)) {
                let spawned = std::thread::Builder::new().spawn_scoped(s, move || fill(slots, targets));
                if spawned.is_err() {
                    fill(slots, targets);
                }
            }
        });
        slots
    }

    /// Allowed classes of any workload port, listed as a target or not.
    pub fn compute(&self, wi: usize, port: u16) -> PortEdges {
        let sets = port_sets(self.o, self.classes, wi, port);
        let localhost = self.localhost();
        let entries = sets.entries.into_iter().zip(sets.depends).map(|((name, mut set), maybe)| {
            if !maybe.is_clear() {
                self.saw_depends();
                if self.world == World::Possible {
                    set.union_with(&maybe);
                }
            }
            localhost.iter().for_each(|&c| set.set(c, false));
            (name, self.intern(set.ones().map(|c| c as u32).collect()))
        });
        PortEdges { entries: entries.collect() }
    }

    /// Records that a value read depends on the pod CIDR.
    pub fn saw_depends(&self) {
        self.depends_seen.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether some value read so far depended on the pod CIDR.
    pub fn depends_seen(&self) -> bool {
        self.depends_seen.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a verdict allowed at some of a pod's places counts as allowed here.
    pub fn counts(&self, allowed_at: &[bool]) -> bool {
        if allowed_at.iter().all(|a| *a) {
            return true;
        }
        if allowed_at.iter().any(|a| *a) {
            self.saw_depends();
            return self.world == World::Possible;
        }
        false
    }

    /// The classes that are only the pod itself: every proxy admits them,
    /// and, as in `meshc matrix`, that is no edge.
    pub fn localhost(&self) -> &[usize] {
        self.localhost.get_or_init(|| (0..self.classes.len()).filter(|&c| self.classes.is_localhost(c)).collect())
    }

    /// The shared allocation of a list equal to `list`.
    fn intern(&self, list: Vec<u32>) -> Arc<[u32]> {
        let Ok(mut lists) = self.lists.lock() else { return list.into() };
        if let Some(shared) = lists.get(list.as_slice()) {
            return Arc::clone(shared);
        }
        let shared: Arc<[u32]> = list.into();
        lists.insert(Arc::clone(&shared));
        shared
    }

    /// The cached ids of field slot `i`, computed by `compute` on first use.
    pub fn field_ids(&self, i: usize, compute: impl FnOnce() -> Vec<u32>) -> &[u32] {
        self.field_ids[i].get_or_init(compute)
    }

    pub fn resources(&self) -> &ResourceLists {
        self.resources.get_or_init(|| {
            let mut out = ResourceLists::default();
            for (i, r) in self.o.resolved.resources.iter().enumerate() {
                let list = match kind_of(r) {
                    Kind::Server => &mut out.servers,
                    Kind::PolicyHttpRoute | Kind::GatewayHttpRoute | Kind::GrpcRoute => &mut out.routes,
                    Kind::AuthorizationPolicy | Kind::ServerAuthorization | Kind::MeshTls | Kind::NetworkAuthn => {
                        &mut out.policies
                    }
                    _ => continue,
                };
                list.push(i as u32);
            }
            out
        })
    }

    /// Every egress edge, by class, then client namespace (workloads
    /// without a proxy last within a class), then fact.
    pub fn egress(&self) -> &[EgressEdge] {
        self.egress.get_or_init(|| {
            use crate::query::matrix_egress::{EgressOutcome, namespace_facts, no_proxy};
            use std::collections::{BTreeSet, HashMap};
            let o = self.o;
            let mut seen: BTreeSet<(u32, bool, &str)> = BTreeSet::new();
            for c in &self.classes.classes {
                for w in c.members.iter().filter_map(|m| m.workload.map(|wi| &o.resolved.workloads[wi])) {
                    seen.insert((c.id as u32, !w.is_meshed(), w.namespace.as_str()));
                }
            }
            let mut facts: HashMap<&str, Vec<Arc<EgressOutcome>>> = HashMap::new();
            let unproxied: Arc<EgressOutcome> = Arc::new(no_proxy());
            let mut out = Vec::new();
            for (class, unmeshed, ns) in seen {
                let list = if unmeshed {
                    vec![unproxied.clone()]
                } else {
                    facts
                        .entry(ns)
                        .or_insert_with(|| {
                            namespace_facts(&o.outbound.egress.for_namespace(ns)).into_iter().map(Arc::new).collect()
                        })
                        .clone()
                };
                out.extend(list.into_iter().map(|outcome| EgressEdge { class, namespace: ns.to_owned(), outcome }));
            }
            out
        })
    }
}
