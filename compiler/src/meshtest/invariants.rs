//! Running invariants: CEL over the mesh graph (`crate::invariants`). A
//! violation carries its counterexample, with the proof `meshc reach` gives
//! for it when the counterexample names a client, a workload and a port.

use super::{Invariant, TestResult};
use crate::findings::{Code, Finding, Span};
use crate::invariants::{CelError, Counterexample, Env, InvariantOutcome};
use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use crate::query::clients::ClientKind;
use crate::query::reach::{ClientView, reach, workload_label};

/// The position of a CEL error in the test file: the expression's own line
/// and column, shifted by where the expression starts.
fn error_span(inv: &Invariant, e: &CelError) -> Span {
    let mut span = inv.expr_span;
    if e.line <= 1 {
        span.column += e.column.saturating_sub(1);
    } else {
        // A block scalar: its text starts on the line after the indicator.
        span.line += e.line;
        span.column = e.column;
    }
    span
}

/// The counterexample in words, with the proof of its verdict.
fn describe(o: &Outcome, classes: &Classes, c: &Counterexample) -> String {
    let mut parts = vec![c.detail.clone()];
    let (Some(class), Some(wi), Some(port)) = (c.class, c.workload, c.port) else { return parts.join("") };
    let rep = &classes.classes[class];
    let kind = rep.members.first().map_or(ClientKind::Workload, |m| m.kind);
    let at: Vec<_> = classes.addrs.places.iter().cloned().zip(rep.at.iter().cloned()).collect();
    let client = ClientView::of_client(rep.label.clone(), kind, &at, Some(class));
    let r = reach(o, client, wi, port, c.request.as_ref());
    let route = c.route.as_deref();
    let v = r.verdicts.iter().find(|v| route.is_none_or(|n| v.entry_name() == n));
    let request = c.request.as_ref().map_or_else(String::new, |q| format!(" {} {}", q.method, q.path));
    parts.push(format!(
        "; counterexample: {} → {}:{port}{}{request}",
        rep.label,
        workload_label(o, wi),
        route.map_or_else(String::new, |r| format!(" {r}"))
    ));
    if let Some(v) = v {
        parts.push(format!(" is {}: {}", v.verdict.as_str(), v.summary()));
    }
    parts.join("")
}

pub fn run(o: &Outcome, classes: &Classes, invariants: &[Invariant], findings: &mut Vec<Finding>) -> Vec<TestResult> {
    if invariants.is_empty() {
        return Vec::new();
    }
    let env = Env::new(o, classes);
    invariants
        .iter()
        .map(|inv| {
            let file = o.sources.get(inv.span.source as usize).map_or_else(String::new, |s| s.name.clone());
            let mut r = TestResult {
                test: inv.test.clone(),
                name: inv.spec.name.clone(),
                file,
                line: inv.span.line,
                passed: false,
                message: String::new(),
                detail: String::new(),
            };
            match env.check(&inv.spec.expr) {
                Ok(InvariantOutcome::Holds) => {
                    r.passed = true;
                    r.message = "holds".to_owned();
                }
                Ok(InvariantOutcome::Violated(example)) => {
                    let said = inv.spec.message.as_deref().unwrap_or("the invariant is false");
                    let example = example.map_or_else(
                        || " (no single element to show: the expression is not of the form LIST.all(x, P))".to_owned(),
                        |c| format!(": {}", describe(o, classes, &c)),
                    );
                    r.message = format!("violated: {said}");
                    r.detail = format!("invariant {} violated: {said}{example}", inv.spec.name);
                    findings.push(Finding::new(Code::InvariantViolated, inv.span, r.detail.clone()));
                }
                Ok(InvariantOutcome::Depends(example)) => {
                    let said = inv.spec.message.as_deref().unwrap_or("the invariant is false");
                    let example = example.map_or_else(String::new, |c| format!("; where it fails: {}", describe(o, classes, &c)));
                    r.message = format!("depends on the pod CIDR: {said}");
                    r.detail = format!(
                        "invariant {} depends on the pod CIDR: it holds or not depending on where client pods are, which git does not hold (set podNetworks): {said}{example}",
                        inv.spec.name
                    );
                    findings.push(Finding::new(Code::InvariantViolated, inv.span, r.detail.clone()));
                }
                Err(e) => {
                    r.message = format!("invariant {}: {e}", inv.spec.name);
                    findings.push(Finding::new(Code::TestError, error_span(inv, &e), r.message.clone()));
                }
            }
            r
        })
        .collect()
}
