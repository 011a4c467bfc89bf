//! probe-denied: every kubelet httpGet probe is sent through the lowered
//! config with the proxy's own decision functions, as kubelet would send it
//! (plaintext, from the node address).

use crate::findings::{Code, Finding};
use crate::resolve::Resolved;
use crate::resolve::workload::HttpProbe;
use mesh_proxy_api::{
    Client, HttpRequest, HttpVerdict, InboundServer, PortPolicy, Protocol, ProxyConfig, TcpVerdict,
    decide_http, decide_tcp,
};

pub fn check(r: &Resolved, configs: &[Option<ProxyConfig>], findings: &mut Vec<Finding>) {
    let kubelet = Client::plaintext(r.settings.kubelet_ip);
    for (wi, config) in configs.iter().enumerate() {
        let Some(config) = config else { continue };
        let w = &r.workloads[wi];
        if config.inbound.skips_source(r.settings.kubelet_ip) {
            continue;
        }
        for probe in &w.probes {
            let PortPolicy::Server(server) = config.inbound.lookup(probe.port) else {
                continue;
            };
            let Some(outcome) = probe_outcome(server, &kubelet, probe) else {
                continue;
            };
            let res = &r.resources[w.resource];
            let target = format!("{}/{}", w.namespace, w.name);
            let msg = format!(
                "kubelet {} probe GET {} on {target}:{} ({}) {outcome}; {}",
                probe.kind,
                probe.path,
                probe.port,
                if probe.injected {
                    "the injected linkerd-proxy".to_owned()
                } else {
                    format!("container {}", probe.container)
                },
                consequence(probe.kind)
            );
            let hint = hint_for(server);
            let field: Vec<&str> = probe.field.iter().map(String::as_str).collect();
            let f =
                Finding::new(Code::ProbeDenied, res.span_at(&field), msg).resource(res.id.clone());
            findings.push(f.hint(hint));
        }
    }
}

/// What kubelet gets, or `None` when the probe passes the proxy.
fn probe_outcome(server: &InboundServer, kubelet: &Client, probe: &HttpProbe) -> Option<String> {
    let server_name = format!("{} {}", server.meta.kind, server.meta.name);
    let http = matches!(
        server.protocol,
        Protocol::Detect { .. } | Protocol::Http1 | Protocol::Http2
    ) && !probe.https;
    if http {
        let verdict = decide_http(server, kubelet, &HttpRequest::get(&probe.path));
        return match verdict {
            HttpVerdict::Allowed { .. } => None,
            HttpVerdict::NoRoute => Some(format!(
                "will get 404: no route on {server_name} matches it"
            )),
            HttpVerdict::Unauthorized { route, .. } => Some(format!(
                "will get 403: route `{}` on {server_name} has no authorization for unauthenticated clients from {}",
                server
                    .http_routes
                    .get(route)
                    .map_or("?", |r| r.meta.name.as_str()),
                kubelet.addr
            )),
        };
    }
    match decide_tcp(server, kubelet) {
        TcpVerdict::Allowed { .. } => None,
        TcpVerdict::Closed => Some(format!(
            "will have its connection closed: {server_name} authorizes no unauthenticated client from {}",
            kubelet.addr
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

fn hint_for(server: &InboundServer) -> &'static str {
    if server.meta.kind == "default" {
        "the default policy denies unauthenticated clients; add a Server for this port with an authorization for the probe networks"
    } else if server.http_routes.iter().any(|r| r.meta.kind != "default") {
        "attaching an HTTPRoute removes Linkerd's automatic probe route: add a route for the probe path and an AuthorizationPolicy (with a NetworkAuthentication for the kubelet networks) targeting it"
    } else {
        "authorize unauthenticated clients from the kubelet networks on this Server (AuthorizationPolicy with a NetworkAuthentication, or accessPolicy)"
    }
}
