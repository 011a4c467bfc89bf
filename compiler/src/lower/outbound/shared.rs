//! Every Service's outbound policy as shared views
//! ([`mesh_proxy_api::service_policy::ServicePolicy`]): one for clients in
//! any namespace (the producer's view), and one per namespace whose clients
//! see the Service otherwise (their consumer routes, ServiceProfile or
//! TrafficSplit). Their number grows with Services and such namespaces,
//! never with the workloads that call them; a client's effective policy is
//! its config plus the views for its namespace
//! (`mesh_proxy_api::service_policy::effective_outbound`).

use super::Policy;
use mesh_proxy_api::PortRange;
use mesh_proxy_api::service_policy::{Audience, ServicePolicy};
use rayon::prelude::*;
use std::collections::BTreeSet;

impl Policy {
    /// The namespaces other than Service `si`'s own that have a profile or
    /// routes (any kind) for it: only their clients may see it otherwise.
    fn consumer_namespaces(&self, si: usize) -> BTreeSet<&str> {
        let own = self.bases[si].svc.namespace.as_str();
        let routes = self.routes[si].iter().map(|a| a.namespace.as_str());
        let streams = self.streams[si].iter().map(|a| a.namespace.as_str());
        let profiles = self.profiles[si].keys().map(String::as_str);
        routes.chain(streams).chain(profiles).filter(|ns| *ns != own).collect()
    }

    /// Service `si`'s shared views: the one for all namespaces unless it is
    /// the default (a client treats an unlisted Service so), then each
    /// consumer namespace's that differs from it.
    fn shared_views(
        &self,
        si: usize,
        default_opaque: &[PortRange],
    ) -> Vec<(Audience, mesh_proxy_api::OutboundService)> {
        let own = self.bases[si].svc.namespace.as_str();
        let everyone = self.service_for(si, own);
        let mut views = Vec::new();
        for ns in self.consumer_namespaces(si) {
            let view = self.service_for(si, ns);
            if view != everyone {
                views.push((Audience::Namespace { namespace: ns.to_owned() }, view));
            }
        }
        if !self.is_default_for(si, own, default_opaque) {
            views.insert(0, (Audience::AllNamespaces, everyone));
        }
        views
    }
}

/// Every shared view of every Service, sorted by the Service's namespace
/// and name, then audience (all namespaces first), with `api_version` and
/// no sequence (signing sets it).
pub fn service_policies(p: &Policy, default_opaque: &[PortRange], api_version: &str) -> Vec<ServicePolicy> {
    let mut order: Vec<usize> = (0..p.service_count()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&p.bases[a].svc, &p.bases[b].svc);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    order
        .into_par_iter()
        .flat_map_iter(|si| p.shared_views(si, default_opaque))
        .map(|(audience, service)| ServicePolicy {
            api_version: api_version.to_owned(),
            audience,
            service,
            sequence: 0,
        })
        .collect()
}
