//! Human and JSON output of `meshc reach ... --to svc/...`.

use super::backends::BackendVerdict;
use super::client_route::ClientRoute;
use super::{Overall, ServiceReach};
use crate::query::evaluate::Verdict;
use crate::query::render::text::{Paint, step};
use std::fmt::Write;

/// Timeouts and retries of the client route, in words ("" when none).
pub fn shaping(r: &ClientRoute) -> String {
    let mut parts = Vec::new();
    let t = &r.timeouts;
    for (what, ms) in [("request", t.request_ms), ("response", t.response_ms), ("idle", t.idle_ms)] {
        if let Some(ms) = ms {
            parts.push(format!("{what} timeout {ms}ms"));
        }
    }
    if let Some(retry) = &r.retry {
        let mut on: Vec<String> = retry
            .http_statuses
            .iter()
            .map(|s| if s.min == s.max { s.min.to_string() } else { format!("{}-{}", s.min, s.max) })
            .collect();
        on.extend(retry.grpc_codes.iter().cloned());
        let on = if on.is_empty() { "no status (only attempt timeouts)".to_owned() } else { on.join(",") };
        let timeout = retry.timeout_ms.map_or_else(String::new, |ms| format!(", {ms}ms per attempt"));
        parts.push(format!("retries on {on}, limit {}{timeout}", retry.limit));
    }
    if r.retryable {
        parts.push("failures retried within the profile's retry budget".to_owned());
    }
    parts.join("; ")
}

fn paint_overall(paint: Paint, v: Overall) -> String {
    match v {
        Overall::Allow => paint.verdict(Verdict::Allow),
        Overall::Deny => paint.verdict(Verdict::Deny),
        Overall::NoRoute => paint.verdict(Verdict::NoRoute),
        Overall::Depends => paint.verdict(Verdict::Depends),
        Overall::Partial => paint.bold("partial"),
    }
}

fn status_text(status: Option<u32>, verdict: Verdict, grpc: bool) -> String {
    match (status, verdict) {
        (Some(code), _) if grpc => format!(" (grpc-status {code})"),
        (Some(code), _) => format!(" ({code})"),
        (None, Verdict::Allow | Verdict::Depends) => String::new(),
        (None, _) => " (connection refused or closed)".to_owned(),
    }
}

/// The call's head (service, client, client route), the overall verdict,
/// then every backend workload with its inbound proof.
pub fn text(r: &ServiceReach, request: &str, grpc: bool, paint: Paint) -> String {
    let mut out = String::new();
    let s = &r.service;
    let _ = writeln!(out, "{} → svc/{}/{}:{}  {request}", paint.bold(&r.client.spec), s.namespace, s.name, s.port);
    for st in &r.proof {
        step(&mut out, paint, st);
    }
    let overall_status = match (r.status, r.verdict) {
        (Some(code), _) if grpc => format!(" (grpc-status {code}, from the client's proxy)"),
        (Some(code), _) => format!(" ({code}, from the client's proxy)"),
        (None, Overall::Deny) if r.backends.is_empty() => " (connection refused)".to_owned(),
        (None, Overall::NoRoute) => " (connection closed by the client's proxy)".to_owned(),
        _ => String::new(),
    };
    let _ = writeln!(out, "\n{}{overall_status}", paint_overall(paint, r.verdict));
    for b in &r.backends {
        let at = backend_at(b);
        let _ = writeln!(
            out,
            "\n  backend {} weight {}{at}: {}{}",
            b.service,
            b.weight,
            paint.verdict(b.verdict),
            status_text(b.status, b.verdict, grpc)
        );
        // The client is already shown above; the rest is indented under its backend.
        for st in b.proof.iter().filter(|st| st.step != "client") {
            let mut one = String::new();
            step(&mut one, paint, st);
            one.lines().for_each(|l| {
                let _ = writeln!(out, "  {l}");
            });
        }
    }
    out
}

/// ` → KIND/NS/NAME:PORT`, with which of the client's own pods when the
/// workload is the client's (`""` without a workload).
pub fn backend_at(b: &BackendVerdict) -> String {
    match (&b.workload, b.pods) {
        (Some(w), Some(pods)) => format!(" → {w} ({})", pods.label()),
        (Some(w), None) => format!(" → {w}"),
        (None, _) => String::new(),
    }
}

/// Version 1 of the JSON answer.
pub fn json(r: &ServiceReach) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("a service reach serializes");
    v["version"] = serde_json::json!(1);
    v
}
