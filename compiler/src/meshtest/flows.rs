//! Running flows: each through `meshc reach`'s machinery, so a failure
//! carries the same proof a user would get from `meshc reach`.

use super::{Flow, Suite, TestResult};
use crate::findings::{Code, Finding};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::evaluate::Verdict;
use crate::query::proof::Step;
use crate::query::reach::{Reach, parse_client, parse_target, reach};
use crate::query::who::target_ports;
use mesh_proxy_api::HttpRequest;

fn expected(s: &str) -> Option<Verdict> {
    match s {
        "allow" => Some(Verdict::Allow),
        "deny" => Some(Verdict::Deny),
        "no-route" => Some(Verdict::NoRoute),
        _ => None,
    }
}

fn request(f: &Flow) -> Option<HttpRequest> {
    let s = &f.spec;
    if s.method.is_none() && s.path.is_none() && s.host.is_none() && s.headers.is_empty() {
        return None;
    }
    let mut req = HttpRequest::new(s.method.as_deref().unwrap_or("GET"), s.path.as_deref().unwrap_or("/"));
    req.host = s.host.clone();
    for (k, v) in &s.headers {
        req = req.with_header(k, v);
    }
    Some(req)
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

/// The flow's verdict: for its request, or "allowed on some route" without one.
/// Without a port, every port of the target counts.
fn verdict(o: &Outcome, classes: &Classes, f: &Flow) -> Result<(Verdict, Option<Reach>), String> {
    let client = parse_client(o, classes, &f.spec.from)?;
    let (wi, port) = parse_target(o, &f.spec.to)?;
    let req = request(f);
    let ports = port.map_or_else(|| target_ports(&o.resolved.workloads[wi], o.configs[wi].as_ref()), |p| vec![p]);
    let mut first: Option<Reach> = None;
    for port in ports {
        let r = reach(o, client.clone(), wi, port, req.as_ref());
        if r.verdicts.iter().any(|v| v.verdict == Verdict::Allow) {
            return Ok((Verdict::Allow, Some(r)));
        }
        first.get_or_insert(r);
    }
    let v = first.as_ref().and_then(|r| r.verdicts.first()).map_or(Verdict::Deny, |v| v.verdict);
    Ok((v, first))
}

/// The proof lines that explain a verdict: route, authorizations, causes.
fn explanation(r: &Reach) -> String {
    let Some(v) = r.verdicts.iter().find(|v| v.verdict != Verdict::Allow).or(r.verdicts.first()) else {
        return String::new();
    };
    let keep = |s: &&Step| matches!(s.step, "server" | "port" | "route" | "authorization" | "likely-cause");
    v.proof
        .iter()
        .filter(keep)
        .map(|s| match (&s.file, s.line) {
            (Some(file), Some(line)) => format!("{} ({file}:{line})", s.detail),
            _ => s.detail.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn run(o: &Outcome, classes: &Classes, suite: &Suite, findings: &mut Vec<Finding>) -> Vec<TestResult> {
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
        let Some(want) = expected(&f.spec.expect) else {
            let msg = format!("flow {}: expect `{}` is not allow, deny or no-route", result.name, f.spec.expect);
            findings.push(Finding::new(Code::TestError, f.span, msg.clone()));
            result.message = msg;
            out.push(result);
            continue;
        };
        match verdict(o, classes, f) {
            Err(e) => {
                let msg = format!("flow {}: {e}", result.name);
                findings.push(Finding::new(Code::TestError, f.span, msg.clone()));
                result.message = msg;
            }
            Ok((got, proof)) => {
                result.passed = got == want;
                result.message = format!("expected {}, got {}", want.as_str(), got.as_str());
                if !result.passed {
                    let why = proof.as_ref().map(explanation).unwrap_or_default();
                    let msg = format!("flow {}: expected {}, got {}: {why}", result.name, want.as_str(), got.as_str());
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
