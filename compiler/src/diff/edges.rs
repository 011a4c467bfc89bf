//! Which edges a change opens and closes.
//!
//! Both sides place clients alike (`Addresses::shared`), so a client that
//! did not change is the same (address, TLS state) on both. Clients are
//! grouped by their pair of classes (base class, head class): a group
//! behaves alike on each side, so one bit test per side and route decides
//! for all its members.

use super::Sides;
use crate::query::classes::Classes;
use crate::query::matrix::{PortSets, port_sets, workloads_in};
use crate::query::reach::workload_label;
use crate::query::who::target_ports;
use mesh_proxy_api::Client;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Clients that behave alike on both sides; `None` where a side lacks them.
pub struct Group {
    pub base: Option<usize>,
    pub head: Option<usize>,
    pub members: Vec<String>,
    /// Every member changed (or exists on one side only). A group with one
    /// unchanged member gets the same verdict on both sides from any target
    /// whose config did not change, so only volatile groups need checking there.
    pub volatile: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    Opened,
    Closed,
}

/// One changed edge before grouping: which groups, which target and route.
pub struct RawChange {
    pub direction: Direction,
    pub groups: Vec<usize>,
    /// Every client group changed alike (report as "every client").
    pub everyone: bool,
    pub workload: String,
    pub namespace: String,
    pub port: u16,
    /// `HTTPRoute x`, `default:default`, `connection`, or `*` (nothing enforced).
    pub route: String,
    /// Where a side's verdict depends on the pod CIDR: that side's condition
    /// (`base: allow when …`, `head: allow when …`).
    pub condition: Option<String>,
}

type Sided<'c> = (Option<(usize, &'c Client)>, Option<(usize, &'c Client)>);

pub fn groups(s: &Sides) -> Vec<Group> {
    let mut labels: BTreeMap<&str, Sided> = BTreeMap::new();
    for c in &s.base_classes.classes {
        for m in &c.members {
            labels.entry(&m.label).or_default().0 = Some((c.id, &m.client));
        }
    }
    for c in &s.head_classes.classes {
        for m in &c.members {
            labels.entry(&m.label).or_default().1 = Some((c.id, &m.client));
        }
    }
    // (base class, head class) → (members, all of them changed)
    type Pair = (Option<usize>, Option<usize>);
    let mut by_pair: BTreeMap<Pair, (Vec<String>, bool)> = BTreeMap::new();
    for (label, (b, h)) in labels {
        let changed = match (b, h) {
            (Some((_, x)), Some((_, y))) => x != y,
            _ => true,
        };
        let entry = by_pair.entry((b.map(|x| x.0), h.map(|x| x.0))).or_insert((Vec::new(), true));
        entry.0.push(label.to_owned());
        entry.1 &= changed;
    }
    let localhost = |g: &(Option<usize>, Option<usize>)| {
        g.0.is_some_and(|c| s.base_classes.is_localhost(c)) || g.1.is_some_and(|c| s.head_classes.is_localhost(c))
    };
    by_pair
        .into_iter()
        .filter(|(pair, _)| !localhost(pair))
        .map(|((base, head), (members, volatile))| Group { base, head, members, volatile })
        .collect()
}

/// Targets (workload label → index) of one side, within the namespace filter.
fn targets(o: &crate::pipeline::Outcome, namespace: Option<&str>) -> HashMap<String, usize> {
    workloads_in(o, namespace).into_iter().map(|wi| (workload_label(o, wi), wi)).collect()
}

/// Every opened and closed edge, and how many allowed edges stayed.
/// Targets are independent: compared in parallel, kept in label order.
pub fn changes(s: &Sides, groups: &[Group], namespace: Option<&str>) -> (Vec<RawChange>, usize) {
    let base_targets = targets(s.base, namespace);
    let head_targets = targets(s.head, namespace);
    let labels: BTreeSet<&String> = base_targets.keys().chain(head_targets.keys()).collect();
    let all: Vec<usize> = (0..groups.len()).collect();
    let volatile: Vec<usize> = all.iter().copied().filter(|&g| groups[g].volatile).collect();
    // For targets whose config did not change: how many stable groups each base class stands for.
    let mut weights = vec![0usize; s.base_classes.len()];
    for g in groups.iter().filter(|g| !g.volatile) {
        if let Some(c) = g.base {
            weights[c] += 1;
        }
    }
    let check = Check { groups, all: &all, volatile: &volatile, weights: &weights };
    let labels: Vec<&String> = labels.into_iter().collect();
    let per_target: Vec<(Vec<RawChange>, usize)> = labels
        .par_iter()
        .map(|label| {
            let sides = (base_targets.get(*label).copied(), head_targets.get(*label).copied());
            target_changes(s, &check, label, sides)
        })
        .collect();
    let mut out = Vec::new();
    let mut unchanged = 0;
    for (changes, same) in per_target {
        out.extend(changes);
        unchanged += same;
    }
    (out, unchanged)
}

/// What every target compares against: the groups, which of them to
/// check where the config changed (all) or not (the volatile ones), and
/// the stable groups' weights per base class.
struct Check<'g> {
    groups: &'g [Group],
    all: &'g [usize],
    volatile: &'g [usize],
    weights: &'g [usize],
}

/// One target's changed edges and its unchanged allowed edges.
fn target_changes(
    s: &Sides,
    check: &Check,
    label: &str,
    (b, h): (Option<usize>, Option<usize>),
) -> (Vec<RawChange>, usize) {
    let mut ports: BTreeSet<u16> = BTreeSet::new();
    if let Some(wi) = b {
        ports.extend(target_ports(&s.base.resolved.workloads[wi], s.base.configs[wi].as_ref()));
    }
    if let Some(wi) = h {
        ports.extend(target_ports(&s.head.resolved.workloads[wi], s.head.configs[wi].as_ref()));
    }
    let namespace = label.split('/').nth(1).unwrap_or_default().to_owned();
    let same_config = matches!((b, h), (Some(x), Some(y)) if s.base.configs[x] == s.head.configs[y]);
    let mut out = Vec::new();
    let mut unchanged = 0;
    for port in ports {
        let bs = b.map(|wi| port_sets(s.base, &s.base_classes, wi, port));
        if same_config && check.volatile.is_empty() {
            // Every group has an unchanged member and the config is the
            // same: nothing here changed, and the head's sets are not needed.
            unchanged += stable_allowed(bs.as_ref(), check.weights);
            continue;
        }
        let hs = h.map(|wi| port_sets(s.head, &s.head_classes, wi, port));
        let sides = (bs.as_ref(), hs.as_ref());
        let (changed, same) = if same_config {
            let (changed, same) = port_changes(s, sides, check.groups, check.volatile);
            (changed, same + stable_allowed(bs.as_ref(), check.weights))
        } else {
            port_changes(s, sides, check.groups, check.all)
        };
        unchanged += same;
        for (direction, route, condition, groups_changed, everyone) in changed {
            out.push(RawChange {
                direction,
                groups: groups_changed,
                everyone,
                workload: label.to_owned(),
                namespace: namespace.clone(),
                port,
                route,
                condition,
            });
        }
    }
    (out, unchanged)
}

/// Edges of stable groups on a target whose config did not change: allowed
/// (or allowed depending on the pod CIDR, alike) on both sides.
fn stable_allowed(base: Option<&PortSets>, weights: &[usize]) -> usize {
    let count = |set: &fixedbitset::FixedBitSet| set.ones().map(|c| weights[c]).sum::<usize>();
    base.map_or(0, |b| {
        b.entries.iter().map(|(_, set)| count(set)).sum::<usize>() + b.depends.iter().map(count).sum::<usize>()
    })
}

/// `(direction, route, condition, groups, every group)`.
type PortChange = (Direction, String, Option<String>, Vec<usize>, bool);

/// How an edge changed, and the condition of the side that depends on the pod CIDR.
type ChangeKey = (Direction, Option<String>);

/// A class's verdict on one entry of one side.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Deny,
    /// Allowed only when the client pod is where the condition says.
    Depends(String),
    Allow,
}

fn state(sets: Option<&PortSets>, classes: &Classes, name: &str, class: Option<usize>) -> State {
    let (Some(sets), Some(c)) = (sets, class) else { return State::Deny };
    let Some(i) = sets.entries.iter().position(|(n, _)| n == name) else { return State::Deny };
    if sets.entries[i].1.contains(c) {
        return State::Allow;
    }
    sets.condition(classes, i, c).map_or(State::Deny, State::Depends)
}

/// How an edge changed: opened (more allowed on head), closed (less), with
/// the condition of the side whose verdict depends on the pod CIDR; `None`
/// when it did not change.
fn change(b: &State, h: &State) -> Option<ChangeKey> {
    let cond = |side: &str, c: &str| Some(format!("{side}: {c}"));
    match (b, h) {
        (State::Deny, State::Allow) => Some((Direction::Opened, None)),
        (State::Allow, State::Deny) => Some((Direction::Closed, None)),
        (State::Deny, State::Depends(c)) => Some((Direction::Opened, cond("head", c))),
        (State::Depends(c), State::Allow) => Some((Direction::Opened, cond("base", c))),
        (State::Allow, State::Depends(c)) => Some((Direction::Closed, cond("head", c))),
        (State::Depends(c), State::Deny) => Some((Direction::Closed, cond("base", c))),
        // Allowed in other parts of the pod CIDR: both opened and closed somewhere.
        (State::Depends(x), State::Depends(y)) if x != y => {
            Some((Direction::Opened, Some(format!("base: {x}; head: {y}"))))
        }
        _ => None,
    }
}

/// Per route (matched by name across sides), which of the `check`ed groups' verdict changed.
fn port_changes(
    s: &Sides,
    (base, head): (Option<&PortSets>, Option<&PortSets>),
    groups: &[Group],
    check: &[usize],
) -> (Vec<PortChange>, usize) {
    let mut names: Vec<&str> = Vec::new();
    for sets in [base, head].into_iter().flatten() {
        for (name, _) in &sets.entries {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let mut out = Vec::new();
    let mut same = 0;
    for name in names {
        // (direction, condition) → groups, in first-seen order.
        let mut changed: Vec<(ChangeKey, Vec<usize>)> = Vec::new();
        for &gi in check {
            let g = &groups[gi];
            let b = state(base, &s.base_classes, name, g.base);
            let h = state(head, &s.head_classes, name, g.head);
            match change(&b, &h) {
                None => same += usize::from(b != State::Deny),
                Some(key) => match changed.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, list)) => list.push(gi),
                    None => changed.push((key, vec![gi])),
                },
            }
        }
        changed.sort_by_key(|((d, _), _)| *d);
        for ((direction, condition), list) in changed {
            let everyone = list.len() == groups.len();
            out.push((direction, name.to_owned(), condition, list, everyone));
        }
    }
    (out, same)
}
