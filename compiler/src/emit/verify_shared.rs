//! `meshc verify-bundle`'s checks of the shared Service policies: each
//! ServicePolicy object verifies and says in the clear what it signs, the
//! MeshBundle lists exactly the ones present, and every config names the
//! set its namespace's clients get (`Outbound::service_policies`).

use super::objects::*;
use super::shared::object_name;
use mesh_proxy_api::ProxyConfig;
use mesh_proxy_api::bundle::service_policy_set;
use mesh_proxy_api::envelope::{VerifyingKey, payload_digest};
use mesh_proxy_api::service_policy::ServicePolicy;
use std::collections::BTreeMap;

/// One ServicePolicy object whose envelope verified.
pub struct FoundPolicy {
    place: String,
    key: (String, String),
    digest: String,
    policy: ServicePolicy,
}

/// The envelope verifies, and the object's namespace, name, service,
/// audience and digest agree with the signed payload.
pub fn check_policy(place: String, o: Object<ServicePolicySpec>, keys: &[VerifyingKey]) -> Result<FoundPolicy, String> {
    let s = &o.spec;
    let policy = ServicePolicy::open(&s.envelope, keys).map_err(|e| format!("envelope: {e}"))?;
    let signed = payload_digest(&s.envelope).map_err(|e| e.to_string())?;
    if s.digest != signed {
        return Err(format!("spec.digest {} is not the signed payload's ({signed})", s.digest));
    }
    let svc = &policy.service;
    if s.service != svc.name || o.metadata.namespace.as_deref() != Some(svc.namespace.as_str()) {
        return Err(format!("namespace and spec.service are not the signed Service {}/{}", svc.namespace, svc.name));
    }
    if s.audience != policy.audience {
        return Err("spec.audience is not the signed audience".to_owned());
    }
    let name = object_name(&svc.name, &policy.audience);
    if o.metadata.name != name {
        return Err(format!("metadata.name is not `{name}`, the name its signed Service and audience give"));
    }
    let key = (svc.namespace.clone(), name);
    Ok(FoundPolicy { place, key, digest: signed, policy })
}

/// The ServicePolicies present must be exactly the ones the bundle signs,
/// each with the bundle's sequence.
pub fn match_policies(m: &BundleSpec, found: &[FoundPolicy], problems: &mut Vec<String>) -> Vec<ServicePolicy> {
    let mut by_key: BTreeMap<&(String, String), &FoundPolicy> = BTreeMap::new();
    for f in found {
        if let Some(first) = by_key.insert(&f.key, f) {
            problems.push(format!("{}: duplicate of {}", f.place, first.place));
        }
    }
    let mut out = Vec::new();
    for e in &m.service_policies {
        let Some(f) = by_key.remove(&(e.namespace.clone(), e.name.clone())) else {
            let (ns, name) = (&e.namespace, &e.name);
            problems.push(format!("ServicePolicy {ns}/{name}: listed in the signed MeshBundle but missing"));
            continue;
        };
        if f.digest != e.digest || f.policy.audience != e.audience || f.policy.service.name != e.service {
            problems
                .push(format!("{}: digest, Service or audience differs from the signed MeshBundle's entry", f.place));
        } else if f.policy.sequence != m.sequence {
            let (p, s) = (&f.place, f.policy.sequence);
            problems.push(format!("{p}: signed sequence {s} is not the bundle's {}", m.sequence));
        } else {
            out.push(f.policy.clone());
        }
    }
    for f in by_key.values() {
        problems.push(format!("{}: not listed in the signed MeshBundle", f.place));
    }
    out
}

/// Each config names the digest of the set its namespace's clients get
/// from this bundle; none when the bundle shares no policy.
pub fn check_config_sets(m: &BundleSpec, configs: &[ProxyConfig], problems: &mut Vec<String>) {
    let mut sets: BTreeMap<&str, String> = BTreeMap::new();
    for c in configs {
        let ns = c.workload.namespace.as_str();
        let want = if m.service_policies.is_empty() {
            None
        } else {
            Some(sets.entry(ns).or_insert_with(|| service_policy_set(&m.service_policies, ns)).as_str())
        };
        if c.outbound.service_policies.as_deref() != want {
            let w = &c.workload;
            problems.push(format!(
                "ProxyConfig of {} {}/{}: outbound.servicePolicies does not name the set of ServicePolicies the \
                 signed MeshBundle gives its namespace",
                w.kind, w.namespace, w.name
            ));
        }
    }
}
