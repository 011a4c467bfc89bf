//! Resolution: from typed resources to what Linkerd's injector, policy
//! controller and status controller would compute for each pod.

pub mod authn;
pub mod authz;
pub mod defaults;
pub mod egress;
pub mod index;
pub mod ports;
pub mod ratelimit;
pub mod routes;
pub mod selector;
pub mod server_binding;
pub mod unknown;
pub mod versions;
pub mod workload;

use crate::findings::Finding;
use crate::model::{Resource, Spec};
use crate::settings::Settings;
use index::{Index, Kind};
use std::collections::BTreeMap;
use workload::{NamespaceInfo, Workload};

pub struct Resolved {
    pub settings: Settings,
    /// Winning definitions only (duplicates removed), in input order.
    pub resources: Vec<Resource>,
    pub index: Index,
    pub workloads: Vec<Workload>,
    pub bindings: server_binding::Bindings,
    pub routes: routes::Attached,
    pub granted: authz::Granted,
    /// Objects holding Flux variables left without a value (set by the
    /// pipeline from what the loader substituted).
    pub unknown_values: Vec<crate::load::flux::UnknownValues>,
    pub rate_limits: ratelimit::RateLimits,
}

pub fn resolve(
    resources: Vec<Resource>,
    settings: Settings,
    sources: &[String],
    findings: &mut Vec<Finding>,
) -> Resolved {
    let (resources, index) = index::build(resources, sources, findings);
    for &n in index.all(Kind::Namespace) {
        workload::check_namespace(&resources[n], findings);
    }
    let workloads = derive_workloads(&resources, &index, &settings, findings);
    let bindings = server_binding::bind(&resources, &index, &workloads, settings.linkerd_version, findings);
    let routes = routes::attach(&resources, &index, findings);
    let granted = {
        let ctx = authz::Ctx { resources: &resources, index: &index, settings: &settings, hints: Default::default() };
        authz::grant(&ctx, findings)
    };
    let rate_limits = ratelimit::accept(&resources, &index, findings);
    Resolved {
        settings,
        resources,
        index,
        workloads,
        bindings,
        routes,
        granted,
        unknown_values: Vec::new(),
        rate_limits,
    }
}

fn derive_workloads(
    resources: &[Resource],
    index: &Index,
    settings: &Settings,
    findings: &mut Vec<Finding>,
) -> Vec<Workload> {
    let empty = BTreeMap::new();
    index
        .all(Kind::Workload)
        .iter()
        .filter_map(|&i| {
            let r = &resources[i];
            let Spec::Workload(template) = &r.spec else {
                return None;
            };
            let ns_name = r.namespace();
            let ns = match index.get(Kind::Namespace, "", ns_name) {
                Some(n) => NamespaceInfo {
                    annotations: Some(&resources[n].meta.annotations),
                    labels: Some(&resources[n].meta.labels),
                    known: true,
                },
                None => match settings.namespaces.get(ns_name) {
                    Some(s) => {
                        NamespaceInfo { annotations: Some(&s.annotations), labels: Some(&s.labels), known: true }
                    }
                    None => NamespaceInfo { annotations: Some(&empty), labels: Some(&empty), known: false },
                },
            };
            Some(workload::derive(i, r, template, &ns, settings, findings))
        })
        .collect()
}
