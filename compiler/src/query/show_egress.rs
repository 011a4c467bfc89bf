//! `meshc show-config`'s egress part: the EgressNetworks the workload's
//! proxy applies to addresses outside the cluster networks, their networks,
//! trafficPolicy and routes (semantics: `docs/semantics/egress.md`).

use super::show_config::meta;
use super::show_outbound::http_match;
use mesh_proxy_api::Network;
use mesh_proxy_api::outbound::egress::{Egress, EgressBackend, EgressPort, EgressTarget, TrafficPolicy};
use std::fmt::Write as _;

/// Nothing when no EgressNetwork applies (every external address is then
/// passed through, as Linkerd's egress-fallback does).
pub fn render(out: &mut String, egress: &Egress) {
    if egress.networks.is_empty() {
        return;
    }
    let cluster: Vec<String> = egress.cluster_networks.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "\negress: to addresses outside the cluster networks ({}), the most specific network below decides;\n  an address none covers is passed through (egress-fallback)",
        cluster.join(", ")
    );
    for n in &egress.networks {
        let refused = "HTTP 403 (gRPC PERMISSION_DENIED), TLS and TCP closed";
        let policy = match n.traffic_policy {
            TrafficPolicy::Allow => "Allow: traffic no route matches is passed through".to_owned(),
            TrafficPolicy::Deny => format!("Deny: traffic no route matches is refused ({refused})"),
        };
        let _ = writeln!(out, "  EgressNetwork {}/{}  {policy}", n.namespace, n.name);
        let nets: Vec<String> = n.networks.iter().map(network).collect();
        let _ = writeln!(out, "    networks {}", nets.join("; "));
        for p in &n.ports {
            port(out, p);
        }
    }
}

fn network(n: &Network) -> String {
    if n.except.is_empty() {
        return n.net.to_string();
    }
    let except: Vec<String> = n.except.iter().map(ToString::to_string).collect();
    format!("{} except {}", n.net, except.join(","))
}

fn port(out: &mut String, p: &EgressPort) {
    let _ = writeln!(out, "    port {}:", p.port);
    for r in &p.grpc_routes {
        let _ = writeln!(out, "      {}", meta(&r.meta));
        for (k, rule) in r.rules.iter().enumerate() {
            let m: Vec<String> = rule
                .matches
                .iter()
                .map(|m| {
                    let svc = m.service.as_deref().unwrap_or("*");
                    format!("{svc}/{}", m.method.as_deref().unwrap_or("*"))
                })
                .collect();
            let _ = writeln!(out, "        rule {k}: {} → {}", m.join(" | "), backends(&rule.backends));
        }
    }
    if !p.grpc_routes.is_empty() && !p.http_routes.is_empty() {
        let _ = writeln!(out, "      (HTTPRoutes on this port are not used: GRPCRoutes take precedence)");
    }
    for r in p.http_routes.iter().filter(|_| p.grpc_routes.is_empty()) {
        let _ = writeln!(out, "      {}", meta(&r.meta));
        for (k, rule) in r.rules.iter().enumerate() {
            let m: Vec<String> = rule.matches.iter().map(http_match).collect();
            let _ = writeln!(out, "        rule {k}: {} → {}", m.join(" | "), backends(&rule.backends));
        }
    }
    connection_routes(out, p);
}

/// TLSRoutes (by SNI) and the TCPRoute, which serve the port only when it
/// has no HTTP or gRPC routes (the status controller conflicts them).
fn connection_routes(out: &mut String, p: &EgressPort) {
    let requests = !p.grpc_routes.is_empty() || !p.http_routes.is_empty();
    for r in p.tls_routes.iter().filter(|_| !requests) {
        let snis: Vec<String> = r.snis.iter().map(super::show_outbound::sni).collect();
        let snis = if snis.is_empty() { "every SNI".to_owned() } else { format!("SNI {}", snis.join(" | ")) };
        let _ = writeln!(out, "      {}: {snis} → {}", meta(&r.meta), backends_closing(&r.backends));
    }
    if !p.tls_routes.is_empty() && !requests {
        let _ = writeln!(out, "      (a connection without an SNI is closed; other SNIs get the traffic policy)");
    }
    if let Some(r) = p.tcp_route.as_ref().filter(|_| !requests && p.tls_routes.is_empty()) {
        let _ = writeln!(out, "      {}: every connection → {}", meta(&r.meta), backends_closing(&r.backends));
    }
}

/// A connection routed to an invalid backend is closed, not answered with 500.
fn backends_closing(list: &[EgressBackend]) -> String {
    backends(list).replace("500 (", "closed (")
}

fn backends(list: &[EgressBackend]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|b| {
            let to = match &b.target {
                EgressTarget::Original => "pass through".to_owned(),
                EgressTarget::Service { namespace, name, port } => format!("Service {namespace}/{name}:{port}"),
                EgressTarget::Invalid { reason } => format!("500 ({reason})"),
            };
            if list.len() > 1 { format!("{to} (weight {})", b.weight) } else { to }
        })
        .collect();
    parts.join(", ")
}
