//! Which Services each workload's config carries: those it can reach under
//! the inbound analysis (some pod behind the Service lets the workload in on
//! the Service's target port), plus those its namespace's consumer routes
//! name; and of those only the ones whose policy differs from the default
//! (the config carries the default opaque ports, so a proxy treats an
//! unlisted Service exactly as Linkerd would). Config size then follows a
//! workload's dependencies that have policy, not the mesh.

use crate::model::meta::IntOrString;
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::matrix::port_sets;
use crate::resolve::ports::parse_port_ranges;
use fixedbitset::FixedBitSet;
use mesh_proxy_api::outbound::Outbound;
use rayon::prelude::*;
use std::collections::HashMap;

/// Fills `outbound` in every config of `o`.
pub fn complete(o: &mut Outcome) {
    let scope = Scope::new(o);
    let outbound: Vec<Option<Outbound>> =
        (0..o.configs.len()).into_par_iter().map(|wi| scope.outbound(o, wi)).collect();
    drop(scope);
    for (c, out) in o.configs.iter_mut().zip(outbound) {
        if let (Some(c), Some(out)) = (c.as_mut(), out) {
            c.outbound = out;
        }
    }
}

/// What decides each config's outbound part, computed once for the whole
/// repository; [`Scope::outbound`] then lays out one workload's part at a
/// time, so that `meshc build` can sign and write each config without
/// holding every completed config (their Services repeat across configs:
/// all of them together grow with workloads x reachable Services).
pub struct Scope<'a> {
    reach: Reach<'a>,
    consumers: HashMap<&'a str, Vec<usize>>,
    default_opaque: Vec<mesh_proxy_api::PortRange>,
}

impl<'a> Scope<'a> {
    pub fn new(o: &'a Outcome) -> Scope<'a> {
        let reach = reachable(o);
        let default_opaque = parse_port_ranges(&o.resolved.settings.default_opaque_ports).unwrap_or_default();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for ns in o.resolved.workloads.iter().map(|w| w.namespace.as_str()) {
            consumers.entry(ns).or_insert_with(|| o.outbound.consumer_services(ns));
        }
        Scope { reach, consumers, default_opaque }
    }

    /// The outbound part of workload `wi`'s config (`None` when it has no config).
    pub fn outbound(&self, o: &Outcome, wi: usize) -> Option<Outbound> {
        o.configs.get(wi)?.as_ref()?;
        let policy = &o.outbound;
        let ns = o.resolved.workloads[wi].namespace.as_str();
        let consumers = self.consumers.get(ns).map_or(&[][..], Vec::as_slice);
        let mut services: Vec<usize> = self.reach.of(wi, ns).chain(consumers.iter().copied()).collect();
        services.sort_unstable();
        services.dedup();
        services.retain(|&si| !policy.is_default_for(si, ns, &self.default_opaque));
        let mut services: Vec<_> = services.into_iter().map(|si| policy.service_for(si, ns)).collect();
        services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let egress = policy.egress.for_namespace(ns);
        Some(Outbound { services, default_opaque_ports: self.default_opaque.clone(), egress })
    }
}

/// Which Services (indices) each workload can reach.
struct Reach<'a> {
    class_of: Vec<Option<usize>>,
    /// Per client class, the Services some backing pod admits it to.
    by_class: Vec<Vec<usize>>,
    /// Services without a selector, by namespace: listed for that namespace's workloads.
    unselected: HashMap<&'a str, Vec<usize>>,
}

impl Reach<'_> {
    fn of(&self, wi: usize, ns: &str) -> impl Iterator<Item = usize> + '_ {
        let by_class = self.class_of[wi].map_or(&[][..], |c| self.by_class[c].as_slice());
        let unselected = self.unselected.get(ns).map_or(&[][..], Vec::as_slice);
        by_class.iter().chain(unselected).copied()
    }
}

fn reachable(o: &Outcome) -> Reach<'_> {
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
    let mut by_ns: HashMap<&str, Vec<usize>> = HashMap::new();
    for (wi, w) in o.resolved.workloads.iter().enumerate() {
        by_ns.entry(w.namespace.as_str()).or_default().push(wi);
    }
    // Per Service, the client classes some backing pod admits on a target port.
    let allowed: Vec<Option<FixedBitSet>> =
        (0..p.service_count()).into_par_iter().map(|si| admitted(o, &classes, &by_ns, si)).collect();
    let mut by_class = vec![Vec::new(); classes.len()];
    let mut unselected: HashMap<&str, Vec<usize>> = HashMap::new();
    for (si, set) in allowed.iter().enumerate() {
        match set {
            Some(set) => {
                // A Service is also reached through the backends its routes and
                // profiles send to: a TrafficSplit's apex usually has no pods.
                let mut set = set.clone();
                for b in backend_services(p, si).into_iter().filter(|&b| b != si) {
                    if let Some(Some(more)) = allowed.get(b) {
                        set.union_with(more);
                    }
                }
                set.ones().for_each(|c| by_class[c].push(si));
            }
            None => unselected.entry(p.bases[si].svc.namespace.as_str()).or_default().push(si),
        }
    }
    Reach { class_of, by_class, unselected }
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

/// The Services that Service `si`'s routes (HTTP, gRPC, TLS, TCP) and
/// profiles (dstOverrides `NAME.NS.svc.DOMAIN[:PORT]`) may send requests to.
fn backend_services(p: &super::Policy, si: usize) -> Vec<usize> {
    use mesh_proxy_api::outbound::{Backend, BackendTarget};
    let mut names: Vec<(String, String)> = Vec::new();
    let mut add = |backends: &[Backend]| {
        for b in backends {
            if let BackendTarget::Service { namespace, name, .. } = &b.target {
                names.push((namespace.clone(), name.clone()));
            }
        }
    };
    for a in &p.routes[si] {
        match &a.route {
            super::routes::RouteKind::Http(h) => h.rules.iter().for_each(|r| add(&r.backends)),
            super::routes::RouteKind::Grpc(g) => g.rules.iter().for_each(|r| add(&r.backends)),
        }
    }
    for a in &p.streams[si] {
        match &a.route {
            super::stream_routes::StreamKind::Tls(t) => add(&t.backends),
            super::stream_routes::StreamKind::Tcp(t) => add(&t.backends),
        }
    }
    for profile in p.profiles[si].values() {
        for d in &profile.dst_overrides {
            let host = d.authority.split(':').next().unwrap_or_default();
            if let [name, namespace, "svc", ..] = host.split('.').collect::<Vec<_>>().as_slice() {
                names.push(((*namespace).to_owned(), (*name).to_owned()));
            }
        }
    }
    names.into_iter().filter_map(|(ns, name)| p.find(&ns, &name)).collect()
}
