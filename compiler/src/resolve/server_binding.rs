//! Server ↔ pod port binding (§2.3, §2.4): a Server selects pods in its
//! namespace; a numeric port selects that port, a name every TCP
//! containerPort with that name. When two Servers claim one port, the
//! oldest (creationTimestamp, absent first) then the first by name wins.

use super::index::{Index, Kind};
use super::selector::{self, SelectorIndex};
use super::workload::Workload;
use crate::findings::{Code, Finding};
use crate::model::meta::PortRef;
use crate::model::policy::ServerSpec;
use crate::model::{Resource, Spec};
use crate::settings::version::{Feature, LinkerdVersion};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Default)]
pub struct Bindings {
    /// Per workload: port → Server resource index.
    pub ports: Vec<BTreeMap<u16, usize>>,
    /// Per Server: the workloads it selects.
    pub selected: HashMap<usize, Vec<usize>>,
}

pub fn bind(
    resources: &[Resource],
    index: &Index,
    workloads: &[Workload],
    version: LinkerdVersion,
    findings: &mut Vec<Finding>,
) -> Bindings {
    let mut out = Bindings { ports: Vec::with_capacity(workloads.len()), selected: HashMap::new() };
    let mut by_ns: HashMap<&str, Vec<usize>> = HashMap::new();
    for &s in index.all(Kind::Server) {
        by_ns.entry(resources[s].namespace()).or_default().push(s);
    }
    let by_ns: HashMap<&str, SelectorIndex<usize>> = by_ns
        .into_iter()
        .map(|(ns, mut list)| {
            list.sort_by_key(|&s| order_key(&resources[s]));
            let selectors = list.into_iter().map(|s| match &resources[s].spec {
                Spec::Server(spec) => (s, spec.pod_selector.as_ref()),
                _ => (s, None),
            });
            (ns, SelectorIndex::new(selectors))
        })
        .collect();
    let mut conflicts = BTreeSet::new();
    let mut named_hits: HashMap<usize, bool> = HashMap::new();
    for (wi, w) in workloads.iter().enumerate() {
        let mut claimed: BTreeMap<u16, usize> = BTreeMap::new();
        let candidates = by_ns.get(w.namespace.as_str()).map(|i| i.candidates(&w.labels)).unwrap_or_default();
        for s in candidates {
            let Spec::Server(spec) = &resources[s].spec else {
                continue;
            };
            let selects = spec.pod_selector.as_ref().is_some_and(|sel| selector::matches(sel, &w.labels));
            if !selects {
                continue;
            }
            out.selected.entry(s).or_default().push(wi);
            let ports = match spec.port.port() {
                Some(PortRef::Number(n)) => vec![n],
                Some(PortRef::Name(name)) => {
                    let ports: Vec<u16> =
                        w.ports.iter().filter(|p| p.name.as_deref() == Some(&name)).map(|p| p.port).collect();
                    *named_hits.entry(s).or_default() |= !ports.is_empty();
                    ports
                }
                None => Vec::new(),
            };
            for port in ports {
                match claimed.get(&port) {
                    Some(&winner) if winner != s => {
                        conflicts.insert((s, winner, wi, port));
                    }
                    _ => {
                        claimed.insert(port, s);
                    }
                }
            }
        }
        out.ports.push(claimed);
    }
    report_conflicts(resources, workloads, &conflicts, version, findings);
    report_unbound(resources, index, &out, &named_hits, findings);
    out
}

/// Before 2.18 the admission webhook refused a Server with the `port` of
/// another in its namespace when either selects every pod or both selectors
/// are equal (policy-controller `runtime/src/admission.rs`, `overlaps`, removed by #13676).
fn admission_rejects(a: &Resource, b: &Resource) -> bool {
    let (Spec::Server(x), Spec::Server(y)) = (&a.spec, &b.spec) else { return false };
    let all = |s: &ServerSpec| {
        s.pod_selector.as_ref().is_some_and(|p| p.match_labels.is_empty() && p.match_expressions.is_empty())
    };
    x.port == y.port && (all(x) || all(y) || x.pod_selector == y.pod_selector)
}

fn order_key(r: &Resource) -> (bool, Option<String>, String) {
    let ts = r.meta.creation_timestamp.clone();
    (ts.is_some(), ts, r.name().to_owned())
}

fn report_conflicts(
    resources: &[Resource],
    workloads: &[Workload],
    conflicts: &BTreeSet<(usize, usize, usize, u16)>,
    version: LinkerdVersion,
    findings: &mut Vec<Finding>,
) {
    // One finding per losing Server and port, naming the workloads affected.
    let mut grouped: BTreeMap<(usize, usize, u16), Vec<&str>> = BTreeMap::new();
    for &(loser, winner, wi, port) in conflicts {
        grouped.entry((loser, winner, port)).or_default().push(&workloads[wi].name);
    }
    for ((loser, winner, port), names) in grouped {
        let (l, w) = (&resources[loser], &resources[winner]);
        let (ln, wn, names) = (l.name(), w.name(), names.join(", "));
        let msg = if version.has(Feature::OverlappingServers) {
            format!(
                "Server {ln} and Server {wn} both select port {port} of {names}; Linkerd uses {wn} (oldest, then first by name) and ignores {ln} there"
            )
        } else if admission_rejects(l, w) {
            format!(
                "Server {ln} and Server {wn} both select port {port} of {names}; Linkerd {version} (before 2.18) rejects whichever of them is applied second (same port, and one selects every pod or both select alike): meshc analyses {wn}"
            )
        } else {
            format!(
                "Server {ln} and Server {wn} both select port {port} of {names}; Linkerd {version} (before 2.18) uses one of them in no fixed order, so which applies is not certain: meshc analyses {wn}"
            )
        };
        let f = Finding::new(Code::ServerConflict, l.span_at(&["spec", "podSelector"]), msg).resource(l.id.clone());
        findings.push(f.hint("give each pod port exactly one Server"));
    }
}

fn report_unbound(
    resources: &[Resource],
    index: &Index,
    b: &Bindings,
    named_hits: &HashMap<usize, bool>,
    findings: &mut Vec<Finding>,
) {
    for &s in index.all(Kind::Server) {
        let r = &resources[s];
        let Spec::Server(spec) = &r.spec else {
            continue;
        };
        if !b.selected.contains_key(&s) {
            if spec.pod_selector.is_none() {
                continue; // externalWorkloadSelector: VMs are not in the repository
            }
            let why = spec
                .pod_selector
                .as_ref()
                .and_then(selector::illegal_requirement)
                .map_or(String::new(), |w| format!(" ({w})"));
            let msg = format!(
                "Server {} selects no pod in namespace {}{why}: it enforces nothing, and policies targeting it grant nothing",
                r.name(),
                r.namespace()
            );
            findings.push(
                Finding::new(Code::ServerSelectsNothing, r.span_at(&["spec", "podSelector"]), msg)
                    .resource(r.id.clone()),
            );
            continue;
        }
        match spec.port.port() {
            Some(PortRef::Name(name)) if !named_hits.get(&s).copied().unwrap_or(false) => {
                let msg = format!(
                    "Server {} port `{name}` matches no TCP containerPort of the pods it selects; the port keeps its default policy and this Server's authorizations never apply",
                    r.name()
                );
                findings.push(
                    Finding::new(Code::ServerPortUnresolved, r.span_at(&["spec", "port"]), msg).resource(r.id.clone()),
                );
            }
            None => {
                let msg = format!("Server {} port `{}` is not a valid port number or name", r.name(), spec.port);
                findings.push(
                    Finding::new(Code::SchemaViolation, r.span_at(&["spec", "port"]), msg).resource(r.id.clone()),
                );
            }
            _ => {}
        }
    }
}
