//! The build's ServicePolicy objects: each shared view of a Service's
//! outbound policy (`mesh_proxy_api::service_policy`), signed with the
//! configs' key and sequence, in the Service's namespace, listed in the
//! MeshBundle; and the digest of each namespace's set, which every config
//! of that namespace signs (`Outbound::service_policies`).

use super::objects::*;
use super::{ConfigOut, EmitError, names};
use mesh_proxy_api::bundle::{ServicePolicyEntry, service_policy_set};
use mesh_proxy_api::envelope::{self, SigningKey};
use mesh_proxy_api::service_policy::ServicePolicy;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One ServicePolicy signed and laid out, as a config is.
pub(super) struct LaidPolicy {
    pub entry: ServicePolicyEntry,
    pub path: String,
    pub text: Option<String>,
}

pub use mesh_proxy_api::service_policy::object_name;

/// Signs every view with the build's sequence, in parallel; sorted by
/// namespace and name. Each file goes to `out` as soon as it is signed.
pub(super) fn sign_policies(
    shared: &[ServicePolicy],
    key: &SigningKey,
    info: &super::BuildInfo,
    out: &ConfigOut,
) -> Result<Vec<LaidPolicy>, EmitError> {
    for p in shared {
        let s = &p.service;
        if !names::is_dns_label(&s.namespace) || !names::is_dns_label(&s.name) {
            return Err(EmitError(format!(
                "Service {}/{}: not a valid Kubernetes namespace and name for a ServicePolicy",
                s.namespace, s.name
            )));
        }
    }
    let mut laid = shared
        .par_iter()
        .map(|p| {
            let mut laid = lay_out(p, key, info)?;
            if let ConfigOut::Write(write) = out
                && let Some(text) = laid.text.take()
            {
                write(&laid.path, &text).map_err(EmitError)?;
            }
            Ok(laid)
        })
        .collect::<Result<Vec<LaidPolicy>, EmitError>>()?;
    laid.sort_by(|a, b| (&a.entry.namespace, &a.entry.name).cmp(&(&b.entry.namespace, &b.entry.name)));
    Ok(laid)
}

fn lay_out(p: &ServicePolicy, key: &SigningKey, info: &super::BuildInfo) -> Result<LaidPolicy, EmitError> {
    let signed = ServicePolicy { sequence: info.sequence, ..p.clone() };
    let envelope = signed.sign(key).map_err(EmitError)?;
    let digest = envelope::payload_digest(&envelope).expect("meshc's own envelope decodes");
    let (namespace, service) = (p.service.namespace.clone(), p.service.name.clone());
    let name = object_name(&service, &p.audience);
    let object = Object {
        api_version: API_VERSION.to_owned(),
        kind: SERVICE_POLICY_KIND.to_owned(),
        metadata: ObjectMeta {
            name: name.clone(),
            namespace: Some(namespace.clone()),
            labels: BTreeMap::from([(LABEL_MANAGED_BY.to_owned(), "meshc".to_owned())]),
            annotations: super::annotations(info),
        },
        spec: ServicePolicySpec {
            service: service.clone(),
            audience: p.audience.clone(),
            digest: digest.clone(),
            envelope,
        },
    };
    let path = format!("{SERVICE_POLICIES_DIR}/{namespace}/{name}.yaml");
    let entry = ServicePolicyEntry { namespace, name, service, audience: p.audience.clone(), digest };
    Ok(LaidPolicy { entry, path, text: Some(document(&object)) })
}

/// Per client namespace in `namespaces`, the digest of the set its
/// configs name; empty when the build shares no policy (configs then stand
/// alone, as before shared policies).
pub(super) fn set_digests<'a>(
    laid: &[LaidPolicy],
    namespaces: impl Iterator<Item = &'a str>,
) -> HashMap<String, String> {
    if laid.is_empty() {
        return HashMap::new();
    }
    let entries: Vec<ServicePolicyEntry> = laid.iter().map(|l| l.entry.clone()).collect();
    let namespaces: BTreeSet<&str> = namespaces.collect();
    namespaces.into_par_iter().map(|ns| (ns.to_owned(), service_policy_set(&entries, ns))).collect()
}
