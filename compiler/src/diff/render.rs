//! `meshc diff` output: human (grouped by namespace, opened green, closed
//! red), JSON version 1, and a Markdown PR comment.

use super::traffic::Broken;
use super::{Diff, EdgeChange};
use crate::query::render::text::Paint;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A PR comment must stay under GitHub's 65,536-character limit.
pub const MARKDOWN_LIMIT: usize = 60 * 1024;

pub fn summary(d: &Diff) -> String {
    let (i, f) = (d.findings.introduced.len(), d.findings.fixed.len());
    format!(
        "{} edges opened, {} closed, {} unchanged; {i} findings introduced, {f} fixed; {} workload configs changed",
        d.opened.len(),
        d.closed.len(),
        d.unchanged,
        d.configs_changed.len()
    )
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

pub fn human(d: &Diff, broken: &[Broken], paint: Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", paint.bold(&summary(d)));
    if !broken.is_empty() {
        let _ = writeln!(out, "\nobserved flows this change breaks");
        for b in broken {
            let line = format!("  error: {}", b.line());
            let _ = writeln!(out, "{}", if paint.0 { format!("\x1b[31;1m{line}\x1b[0m") } else { line });
        }
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

/// JSON version 1 (README, "meshc diff").
pub fn json(d: &Diff, broken: &[Broken]) -> String {
    let mut v = serde_json::to_value(d).expect("diff serializes");
    v["version"] = serde_json::json!(1);
    v["broken_traffic"] = serde_json::to_value(broken).expect("flows serialize");
    serde_json::to_string_pretty(&v).expect("json")
}

/// A PR comment: the summary, then collapsible details, cut at
/// [`MARKDOWN_LIMIT`] with a note saying how much was left out.
pub fn markdown(d: &Diff, broken: &[Broken]) -> String {
    let mut out = format!("<!-- meshc-diff -->\n### meshc diff\n\n**{}**\n", summary(d));
    if !broken.is_empty() {
        let _ = writeln!(out, "\n:x: **{} observed flows would break**\n", broken.len());
        for b in broken {
            let _ = writeln!(out, "- {}", escape(&b.line()));
        }
    }
    let mut body = String::new();
    for (ns, edges) in by_namespace(d) {
        let _ = writeln!(body, "\n<details><summary>namespace <code>{ns}</code>: {} changes</summary>\n", edges.len());
        for (opened, e) in edges {
            let sign = if opened { ":green_circle: opened" } else { ":red_circle: closed" };
            let cause = cause_line(e).map_or_else(String::new, |c| format!("<br>because {}", escape(&c)));
            let _ = writeln!(body, "- {sign} `{}`{cause}", edge_line(e));
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
    let room = MARKDOWN_LIMIT.saturating_sub(out.len() + 200);
    if body.len() > room {
        let cut = body[..room].rfind('\n').unwrap_or(0);
        let left = body[cut..].lines().filter(|l| l.starts_with("- ")).count();
        body.truncate(cut);
        let _ =
            writeln!(body, "\n</details>\n\n_Truncated: {left} more lines; run `meshc diff` locally for all of them._");
    }
    out + &body
}

fn escape(s: &str) -> String {
    s.replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let md = markdown(&d, &[]);
        assert!(md.len() <= MARKDOWN_LIMIT, "{}", md.len());
        assert!(md.contains("_Truncated: "), "no truncation note");
        assert!(md.starts_with("<!-- meshc-diff -->"));
        let small = markdown(&Diff { closed: (0..3).map(edge).collect(), ..Diff::default() }, &[]);
        assert!(!small.contains("Truncated"));
    }
}
