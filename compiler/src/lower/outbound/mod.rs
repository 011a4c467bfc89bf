//! Outbound lowering: the client-side half of each workload's config
//! (semantics reference §8). `analyze` reads every Service, route and
//! ServiceProfile once (and reports their mistakes); `shared` lays out each
//! Service's views as shared ServicePolicies, and `complete` gives each
//! workload's config every Service as its namespace sees them.

mod annotations;
mod durations;
pub mod egress;
mod egress_streams;
mod profile;
mod routes;
pub mod scope;
mod services;
pub mod shared;
mod stream_routes;
mod traffic_split;

pub use scope::complete;
pub use services::port_protocol;

use crate::findings::{Code, Finding};
use crate::model::Spec;
use crate::resolve::Resolved;
use crate::resolve::index::Kind;
use mesh_proxy_api::PortRange;
use mesh_proxy_api::outbound::{Backend, BackendTarget, OutboundPort, OutboundProtocol, OutboundService, Profile};
use routes::{Attached, RouteKind, ServiceIndex};
use services::ServiceBase;
use std::collections::BTreeMap;
use stream_routes::{AttachedStream, Conflicts, StreamKind};

/// Every Service's outbound policy, before it is specialised per client namespace.
#[derive(Default)]
pub struct Policy {
    bases: Vec<ServiceBase>,
    /// Resource index of each Service.
    resources: Vec<usize>,
    routes: Vec<Vec<Attached>>,
    /// Per Service, its TLSRoutes and TCPRoutes.
    streams: Vec<Vec<AttachedStream>>,
    /// Per Service, the profiles that apply by the profile's namespace.
    profiles: Vec<BTreeMap<String, Profile>>,
    index: ServiceIndex,
    /// EgressNetworks and their routes.
    pub egress: egress::EgressPolicy,
    /// The TrafficSplit whose backends are the dstOverrides of the profile
    /// of Service `si` in a namespace (linkerd-smi's adaptor wrote them).
    splits: BTreeMap<(usize, String), usize>,
}

/// Reads Services, Service-parent routes and ServiceProfiles; reports their mistakes.
pub fn analyze(r: &Resolved, findings: &mut Vec<Finding>) -> Policy {
    let mut p = Policy::default();
    for &ri in r.index.all(Kind::Service) {
        let res = &r.resources[ri];
        let Spec::Service(spec) = &res.spec else { continue };
        p.index.insert((res.namespace().to_owned(), res.name().to_owned()), p.bases.len());
        p.bases.push(services::service_base(res, spec, &r.settings, findings));
        p.resources.push(ri);
    }
    let route_kinds = [Kind::GrpcRoute, Kind::PolicyHttpRoute, Kind::GatewayHttpRoute];
    let route_list: Vec<usize> = route_kinds.iter().flat_map(|k| r.index.all(*k)).copied().collect();
    p.routes = routes::attach(&r.resources, &route_list, &p.index, &p.bases, findings);
    p.egress = egress::analyze(r, &p.index, findings);
    p.streams = attach_streams(r, &route_list, &p, findings);
    p.profiles = vec![BTreeMap::new(); p.bases.len()];
    for &ri in r.index.all(Kind::ServiceProfile) {
        let res = &r.resources[ri];
        let Spec::ServiceProfile(spec) = &res.spec else { continue };
        if let Some(l) = profile::lower(ri, res, spec, &p.index, &r.settings.cluster_domain, findings) {
            p.report_override(r, &l, findings);
            p.profiles[l.service].insert(l.namespace, l.profile);
        }
    }
    traffic_split::apply(r, &mut p, findings);
    p.report_shadowed_streams(r, findings);
    p
}

/// TLSRoutes and TCPRoutes, with the conflicts the status controller sees.
fn attach_streams(
    r: &Resolved,
    http_routes: &[usize],
    p: &Policy,
    findings: &mut Vec<Finding>,
) -> Vec<Vec<AttachedStream>> {
    let parents_of = |ri: &usize| {
        let res = &r.resources[*ri];
        let parents = match &res.spec {
            Spec::HttpRoute(h) => h.parent_refs.as_slice(),
            Spec::GrpcRoute(g) => g.parent_refs.as_slice(),
            _ => res.stream_route().map_or(&[][..], |s| s.parent_refs()),
        };
        (res, parents)
    };
    let tls = r.index.all(Kind::TlsRoute);
    let conflicts = Conflicts {
        http_or_grpc: stream_routes::service_parent_keys(http_routes.iter().map(parents_of)),
        tls: stream_routes::service_parent_keys(tls.iter().map(parents_of)),
    };
    let ctx =
        stream_routes::Ctx { resources: &r.resources, services: &p.index, bases: &p.bases, conflicts: &conflicts };
    let list: Vec<usize> = tls.iter().chain(r.index.all(Kind::TcpRoute)).copied().collect();
    stream_routes::attach(&ctx, &list, findings)
}

impl Policy {
    /// TLSRoutes and TCPRoutes that no port uses, as clients in the route's
    /// namespace see the Service (a profile replacing them is reported apart).
    fn report_shadowed_streams(&self, r: &Resolved, findings: &mut Vec<Finding>) {
        for (si, list) in self.streams.iter().enumerate() {
            for a in list {
                let svc = self.service_for(si, &a.namespace);
                if svc.profile.is_some() {
                    continue;
                }
                let Some(why) = stream_routes::shadow_reason(a, &svc) else { continue };
                let res = &r.resources[a.resource];
                let msg = format!("{} is never used by clients: {why}", res.id);
                let at = res.span_at(&["spec", "parentRefs"]);
                findings.push(Finding::new(Code::ConnectionRouteShadowed, at, msg).resource(res.id.clone()));
            }
        }
    }

    /// Says so when a profile silently replaces routes or annotations.
    fn report_override(&self, r: &Resolved, l: &profile::Lowered, findings: &mut Vec<Finding>) {
        let base = &self.bases[l.service];
        let visible: Vec<String> = self.routes[l.service]
            .iter()
            .filter(|a| a.namespace == base.svc.namespace || a.namespace == l.namespace)
            .map(|a| r.resources[a.resource].id.to_string())
            .chain(
                self.streams[l.service]
                    .iter()
                    .filter(|a| a.namespace == base.svc.namespace || a.namespace == l.namespace)
                    .map(|a| r.resources[a.resource].id.to_string()),
            )
            .collect();
        let mut what = Vec::new();
        if !visible.is_empty() {
            what.push(format!("route(s) {}", visible.join(", ")));
        }
        if base.has_annotation_policy {
            what.push("the Service's timeout/retry/failure-accrual annotations".to_owned());
        }
        if what.is_empty() {
            return;
        }
        let res = &r.resources[l.resource];
        let what = what.join(" and ");
        let msg = if matches!(res.spec, Spec::TrafficSplit(_)) {
            format!(
                "{} becomes the dstOverrides of ServiceProfile {} (linkerd-smi), so for clients in namespace {} that \
                 profile replaces {what} entirely: those are ignored",
                res.id, l.profile.name, l.namespace
            )
        } else {
            format!(
                "{} has routes or dstOverrides, so for clients in namespace {} it replaces {what} entirely: those are ignored",
                res.id, l.namespace
            )
        };
        let hint = "move the policy into one place: either the ServiceProfile or the HTTPRoutes and annotations";
        findings.push(Finding::new(Code::ProfileOverridesRoutes, res.span(), msg).resource(res.id.clone()).hint(hint));
    }

    /// Whether Service `si` has nothing but default policy for clients in
    /// `client_ns` (cheap: decided before building the Service's view).
    pub fn is_default_for(&self, si: usize, client_ns: &str, default_opaque: &[PortRange]) -> bool {
        let svc = &self.bases[si].svc;
        let profiles = &self.profiles[si];
        svc.is_default(default_opaque)
            && !profiles.contains_key(client_ns)
            && !profiles.contains_key(&svc.namespace)
            && !self.routes[si].iter().any(|a| a.namespace == svc.namespace || a.namespace == client_ns)
            && !self.streams[si].iter().any(|a| a.namespace == svc.namespace || a.namespace == client_ns)
    }

    /// The TrafficSplit (resource index) that linkerd-smi wrote into the
    /// dstOverrides of Service `si`'s profile in `profile_namespace`.
    pub fn traffic_split(&self, si: usize, profile_namespace: &str) -> Option<usize> {
        self.splits.get(&(si, profile_namespace.to_owned())).copied()
    }

    /// The index of Service `namespace/name`, for [`Policy::service_for`].
    pub fn find(&self, namespace: &str, name: &str) -> Option<usize> {
        self.index.get(&(namespace.to_owned(), name.to_owned())).copied()
    }

    pub fn service_count(&self) -> usize {
        self.bases.len()
    }

    /// Service `si` as a client in namespace `client_ns` sees it.
    pub fn service_for(&self, si: usize, client_ns: &str) -> OutboundService {
        let base = &self.bases[si];
        let mut svc = base.svc.clone();
        let profiles = &self.profiles[si];
        if let Some(profile) = profiles.get(client_ns).or_else(|| profiles.get(&svc.namespace)) {
            svc.profile = Some(profile.clone());
            svc.timeouts = Default::default();
            svc.retry = None;
            svc.failure_accrual = None;
            return svc;
        }
        let visible_ns = |ns: &str| ns == svc.namespace || ns == client_ns;
        let routes: Vec<&Attached> = self.routes[si].iter().filter(|a| visible_ns(&a.namespace)).collect();
        let (namespace, name) = (svc.namespace.clone(), svc.name.clone());
        let streams: Vec<&AttachedStream> = self.streams[si].iter().filter(|a| visible_ns(&a.namespace)).collect();
        for port in &mut svc.ports {
            let parent = Backend {
                target: BackendTarget::Service { namespace: namespace.clone(), name: name.clone(), port: port.port },
                weight: 1,
                filters: Vec::new(),
            };
            if port.protocol != OutboundProtocol::Opaque {
                http_routes_for(port, &routes, &parent);
            }
            connection_routes_for(port, &streams, &parent);
        }
        svc
    }
}

fn fill(backends: &mut Vec<Backend>, parent: &Backend) {
    if backends.is_empty() {
        backends.push(parent.clone());
    }
}

/// A port's HTTP routes, or its gRPC routes when it has any (they win).
fn http_routes_for(port: &mut OutboundPort, routes: &[&Attached], parent: &Backend) {
    let here: Vec<&Attached> = routes.iter().copied().filter(|a| a.port.is_none_or(|p| p == port.port)).collect();
    for a in &here {
        if let RouteKind::Grpc(g) = &a.route {
            let mut g = g.clone();
            g.rules.iter_mut().for_each(|r| fill(&mut r.backends, parent));
            port.grpc_routes.push(g);
        }
    }
    if port.grpc_routes.is_empty() {
        for a in &here {
            if let RouteKind::Http(h) = &a.route {
                let mut h = h.clone();
                h.rules.iter_mut().for_each(|r| fill(&mut r.backends, parent));
                port.http_routes.push(h);
            }
        }
    }
}

/// Linkerd's precedence for the rest (`grpc/src/outbound.rs::to_proto`): a
/// detected port without HTTP or gRPC routes takes its TLSRoutes, else its
/// oldest TCPRoute; an opaque port only its oldest TCPRoute; an `http` or
/// `h2c` port neither. `streams` are in Linkerd's order.
fn connection_routes_for(port: &mut OutboundPort, streams: &[&AttachedStream], parent: &Backend) {
    let here = || streams.iter().filter(|a| a.applies_to(port.port));
    let detect = port.protocol == OutboundProtocol::Detect;
    let opaque = port.protocol == OutboundProtocol::Opaque;
    let no_requests = port.http_routes.is_empty() && port.grpc_routes.is_empty();
    if detect && no_requests {
        for a in here() {
            if let StreamKind::Tls(t) = &a.route {
                let mut t = t.clone();
                fill(&mut t.backends, parent);
                port.tls_routes.push(t);
            }
        }
    }
    if opaque || (detect && no_requests && port.tls_routes.is_empty()) {
        let first_tcp = here().find_map(|a| match &a.route {
            StreamKind::Tcp(t) => Some(t),
            StreamKind::Tls(_) => None,
        });
        port.tcp_route = first_tcp.map(|t| {
            let mut t = t.clone();
            fill(&mut t.backends, parent);
            t
        });
    }
}
