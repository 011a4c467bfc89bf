//! Lowering: each meshed workload's resolved policy → the `ProxyConfig` its
//! proxy enforces. Analysis then runs on these configs, through the same
//! decision functions the proxy calls.

pub mod outbound;
mod ratelimit;

use crate::model::Spec;
use crate::resolve::defaults::{
    default_authorizations, default_grpc_route, default_http_route, effective_default_policy, probe_route,
};
use crate::resolve::routes::Converted;
use crate::resolve::workload::Workload;
use crate::resolve::{Resolved, ports};
use mesh_proxy_api::{
    API_VERSION, Authorization, GrpcRoute, HttpRoute, Inbound, InboundServer, Meta, PortServer, Protocol, ProxyConfig,
    WorkloadRef,
};
use std::collections::BTreeSet;

/// Ranges larger than this are not expanded into per-port entries; the
/// ports that matter (declared, probed, bound) are always listed.
const MAX_EXPANDED_RANGE: u32 = 1024;

/// The config of workload `wi`, or `None` when it has no proxy.
pub fn lower_workload(r: &Resolved, wi: usize) -> Option<ProxyConfig> {
    let w = &r.workloads[wi];
    if !w.is_meshed() {
        return None;
    }
    let bound = &r.bindings.ports[wi];
    let mut ports: BTreeSet<u16> = bound.keys().copied().collect();
    ports.extend(w.probes.iter().map(|p| p.port));
    ports.extend(w.ports.iter().map(|p| p.port).filter(|p| ports::contains(&w.opaque_ports, *p)));
    for range in w.opaque_ports.iter().chain(&w.require_identity_ports) {
        if u32::from(range.end - range.start) < MAX_EXPANDED_RANGE {
            ports.extend(range.start..=range.end);
        }
    }
    let default = default_server(r, w, None);
    let entries = ports
        .into_iter()
        .map(|port| {
            let server = match bound.get(&port) {
                Some(&s) => server_config(r, w, s, port),
                None => default_server(r, w, Some(port)),
            };
            PortServer { port, server }
        })
        .filter(|e| e.server != default)
        .collect();
    Some(ProxyConfig {
        api_version: API_VERSION.to_owned(),
        workload: WorkloadRef { kind: w.kind.clone(), namespace: w.namespace.clone(), name: w.name.clone() },
        identity: w.identity.clone(),
        inbound: Inbound {
            ports: entries,
            default_server: default,
            skip_ports: w.skip_inbound_ports.clone(),
            skip_subnets: w.skip_subnets.clone(),
        },
        outbound: Default::default(),
        access_log: w.access_log,
        // Set by `meshc build` when it signs.
        sequence: 0,
    })
}

/// The server for a port no Server selects (§1.4); `None` is any other port.
pub fn default_server(r: &Resolved, w: &Workload, port: Option<u16>) -> InboundServer {
    let opaque = port.is_some_and(|p| ports::contains(&w.opaque_ports, p));
    let require_identity = port.is_some_and(|p| ports::contains(&w.require_identity_ports, p));
    let policy = effective_default_policy(&w.default_policy.policy, require_identity);
    let protocol =
        if opaque { Protocol::Opaque } else { Protocol::Detect { timeout_ms: r.settings.detect_timeout_ms } };
    let http_routes = if opaque { Vec::new() } else { default_routes(r, w, port) };
    InboundServer {
        meta: Meta::default_named(policy),
        protocol,
        authorizations: default_authorizations(policy, &r.settings),
        http_routes,
        grpc_routes: Vec::new(),
        rate_limit: None,
    }
}

fn default_routes(r: &Resolved, w: &Workload, port: Option<u16>) -> Vec<HttpRoute> {
    let paths: Vec<String> = match port {
        Some(port) => {
            let mut p: Vec<String> = w.probes.iter().filter(|p| p.port == port).map(|p| p.path.clone()).collect();
            p.sort();
            p.dedup();
            p
        }
        None => Vec::new(),
    };
    std::iter::once(default_http_route()).chain(probe_route(&paths, &r.settings)).collect()
}

fn server_config(r: &Resolved, w: &Workload, s: usize, port: u16) -> InboundServer {
    let res = &r.resources[s];
    let Spec::Server(spec) = &res.spec else { unreachable!("bindings hold Servers") };
    let protocol = protocol(spec.proxy_protocol.as_deref(), r.settings.detect_timeout_ms);
    let mut authorizations: Vec<Authorization> = r.granted.server.get(&s).cloned().unwrap_or_default();
    // accessPolicy adds its default authorization; absent means the CRD default `deny`.
    if let Some(policy) = spec.access_policy.as_deref() {
        authorizations.extend(default_authorizations(policy, &r.settings));
    }
    let (http_routes, grpc_routes) = match protocol {
        Protocol::Grpc => (Vec::new(), grpc_routes(r, s)),
        Protocol::Opaque | Protocol::Tls => (Vec::new(), Vec::new()),
        _ => (http_routes(r, w, s, port), Vec::new()),
    };
    let rate_limit = ratelimit::server_rate_limit(r, s, &protocol);
    InboundServer {
        meta: Meta::resource("Server", res.name()),
        protocol,
        authorizations,
        http_routes,
        grpc_routes,
        rate_limit,
    }
}

pub fn protocol(proxy_protocol: Option<&str>, detect_timeout_ms: u64) -> Protocol {
    match proxy_protocol {
        Some("HTTP/1") => Protocol::Http1,
        Some("HTTP/2") => Protocol::Http2,
        Some("gRPC") => Protocol::Grpc,
        Some("opaque") => Protocol::Opaque,
        Some("TLS") => Protocol::Tls,
        _ => Protocol::Detect { timeout_ms: detect_timeout_ms },
    }
}

fn route_authorizations(r: &Resolved, route: usize) -> Vec<Authorization> {
    r.granted.route.get(&route).cloned().unwrap_or_default()
}

fn http_routes(r: &Resolved, w: &Workload, s: usize, port: u16) -> Vec<HttpRoute> {
    let attached = r.routes.http.get(&s).map_or(&[][..], Vec::as_slice);
    if attached.is_empty() {
        return default_routes(r, w, Some(port));
    }
    attached
        .iter()
        .filter_map(|&ri| match r.routes.converted.get(&ri) {
            Some(Converted::Http(h)) => Some(HttpRoute { authorizations: route_authorizations(r, ri), ..h.clone() }),
            _ => None,
        })
        .collect()
}

fn grpc_routes(r: &Resolved, s: usize) -> Vec<GrpcRoute> {
    let attached = r.routes.grpc.get(&s).map_or(&[][..], Vec::as_slice);
    if attached.is_empty() {
        return vec![default_grpc_route()];
    }
    attached
        .iter()
        .filter_map(|&ri| match r.routes.converted.get(&ri) {
            Some(Converted::Grpc(g)) => Some(GrpcRoute { authorizations: route_authorizations(r, ri), ..g.clone() }),
            _ => None,
        })
        .collect()
}

/// Every meshed workload's config, in workload order (`None` for unmeshed ones).
pub fn lower_all(r: &Resolved) -> Vec<Option<ProxyConfig>> {
    use rayon::prelude::*;
    (0..r.workloads.len()).into_par_iter().map(|wi| lower_workload(r, wi)).collect()
}
