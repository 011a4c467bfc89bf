//! Queries over a checked repository: what one workload's proxy enforces,
//! and who can reach whom, with proofs.

pub mod address;
pub mod cause;
pub mod classes;
pub mod clients;
pub mod cluster_ref;
pub mod egress;
pub mod egress_ref;
pub mod egress_who;
pub mod evaluate;
pub mod matrix;
pub mod matrix_egress;
pub mod places;
pub mod proof;
pub mod ratelimit;
pub mod reach;
pub mod render;
pub mod show_config;
pub mod show_egress;
pub mod show_outbound;
pub mod svc;
pub mod who;
pub mod workload_ref;

use mesh_proxy_api::{Authorization, ProxyConfig};

/// Every authorization a config holds: server-level, route-level, default.
pub fn for_each_authorization<'a>(c: &'a ProxyConfig, mut f: impl FnMut(&'a Authorization)) {
    let servers = c.inbound.ports.iter().map(|p| &p.server).chain(std::iter::once(&c.inbound.default_server));
    for s in servers {
        s.authorizations.iter().for_each(&mut f);
        s.http_routes.iter().flat_map(|r| &r.authorizations).for_each(&mut f);
        s.grpc_routes.iter().flat_map(|r| &r.authorizations).for_each(&mut f);
    }
}
