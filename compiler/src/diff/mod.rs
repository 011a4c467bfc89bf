//! `meshc diff`: what a change does to reachability, findings and the
//! configs a rollout pushes, between two versions of a repository.

pub mod cause;
pub mod clusters;
pub mod edges;
pub mod egress;
pub mod render;
pub mod services;
pub mod traffic;

use crate::findings::Finding;
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::clients::Addresses;
use crate::query::reach::workload_label;
use cause::Cause;
use edges::{Direction, Group};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Both versions, with clients placed alike.
pub struct Sides<'o> {
    pub base: &'o Outcome,
    pub head: &'o Outcome,
    pub base_classes: Classes<'o>,
    pub head_classes: Classes<'o>,
}

impl<'o> Sides<'o> {
    pub fn new(base: &'o Outcome, head: &'o Outcome) -> Self {
        let (b, h) = Addresses::shared((&base.resolved, &base.configs), (&head.resolved, &head.configs));
        // The head's members that are the base's clients take their
        // signatures from the base's classes (`Classes::derive_reusing`).
        let base_classes = Classes::derive_at(&base.resolved, &base.configs, b);
        let head_classes = Classes::derive_reusing(&head.resolved, &head.configs, h, &base_classes);
        Sides { base_classes, head_classes, base, head }
    }
}

/// Drops what the comparison does not read of a side once it is loaded:
/// its files' text (findings and proofs name a file and a line; resolving
/// and analysing read names; only SARIF quotes the head's text).
pub fn drop_texts(sources: &mut [crate::load::discover::Source]) {
    sources.iter_mut().for_each(|s| s.text = String::new());
}

#[derive(Clone, Debug, Serialize)]
pub struct ClientGroup {
    /// The first member, or `every client`.
    pub label: String,
    pub members: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub workload: String,
    pub port: u16,
}

#[derive(Clone, Debug, Serialize)]
pub struct EdgeChange {
    pub client: ClientGroup,
    pub target: Target,
    #[serde(skip)]
    pub namespace: String,
    /// The route, `connection` (TCP), or `*` (nothing enforced on the port).
    pub route: String,
    /// What the route matches, in words (`POST path /items*`), from the side that has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// When a side's verdict depends on the pod CIDR (git does not hold
    /// it): `base: allow when …` and/or `head: allow when …`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    pub cause: Option<Cause>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FindingChange {
    pub code: &'static str,
    pub severity: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub file: String,
    pub line: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigChange {
    pub workload: String,
    /// FNV-1a 64 of the config's JSON; absent where the workload has no config.
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Diff {
    pub opened: Vec<EdgeChange>,
    pub closed: Vec<EdgeChange>,
    pub unchanged: usize,
    /// Egress edges (`matrix` JSON `egress`) opened and closed, per fact.
    pub egress_opened: Vec<egress::EgressChange>,
    pub egress_closed: Vec<egress::EgressChange>,
    /// Client → Service edges (`matrix --services`) opened and closed; only
    /// with `diff --services` (`services_compared`).
    pub services_compared: bool,
    pub services_opened: Vec<services::ServiceEdgeChange>,
    pub services_closed: Vec<services::ServiceEdgeChange>,
    pub findings: FindingChanges,
    pub configs_changed: Vec<ConfigChange>,
}

#[derive(Debug, Default, Serialize)]
pub struct FindingChanges {
    pub introduced: Vec<FindingChange>,
    pub fixed: Vec<FindingChange>,
}

pub fn diff(s: &Sides, namespace: Option<&str>) -> Diff {
    let groups = edges::groups(s);
    let (raw, unchanged) = edges::changes(s, &groups, namespace);
    let mut d = Diff { unchanged, ..Diff::default() };
    for c in &raw {
        // Proven for the first group only: a namespace flip changes thousands of
        // edges, and the groups of one (target, route, direction) nearly always
        // flipped for one reason. Each edge still lists its own clients.
        let cause = c.groups.first().and_then(|&g| cause::cause(s, &groups[g], c));
        let (first, second) = if c.direction == Direction::Opened { (s.head, s.base) } else { (s.base, s.head) };
        let matches = route_matches(first, c).or_else(|| route_matches(second, c));
        let target = Target { workload: c.workload.clone(), port: c.port };
        let list = if c.direction == Direction::Opened { &mut d.opened } else { &mut d.closed };
        let clients: Vec<ClientGroup> = if c.everyone {
            vec![ClientGroup { label: "every client".to_owned(), members: Vec::new() }]
        } else {
            c.groups.iter().map(|&g| client_group(&groups[g])).collect()
        };
        for client in clients {
            list.push(EdgeChange {
                client,
                target: target.clone(),
                namespace: c.namespace.clone(),
                route: c.route.clone(),
                matches: matches.clone(),
                condition: c.condition.clone(),
                cause: cause.clone(),
            });
        }
    }
    (d.egress_opened, d.egress_closed) = egress::changes(s, namespace);
    d.findings = finding_changes(s.base, s.head);
    d.configs_changed = config_changes(s.base, s.head, namespace);
    d
}

/// The rules of the changed route in words, looked up in one side's config.
fn route_matches(o: &Outcome, c: &edges::RawChange) -> Option<String> {
    use crate::query::evaluate::route_meta;
    use crate::query::proof::{route_count, route_name, rule_texts};
    let wi = crate::query::workload_ref::find(&o.resolved, &c.workload).ok()?;
    let mesh_proxy_api::PortPolicy::Server(server) = o.configs[wi].as_ref()?.inbound.lookup(c.port) else {
        return None;
    };
    let ri = (0..route_count(server)).find(|&ri| route_name(route_meta(server, ri)) == c.route)?;
    Some(rule_texts(server, ri).join(" | "))
}

fn client_group(g: &Group) -> ClientGroup {
    let label = match g.members.len() {
        1 => g.members[0].clone(),
        n => format!("{} (+{} more)", g.members[0], n - 1),
    };
    ClientGroup { label, members: g.members.clone() }
}

fn finding_key(f: &Finding) -> (&'static str, Option<String>, &str) {
    (f.code.as_str(), f.resource.as_ref().map(ToString::to_string), f.message.as_str())
}

fn finding_change(o: &Outcome, f: &Finding) -> FindingChange {
    FindingChange {
        code: f.code.as_str(),
        severity: f.severity.as_str(),
        message: f.message.clone(),
        resource: f.resource.as_ref().map(ToString::to_string),
        file: o.sources.get(f.span.source as usize).map_or_else(String::new, |s| s.name.clone()),
        line: f.span.line,
    }
}

/// Findings by code, resource and message: line moves alone change nothing.
fn finding_changes(base: &Outcome, head: &Outcome) -> FindingChanges {
    let b: BTreeSet<_> = base.findings.iter().map(finding_key).collect();
    let h: BTreeSet<_> = head.findings.iter().map(finding_key).collect();
    FindingChanges {
        introduced: head
            .findings
            .iter()
            .filter(|f| !b.contains(&finding_key(f)))
            .map(|f| finding_change(head, f))
            .collect(),
        fixed: base.findings.iter().filter(|f| !h.contains(&finding_key(f))).map(|f| finding_change(base, f)).collect(),
    }
}

/// A stable digest of a config (the rollout pushes exactly these bytes' meaning).
pub fn config_hash(c: &mesh_proxy_api::ProxyConfig) -> String {
    let bytes = serde_json::to_vec(c).expect("config serializes");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn configs_by_label<'o>(
    o: &'o Outcome,
    namespace: Option<&str>,
) -> BTreeMap<String, Option<&'o mesh_proxy_api::ProxyConfig>> {
    crate::query::matrix::workloads_in(o, namespace)
        .into_iter()
        .map(|wi| (workload_label(o, wi), o.configs[wi].as_ref()))
        .collect()
}

/// Configs compared by value; only those that differ are hashed.
fn config_changes(base: &Outcome, head: &Outcome, namespace: Option<&str>) -> Vec<ConfigChange> {
    let (b, h) = (configs_by_label(base, namespace), configs_by_label(head, namespace));
    let names: BTreeSet<&String> = b.keys().chain(h.keys()).collect();
    names
        .into_iter()
        .filter_map(|w| {
            let (before, after) = (b.get(w).copied().flatten(), h.get(w).copied().flatten());
            (before != after).then(|| ConfigChange {
                workload: w.clone(),
                before: before.map(config_hash),
                after: after.map(config_hash),
            })
        })
        .collect()
}
