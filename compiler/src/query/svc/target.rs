//! `svc/NAMESPACE/NAME:PORT` references: a Service and one of its ports, by
//! number or by the Service port's name (`:http`).

use crate::model::Spec;
use crate::model::core::ServicePort;
use crate::pipeline::Outcome;
use crate::resolve::index::Kind;

/// The prefix that makes a reference a Service.
pub const PREFIX: &str = "svc/";

/// A Service port as the user named it, resolved against the repository.
#[derive(Clone, Debug)]
pub struct ServiceTarget {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    /// The resource index of the Service.
    pub resource: usize,
    /// The Service's declaration of `port` (its index in `spec.ports`), if any.
    pub declared: Option<usize>,
}

impl ServiceTarget {
    pub fn label(&self) -> String {
        format!("svc/{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// Whether `spec` names a Service rather than a workload.
pub fn is_service(spec: &str) -> bool {
    spec.starts_with(PREFIX)
}

/// Parses `svc/NAMESPACE/NAME:PORT`. A port number the Service does not
/// declare is a valid target (the answer is that nobody reaches it); a port
/// name must be one of the Service's.
pub fn parse(o: &Outcome, spec: &str) -> Result<ServiceTarget, String> {
    let rest = spec.strip_prefix(PREFIX).ok_or_else(|| format!("`{spec}` does not start with {PREFIX}"))?;
    let (service, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("`{spec}`: expected svc/NAMESPACE/NAME:PORT (a port is required)"))?;
    let (namespace, name) =
        service.split_once('/').ok_or_else(|| format!("`{spec}`: expected svc/NAMESPACE/NAME:PORT"))?;
    let resource = o
        .resolved
        .index
        .get(Kind::Service, namespace, name)
        .ok_or_else(|| format!("no Service {namespace}/{name} in the repository"))?;
    let ports = service_ports(o, resource);
    let port_name = |p: &ServicePort| p.name.as_deref() == Some(port);
    let number = match port.parse::<u16>() {
        Ok(n) => n,
        Err(_) => ports.iter().find(|p| port_name(p)).and_then(|p| u16::try_from(p.port).ok()).ok_or_else(|| {
            let names: Vec<String> =
                ports.iter().filter_map(|p| p.name.as_ref().map(|n| format!("{n} ({})", p.port))).collect();
            format!("Service {namespace}/{name} has no port named `{port}`; its named ports: {}", names.join(", "))
        })?,
    };
    // UDP and SCTP ports never reach a proxy (lower::outbound::services skips them too).
    let tcp = |p: &ServicePort| p.protocol.as_deref().is_none_or(|x| x.eq_ignore_ascii_case("TCP"));
    let declared = ports.iter().position(|p| p.port == i64::from(number) && tcp(p));
    Ok(ServiceTarget { namespace: namespace.to_owned(), name: name.to_owned(), port: number, resource, declared })
}

/// The ports a Service resource declares (none for a resource that is not one).
pub fn service_ports(o: &Outcome, resource: usize) -> &[ServicePort] {
    match &o.resolved.resources[resource].spec {
        Spec::Service(s) => &s.ports,
        _ => &[],
    }
}
