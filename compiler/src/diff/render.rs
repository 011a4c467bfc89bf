//! `meshc diff` output: human (grouped by namespace, opened green, closed
//! red), JSON version 1, and a Markdown PR comment.

use super::traffic::Checked;
use super::{Diff, EdgeChange};
use crate::query::render::text::Paint;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A PR comment must stay under GitHub's 65,536-character limit.
pub const MARKDOWN_LIMIT: usize = 60 * 1024;

pub fn summary(d: &Diff) -> String {
    let (i, f) = (d.findings.introduced.len(), d.findings.fixed.len());
    // Said only when there are some, so that a change without egress reads as before.
    let mut egress = match (d.egress_opened.len(), d.egress_closed.len()) {
        (0, 0) => String::new(),
        (o, c) => format!("; {o} egress edges opened, {c} closed"),
    };
    if d.services_compared {
        egress += &format!("; {} Service edges opened, {} closed", d.services_opened.len(), d.services_closed.len());
    }
    format!(
        "{} edges opened, {} closed, {} unchanged{egress}; {i} findings introduced, {f} fixed; {} workload configs changed",
        d.opened.len(),
        d.closed.len(),
        d.unchanged,
        d.configs_changed.len()
    )
}

/// The Service edge changes, opened first, one line each.
fn service_lines(d: &Diff) -> Vec<(bool, String)> {
    let opened = d.services_opened.iter().map(|c| (true, super::services::line(c)));
    opened.chain(d.services_closed.iter().map(|c| (false, super::services::line(c)))).collect()
}

/// The egress changes, opened first: `(opened, change)`.
fn egress_changes(d: &Diff) -> impl Iterator<Item = (bool, &super::egress::EgressChange)> {
    d.egress_opened.iter().map(|e| (true, e)).chain(d.egress_closed.iter().map(|e| (false, e)))
}

fn by_namespace(d: &Diff) -> BTreeMap<&str, Vec<(bool, &EdgeChange)>> {
    let mut out: BTreeMap<&str, Vec<(bool, &EdgeChange)>> = BTreeMap::new();
    for e in &d.opened {
        out.entry(&e.namespace).or_default().push((true, e));
    }
    for e in &d.closed {
        out.entry(&e.namespace).or_default().push((false, e));
    }
    out
}

fn edge_line(e: &EdgeChange) -> String {
    let matches = e.matches.as_ref().map_or_else(String::new, |m| format!(" ({m})"));
    let route = if e.route == "*" { String::new() } else { format!(" {}{matches}", e.route) };
    let condition = e.condition.as_ref().map_or_else(String::new, |c| format!(" [depends: {c}]"));
    format!("{} → {}:{}{route}{condition}", e.client.label, e.target.workload, e.target.port)
}

fn cause_line(e: &EdgeChange) -> Option<String> {
    let c = e.cause.as_ref()?;
    let at = match (&c.step.file, c.step.line) {
        (Some(f), Some(l)) => format!(" ({}: {f}:{l})", c.side),
        _ => format!(" ({})", c.side),
    };
    Some(format!("{}{at}", c.step.detail))
}

pub fn human(d: &Diff, traffic: &Checked, paint: Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", paint.bold(&summary(d)));
    let red = |line: String| if paint.0 { format!("\x1b[31;1m{line}\x1b[0m") } else { line };
    if !traffic.broken.is_empty() {
        let _ = writeln!(out, "\nobserved flows this change breaks");
        for b in &traffic.broken {
            let _ = writeln!(out, "{}", red(format!("  error: {}", b.line())));
        }
    }
    if !traffic.unchecked.is_empty() {
        let _ = writeln!(out, "\n{}", unchecked_title(traffic));
        for u in &traffic.unchecked {
            let _ = writeln!(out, "{}", red(format!("  error: {}", u.line())));
        }
    }
    if traffic.not_in_base > 0 {
        let _ = writeln!(out, "\n{}", not_in_base_line(traffic.not_in_base));
    }
    for (ns, edges) in by_namespace(d) {
        let _ = writeln!(out, "\nnamespace {ns}");
        for (opened, e) in edges {
            let (sign, code) = if opened { ("+ opened", "32") } else { ("- closed", "31") };
            let line = format!("  {sign}  {}", edge_line(e));
            let _ = writeln!(out, "{}", if paint.0 { format!("\x1b[{code}m{line}\x1b[0m") } else { line });
            if let Some(cause) = cause_line(e) {
                let _ = writeln!(out, "      because {cause}");
            }
        }
    }
    if !d.egress_opened.is_empty() || !d.egress_closed.is_empty() {
        let _ = writeln!(out, "\negress");
        for (opened, e) in egress_changes(d) {
            let (sign, code) = if opened { ("+ opened", "32") } else { ("- closed", "31") };
            let line = format!("  {sign}  {}", super::egress::line(e));
            let _ = writeln!(out, "{}", if paint.0 { format!("\x1b[{code}m{line}\x1b[0m") } else { line });
            if let Some(source) = super::egress::source_line(e) {
                let _ = writeln!(out, "      from {source}");
            }
        }
    }
    let services = service_lines(d);
    if !services.is_empty() {
        let _ = writeln!(out, "\nservices (client → Service edges)");
        for (opened, line) in services {
            let (sign, code) = if opened { ("+ opened", "32") } else { ("- closed", "31") };
            let line = format!("  {sign}  {line}");
            let _ = writeln!(out, "{}", if paint.0 { format!("\x1b[{code}m{line}\x1b[0m") } else { line });
        }
    }
    for (title, list) in [("findings introduced", &d.findings.introduced), ("findings fixed", &d.findings.fixed)] {
        if !list.is_empty() {
            let _ = writeln!(out, "\n{title}");
            for f in list {
                let _ = writeln!(out, "  {} {} {}:{}: {}", f.severity, f.code, f.file, f.line, f.message);
            }
        }
    }
    if !d.configs_changed.is_empty() {
        let _ = writeln!(out, "\nworkload configs a rollout will change");
        for c in &d.configs_changed {
            let none = || "none".to_owned();
            let (b, a) = (c.before.clone().unwrap_or_else(none), c.after.clone().unwrap_or_else(none));
            let _ = writeln!(out, "  {}  {b} → {a}", c.workload);
        }
    }
    out
}

fn unchecked_title(traffic: &Checked) -> String {
    let n = traffic.unchecked.len();
    format!("{n} observed flows could not be checked (they fail --fail-on broken-traffic)")
}

fn not_in_base_line(n: usize) -> String {
    format!("{n} observed flows name a client or target the base does not have; not checked")
}

/// JSON version 1 (README, "meshc diff").
pub fn json(d: &Diff, traffic: &Checked) -> String {
    let mut v = serde_json::to_value(d).expect("diff serializes");
    v["version"] = serde_json::json!(1);
    v["broken_traffic"] = serde_json::to_value(&traffic.broken).expect("flows serialize");
    v["unchecked_traffic"] = serde_json::to_value(&traffic.unchecked).expect("rows serialize");
    v["traffic_not_in_base"] = serde_json::json!(traffic.not_in_base);
    serde_json::to_string_pretty(&v).expect("json")
}

/// A PR comment: the summary, then the broken flows and collapsible
/// details, cut at [`MARKDOWN_LIMIT`] with a note saying how much was left out.
pub fn markdown(d: &Diff, traffic: &Checked) -> String {
    let out = format!("<!-- meshc-diff -->\n### meshc diff\n\n**{}**\n", summary(d));
    let mut body = String::new();
    if !traffic.broken.is_empty() {
        let _ = writeln!(body, "\n:x: **{} observed flows would break**\n", traffic.broken.len());
        for b in &traffic.broken {
            let _ = writeln!(body, "- {}", escape(&b.line()));
        }
    }
    if !traffic.unchecked.is_empty() {
        let _ = writeln!(body, "\n:x: **{}**\n", unchecked_title(traffic));
        for u in &traffic.unchecked {
            let _ = writeln!(body, "- {}", escape(&u.line()));
        }
    }
    if traffic.not_in_base > 0 {
        let _ = writeln!(body, "\n{}", not_in_base_line(traffic.not_in_base));
    }
    for (ns, edges) in by_namespace(d) {
        let _ = writeln!(body, "\n<details><summary>namespace <code>{ns}</code>: {} changes</summary>\n", edges.len());
        for (opened, e) in edges {
            let sign = if opened { ":green_circle: opened" } else { ":red_circle: closed" };
            let cause = cause_line(e).map_or_else(String::new, |c| format!("<br>because {}", escape(&c)));
            let _ = writeln!(body, "- {sign} `{}`{cause}", edge_line(e));
        }
        let _ = writeln!(body, "\n</details>");
    }
    let egress: Vec<_> = egress_changes(d).collect();
    if !egress.is_empty() {
        let _ = writeln!(body, "\n<details><summary>egress: {} changes</summary>\n", egress.len());
        for (opened, e) in egress {
            let sign = if opened { ":green_circle: opened" } else { ":red_circle: closed" };
            let from = super::egress::source_line(e).map_or_else(String::new, |c| format!("<br>from {}", escape(&c)));
            let _ = writeln!(body, "- {sign} `{}`{from}", super::egress::line(e));
        }
        let _ = writeln!(body, "\n</details>");
    }
    let services = service_lines(d);
    if !services.is_empty() {
        let _ = writeln!(body, "\n<details><summary>client → Service edges: {} changes</summary>\n", services.len());
        for (opened, line) in services {
            let sign = if opened { ":green_circle: opened" } else { ":red_circle: closed" };
            let _ = writeln!(body, "- {sign} `{line}`");
        }
        let _ = writeln!(body, "\n</details>");
    }
    for (title, list) in [("Findings introduced", &d.findings.introduced), ("Findings fixed", &d.findings.fixed)] {
        if !list.is_empty() {
            let _ = writeln!(body, "\n<details><summary>{title}: {}</summary>\n", list.len());
            for f in list {
                let _ =
                    writeln!(body, "- **{}** `{}` {}:{}: {}", f.severity, f.code, f.file, f.line, escape(&f.message));
            }
            let _ = writeln!(body, "\n</details>");
        }
    }
    if !d.configs_changed.is_empty() {
        let _ = writeln!(body, "\n<details><summary>Workload configs changed: {}</summary>\n", d.configs_changed.len());
        for c in &d.configs_changed {
            let _ = writeln!(body, "- `{}`", c.workload);
        }
        let _ = writeln!(body, "\n</details>");
    }
    truncate_body(&mut body, MARKDOWN_LIMIT.saturating_sub(out.len() + 200));
    out + &body
}

/// Cuts `body` to at most `room` bytes at a line end, closes a `<details>`
/// left open and says how many list lines were left out.
fn truncate_body(body: &mut String, room: usize) {
    if body.len() <= room {
        return;
    }
    // The last line end before `room`: a byte, so never inside a character.
    let cut = body.as_bytes()[..room].iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let left = body[cut..].lines().filter(|l| l.starts_with("- ")).count();
    body.truncate(cut);
    if body.matches("<details>").count() > body.matches("</details>").count() {
        body.push_str("\n</details>\n");
    }
    let _ = writeln!(body, "\n_Truncated: {left} more lines; run `meshc diff` locally for all of them._");
}

fn escape(s: &str) -> String {
    s.replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::traffic::Broken;
    use crate::diff::{ClientGroup, Target};

    fn edge(i: usize) -> EdgeChange {
        EdgeChange {
            client: ClientGroup { label: format!("Deployment/ns/client-{i}"), members: Vec::new() },
            target: Target { workload: format!("Deployment/ns/target-{i}"), port: 8080 },
            namespace: "ns".to_owned(),
            route: "HTTPRoute r".to_owned(),
            matches: Some("GET path = /x".to_owned()),
            condition: None,
            cause: None,
        }
    }

    #[test]
    fn markdown_is_cut_below_the_comment_limit_with_a_note() {
        let d = Diff { closed: (0..5000).map(edge).collect(), ..Diff::default() };
        let md = markdown(&d, &Checked::default());
        assert!(md.len() <= MARKDOWN_LIMIT, "{}", md.len());
        assert!(md.contains("_Truncated: "), "no truncation note");
        assert!(md.starts_with("<!-- meshc-diff -->"));
        let small = markdown(&Diff { closed: (0..3).map(edge).collect(), ..Diff::default() }, &Checked::default());
        assert!(!small.contains("Truncated"));
    }

    /// Shifting the text before the cut by one byte at a time over a whole
    /// line's length puts the cut inside a two-byte `é` for some shifts.
    #[test]
    fn markdown_cut_never_splits_a_character() {
        for shift in 0..200 {
            let edges = (0..600).map(|i| {
                let mut e = edge(i);
                e.target.workload =
                    format!("Deployment/ns/{}{}", "x".repeat(if i == 0 { shift } else { 0 }), "é".repeat(40));
                e
            });
            let md = markdown(&Diff { closed: edges.collect(), ..Diff::default() }, &Checked::default());
            assert!(md.len() <= MARKDOWN_LIMIT, "{}", md.len());
            assert!(md.contains("_Truncated: "), "shift {shift}: no truncation note");
        }
    }

    /// Broken flows come first and count against the limit too.
    #[test]
    fn many_broken_flows_stay_below_the_comment_limit() {
        let flow = |i: usize| Broken {
            flow: crate::diff::traffic::Flow {
                from: format!("ns/client-{i}"),
                to: "ns/web:8080".to_owned(),
                method: None,
                path: None,
                count: None,
            },
            after: "port 8080: deny (403): no authorization matches".to_owned(),
        };
        let traffic = Checked { broken: (0..5000).map(flow).collect(), ..Checked::default() };
        let md = markdown(&Diff::default(), &traffic);
        assert!(md.len() <= MARKDOWN_LIMIT, "{}", md.len());
        assert!(md.contains("5000 observed flows would break"));
        assert!(md.contains("_Truncated: "));
        assert!(!md.contains("</details>"), "no details block was open");
    }
}
