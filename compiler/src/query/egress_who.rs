//! `meshc who-can-reach egress:HOST:PORT`: every workload of the repository
//! as a client of that destination, each decided by its own proxy's egress
//! config (`query::egress`).

use super::classes::Classes;
use super::egress::{BackendView, EgressProtocol, reach_egress};
use super::egress_ref::EgressRef;
use super::evaluate::Verdict;
use super::proof::ResourceRef;
use super::reach::{parse_client, workload_label};
use crate::pipeline::Outcome;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct EgressClient {
    pub client: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    pub status: Option<u32>,
    #[serde(rename = "egressNetwork")]
    pub network: Option<ResourceRef>,
    pub backends: Vec<BackendView>,
}

/// Every workload's verdict, in workload order; the destination's own error
/// (an address inside the cluster) is returned once.
pub fn who_can_reach_egress(
    o: &Outcome,
    classes: &Classes,
    target: &EgressRef,
    traffic: &EgressProtocol,
) -> Result<Vec<EgressClient>, String> {
    let mut out = Vec::with_capacity(o.resolved.workloads.len());
    for wi in 0..o.resolved.workloads.len() {
        let label = workload_label(o, wi);
        let client = parse_client(o, classes, &label)?;
        let r = reach_egress(o, &client, target, traffic)?;
        out.push(EgressClient {
            client: label,
            verdict: r.verdict,
            condition: r.condition,
            status: r.status,
            network: r.network,
            backends: r.backends,
        });
    }
    Ok(out)
}

/// Human form: one line per client, allowed first.
pub fn render(target: &EgressRef, clients: &[EgressClient]) -> String {
    use std::fmt::Write as _;
    let mut out = format!("who can reach {target}\n");
    let order = [Verdict::Allow, Verdict::Depends, Verdict::NoRoute, Verdict::Deny];
    for v in order {
        for c in clients.iter().filter(|c| c.verdict == v) {
            let via = c.network.as_ref().map_or_else(
                || "no EgressNetwork".to_owned(),
                |n| format!("EgressNetwork {}/{}", n.namespace.as_deref().unwrap_or(""), n.name),
            );
            let status = c.status.map_or_else(String::new, |s| format!(" ({s})"));
            let condition = c.condition.as_ref().map_or_else(String::new, |c| format!(": {c}"));
            let _ = writeln!(out, "  {:<9} {}  [{via}]{status}{condition}", v.as_str(), c.client);
        }
    }
    out
}
