//! A Service as client proxies see it (semantics reference §8.1): its ports
//! and their protocols, and the timeouts, retries and failure accrual its
//! annotations set. Routes and profiles are added per client namespace.

use super::annotations::{self, Problems};
use crate::findings::{Code, Finding};
use crate::model::Resource;
use crate::model::core::ServiceSpec;
use crate::resolve::ports::{contains, parse_port_ranges};
use crate::settings::Settings;
use crate::settings::version::Feature;
use mesh_proxy_api::outbound::{OutboundPort, OutboundProtocol, OutboundService};

pub struct ServiceBase {
    pub svc: OutboundService,
    /// Why routes cannot use the Service as a parent (headless, ExternalName).
    pub invalid_parent: Option<&'static str>,
    /// Whether any timeout, retry or failure-accrual annotation is written.
    pub has_annotation_policy: bool,
}

pub fn service_base(r: &Resource, spec: &ServiceSpec, settings: &Settings, findings: &mut Vec<Finding>) -> ServiceBase {
    let a = &r.meta.annotations;
    let mut problems = Problems::new();
    let opaque = match a.get("config.linkerd.io/opaque-ports") {
        Some(v) => parse_port_ranges(v).unwrap_or_else(|e| {
            problems.push(("config.linkerd.io/opaque-ports", format!("{e}; the list is ignored")));
            Vec::new()
        }),
        None => parse_port_ranges(&settings.default_opaque_ports).unwrap_or_default(),
    };
    let mut ports = Vec::new();
    for p in &spec.ports {
        let Ok(port) = u16::try_from(p.port) else { continue };
        if p.protocol.as_deref().is_some_and(|proto| !proto.eq_ignore_ascii_case("TCP")) {
            continue; // UDP and SCTP never reach the proxy
        }
        // Before 2.18 Linkerd does not read appProtocol (resolve::versions reports it).
        let app_protocol = p.app_protocol.as_deref().filter(|_| settings.linkerd_version.has(Feature::AppProtocol));
        let protocol = protocol(app_protocol, contains(&opaque, port));
        ports.push(OutboundPort {
            port,
            protocol,
            http_routes: Vec::new(),
            grpc_routes: Vec::new(),
            tls_routes: Vec::new(),
            tcp_route: None,
        });
    }
    ports.sort_by_key(|p| p.port);
    let timeouts = annotations::timeouts(a, &mut problems);
    let retry = annotations::retry(a, &mut problems);
    let failure_accrual = annotations::failure_accrual(a, &mut problems);
    report(r, problems, "ignored on the Service, as Linkerd logs and ignores it", findings);
    let has_annotation_policy = annotations::has_timeouts(a)
        || a.keys().any(|k| k.starts_with("retry.linkerd.io/") || k.starts_with("balancer.linkerd.io/failure-accrual"));
    let invalid_parent = if spec.type_.as_deref() == Some("ExternalName") {
        Some("an ExternalName Service")
    } else if spec.cluster_ip.as_deref().is_some_and(|ip| ip.eq_ignore_ascii_case("None")) {
        Some("a headless Service (clusterIP: None)")
    } else {
        None
    };
    let svc = OutboundService {
        namespace: r.namespace().to_owned(),
        name: r.name().to_owned(),
        ports,
        timeouts,
        retry,
        failure_accrual,
        profile: None,
    };
    ServiceBase { svc, invalid_parent, has_annotation_policy }
}

/// The protocol a client proxy gives port `port` of Service `r` (as
/// [`service_base`] lowers it); `None` for a port the Service does not declare.
pub fn port_protocol(r: &Resource, spec: &ServiceSpec, settings: &Settings, port: u16) -> Option<OutboundProtocol> {
    let base = service_base(r, spec, settings, &mut Vec::new());
    base.svc.ports.iter().find(|p| p.port == port).map(|p| p.protocol)
}

/// `appProtocol` wins over opaque ports: `http` and `kubernetes.io/h2c` are
/// HTTP, any other value is opaque; without one, opaque ports are opaque
/// and the rest detect.
fn protocol(app_protocol: Option<&str>, opaque: bool) -> OutboundProtocol {
    match app_protocol {
        Some("http") => OutboundProtocol::Http1,
        Some("kubernetes.io/h2c") => OutboundProtocol::Http2,
        Some(_) => OutboundProtocol::Opaque,
        None if opaque => OutboundProtocol::Opaque,
        None => OutboundProtocol::Detect,
    }
}

/// Findings for annotation problems on `r`, each at its annotation;
/// `consequence` says what Linkerd does with the bad value.
pub fn report(r: &Resource, problems: Problems, consequence: &str, findings: &mut Vec<Finding>) {
    for (key, problem) in problems {
        let code = if key.starts_with("balancer.") {
            Code::FailureAccrualInvalid
        } else if key.starts_with("timeout.linkerd.io/") || key == "retry.linkerd.io/timeout" {
            Code::InvalidDuration
        } else {
            Code::InvalidAnnotation
        };
        let consequence = if code == Code::FailureAccrualInvalid {
            "so the Service gets no failure accrual (no circuit breaking)"
        } else {
            consequence
        };
        let msg = format!("{} annotation {key}: {problem}; {consequence}", r.id);
        findings.push(Finding::new(code, r.span_at(&["metadata", "annotations", key]), msg).resource(r.id.clone()));
    }
}
