//! Per-source counts and the README table that must show them.

use std::path::Path;

#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub agree: usize,
    pub differ: usize,
    pub cannot: usize,
    pub false_alarms: usize,
    pub true_findings: usize,
    /// `unmodelled-resource` findings: what meshc says it cannot see.
    pub unmodelled: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.agree += o.agree;
        self.differ += o.differ;
        self.cannot += o.cannot;
        self.false_alarms += o.false_alarms;
        self.true_findings += o.true_findings;
        self.unmodelled += o.unmodelled;
    }

    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            self.agree, self.differ, self.cannot, self.false_alarms, self.true_findings, self.unmodelled
        )
    }
}

pub const HEADER: &str = "| source | agree | differ | cannot express | false alarms | true findings | unmodelled |";

/// The markdown table, one row per source and a total.
pub fn table(rows: &[(String, Tally)]) -> String {
    let mut total = Tally::default();
    let mut out = vec![HEADER.to_owned(), "|---|---|---|---|---|---|---|".to_owned()];
    for (name, t) in rows {
        total.add(t);
        out.push(t.row(&format!("`{name}`")));
    }
    out.push(total.row("**total**"));
    out.join("\n")
}

/// README.md must hold the table as measured, and one line per outcome
/// that differs or cannot be expressed (as known-gaps.txt says it).
pub fn check_readme(readme: &Path, table: &str, gap_lines: &[String], problems: &mut Vec<String>) {
    let text = std::fs::read_to_string(readme).unwrap_or_default();
    if !text.contains(table) {
        problems.push(format!("{} does not hold the measured table; put this in it:\n{table}", readme.display()));
    }
    let lines: std::collections::BTreeSet<&str> = text.lines().collect();
    for line in gap_lines.iter().filter(|l| !lines.contains(l.as_str())) {
        problems.push(format!("{} lacks the line `{line}`", readme.display()));
    }
}
