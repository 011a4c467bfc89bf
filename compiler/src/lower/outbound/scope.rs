//! What a workload's config carries outbound, and what its proxy enforces.
//!
//! A config carries only what is its namespace's own: the default opaque
//! ports and the EgressNetworks that apply there (and, once signed, the
//! digest of the shared Service policies its namespace sees). Each
//! Service's policy is signed once per view and shared by every client
//! that sees it alike (`shared`, `mesh_proxy_api::service_policy`), as
//! Linkerd's proxies ask one policy controller per destination: so a
//! build's output grows with workloads plus Services (plus namespaces with
//! views of their own), never with workloads x Services.
//!
//! Every client in a namespace gets every Service's view for that
//! namespace, not only the Services it is allowed to reach: that is what a
//! Linkerd proxy gets from the policy controller for any Service it calls.
//! The analysis (`complete`) composes each config's effective outbound part
//! with `mesh_proxy_api::service_policy::effective_outbound`, the function
//! the proxy runs on the documents it verified.

use super::shared::service_policies;
use crate::pipeline::Outcome;
use crate::resolve::ports::parse_port_ranges;
use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::outbound::Outbound;
use mesh_proxy_api::service_policy::{ServicePolicy, effective_outbound};
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap};

/// Fills `outbound` in every config of `o` with what its proxy enforces:
/// its own part and its namespace's shared views.
pub fn complete(o: &mut Outcome) {
    let scope = Scope::new(o);
    let namespaces: BTreeSet<&str> = o
        .configs
        .iter()
        .zip(&o.resolved.workloads)
        .filter(|(c, _)| c.is_some())
        .map(|(_, w)| w.namespace.as_str())
        .collect();
    let effective: HashMap<String, Outbound> =
        namespaces.into_par_iter().map(|ns| (ns.to_owned(), scope.effective(o, ns))).collect();
    drop(scope);
    for (c, w) in o.configs.iter_mut().zip(&o.resolved.workloads) {
        if let (Some(c), Some(out)) = (c.as_mut(), effective.get(&w.namespace)) {
            c.outbound = out.clone();
        }
    }
}

/// What decides the outbound parts, computed once for the repository.
pub struct Scope {
    /// Every Service's shared views (no sequence yet: signing sets it).
    pub shared: Vec<ServicePolicy>,
    default_opaque: Vec<mesh_proxy_api::PortRange>,
}

impl Scope {
    pub fn new(o: &Outcome) -> Scope {
        let default_opaque = parse_port_ranges(&o.resolved.settings.default_opaque_ports).unwrap_or_default();
        let shared = service_policies(&o.outbound, &default_opaque, mesh_proxy_api::API_VERSION);
        Scope { shared, default_opaque }
    }

    /// The outbound part a config in namespace `ns` carries itself.
    pub fn own(&self, o: &Outcome, ns: &str) -> Outbound {
        Outbound {
            services: Vec::new(),
            default_opaque_ports: self.default_opaque.clone(),
            egress: o.outbound.egress.for_namespace(ns),
            service_policies: None,
        }
    }

    /// What a proxy in namespace `ns` enforces outbound: its own part
    /// composed with the shared views for `ns`.
    pub fn effective(&self, o: &Outcome, ns: &str) -> Outbound {
        effective_outbound(&self.own(o, ns), &self.shared, ns)
    }
}

/// Workload `wi`'s config as its proxy enforces it (`complete` for one
/// config only: `show-config` composes the one it prints, not every one).
pub fn completed(o: &Outcome, wi: usize) -> Option<ProxyConfig> {
    let config = o.configs.get(wi)?.as_ref()?;
    let outbound = Scope::new(o).effective(o, &config.workload.namespace);
    Some(with_outbound(config, outbound))
}

/// `config` with `outbound` in place of its own, without copying the
/// outbound part it held (after `complete`, its namespace's every Service).
pub fn with_outbound(config: &ProxyConfig, outbound: Outbound) -> ProxyConfig {
    let ProxyConfig { api_version, workload, identity, inbound, outbound: _, access_log, sequence } = config;
    ProxyConfig {
        api_version: api_version.clone(),
        workload: workload.clone(),
        identity: identity.clone(),
        inbound: inbound.clone(),
        outbound,
        access_log: *access_log,
        sequence: *sequence,
    }
}
