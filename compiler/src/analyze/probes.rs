//! probe-denied: every kubelet httpGet probe is sent through the lowered
//! config with the proxy's own decision functions, as kubelet would send it
//! (plaintext, from the node address).

use crate::findings::{Code, Finding};
use crate::resolve::Resolved;
use crate::resolve::unknown::{self, Variables};
use crate::resolve::workload::HttpProbe;
use mesh_proxy_api::{
    Client, HttpRequest, HttpVerdict, InboundServer, PortPolicy, Protocol, ProxyConfig, TcpVerdict, decide_http,
    decide_tcp,
};

pub fn check(r: &Resolved, configs: &[Option<ProxyConfig>], findings: &mut Vec<Finding>) {
    let kubelet = Client::plaintext(r.settings.kubelet_ip);
    let variables = Variables::find(&r.resources, &r.unknown_values);
    for (wi, config) in configs.iter().enumerate() {
        let Some(config) = config else { continue };
        let w = &r.workloads[wi];
        if config.inbound.skips_source(r.settings.kubelet_ip) {
            continue;
        }
        for probe in &w.probes {
            let PortPolicy::Server(server) = config.inbound.lookup(probe.port) else { continue };
            let Some((outcome, hint)) = probe_outcome(server, &kubelet, probe, w.default_policy.from) else { continue };
            let res = &r.resources[w.resource];
            let owner = if probe.injected {
                "the injected linkerd-proxy".to_owned()
            } else {
                format!("container {}", probe.container)
            };
            let msg = format!(
                "kubelet {} probe GET {} on {}/{}:{} ({owner}) {outcome}; {}",
                probe.kind,
                probe.path,
                w.namespace,
                w.name,
                probe.port,
                consequence(probe.kind)
            );
            let field: Vec<&str> = probe.field.iter().map(String::as_str).collect();
            let mut f = Finding::new(Code::ProbeDenied, res.span_at(&field), msg).resource(res.id.clone()).hint(hint);
            // Denied only because a network is a Flux variable without a value?
            let passes = |s: &InboundServer| probe_outcome(s, &kubelet, probe, w.default_policy.from).is_none();
            if let Some(u) = variables.widened_allows(r, &w.namespace, server, passes) {
                unknown::mark(&mut f, u);
            }
            findings.push(f);
        }
    }
}

/// What kubelet gets and how to fix it, or `None` when the probe passes the proxy.
/// `policy_from` says where a default policy came from (pod, namespace, cluster).
fn probe_outcome(
    server: &InboundServer,
    kubelet: &Client,
    probe: &HttpProbe,
    policy_from: &str,
) -> Option<(String, &'static str)> {
    let server_name = if server.meta.kind == "default" {
        format!("the port's default policy `{}` ({policy_from})", server.meta.name)
    } else {
        format!("Server {}", server.meta.name)
    };
    let http = matches!(server.protocol, Protocol::Detect { .. } | Protocol::Http1 | Protocol::Http2) && !probe.https;
    if http {
        return match decide_http(server, kubelet, &HttpRequest::get(&probe.path)) {
            HttpVerdict::Allowed { .. } => None,
            HttpVerdict::NoRoute => {
                Some((format!("will get 404: no route of {server_name} matches it"), ROUTES_REPLACE_PROBE_ROUTE))
            }
            HttpVerdict::Unauthorized { route, .. } => {
                let route = server.http_routes.get(route);
                let name = route.map_or("?", |r| r.meta.name.as_str());
                let outcome = format!(
                    "will get 403: route `{name}` of {server_name} has no authorization for unauthenticated clients from {}",
                    kubelet.addr
                );
                let hint = match route {
                    Some(r) if r.meta.kind == "default" && r.meta.name == "probe" => KUBELET_OUTSIDE_PROBE_NETWORKS,
                    Some(r) if r.meta.kind == "default" => DEFAULT_DENIES,
                    _ => AUTHORIZE_PROBE_ROUTE,
                };
                Some((outcome, hint))
            }
        };
    }
    let opaque = matches!(server.protocol, Protocol::Opaque | Protocol::Tls);
    match decide_tcp(server, kubelet) {
        TcpVerdict::Allowed { .. } => None,
        TcpVerdict::Closed if opaque => Some((
            format!(
                "will have its connection closed: the port is opaque (no HTTP routes, so no probe route) and {server_name} authorizes no unauthenticated client from {}",
                kubelet.addr
            ),
            OPAQUE_PORT,
        )),
        TcpVerdict::Closed => Some((
            format!(
                "will have its connection closed: {server_name} authorizes no unauthenticated client from {}",
                kubelet.addr
            ),
            DEFAULT_DENIES,
        )),
    }
}

fn consequence(kind: &str) -> &'static str {
    match kind {
        "liveness" => "kubelet will restart the container",
        "startup" => "the container never starts",
        _ => "the pod never becomes ready and receives no Service traffic",
    }
}

const ROUTES_REPLACE_PROBE_ROUTE: &str = "attaching an HTTPRoute removes Linkerd's automatic probe route: add a route for the probe path (GET, Exact) and an AuthorizationPolicy with a NetworkAuthentication for the kubelet networks targeting it";
const AUTHORIZE_PROBE_ROUTE: &str = "authorize unauthenticated clients from the kubelet networks on this route (AuthorizationPolicy + NetworkAuthentication)";
const KUBELET_OUTSIDE_PROBE_NETWORKS: &str = "kubelet's address is outside probeNetworks: set `probeNetworks` (Helm policyController.probeNetworks) to include your node network, or `kubeletIp` in meshc.yaml if meshc guessed the address wrong";
const DEFAULT_DENIES: &str = "this policy admits no unauthenticated client from kubelet's address: add a Server for this port with an authorization for the kubelet networks";
const OPAQUE_PORT: &str = "the port is opaque (config.linkerd.io/opaque-ports, or Linkerd's default opaque list): authorize the kubelet networks on a Server for this port, or take the port out of opaque-ports";
