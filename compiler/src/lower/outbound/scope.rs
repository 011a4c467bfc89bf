//! Which Services each workload's config carries: those it can reach under
//! the inbound analysis (some pod behind the Service lets the workload in on
//! the Service's target port), plus those its namespace's consumer routes
//! name. Config size then follows a workload's real dependencies.

use crate::model::meta::IntOrString;
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::matrix::port_sets;
use fixedbitset::FixedBitSet;
use mesh_proxy_api::outbound::Outbound;
use rayon::prelude::*;
use std::collections::HashMap;

/// Fills `outbound` in every config of `o`.
pub fn complete(o: &mut Outcome) {
    let reach = reachable(o);
    let policy = &o.outbound;
    let workloads = &o.resolved.workloads;
    let outbound: Vec<Option<Outbound>> = o
        .configs
        .par_iter()
        .enumerate()
        .map(|(wi, c)| {
            c.as_ref()?;
            let ns = &workloads[wi].namespace;
            let mut services: Vec<usize> = reach[wi].clone();
            services.extend(policy.consumer_services(ns));
            let mut services: Vec<_> = services.into_iter().map(|si| policy.service_for(si, ns)).collect();
            services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            services.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
            Some(Outbound { services })
        })
        .collect();
    for (c, out) in o.configs.iter_mut().zip(outbound) {
        if let (Some(c), Some(out)) = (c.as_mut(), out) {
            c.outbound = out;
        }
    }
}

/// Per workload, the Services (indices) it can reach.
fn reachable(o: &Outcome) -> Vec<Vec<usize>> {
    let classes = Classes::derive(&o.resolved, &o.configs);
    let mut class_of = vec![None; o.resolved.workloads.len()];
    for c in &classes.classes {
        for m in &c.members {
            if let Some(wi) = m.workload {
                class_of[wi] = Some(c.id);
            }
        }
    }
    let p = &o.outbound;
    // Per Service, the client classes some backing pod admits on a target port.
    let mut by_ns: HashMap<&str, Vec<usize>> = HashMap::new();
    for (wi, w) in o.resolved.workloads.iter().enumerate() {
        by_ns.entry(w.namespace.as_str()).or_default().push(wi);
    }
    let allowed: Vec<Option<FixedBitSet>> =
        (0..p.service_count()).into_par_iter().map(|si| admitted(o, &classes, &by_ns, si)).collect();
    (0..o.resolved.workloads.len())
        .into_par_iter()
        .map(|wi| {
            let w = &o.resolved.workloads[wi];
            let Some(c) = class_of[wi] else { return Vec::new() };
            (0..p.service_count())
                .filter(|&si| match &allowed[si] {
                    Some(set) => set.contains(c),
                    // No selector: meshc cannot see its pods; same-namespace clients get it.
                    None => p.bases[si].svc.namespace == w.namespace,
                })
                .collect()
        })
        .collect()
}

fn admitted(o: &Outcome, classes: &Classes, by_ns: &HashMap<&str, Vec<usize>>, si: usize) -> Option<FixedBitSet> {
    let p = &o.outbound;
    let res = &o.resolved.resources[p.resources[si]];
    let crate::model::Spec::Service(spec) = &res.spec else { return None };
    let sel = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let mut set = FixedBitSet::with_capacity(classes.len());
    let ns = res.namespace();
    for &wi in by_ns.get(ns).map_or(&[][..], Vec::as_slice) {
        let w = &o.resolved.workloads[wi];
        if !sel.iter().all(|(k, v)| w.labels.get(k) == Some(v)) {
            continue;
        }
        for t in &p.bases[si].targets {
            let port = match t {
                IntOrString::Int(n) => u16::try_from(*n).ok(),
                IntOrString::Str(name) => w.ports.iter().find(|p| p.name.as_deref() == Some(name)).map(|p| p.port),
            };
            if let Some(port) = port {
                set.union_with(&port_sets(o, classes, wi, port).any);
            }
        }
    }
    Some(set)
}
