//! `meshc show-config`: a workload's lowered config, readable. The JSON form
//! is the ProxyConfig itself, the structure the proxy receives.

use mesh_proxy_api::{
    Authentication, Authorization, GrpcRoute, GrpcRule, HttpMatch, HttpRoute, HttpRule, InboundServer, Meta, Network,
    PathMatch, Protocol, ProxyConfig, StringMatch,
};
use std::fmt::Write;

pub fn render(c: &ProxyConfig) -> String {
    let mut out = String::new();
    let w = &c.workload;
    let _ = writeln!(out, "{} {}/{}  identity {}", w.kind, w.namespace, w.name, c.identity);
    if !c.inbound.skip_ports.is_empty() {
        let ports: Vec<String> = c.inbound.skip_ports.iter().map(|r| range(r.start, r.end)).collect();
        let _ =
            writeln!(out, "skip-inbound-ports {}: traffic bypasses the proxy (no policy, no mTLS)", ports.join(", "));
    }
    if !c.inbound.skip_subnets.is_empty() {
        let nets: Vec<String> = c.inbound.skip_subnets.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "skip-subnets {}: traffic from there bypasses the proxy", nets.join(", "));
    }
    for entry in &c.inbound.ports {
        let _ = writeln!(out, "\nport {}", entry.port);
        server(&mut out, &entry.server);
        if let Some(limit) = &entry.server.rate_limit {
            let _ = writeln!(out, "  rate limit {}", super::ratelimit::PolicyView::from(limit).text());
        }
    }
    let _ = writeln!(out, "\nany other port");
    server(&mut out, &c.inbound.default_server);
    let _ = writeln!(out, "\nevery port also authorizes localhost (127.0.0.1/32, ::1/128), as the proxy always does");
    super::show_outbound::render(&mut out, &c.outbound);
    super::show_egress::render(&mut out, &c.outbound.egress);
    out
}

pub(crate) fn meta(m: &Meta) -> String {
    match (m.kind.as_str(), &m.group) {
        ("default", _) => format!("default:{}", m.name),
        (kind, Some(group)) => format!("{kind}.{group}/{}", m.name),
        (kind, None) => format!("{kind}/{}", m.name),
    }
}

pub(crate) fn protocol(p: &Protocol) -> String {
    match p {
        Protocol::Detect { timeout_ms } => format!("detect ({} s timeout)", timeout_ms / 1000),
        Protocol::Http1 => "HTTP/1".to_owned(),
        Protocol::Http2 => "HTTP/2".to_owned(),
        Protocol::Grpc => "gRPC".to_owned(),
        Protocol::Opaque => "opaque (authorized per connection)".to_owned(),
        Protocol::Tls => "TLS (authorized per connection)".to_owned(),
    }
}

fn server(out: &mut String, s: &InboundServer) {
    let _ = writeln!(out, "  server {}  protocol {}", meta(&s.meta), protocol(&s.protocol));
    authorizations(out, "  ", "server authorizations", &s.authorizations);
    for r in &s.http_routes {
        http_route(out, r);
    }
    for r in &s.grpc_routes {
        grpc_route(out, r);
    }
}

fn authorizations(out: &mut String, indent: &str, title: &str, list: &[Authorization]) {
    if list.is_empty() {
        let _ = writeln!(out, "{indent}{title}: none");
        return;
    }
    let _ = writeln!(out, "{indent}{title}:");
    for a in list {
        let _ = writeln!(
            out,
            "{indent}  - {}: {} from {}",
            meta(&a.meta),
            authentication(&a.authentication),
            networks(&a.networks)
        );
    }
}

pub(crate) fn authentication(a: &Authentication) -> String {
    match a {
        Authentication::Unauthenticated => "any client".to_owned(),
        Authentication::TlsUnauthenticated => "any mTLS client".to_owned(),
        Authentication::TlsAuthenticated { identities, suffixes } => {
            let mut ids: Vec<String> = identities.clone();
            ids.extend(suffixes.iter().map(|s| if s.is_empty() { "any identity".to_owned() } else { format!("*{s}") }));
            format!("mTLS identity {}", ids.join(" | "))
        }
    }
}

pub(crate) fn networks(nets: &[Network]) -> String {
    let list: Vec<String> = nets
        .iter()
        .map(|n| {
            if n.except.is_empty() {
                n.net.to_string()
            } else {
                let except: Vec<String> = n.except.iter().map(ToString::to_string).collect();
                format!("{} except {}", n.net, except.join(", "))
            }
        })
        .collect();
    list.join(", ")
}

fn http_route(out: &mut String, r: &HttpRoute) {
    let hosts: Vec<String> = r.hostnames.iter().map(|h| format!("{h:?}")).collect();
    let hosts = if hosts.is_empty() { String::new() } else { format!("  hosts {}", hosts.join(", ")) };
    let _ = writeln!(out, "  route {}{hosts}", meta(&r.meta));
    for rule in &r.rules {
        let _ = writeln!(out, "    match {}", http_rule(rule));
    }
    authorizations(out, "    ", "route authorizations", &r.authorizations);
}

/// A rule's matches in words: OR of ANDs.
pub(crate) fn http_rule(rule: &HttpRule) -> String {
    let matches: Vec<String> = rule.matches.iter().map(http_match).collect();
    if matches.is_empty() { "every request".to_owned() } else { matches.join(" | ") }
}

pub(crate) fn grpc_rule(rule: &GrpcRule) -> String {
    let matches: Vec<String> = rule
        .matches
        .iter()
        .map(|m| format!("{}/{}", m.service.as_deref().unwrap_or("*"), m.method.as_deref().unwrap_or("*")))
        .collect();
    if matches.is_empty() { "every call".to_owned() } else { matches.join(" | ") }
}

fn http_match(m: &HttpMatch) -> String {
    let mut parts = Vec::new();
    if let Some(method) = &m.method {
        parts.push(method.clone());
    }
    parts.push(match &m.path {
        Some(PathMatch::Exact(p)) => format!("path = {p}"),
        Some(PathMatch::Prefix(p)) => format!("path {p}*"),
        Some(PathMatch::Regex(p)) => format!("path ~ {p}"),
        None => "any path".to_owned(),
    });
    for h in &m.headers {
        parts.push(format!("header {} {}", h.name, string_match(&h.value)));
    }
    for q in &m.query_params {
        parts.push(format!("query {} {}", q.name, string_match(&q.value)));
    }
    parts.join(" ")
}

fn string_match(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(v) => format!("= {v}"),
        StringMatch::Regex(v) => format!("~ {v}"),
    }
}

fn grpc_route(out: &mut String, r: &GrpcRoute) {
    let _ = writeln!(out, "  route {}", meta(&r.meta));
    for rule in &r.rules {
        let _ = writeln!(out, "    match {}", grpc_rule(rule));
    }
    authorizations(out, "    ", "route authorizations", &r.authorizations);
}

fn range(start: u16, end: u16) -> String {
    if start == end { start.to_string() } else { format!("{start}-{end}") }
}
