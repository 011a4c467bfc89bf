//! `meshc show-config`'s outbound part: per Service the workload can reach,
//! what its proxy does with requests (routes, splits, timeouts, retries,
//! circuit breaking, or the ServiceProfile that replaces them).

use super::show_config::meta;
use mesh_proxy_api::outbound::{
    Backend, BackendTarget, FailureAccrual, Outbound, OutboundPort, Profile, Retry, Timeouts,
};
use mesh_proxy_api::{HttpMatch, PathMatch};
use std::fmt::Write as _;

pub fn render(out: &mut String, outbound: &Outbound) {
    let opaque: Vec<String> = outbound
        .default_opaque_ports
        .iter()
        .map(|r| if r.start == r.end { r.start.to_string() } else { format!("{}-{}", r.start, r.end) })
        .collect();
    let opaque = if opaque.is_empty() { "none".to_owned() } else { opaque.join(",") };
    let _ = writeln!(
        out,
        "\noutbound: {} reachable Service(s) with policy of their own; any other Service gets the default\n  (protocol detection, opaque on ports {opaque}; one route to the Service; no timeouts, retries or circuit breaking)",
        outbound.services.len()
    );
    for s in &outbound.services {
        let _ = writeln!(out, "  {}/{}", s.namespace, s.name);
        if let Some(p) = &s.profile {
            profile(out, p);
            continue;
        }
        let policy = [
            timeouts(&s.timeouts),
            s.retry.as_ref().map(retry).unwrap_or_default(),
            accrual(s.failure_accrual.as_ref()),
        ];
        let policy: Vec<&str> = policy.iter().map(String::as_str).filter(|p| !p.is_empty()).collect();
        if !policy.is_empty() {
            let _ = writeln!(out, "    service: {}", policy.join("; "));
        }
        for p in &s.ports {
            port(out, p);
        }
    }
}

fn port(out: &mut String, p: &OutboundPort) {
    let protocol = format!("{:?}", p.protocol).to_ascii_lowercase();
    let routing = if !p.tls_routes.is_empty() {
        "TLS connections routed by SNI (not terminated); a connection whose SNI matches no route, or without SNI, is closed"
    } else if p.tcp_route.is_some() {
        "every connection routed by its TCPRoute"
    } else if p.http_routes.is_empty() && p.grpc_routes.is_empty() {
        if protocol == "opaque" { "TCP, no routes" } else { "default route to the Service" }
    } else {
        "unmatched requests get 404"
    };
    let _ = writeln!(out, "    port {} {protocol}: {routing}", p.port);
    for r in &p.http_routes {
        let _ = writeln!(out, "      {}", meta(&r.meta));
        for (k, rule) in r.rules.iter().enumerate() {
            let m: Vec<String> = rule.matches.iter().map(http_match).collect();
            rule_line(out, k, &m.join(" | "), &rule.backends, &rule.timeouts, rule.retry.as_ref());
        }
    }
    for r in &p.grpc_routes {
        let _ = writeln!(out, "      {}", meta(&r.meta));
        for (k, rule) in r.rules.iter().enumerate() {
            let m: Vec<String> = rule
                .matches
                .iter()
                .map(|m| format!("{}/{}", m.service.as_deref().unwrap_or("*"), m.method.as_deref().unwrap_or("*")))
                .collect();
            rule_line(out, k, &m.join(" | "), &rule.backends, &rule.timeouts, rule.retry.as_ref());
        }
    }
    for r in &p.tls_routes {
        let _ = writeln!(out, "      {}", meta(&r.meta));
        let snis: Vec<String> = r.snis.iter().map(sni).collect();
        let snis = if snis.is_empty() { "any SNI".to_owned() } else { format!("SNI {}", snis.join(" | ")) };
        let _ = writeln!(out, "        {snis} → {}", split(&r.backends, "connection is closed"));
    }
    if let Some(r) = &p.tcp_route {
        let _ = writeln!(out, "      {}", meta(&r.meta));
        let _ = writeln!(out, "        every connection → {}", split(&r.backends, "connection is closed"));
    }
}

pub(crate) fn sni(h: &mesh_proxy_api::HostMatch) -> String {
    match h {
        mesh_proxy_api::HostMatch::Exact(e) => e.clone(),
        mesh_proxy_api::HostMatch::Suffix(s) => format!("*.{s}"),
    }
}

/// Backends with their shares. `fails` is what an invalid backend does to
/// what it gets (`500` for requests, `connection is closed`).
fn split(backends: &[Backend], fails: &str) -> String {
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return if fails == "500" {
            "every request fails with 500 (all weights 0)".to_owned()
        } else {
            "every connection is closed (all weights 0)".to_owned()
        };
    }
    let to: Vec<String> = backends
        .iter()
        .map(|b| {
            let share = (u64::from(b.weight) * 100).checked_div(total).unwrap_or(0);
            match &b.target {
                BackendTarget::Service { namespace, name, port } => format!("{namespace}/{name}:{port} {share}%"),
                BackendTarget::Invalid { reason } => format!("{fails} ({reason}) {share}%"),
            }
        })
        .collect();
    to.join(", ")
}

fn rule_line(out: &mut String, k: usize, matches: &str, backends: &[Backend], t: &Timeouts, r: Option<&Retry>) {
    let matches = if matches.is_empty() { "any request" } else { matches };
    let to = split(backends, "500");
    let extra = [timeouts(t), r.map(retry).unwrap_or_default()];
    let extra: Vec<&str> = extra.iter().map(String::as_str).filter(|e| !e.is_empty()).collect();
    let extra = if extra.is_empty() { String::new() } else { format!("  [{}]", extra.join("; ")) };
    let _ = writeln!(out, "        rule {k}: {matches} → {to}{extra}");
}

pub(crate) fn http_match(m: &HttpMatch) -> String {
    let mut parts = Vec::new();
    if let Some(method) = &m.method {
        parts.push(method.clone());
    }
    match &m.path {
        Some(PathMatch::Exact(p)) => parts.push(format!("path = {p}")),
        Some(PathMatch::Prefix(p)) => parts.push(format!("path {p}*")),
        Some(PathMatch::Regex(p)) => parts.push(format!("path ~ {p}")),
        None => {}
    }
    parts.extend(m.headers.iter().map(|h| format!("header {} {:?}", h.name, h.value)));
    parts.join(" ")
}

fn ms(v: u64) -> String {
    match v {
        v if v > 0 && v % 3_600_000 == 0 => format!("{}h", v / 3_600_000),
        v if v > 0 && v % 60_000 == 0 => format!("{}m", v / 60_000),
        v if v % 1000 == 0 => format!("{}s", v / 1000),
        v => format!("{v}ms"),
    }
}

fn timeouts(t: &Timeouts) -> String {
    let parts: Vec<String> = [("request", t.request_ms), ("response", t.response_ms), ("idle", t.idle_ms)]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n} {}", ms(v))))
        .collect();
    if parts.is_empty() { String::new() } else { format!("timeouts {}", parts.join(", ")) }
}

fn retry(r: &Retry) -> String {
    let mut on: Vec<String> = r
        .http_statuses
        .iter()
        .map(|s| if s.min == s.max { s.min.to_string() } else { format!("{}-{}", s.min, s.max) })
        .collect();
    on.extend(r.grpc_codes.iter().cloned());
    let on = if on.is_empty() { "timeouts only".to_owned() } else { on.join(",") };
    let timeout = r.timeout_ms.map(|t| format!(", each try {}", ms(t))).unwrap_or_default();
    format!("retry on {on}, up to {} time(s){timeout}", r.limit)
}

fn accrual(a: Option<&FailureAccrual>) -> String {
    match a {
        None => String::new(),
        Some(
            FailureAccrual::Consecutive { max_failures, backoff }
            | FailureAccrual::Unified { max_failures, backoff, .. },
        ) => format!(
            "circuit breaker after {max_failures} consecutive failures, penalty {}..{}",
            ms(backoff.min_penalty_ms),
            ms(backoff.max_penalty_ms)
        ),
    }
}

fn profile(out: &mut String, p: &Profile) {
    let b = &p.retry_budget;
    let _ = writeln!(
        out,
        "    ServiceProfile {}/{} (replaces routes and annotations): retry budget {}%, {}/s, ttl {}",
        p.namespace,
        p.name,
        b.retry_ratio_ppm / 10_000,
        b.min_retries_per_second,
        ms(b.ttl_ms)
    );
    for r in &p.routes {
        let retry = if r.is_retryable { ", retryable" } else { "" };
        let timeout = r.timeout_ms.map(|t| format!(", timeout {}", ms(t))).unwrap_or_default();
        let _ = writeln!(out, "      route {}{retry}{timeout}", r.name);
    }
    for d in &p.dst_overrides {
        let _ = writeln!(out, "      split: {} weight {}", d.authority, d.weight);
    }
}
