//! Running flows: each through `meshc reach`'s machinery, so a failure
//! carries the same proof a user would get from `meshc reach`.

use super::{Flow, Suite, TestResult};
use crate::findings::{Code, Finding};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::egress;
use crate::query::evaluate::Verdict;
use crate::query::reach::{Reach, flow_verdict, parse_client, parse_target, request_of};
use crate::query::svc;
use mesh_proxy_api::HttpRequest;

/// The verdicts a flow may expect; `partial` only for a `svc/` target,
/// where backends may answer differently.
fn expected(s: &str, to: &str) -> Option<&'static str> {
    match s {
        "allow" => Some("allow"),
        "deny" => Some("deny"),
        "no-route" => Some("no-route"),
        "depends" => Some("depends"),
        "partial" if svc::target::is_service(to) => Some("partial"),
        _ => None,
    }
}

fn request(f: &Flow) -> Option<HttpRequest> {
    let s = &f.spec;
    let headers = s.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    request_of(s.method.as_deref(), s.path.as_deref(), s.host.as_deref(), headers)
}

pub fn name(f: &Flow) -> String {
    let s = &f.spec;
    s.name.clone().unwrap_or_else(|| {
        let req = match (&s.method, &s.path) {
            (None, None) => String::new(),
            (m, p) => format!(" {} {}", m.as_deref().unwrap_or("GET"), p.as_deref().unwrap_or("/")),
        };
        format!("{} → {}{req}", s.from, s.to)
    })
}

/// The verdict a flow gets, and the proof to show when it is not the one
/// expected. A `svc/` target is called as a client calls a Service (the
/// client's proxy, then each backend), with `GET /` when no request is given;
/// an `egress:` target through the client's EgressNetwork decision. A
/// `svc/` call's backends are followed by `follow` (a mirror, across clusters).
fn verdict(o: &Outcome, classes: &Classes, f: &Flow, follow: svc::Follow) -> Result<(&'static str, String), String> {
    let client = parse_client(o, classes, &f.spec.from)?;
    let sni_target = svc::target::is_service(&f.spec.to) || crate::query::egress_ref::parse(&f.spec.to).is_some();
    if f.spec.sni.is_some() && !sni_target {
        return Err("`sni` applies to svc/ and egress:HOST:PORT targets only".to_owned());
    }
    if svc::target::is_service(&f.spec.to) {
        let t = svc::target::parse(o, &f.spec.to)?;
        let req = request(f);
        if f.spec.sni.is_some() && req.is_some() {
            return Err("`sni` (TLS) and a request (HTTP) describe different traffic: give one".to_owned());
        }
        let req = req.unwrap_or_else(|| HttpRequest::new("GET", "/"));
        let (r, _) = svc::reach_following(o, client, &t, &req, f.spec.sni.as_deref(), follow);
        return Ok((r.verdict.as_str(), service_explanation(&r)));
    }
    if let Some(target) = crate::query::egress_ref::parse(&f.spec.to) {
        let target = target?;
        let traffic = egress::traffic_of(&target, request(f), f.spec.sni.clone());
        let r = egress::reach_egress(o, &client, &target, &traffic)?;
        let why = r
            .condition
            .clone()
            .unwrap_or_else(|| r.proof.iter().map(|s| s.detail.as_str()).collect::<Vec<_>>().join("; "));
        return Ok((r.verdict.as_str(), why));
    }
    let (wi, port) = parse_target(o, &f.spec.to)?;
    let (got, proof) = flow_verdict(o, &client, wi, port, request(f).as_ref());
    Ok((got.as_str(), proof.as_ref().map(|r| explanation(r, got)).unwrap_or_default()))
}

/// The client route, then each backend that does not allow, on one line.
fn service_explanation(r: &svc::ServiceReach) -> String {
    let mut parts: Vec<String> = r.proof.iter().skip(2).map(|s| s.detail.clone()).collect();
    for b in r.backends.iter().filter(|b| b.verdict != Verdict::Allow) {
        let at = b.workload.as_deref().unwrap_or("no workload");
        // The links a reader acts on, as `VerdictView::summary`; the
        // localhost authorization every proxy adds never explains a refusal.
        let why: Vec<String> = b
            .proof
            .iter()
            .filter(|s| matches!(s.step, "backend" | "server" | "port" | "authorization" | "likely-cause"))
            .filter(|s| !s.detail.starts_with("localhost authorization"))
            .map(|s| match (&s.file, s.line) {
                (Some(file), Some(line)) => format!("{} ({file}:{line})", s.detail),
                _ => s.detail.clone(),
            })
            .collect();
        parts.push(format!("backend {} ({at}): {}: {}", b.service, b.verdict.as_str(), why.join("; ")));
    }
    parts.join("; ")
}

/// The proof of the verdict that failed the expectation: when it depends
/// on the pod CIDR, the condition first.
fn explanation(r: &Reach, got: Verdict) -> String {
    let v = match got {
        Verdict::Depends => r.verdicts.iter().find(|v| v.verdict == Verdict::Depends),
        _ => r.verdicts.iter().find(|v| v.verdict != Verdict::Allow),
    };
    let Some(v) = v.or(r.verdicts.first()) else { return String::new() };
    match &v.condition {
        Some(c) => format!("{c}, and git does not hold the client pod's address (set podNetworks): {}", v.summary()),
        None => v.summary(),
    }
}

/// The verdict of a flow another layer answers (a flow across clusters),
/// or `None` for one this outcome answers alone.
pub type Remote<'r> = &'r dyn Fn(&Flow) -> Option<Result<(&'static str, String), String>>;

pub fn run(o: &Outcome, classes: &Classes, suite: &Suite, findings: &mut Vec<Finding>) -> Vec<TestResult> {
    run_with(o, classes, suite, findings, &|_| None, svc::STAY)
}

/// [`run`], with the flows `remote` answers (across clusters) taken from it,
/// and the backends of calls to a `svc/` target followed by `follow`.
pub fn run_with(
    o: &Outcome,
    classes: &Classes,
    suite: &Suite,
    findings: &mut Vec<Finding>,
    remote: Remote,
    follow: svc::Follow,
) -> Vec<TestResult> {
    let mut out = Vec::new();
    for f in &suite.flows {
        let file = o.sources.get(f.span.source as usize).map_or_else(String::new, |s| s.name.clone());
        let mut result = TestResult {
            test: f.test.clone(),
            name: name(f),
            file,
            line: f.span.line,
            passed: false,
            message: String::new(),
            detail: String::new(),
        };
        let Some(want) = expected(&f.spec.expect, &f.spec.to) else {
            let msg = format!(
                "flow {}: expect `{}` is not allow, deny, no-route, depends (or partial, for a svc/ target)",
                result.name, f.spec.expect
            );
            findings.push(Finding::new(Code::TestError, f.span, msg.clone()));
            result.message = msg;
            out.push(result);
            continue;
        };
        match remote(f).unwrap_or_else(|| verdict(o, classes, f, follow)) {
            Err(e) => {
                let msg = format!("flow {}: {e}", result.name);
                findings.push(Finding::new(Code::TestError, f.span, msg.clone()));
                result.message = msg;
            }
            Ok((got, why)) => {
                result.passed = got == want;
                result.message = format!("expected {want}, got {got}");
                if !result.passed {
                    let msg = format!("flow {}: expected {want}, got {got}: {why}", result.name);
                    let hint = format!("meshc reach PATH --from {} --to {}", f.spec.from, f.spec.to);
                    result.detail = msg.clone();
                    findings.push(Finding::new(Code::FlowExpectationFailed, f.span, msg).hint(hint));
                }
            }
        }
        out.push(result);
    }
    out
}
