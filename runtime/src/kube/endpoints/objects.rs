//! Kubernetes objects → the small records the index keeps. Full objects
//! are dropped as soon as these are taken from them.

use super::index::{NamedPort, ObjectKey, PodInfo, ServiceInfo, SliceEndpoint, SliceInfo, Target};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};
use kube::ResourceExt;
use std::net::IpAddr;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Linkerd's injector puts it on every pod it meshes; the policy
/// controller indexes exactly the pods that carry it.
pub const MESHED_LABEL: &str = "linkerd.io/control-plane-ns";

pub fn key_of<K: ResourceExt>(obj: &K) -> ObjectKey {
    ObjectKey { namespace: obj.namespace().unwrap_or_default(), name: obj.name_any() }
}

fn is_tcp(protocol: Option<&str>) -> bool {
    // The API server defaults the protocol to TCP.
    protocol.is_none_or(|p| p == "TCP")
}

pub fn service_info(svc: &Service) -> ServiceInfo {
    let ports = svc.spec.iter().flat_map(|s| s.ports.iter().flatten());
    let ports = ports
        .filter(|p| is_tcp(p.protocol.as_deref()))
        .filter_map(|p| match u16::try_from(p.port) {
            Ok(port) if port != 0 => Some(NamedPort { name: p.name.clone().unwrap_or_default(), port }),
            _ => {
                let key = key_of(svc);
                tracing::warn!(
                    namespace = key.namespace,
                    service = key.name,
                    port = p.port,
                    "port out of range, ignored"
                );
                None
            }
        })
        .collect();
    ServiceInfo { ports, cluster_ips: cluster_ips(svc) }
}

/// `spec.clusterIPs` (or the older `spec.clusterIP`); a headless Service's
/// `None` and anything that is not an address give none.
fn cluster_ips(svc: &Service) -> Vec<IpAddr> {
    let Some(spec) = svc.spec.as_ref() else { return Vec::new() };
    let listed = spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter());
    let mut ips: Vec<IpAddr> = listed.filter_map(|ip| ip.parse().ok()).collect();
    ips.sort();
    ips.dedup();
    ips
}

/// `None` for a slice that gives no endpoints to a Service: no service
/// label, or FQDN addresses.
pub fn slice_info(slice: &EndpointSlice) -> Option<SliceInfo> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?.clone();
    if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
        return None;
    }
    let key = key_of(slice);
    let ports = slice.ports.iter().flatten().filter_map(|p| slice_port(&key, p)).collect();
    let endpoints = slice
        .endpoints
        .iter()
        // Kubernetes: a ready condition left unset means ready.
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .filter_map(|e| {
            // Every address of one endpoint is the same one; Kubernetes lets
            // consumers use the first.
            let Some(ip) = e.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                tracing::warn!(namespace = key.namespace, slice = key.name, addresses = ?e.addresses, "endpoint without a valid address, ignored");
                return None;
            };
            let target = target(&key, e.target_ref.as_ref())?;
            Some(SliceEndpoint { ip, target })
        })
        .collect();
    Some(SliceInfo { service, ports, endpoints })
}

fn slice_port(slice: &ObjectKey, p: &EndpointPort) -> Option<NamedPort> {
    if !is_tcp(p.protocol.as_deref()) {
        return None;
    }
    match p.port.map(u16::try_from) {
        Some(Ok(port)) if port != 0 => Some(NamedPort { name: p.name.clone().unwrap_or_default(), port }),
        _ => {
            tracing::warn!(namespace = slice.namespace, slice = slice.name, port = ?p.port, "slice port without a usable number, ignored");
            None
        }
    }
}

/// `None` (the endpoint is left out) for a Pod reference without a name:
/// it could be a meshed pod, so it must not be reached in plaintext.
fn target(slice: &ObjectKey, r: Option<&k8s_openapi::api::core::v1::ObjectReference>) -> Option<Target> {
    let Some(r) = r.filter(|r| r.kind.as_deref() == Some("Pod")) else { return Some(Target::External) };
    let Some(name) = r.name.as_deref().filter(|n| !n.is_empty()) else {
        tracing::warn!(
            namespace = slice.namespace,
            slice = slice.name,
            "Pod reference without a name, endpoint ignored"
        );
        return None;
    };
    let namespace = r.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(&slice.namespace);
    Some(Target::Pod { key: ObjectKey::new(namespace, name), uid: r.uid.clone().filter(|u| !u.is_empty()) })
}

pub fn pod_info(pod: &Pod, domain: &mesh_proxy_api::IdentityDomain) -> PodInfo {
    let identity = pod.labels().contains_key(MESHED_LABEL).then(|| {
        let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).filter(|s| !s.is_empty());
        let ns = pod.namespace().unwrap_or_default();
        domain.service_account(&ns, sa.unwrap_or("default"))
    });
    PodInfo { uid: pod.uid().unwrap_or_default(), identity }
}
