//! Human output of `reach` and `who-can-reach`: verdicts first, then the
//! proof, each link with the place it comes from.

use crate::query::classes::Classes;
use crate::query::evaluate::Verdict;
use crate::query::proof::Step;
use crate::query::reach::{Reach, VerdictView};
use crate::query::who::PortAnswer;
use std::fmt::Write;

/// ANSI colour, only when writing to a terminal (and NO_COLOR is unset).
#[derive(Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }

    fn code(self, code: &str, text: &str) -> String {
        if self.0 { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }

    pub fn verdict(self, v: Verdict) -> String {
        let code = match v {
            Verdict::Allow => "32;1",
            Verdict::Deny => "31;1",
            Verdict::NoRoute => "33;1",
            Verdict::Depends => "35;1",
        };
        self.code(code, v.as_str())
    }

    pub fn dim(self, text: &str) -> String {
        self.code("2", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.code("1", text)
    }
}

pub(crate) fn step(out: &mut String, paint: Paint, s: &Step) {
    let _ = writeln!(out, "  {:<14} {}", s.step, s.detail);
    if let (Some(file), Some(line)) = (&s.file, s.line) {
        let _ = writeln!(out, "  {:<14} {}", "", paint.dim(&format!("at {file}:{line}")));
    }
}

fn status(v: &VerdictView) -> String {
    match (v.status, v.verdict, v.unit) {
        (Some(code), _, crate::query::evaluate::Unit::Grpc) => format!(" (grpc-status {code})"),
        (Some(code), _, _) => format!(" ({code})"),
        (None, Verdict::Allow, _) => String::new(),
        (None, Verdict::Depends, _) => v.condition.as_ref().map_or_else(String::new, |c| format!(" ({c})")),
        (None, _, _) => " (connection closed)".to_owned(),
    }
}

fn subject(v: &VerdictView) -> String {
    match &v.route {
        Some(r) if r.kind == "default" => format!("route default:{}", r.name),
        Some(r) => match r.rule {
            Some(rule) => format!("{} {} rule {rule}", r.kind, r.name),
            None => format!("{} {}", r.kind, r.name),
        },
        None => match v.unit {
            crate::query::evaluate::Unit::Connection => "connection".to_owned(),
            crate::query::evaluate::Unit::Bypass => "all traffic".to_owned(),
            _ => "no route".to_owned(),
        },
    }
}

/// The shared head of the proof (target, client, port) once, then each
/// verdict with the rest of its proof.
pub fn reach(r: &Reach, request: Option<&str>, paint: Paint) -> String {
    let mut out = String::new();
    let req = request.map_or_else(String::new, |q| format!("  {q}"));
    let _ = writeln!(out, "{} → {}:{}{req}", paint.bold(&r.client.spec), r.target.workload, r.target.port);
    const HEAD: usize = 3;
    if let Some(first) = r.verdicts.first() {
        for s in first.proof.iter().take(HEAD) {
            step(&mut out, paint, s);
        }
    }
    if let Some(l) = &r.rate_limit {
        let _ = writeln!(
            out,
            "  rate limit     HTTPLocalRateLimitPolicy {}: {} requests per second ({} limit), then 429",
            l.policy, l.requests_per_second, l.scope
        );
    }
    for v in &r.verdicts {
        let _ = writeln!(out, "\n{} {}{}", paint.verdict(v.verdict), subject(v), status(v));
        for s in v.proof.iter().skip(HEAD) {
            step(&mut out, paint, s);
        }
    }
    out
}

/// `meshc reach --to egress:HOST:PORT`, human form.
pub fn reach_egress(r: &crate::query::egress::EgressReach, paint: Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} → {} ({})", paint.bold(&r.client), r.target, r.protocol);
    for s in &r.proof {
        step(&mut out, paint, s);
    }
    let status = match (r.status, r.verdict, r.protocol) {
        (Some(7), _, _) if r.verdict == Verdict::Deny => " (grpc-status 7 PERMISSION_DENIED)".to_owned(),
        (Some(code), _, _) => format!(" ({code})"),
        (None, Verdict::Deny, _) => " (connection closed)".to_owned(),
        (None, Verdict::Depends, _) => r.condition.as_ref().map_or_else(String::new, |c| format!(" ({c})")),
        _ => String::new(),
    };
    let to: Vec<String> = r
        .backends
        .iter()
        .map(|b| match (&b.service, b.kind) {
            (_, "original") => format!("passed through (weight {})", b.weight),
            (Some(s), "service") => format!("redirected to Service {s} (weight {})", b.weight),
            (Some(s), _) => format!("invalid: {s} (weight {})", b.weight),
            _ => b.kind.to_owned(),
        })
        .collect();
    let to = if to.is_empty() { String::new() } else { format!(": {}", to.join(", ")) };
    let _ = writeln!(out, "\n{}{status}{to}", paint.verdict(r.verdict));
    out
}

fn class_list(ids: &[usize], classes: &Classes) -> String {
    const SHOWN: usize = 12;
    let mut names: Vec<String> =
        ids.iter().take(SHOWN).map(|&c| format!("[{c}] {}", classes.classes[c].label())).collect();
    if ids.len() > SHOWN {
        names.push(format!("… {} more", ids.len() - SHOWN));
    }
    names.join(", ")
}

/// Classes whose verdict depends on the pod CIDR, grouped by condition in first-seen order.
fn by_condition(depends: &[crate::query::who::Dependent]) -> Vec<(&str, Vec<usize>)> {
    let mut out: Vec<(&str, Vec<usize>)> = Vec::new();
    for d in depends {
        match out.iter_mut().find(|(c, _)| *c == d.condition) {
            Some((_, ids)) => ids.push(d.class),
            None => out.push((&d.condition, vec![d.class])),
        }
    }
    out
}

pub fn who(target: &str, answers: &[PortAnswer], classes: &Classes, paint: Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} — who can reach it, out of {} client classes", paint.bold(target), classes.len());
    for a in answers {
        let name = a.name.as_ref().map_or_else(String::new, |n| format!(" ({n})"));
        let _ = writeln!(out, "\nport {}{name}: {}", a.port, a.server.detail);
        if let (Some(file), Some(line)) = (&a.server.file, a.server.line) {
            let _ = writeln!(out, "  {}", paint.dim(&format!("at {file}:{line}")));
        }
        if let Some(l) = &a.rate_limit {
            let _ = writeln!(out, "  rate limit: {}", l.text());
        }
        for e in &a.entries {
            let what = match (&e.route, e.unit) {
                (Some(route), _) => format!("{route}: {}", e.matches.join(" | ")),
                (None, crate::query::evaluate::Unit::Connection) => "non-HTTP connections".to_owned(),
                (None, _) => "all traffic".to_owned(),
            };
            let _ = writeln!(out, "  {what}");
            if e.allowed.is_empty() {
                let _ = writeln!(out, "    {} nobody but localhost", paint.verdict(Verdict::Deny));
            } else {
                let _ = writeln!(out, "    {} {}", paint.verdict(Verdict::Allow), class_list(&e.allowed, classes));
            }
            for (condition, ids) in by_condition(&e.depends) {
                let _ = writeln!(
                    out,
                    "    {} {} — {condition}",
                    paint.verdict(Verdict::Depends),
                    class_list(&ids, classes)
                );
            }
            if !e.bypass.is_empty() {
                let _ = writeln!(out, "    bypassing the proxy (skip-subnets): {}", class_list(&e.bypass, classes));
            }
            if !e.denied.is_empty() {
                let _ =
                    writeln!(out, "    {} {} classes ({})", paint.verdict(Verdict::Deny), e.denied.len(), e.denied_as);
            }
        }
    }
    let _ = writeln!(out, "\nclient classes (clients no policy tells apart):");
    for c in &classes.classes {
        let members: Vec<&str> = c.members.iter().map(|m| m.label.as_str()).collect();
        let _ = writeln!(out, "  [{}] {}", c.id, members.join(", "));
    }
    out
}
