//! Analysis on the lowered configs (and the resolution behind them):
//! everything that will break or surprise at runtime.

pub mod policies;
pub mod probes;
pub mod ratelimits;
pub mod routes;
pub mod servers;

use crate::findings::Finding;
use crate::resolve::Resolved;
use mesh_proxy_api::ProxyConfig;

pub fn analyze(r: &Resolved, configs: &[Option<ProxyConfig>], findings: &mut Vec<Finding>) {
    probes::check(r, configs, findings);
    routes::check(r, configs, findings);
    servers::check(r, findings);
    policies::check(r, findings);
    ratelimits::check(r, findings);
}
