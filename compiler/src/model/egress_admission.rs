//! What Linkerd's admission webhook rejects about egress
//! (`policy-controller/runtime/src/admission.rs`): `Validate<EgressNetworkSpec>`
//! and `validate_networks`, and the rule every route kind's `validate`
//! applies to a parentRef naming an EgressNetwork (a port is required).
//! A rejected object never reaches the cluster, so it is left out.

use super::Resource;
use super::egress::{EgressNetworkSpec, TRAFFIC_POLICIES};
use super::route::ParentRef;
use crate::findings::{Code, Finding};
use crate::settings::parse_net;

/// Whether a parentRef names an EgressNetwork (`is_parent_egress_network`:
/// group `policy.linkerd.io` is required, and so is the kind).
pub fn is_egress_parent(p: &ParentRef) -> bool {
    p.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("EgressNetwork"))
        && p.group.as_deref().is_some_and(|g| g.eq_ignore_ascii_case("policy.linkerd.io"))
}

/// "cannot target an EgressNetwork without specifying a port": the whole route is rejected.
pub fn route_parent_ports(r: &Resource, parents: &[ParentRef], findings: &mut Vec<Finding>) -> bool {
    let missing = parents.iter().position(|p| is_egress_parent(p) && p.port.is_none());
    let Some(i) = missing else { return true };
    let msg = format!(
        "{} parentRef {i} names EgressNetwork {} without a port; Linkerd's admission webhook rejects the route \
         (cannot target an EgressNetwork without specifying a port), so it routes nothing",
        r.id, parents[i].name
    );
    let at = r.span_at(&["spec", "parentRefs", &i.to_string()]);
    findings
        .push(Finding::new(Code::SchemaViolation, at, msg).resource(r.id.clone()).hint("add `port:` to the parentRef"));
    false
}

/// The CRD's enum and required field, and the webhook's network rules.
pub fn egress_network_values(r: &Resource, e: &EgressNetworkSpec, findings: &mut Vec<Finding>) -> bool {
    let mut ok = true;
    let mut reject = |path: &[&str], why: String| {
        ok = false;
        let msg = format!("EgressNetwork {}: {why}; it is rejected, so it shapes no egress", r.name());
        findings.push(Finding::new(Code::SchemaViolation, r.span_at(path), msg).resource(r.id.clone()));
    };
    if !TRAFFIC_POLICIES.contains(&e.traffic_policy.as_str()) {
        let why = format!("trafficPolicy `{}` is not Allow or Deny (the CRD's enum)", e.traffic_policy);
        reject(&["spec", "trafficPolicy"], why);
    }
    let Some(networks) = &e.networks else { return ok };
    if networks.is_empty() {
        reject(&["spec", "networks"], "networks is empty; the admission webhook requires at least one".to_owned());
    }
    for (i, n) in networks.iter().enumerate() {
        let idx = i.to_string();
        let Some(cidr) = parse_net(&n.cidr) else {
            reject(&["spec", "networks", &idx, "cidr"], format!("`{}` is not a CIDR or an IP address", n.cidr));
            continue;
        };
        for (j, ex) in n.except.iter().flatten().enumerate() {
            let path = ["spec", "networks", &idx, "except", &j.to_string()];
            match parse_net(ex) {
                None => reject(&path, format!("except `{ex}` is not a CIDR or an IP address")),
                Some(ex) if ex.contains(&cidr) => {
                    reject(&path, format!("cidr {cidr} is completely negated by exception {ex}"))
                }
                Some(ex) if !cidr.contains(&ex) => {
                    reject(&path, format!("cidr {cidr} does not include exception {ex}"))
                }
                Some(_) => {}
            }
        }
    }
    ok
}
